package vmbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/kernel"
)

// peer is the host end of a channel's rings, driven by hand in tests.
type peer struct {
	r       *ring.Reader // reads the guest's outbound ring
	w       *ring.Writer // writes the guest's inbound ring
	signals atomic.Int64 // guest → host signals
	wake    chan struct{}
}

func newChannelPair(t *testing.T, sendPages, recvPages int, h Handler) (*Channel, *peer, *kernel.SimRAM) {
	t.Helper()
	ram := kernel.NewSimRAM(sendPages + recvPages + 8)
	reg, err := ram.Alloc(sendPages + recvPages)
	if err != nil {
		t.Fatal(err)
	}
	out, in, err := ring.SplitPair(reg.Bytes, sendPages)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []ring.Memory{out, in} {
		if err := ring.InitControl(m.Control); err != nil {
			t.Fatal(err)
		}
	}
	p := &peer{wake: make(chan struct{}, 1)}
	ch, err := NewChannel(ChannelConfig{Out: out, In: in, Handler: h, Name: "test",
		RequestTimeout: 2 * time.Second,
		Signal: func() error {
			p.signals.Add(1)
			select {
			case p.wake <- struct{}{}:
			default:
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if p.r, err = ring.NewReader(out.Control, out.Data, nil); err != nil {
		t.Fatal(err)
	}
	if p.w, err = ring.NewWriter(in.Control, in.Data); err != nil {
		t.Fatal(err)
	}
	ch.Start()
	t.Cleanup(ch.Close)
	return ch, p, ram
}

func TestChannelSendBatchSignalsOnce(t *testing.T) {
	ch, p, _ := newChannelPair(t, 4, 4, nil)
	err := ch.Send(func(tx *Tx) error {
		for i := 0; i < 10; i++ {
			if err := tx.InBand(uint64(i+1), i%2 == 0, []byte{byte(i), 1, 2}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.signals.Load(); got != 1 {
		t.Fatalf("%d signals for one batch into an empty ring, want 1", got)
	}
	var pk ring.Packet
	for i := 0; i < 10; i++ {
		if err := p.r.Next(&pk); err != nil {
			t.Fatal(err)
		}
		if pk.Type != ring.TypeInBand || pk.TransID != uint64(i+1) || pk.CompletionRequested() != (i%2 == 0) ||
			!bytes.Equal(pk.Payload[:3], []byte{byte(i), 1, 2}) {
			t.Fatalf("packet %d: %+v %x", i, pk.Descriptor, pk.Payload)
		}
	}
	p.r.Commit()
	// The ring is not empty for the guest's second batch until the host
	// read it: a second send into a non-empty ring must not signal.
	ch.SendInBand(100, false, []byte("x"))
	ch.SendInBand(101, false, []byte("y"))
	if got := p.signals.Load(); got != 2 {
		t.Fatalf("signals %d, want 2 (only empty→non-empty)", got)
	}
	if s := ch.Stats(); s.TxPackets != 12 || s.TxBytes != 32 || s.TxSignals != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestChannelGPADirect(t *testing.T) {
	ch, p, _ := newChannelPair(t, 4, 4, nil)
	ranges := []gpa.Range{{ByteCount: 6000, ByteOffset: 100, PFNs: []uint64{0x300, 0x301}}}
	if err := ch.Send(func(tx *Tx) error { return tx.GPADirect(9, true, ranges, []byte("rndis")) }); err != nil {
		t.Fatal(err)
	}
	var pk ring.Packet
	if err := p.r.Next(&pk); err != nil {
		t.Fatal(err)
	}
	it := pk.GPARanges()
	var r gpa.Range
	if pk.Type != ring.TypeGPADirect || !it.Next(&r) || r.ByteCount != 6000 || r.PFNs[1] != 0x301 ||
		!bytes.HasPrefix(pk.Payload, []byte("rndis")) {
		t.Fatalf("gpa-direct %+v %+v", pk.Descriptor, r)
	}
}

func TestChannelRequestResponse(t *testing.T) {
	ch, p, _ := newChannelPair(t, 4, 4, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the host answers every request with its payload reversed
		defer wg.Done()
		var pk ring.Packet
		for {
			select {
			case <-stop:
				return
			case <-p.wake:
			}
			// Mask, drain, unmask, re-check: the guest does not signal
			// a ring that is not empty, so a packet that lands while
			// this peer drains must be found by the re-check.
			for more := true; more; more = p.r.EndRead() {
				p.r.BeginRead()
				for p.r.Next(&pk) == nil {
					rev := append([]byte(nil), pk.Payload[:8]...)
					for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
						rev[i], rev[j] = rev[j], rev[i]
					}
					p.w.WriteCompletion(pk.TransID, rev)
				}
				p.r.Commit()
				if p.w.Commit() {
					ch.Notify()
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	var rwg sync.WaitGroup
	for g := 0; g < 8; g++ {
		rwg.Add(1)
		go func(g int) {
			defer rwg.Done()
			for i := 0; i < 200; i++ {
				var req [8]byte
				binary.BigEndian.PutUint64(req[:], uint64(g<<32|i))
				resp, err := ch.Request(context.Background(), req[:])
				if err != nil {
					t.Error(err)
					return
				}
				if binary.LittleEndian.Uint64(resp) != uint64(g<<32|i) {
					t.Errorf("request %d/%d answered with %x", g, i, resp)
					return
				}
			}
		}(g)
	}
	rwg.Wait()
	if s := ch.Stats(); s.RxPackets != 1600 || s.LateCompletions != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestChannelRequestTimeoutAndLateCompletion(t *testing.T) {
	ch, p, _ := newChannelPair(t, 4, 4, nil)
	ch.cfg.RequestTimeout = 20 * time.Millisecond
	_, err := ch.Request(context.Background(), []byte("ping"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	var pk ring.Packet
	if err := p.r.Next(&pk); err != nil {
		t.Fatal(err)
	}
	p.r.Commit()
	p.w.WriteCompletion(pk.TransID, []byte("late"))
	p.w.Commit()
	ch.Notify()
	deadline := time.Now().Add(2 * time.Second)
	for ch.Stats().LateCompletions != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("late completion not counted: %+v", ch.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestChannelRingFullWaitsForHost(t *testing.T) {
	ch, p, _ := newChannelPair(t, 2, 2, nil) // 4 KiB of data each way
	payload := make([]byte, 1000)
	const n = 50
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			payload[0] = byte(i)
			if err := ch.SendInBand(uint64(i), false, payload); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var pk ring.Packet
	got := 0
	for got < n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-p.wake:
		case <-time.After(5 * time.Second):
			t.Fatalf("stuck after %d packets", got)
		}
		for more := true; more; more = p.r.EndRead() {
			p.r.BeginRead()
			for p.r.Next(&pk) == nil {
				if pk.TransID != uint64(got) || pk.Payload[0] != byte(got) {
					t.Fatalf("packet %d out of order: %d", got, pk.TransID)
				}
				got++
			}
			if p.r.Commit() {
				ch.Notify() // the host signals freed space
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ch.Stats().TxFullWaits == 0 {
		t.Fatal("a 4 KiB ring took 50 KB without waiting")
	}
}

func TestChannelCorruptRingStops(t *testing.T) {
	var seen atomic.Int64
	ch, p, _ := newChannelPair(t, 2, 2, HandlerFunc(func(_ *Channel, pk []ring.Packet) { seen.Add(int64(len(pk))) }))
	p.w.WriteInBand(1, false, []byte("ok"))
	p.w.Commit()
	ch.Notify()
	// A hostile host publishes a write index that is not 8-byte aligned.
	p.w.Control().SetWriteIndex(p.w.Control().WriteIndex() + 3)
	ch.Notify()
	deadline := time.Now().Add(2 * time.Second)
	for ch.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("corrupt ring not detected")
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(ch.Err(), ring.ErrCorrupt) {
		t.Fatalf("err %v", ch.Err())
	}
	if err := ch.SendInBand(1, false, []byte("x")); !errors.Is(err, ring.ErrCorrupt) {
		t.Fatalf("send on a dead channel: %v", err)
	}
	if _, err := ch.Request(context.Background(), []byte("x")); err == nil {
		t.Fatal("request on a dead channel succeeded")
	}
}

func TestChannelRescindFailsWaiters(t *testing.T) {
	ch, _, _ := newChannelPair(t, 2, 2, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := ch.Request(context.Background(), []byte("never answered"))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	ch.rescind()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrRescinded) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("request not failed by rescind")
	}
}

func TestChannelTrySendRingFull(t *testing.T) {
	ch, p, _ := newChannelPair(t, 2, 2, nil)
	payload := make([]byte, 512)
	sent := 0
	err := ch.TrySend(func(tx *Tx) error {
		for {
			if err := tx.InBand(uint64(sent+1), false, payload); err != nil {
				return err
			}
			sent++
		}
	})
	if !errors.Is(err, ErrRingFull) || sent == 0 {
		t.Fatalf("TrySend: sent %d, err %v; want some packets then ErrRingFull", sent, err)
	}
	got := 0
	var pk ring.Packet
	for p.r.Next(&pk) == nil {
		got++
	}
	if got != sent {
		t.Fatalf("host sees %d packets, %d were staged", got, sent)
	}
}

func TestChannelRequestEmptyCompletion(t *testing.T) {
	ch, p, _ := newChannelPair(t, 4, 4, nil)
	go func() {
		<-p.wake
		var pk ring.Packet
		if p.r.Next(&pk) == nil {
			p.w.WriteCompletion(pk.TransID, nil)
			p.r.Commit()
			if p.w.Commit() {
				ch.Notify()
			}
		}
	}()
	resp, err := ch.Request(context.Background(), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil || len(resp) != 0 {
		t.Fatalf("empty completion: %x, %v", resp, err)
	}
}
