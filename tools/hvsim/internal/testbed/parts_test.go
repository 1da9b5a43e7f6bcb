package testbed

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// TestSkipClock: the clock follows real time, and Skip fires a long timer
// at once without firing one that is still further out.
func TestSkipClock(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newSkipClock()
	short := c.NewTimer(5 * time.Millisecond)
	select {
	case <-short.C():
	case <-time.After(2 * time.Second):
		t.Fatal("a 5 ms timer did not fire in real time")
	}
	long, longer := c.NewTimer(2*time.Second), c.NewTimer(time.Hour)
	start := time.Now()
	c.Skip(2 * time.Second)
	select {
	case <-long.C():
	case <-time.After(time.Second):
		t.Fatal("Skip(2s) did not fire a 2 s timer")
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Fatalf("Skip took %v", time.Since(start))
	}
	select {
	case <-longer.C():
		t.Fatal("an hour timer fired")
	default:
	}
	if c.Skipped() != 2*time.Second || c.Now().Sub(c.fakeStart) < 2*time.Second {
		t.Fatalf("skipped %v, clock at %v", c.Skipped(), c.Now().Sub(c.fakeStart))
	}
	c.close()
	c.close() // idempotent
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pump did not stop")
		}
	}
}

// TestRemoteDemux: the remote station takes stream frames itself and hands
// everything else to rem0's input, in order, losing nothing.
func TestRemoteDemux(t *testing.T) {
	sw := vswitch.New(vswitch.Config{NoAger: true})
	defer sw.Close()
	rx := newStreamRx(ToStation, 100)
	r, err := newRemote(sw, RemoteMAC, rx, func() int64 { return 42 })
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	var others atomic.Int64
	r.ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		for _, p := range b.Packets() {
			if p.Bytes()[12] == 0x08 && p.Bytes()[13] == 0x06 {
				others.Add(1)
			}
		}
		b.Free()
	})
	if err := r.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	src := &vswitch.Sink{}
	sp, err := sw.Attach("guest", src, vswitch.VLANConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b := packet.NewBatch(64)
	for i := range 60 {
		p := packet.New(packet.DefaultHeadroom, 128)
		buf, _ := p.Append(128)
		if i%3 == 0 { // an ARP-typed frame for rem0
			copy(buf[0:6], RemoteMAC[:])
			copy(buf[6:12], GuestMAC[:])
			buf[12], buf[13] = 0x08, 0x06
		} else {
			encodeStream(buf, RemoteMAC, GuestMAC, ToStation, uint64(i), 0)
		}
		b.Add(p)
	}
	sp.Input(b)
	for deadline := time.Now().Add(2 * time.Second); others.Load() < 20; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rem0 got %d of 20 frames", others.Load())
		}
	}
	d, n := rx.deliveries(60)
	if n != 40 || rx.dups.Load() != 0 || rx.foreign.Load() != 0 || r.queueDrops.Load() != 0 {
		t.Fatalf("stream: %d received, %d dups, %d foreign, %d queue drops", n, rx.dups.Load(), rx.foreign.Load(), r.queueDrops.Load())
	}
	if d[0].at != 42 {
		t.Fatalf("delivery time %d", d[0].at)
	}
}
