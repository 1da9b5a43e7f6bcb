package synic

import (
	"sync/atomic"
	"testing"
)

// echoSignals answers every guest signal by signalling the same relid back.
type echoSignals struct {
	port  atomic.Pointer[HostPort]
	posts atomic.Uint64
}

func (e *echoSignals) HandlePost(uint32, uint32, []byte) Status {
	e.posts.Add(1)
	return StatusSuccess
}

func (e *echoSignals) HandleSignal(connID uint32) Status {
	if p := e.port.Load(); p != nil && connID != 0 {
		(*p).SignalGuest(connID)
	}
	return StatusSuccess
}

func benchPair(b *testing.B, opts []SharedOption) (*echoSignals, GuestPort) {
	e := &echoSignals{}
	host, guest, _ := shmPair(b, e, nil, opts)
	hp := host.Host()
	e.port.Store(&hp)
	return e, guest.Guest()
}

// signalRoundTrip signals relid 7 and waits until the host's echo shows up
// in the event flags.
func signalRoundTrip(b *testing.B, g GuestPort) {
	if err := g.SignalEvent(7); err != nil {
		b.Fatal(err)
	}
	for got := false; !got; {
		<-g.Interrupt()
		g.ScanEvents(func(r uint32) { got = got || r == 7 })
	}
}

// BenchmarkShmSignalRoundTrip: guest SignalEvent → host HandleSignal →
// SignalGuest → guest interrupt and ScanEvents, across two mappings.
func BenchmarkShmSignalRoundTrip(b *testing.B) {
	_, g := benchPair(b, nil)
	b.ResetTimer()
	for range b.N {
		signalRoundTrip(b, g)
	}
}

// BenchmarkShmSignalRoundTripPolled is the same with a polling guest.
func BenchmarkShmSignalRoundTripPolled(b *testing.B) {
	_, g := benchPair(b, []SharedOption{WithPolling()})
	b.ResetTimer()
	for range b.N {
		signalRoundTrip(b, g)
	}
}

// BenchmarkShmPost: a synchronous 64-byte PostMessage answered by the
// host's dispatcher.
func BenchmarkShmPost(b *testing.B) {
	e, g := benchPair(b, nil)
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := g.PostMessage(1, 1, payload); err != nil {
			b.Fatal(err)
		}
	}
	if e.posts.Load() != uint64(b.N) {
		b.Fatalf("host saw %d posts of %d", e.posts.Load(), b.N)
	}
}

// BenchmarkShmSignal: the one-way cost of SignalEvent on the data path.
func BenchmarkShmSignal(b *testing.B) {
	_, g := benchPair(b, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := g.SignalEvent(9); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShmDeliverTake: host Deliver then guest TakeMessage.
func BenchmarkShmDeliverTake(b *testing.B) {
	e := &echoSignals{}
	host, guest, _ := shmPair(b, e, nil, nil)
	h, g := host.Host(), guest.Guest()
	payload := make([]byte, 64)
	var m Message
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := h.Deliver(1, payload); err != nil {
			b.Fatal(err)
		}
		if !g.TakeMessage(&m) {
			b.Fatal("no message")
		}
	}
}
