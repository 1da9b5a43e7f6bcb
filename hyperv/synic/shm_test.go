package synic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hvguest/hvguest/kernel"
)

// noLeaks fails the test if goroutines started during it are still running
// when its cleanups are done. Register it first so it runs last.
func noLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds or the timeout fails the test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func recv(t testing.TB, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// shmPair creates a host over a temporary file and attaches a guest through
// a second, separate mapping of the same file.
func shmPair(t testing.TB, h HostHandler, hostOpts, guestOpts []SharedOption) (*SharedHost, *SharedGuest, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "synic.shm")
	host, err := CreateShared(path, 16, h, hostOpts...)
	if err != nil {
		t.Fatal(err)
	}
	guest, err := OpenShared(path, guestOpts...)
	if err != nil {
		host.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close(); host.Close() })
	return host, guest, path
}

func TestShmLayoutGolden(t *testing.T) {
	noLeaks(t)
	host, guest, path := shmPair(t, &recorder{}, nil, nil)
	if err := host.Host().Deliver(1, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(raw) != SharedSize(16) || string(raw[:8]) != "HVGSYNIC" || le.Uint32(raw[8:]) != 1 {
		t.Fatalf("header %q len %d", raw[:12], len(raw))
	}
	if le.Uint64(raw[40:]) != 20*4096 || le.Uint64(raw[56:]) != kernel.DefaultBasePFN || le.Uint64(raw[64:]) != 16 {
		t.Fatalf("RAM fields % x", raw[40:72])
	}
	if le.Uint32(raw[128:]) != stateAlive || le.Uint32(raw[192:]) != stateAlive {
		t.Fatalf("states host %d guest %d", le.Uint32(raw[128:]), le.Uint32(raw[192:]))
	}
	slot := raw[4096+4096+512:][:256] // transport, message page, SINT2
	want := append([]byte{1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "abc"...)
	if !bytes.Equal(slot[:19], want) || slot[19] != 0 {
		t.Fatalf("slot % x", slot[:20])
	}
	if host.RAM().BasePFN() != kernel.DefaultBasePFN || guest.RAM().Pages() != 16 {
		t.Fatalf("RAM base %#x pages %d", host.RAM().BasePFN(), guest.RAM().Pages())
	}
}

func TestShmMessagesQueueBehindSlot(t *testing.T) {
	noLeaks(t)
	host, guest, _ := shmPair(t, &recorder{}, nil, nil)
	g, h := guest.Guest(), host.Host()
	for _, s := range []string{"one", "two", "three"} {
		if err := h.Deliver(1, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, g.Interrupt(), "interrupt")
	var m Message
	var got []string
	for g.TakeMessage(&m) {
		if m.Type != 1 {
			t.Fatalf("type %d", m.Type)
		}
		if m.Payload[m.Size] != 0 {
			t.Fatalf("stale bytes after payload: % x", m.Payload[:8])
		}
		got = append(got, string(m.Bytes()))
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("got %q", got)
	}
	if g.TakeMessage(&m) {
		t.Fatal("slot should be empty")
	}
	if err := h.Deliver(1, make([]byte, MaxPayload+1)); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("oversize deliver: %v", err)
	}
	if st := guest.Stats(); st.Messages != 3 || st.EOMs != 2 || st.BadMessages != 0 {
		t.Fatalf("guest stats %+v", st)
	}
	if st := host.Stats(); st.Delivered != 3 || st.Refills != 2 {
		t.Fatalf("host stats %+v", st)
	}
}

func TestShmQueueLimit(t *testing.T) {
	noLeaks(t)
	host, guest, _ := shmPair(t, &recorder{}, nil, nil)
	g, h := guest.Guest(), host.Host()
	for i := 0; i < ShmQueue+1; i++ { // one in the slot, ShmQueue queued
		if err := h.Deliver(1, []byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}
	if err := h.Deliver(1, []byte{0}); !errors.Is(err, StatusInsufficientBuffers) {
		t.Fatalf("overflow: %v", err)
	}
	var m Message
	if !g.TakeMessage(&m) || m.Bytes()[0] != 0 {
		t.Fatalf("first message % x", m.Bytes())
	}
	if err := h.Deliver(1, []byte{0xee, 0xee}); err != nil { // room again
		t.Fatalf("deliver after take: %v", err)
	}
	n := 1
	for g.TakeMessage(&m) {
		want := []byte{byte(n), byte(n >> 8)}
		if n == ShmQueue+1 {
			want = []byte{0xee, 0xee}
		}
		if !bytes.Equal(m.Bytes(), want) {
			t.Fatalf("message %d: % x, want % x", n, m.Bytes(), want)
		}
		n++
	}
	if n != ShmQueue+2 {
		t.Fatalf("took %d messages", n)
	}
}

func TestShmPostStatusAndEvents(t *testing.T) {
	noLeaks(t)
	rec := &recorder{}
	host, guest, _ := shmPair(t, rec, nil, nil)
	g, h := guest.Guest(), host.Host()
	if err := g.PostMessage(1, 1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := g.PostMessage(4, 1, []byte("v5")); !errors.Is(err, StatusInvalidConnectionID) {
		t.Fatalf("post to unknown connection: %v", err)
	}
	rec.mu.Lock()
	rec.status = StatusInsufficientBuffers
	rec.mu.Unlock()
	if err := g.PostMessage(1, 1, []byte("busy")); !errors.Is(err, StatusInsufficientBuffers) {
		t.Fatalf("post status: %v", err)
	}
	if err := g.PostMessage(1, 1, make([]byte, MaxPayload+1)); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("oversize post: %v", err)
	}
	rec.mu.Lock()
	if strings.Join(rec.posts, ",") != "hello,v5,busy" {
		t.Fatalf("posts %q", rec.posts)
	}
	rec.mu.Unlock()
	if err := g.SignalEvent(0x2001); !errors.Is(err, StatusInvalidConnectionID) {
		t.Fatalf("signal above the bitmap: %v", err)
	}
	for _, c := range []uint32{5, 2047} {
		if err := g.SignalEvent(c); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "signal", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.signals) > 0 && rec.signals[len(rec.signals)-1] == c
		})
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
	recv(t, g.Interrupt(), "event interrupt")
	var relids []uint32
	g.ScanEvents(func(r uint32) { relids = append(relids, r) })
	if len(relids) != 3 || relids[0] != 5 || relids[1] != 64 || relids[2] != 2047 {
		t.Fatalf("relids %v", relids)
	}
	g.ScanEvents(func(r uint32) { t.Fatalf("flag %d not cleared", r) })
	if st := host.Stats(); st.Posts != 3 || st.Signals != 2 || st.BadPosts != 0 {
		t.Fatalf("host stats %+v", st)
	}
	if st := guest.Stats(); st.Posts != 3 || st.Signals != 2 {
		t.Fatalf("guest stats %+v", st)
	}
}

func TestShmGuestCloses(t *testing.T) {
	noLeaks(t)
	host, guest, _ := shmPair(t, &recorder{}, nil, nil)
	g, h := guest.Guest(), host.Host()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := g.PostMessage(1, 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("post after close: %v", err)
	}
	if err := g.SignalEvent(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("signal after close: %v", err)
	}
	var m Message
	if g.TakeMessage(&m) {
		t.Fatal("take after close")
	}
	if err := h.Deliver(1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("deliver after guest close: %v", err)
	}
	if err := h.SignalGuest(3); !errors.Is(err, ErrClosed) {
		t.Fatalf("signal after guest close: %v", err)
	}
	recv(t, host.Done(), "host dispatcher to notice")
}

func TestShmHostCloses(t *testing.T) {
	noLeaks(t)
	host, guest, path := shmPair(t, &recorder{}, nil, nil)
	g := guest.Guest()
	if err := host.Close(); err != nil {
		t.Fatal(err)
	}
	host.Close()
	recv(t, guest.Done(), "guest to notice")
	if err := g.PostMessage(1, 1, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("post after host close: %v", err)
	}
	if err := g.SignalEvent(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("signal after host close: %v", err)
	}
	if _, err := OpenShared(path); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach to a closed host: %v", err)
	}
}

// TestShmDeadPeers covers a peer that stops without closing: its heartbeat
// stalls, posts go unanswered, and the other side gives up in time.
func TestShmDeadPeers(t *testing.T) {
	noLeaks(t)
	fast := WithPeerTimeout(200 * time.Millisecond)
	t.Run("host", func(t *testing.T) {
		mem := anonMap(t, SharedSize(2))
		if _, err := initLayout(mem, 2, kernel.DefaultBasePFN); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(mem[hHostState:], stateAlive) // and never runs
		guest, err := NewSharedGuestOver(mem, fast)
		if err != nil {
			t.Fatal(err)
		}
		defer guest.Close()
		start := time.Now()
		if err := guest.Guest().PostMessage(1, 1, []byte("anyone?")); !errors.Is(err, ErrClosed) {
			t.Fatalf("post to a dead host: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("post took %v", d)
		}
		recv(t, guest.Done(), "guest to give up on the host")
	})
	t.Run("guest", func(t *testing.T) {
		mem := anonMap(t, SharedSize(2))
		host, err := NewSharedHostOver(mem, 2, &recorder{}, fast)
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		binary.LittleEndian.PutUint32(mem[hGuestState:], stateAlive) // attaches, never beats
		host.Host().SignalGuest(1)
		recv(t, host.Done(), "host to give up on the guest")
		if err := host.Host().Deliver(1, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("deliver to a dead guest: %v", err)
		}
	})
}

func TestShmOpenValidates(t *testing.T) {
	noLeaks(t)
	host, guest, path := shmPair(t, &recorder{}, nil, nil)
	if _, err := OpenShared(path); err == nil || !strings.Contains(err.Error(), "already has a guest") {
		t.Fatalf("second guest: %v", err)
	}
	guest.Close()
	host.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(good[hHostState:], stateAlive)
	binary.LittleEndian.PutUint32(good[hGuestState:], stateInit)
	cases := []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "magic"},
		{"version", func(b []byte) []byte { b[hVersion] = 2; return b }, "version"},
		{"transport", func(b []byte) []byte { b[hTransSize] = 1; return b }, "transport size"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-4096] }, "pages of guest RAM"},
		{"short", func(b []byte) []byte { return b[:100] }, "bytes"},
		{"pfn", func(b []byte) []byte { clear(b[hRAMBase : hRAMBase+8]); return b }, "base PFN"},
		{"total", func(b []byte) []byte { b[hTotal+5] = 1; return b }, "total size"},
		{"init", func(b []byte) []byte { b[hHostState] = 0; return b }, "setting up"},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), c.name)
		if err := os.WriteFile(p, c.edit(bytes.Clone(good)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenShared(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
	p := filepath.Join(t.TempDir(), "ok")
	os.WriteFile(p, good, 0o600)
	g, err := OpenShared(p, WithPeerTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatalf("repaired file: %v", err)
	}
	g.Close()
}

// TestShmRAM shares guest RAM: the guest allocates and writes, the host
// reads and writes the same bytes by PFN through its own mapping.
func TestShmRAM(t *testing.T) {
	noLeaks(t)
	host, guest, _ := shmPair(t, &recorder{}, nil, nil)
	r, err := guest.RAM().Alloc(3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Bytes {
		r.Bytes[i] = byte(i * 7)
	}
	got := make([]byte, len(r.Bytes))
	if err := kernel.CopyFromPhys(host.RAM(), got, r.GPA(0)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.Bytes) {
		t.Fatal("host read different bytes")
	}
	if err := kernel.CopyToPhys(host.RAM(), r.GPA(4095), []byte("straddle")); err != nil {
		t.Fatal(err)
	}
	if string(r.Bytes[4095:4103]) != "straddle" {
		t.Fatalf("guest sees %q", r.Bytes[4095:4103])
	}
}

// TestShmPolledGuest runs a guest that cannot futex-wake the host and is
// never futex-woken (as in a QEMU VM): everything still flows by polling.
func TestShmPolledGuest(t *testing.T) {
	noLeaks(t)
	rec := &recorder{}
	host, guest, _ := shmPair(t, rec, nil, []SharedOption{WithPolling()})
	g, h := guest.Guest(), host.Host()
	for i := 0; i < 50; i++ {
		if err := g.PostMessage(1, 1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := h.Deliver(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := h.Deliver(1, []byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
		var m Message
		for want := i; want <= i+1; want++ {
			if !g.TakeMessage(&m) || m.Bytes()[0] != byte(want) {
				t.Fatalf("round %d: message % x", i, m.Bytes())
			}
		}
		if err := h.SignalGuest(9); err != nil {
			t.Fatal(err)
		}
		recv(t, g.Interrupt(), "interrupt")
		n := 0
		g.ScanEvents(func(uint32) { n++ })
		if n != 1 {
			t.Fatalf("round %d: %d events", i, n)
		}
	}
}
