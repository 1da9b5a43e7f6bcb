package synic

import (
	"errors"
	"sync"
	"testing"
)

type recorder struct {
	mu      sync.Mutex
	posts   []string
	signals []uint32
	status  Status
}

func (r *recorder) HandlePost(connID, msgType uint32, payload []byte) Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts = append(r.posts, string(payload))
	if connID != 1 {
		return StatusInvalidConnectionID
	}
	return r.status
}

func (r *recorder) HandleSignal(connID uint32) Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signals = append(r.signals, connID)
	return StatusSuccess
}

func TestPairMessagesQueueBehindSlot(t *testing.T) {
	rec := &recorder{}
	p := NewPair(rec)
	g, h := p.Guest(), p.Host()
	for _, s := range []string{"one", "two", "three"} {
		if err := h.Deliver(1, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	<-g.Interrupt()
	var m Message
	var got []string
	for g.TakeMessage(&m) {
		if m.Type != 1 {
			t.Fatalf("type %d", m.Type)
		}
		got = append(got, string(m.Bytes()))
	}
	if len(got) != 3 || got[0] != "one" || got[2] != "three" {
		t.Fatalf("got %q", got)
	}
	if g.TakeMessage(&m) {
		t.Fatal("slot should be empty")
	}
	if err := h.Deliver(1, make([]byte, MaxPayload+1)); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("oversize deliver: %v", err)
	}
}

func TestPairQueueLimit(t *testing.T) {
	p := NewPair(&recorder{})
	h := p.Host()
	for i := 0; i < DefaultQueue+1; i++ { // one in the slot, DefaultQueue queued
		if err := h.Deliver(1, []byte{byte(i)}); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}
	if err := h.Deliver(1, []byte{0}); !errors.Is(err, StatusInsufficientBuffers) {
		t.Fatalf("overflow: %v", err)
	}
}

func TestPairPostStatusAndEvents(t *testing.T) {
	rec := &recorder{}
	p := NewPair(rec)
	g, h := p.Guest(), p.Host()
	if err := g.PostMessage(1, 1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := g.PostMessage(4, 1, []byte("v5")); !errors.Is(err, StatusInvalidConnectionID) {
		t.Fatalf("post to unknown connection: %v", err)
	}
	if err := g.SignalEvent(0x2001); err != nil || rec.signals[0] != 0x2001 {
		t.Fatalf("signal: %v %v", err, rec.signals)
	}
	for _, r := range []uint32{5, 64, 2047, 5} {
		if err := h.SignalGuest(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SignalGuest(0); err == nil {
		t.Fatal("relid 0 is reserved")
	}
	if err := h.SignalGuest(2048); err == nil {
		t.Fatal("relid 2048 does not fit")
	}
	var relids []uint32
	g.ScanEvents(func(r uint32) { relids = append(relids, r) })
	if len(relids) != 3 || relids[0] != 5 || relids[1] != 64 || relids[2] != 2047 {
		t.Fatalf("relids %v", relids)
	}
	g.ScanEvents(func(r uint32) { t.Fatalf("flag %d not cleared", r) })
	if st := p.Stats(); st.Posts != 2 || st.Signals != 1 {
		t.Fatalf("stats %+v", st)
	}
	g.Close()
	if err := g.PostMessage(1, 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if err := h.Deliver(1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("deliver after close: %v", err)
	}
}
