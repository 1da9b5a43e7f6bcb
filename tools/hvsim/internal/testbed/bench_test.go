package testbed

import (
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

// BenchmarkStreamAccounting measures what the stream costs per frame on
// the data path: marking it at the VF port and recording its delivery
// (payload check, sequence, duplicate detection).
func BenchmarkStreamAccounting(b *testing.B) {
	rx := newStreamRx(ToGuest, b.N+1)
	frame := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		encodeStream(frame, GuestMAC, RemoteMAC, ToGuest, uint64(i), 0)
		rx.markVF(frame)
		rx.deliver(frame, int64(i))
	}
	b.StopTimer()
	if _, n := rx.deliveries(uint64(b.N)); n != uint64(b.N) {
		b.Fatalf("%d of %d delivered", n, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
}

// BenchmarkGuestInputFilter measures the guest's input override: a batch
// of 32 frames, half stream frames (taken), half others (passed on); the
// time includes building the batch from a pool.
func BenchmarkGuestInputFilter(b *testing.B) {
	rx := newStreamRx(ToGuest, 1<<20)
	g := &guestStream{rx: rx, now: func() int64 { return 1 }}
	pool := packet.MustPool(packet.PoolConfig{Size: 2048})
	bt := packet.NewBatch(32)
	other := make([]byte, 64)
	other[12], other[13] = 0x08, 0x00
	seq := uint64(0)
	fill := func() {
		for i := range 32 {
			p := pool.Get()
			buf, _ := p.Append(256)
			if i%2 == 0 {
				encodeStream(buf, GuestMAC, RemoteMAC, ToGuest, seq%(1<<20), 0)
				seq++
			} else {
				copy(buf, other)
			}
			bt.Add(p)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		fill()
		g.filter(bt)
		bt.Free()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/packet")
}
