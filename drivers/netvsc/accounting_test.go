package netvsc_test

import (
	"context"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Acceptance: send-section and transaction accounting. After
// accountingPackets transmitted packets (random sizes from a bare Ethernet
// header to MTU + 14, a few TSO-sized ones), with the ring, the send
// sections and the bounce slots made tiny so back-pressure happens over
// and over while a generator floods hn0 the other way, every section and
// bounce slot is free again, every send and every receive has completed,
// the counters of the stack, the driver, the host and the switch agree, and
// detaching gives back every page of guest memory and every goroutine.
func TestAccountingMillionPackets(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	start := time.Now()
	w := newWorld(t, worldOpts{
		cfg: func(c *netvsc.Config) {
			// 8 KiB of ring each way, and more sections than the ring
			// holds sends: the ring runs full all the time.
			c.RingPages = 2
			c.SendBufferSize = 256 * nvsp.SendSectionSize
			c.BounceSlots = 2
		},
		// The host hands the TSO frames on whole (no segmentation), so
		// one accepted packet is one frame at the switch.
		hostCfg: func(c *netvsp.Config) { c.PassOffload = true },
	})
	var rxGot atomic.Uint64
	w.ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		rxGot.Add(uint64(b.Len()))
		b.Free()
	})
	w.up()

	// The sink: a generator port that counts and frees what hn0 sends it,
	// and floods hn0 in return.
	hn, gm := net.HardwareAddr(hnMAC[:]), net.HardwareAddr(genMAC[:])
	toHN := udpFrame(t, gm, hn, stationIP.AsSlice(), hnIP, 40000, 200)
	gen, err := vswitch.NewGenerator(w.sw, "gen", vswitch.Trunk(1), toHN, packet.Meta{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen.Generate(1) // the switch learns the generator's address
	waitFor(t, "the first frame to reach hn0", func() bool { return rxGot.Load() == 1 })

	mtu := w.ifp.MTU()
	template := make([]byte, mtu+14)
	copy(template, gm)
	copy(template[6:], hn)
	template[12], template[13] = 0x88, 0xb5 // IEEE local experimental
	for i := 14; i < len(template); i++ {
		template[i] = byte(i)
	}
	var tso [][]byte // TSO frames, each bigger than a section: bounce slots
	for _, n := range []int{8000, 30000, 60000} {
		tso = append(tso, tcpFrame(t, n))
	}
	tsoMeta := packet.Meta{Csum: packet.CsumTxTCPv4 | packet.CsumTxTSOv4, MSS: 1448}
	pool := packet.MustPool(packet.PoolConfig{Size: mtu + 14, Prealloc: 64})
	big := packet.MustPool(packet.PoolConfig{Size: 64 << 10, Prealloc: 8})

	// Receive traffic while hn0 transmits, paced to a quarter of the
	// packets sent so far (so it cannot starve the sender on one CPU);
	// the host drops what finds no free slot, as Hyper-V does.
	var progress atomic.Uint64
	stopRx := make(chan struct{})
	var rxWG sync.WaitGroup
	rxWG.Add(1)
	go func() {
		defer rxWG.Done()
		for {
			select {
			case <-stopRx:
				return
			default:
			}
			if gen.Sent() >= progress.Load()/4 || gen.Generate(32) == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()

	// The stack's view: offered counts every packet handed to Transmit,
	// again on each retry; what the driver does not take comes back with
	// ErrBusy (refused) and is offered again, so offered = accepted +
	// refused.
	rng := rand.New(rand.NewPCG(1, 2))
	var offered, accepted, refused, busyCalls, tsoSent uint64
	var bytesAccepted uint64
	b := packet.NewBatch(32)
	queued := 0 // packets put into b so far
	for accepted < accountingPackets {
		for !b.Full() && queued < accountingPackets {
			if rng.IntN(1024) == 0 {
				// A burst of TSO frames, more than there are bounce
				// slots: the ones behind wait for a completion (no
				// resource), whatever the ring does.
				for k := 0; k < 2*w.dev.Stats().BounceTotal && !b.Full() && queued < accountingPackets; k++ {
					p := big.Get()
					_ = p.SetBytes(tso[rng.IntN(len(tso))])
					p.Meta = tsoMeta
					b.Add(p)
					queued++
					tsoSent++
				}
				continue
			}
			p := pool.Get()
			_ = p.SetBytes(template[:14+rng.IntN(mtu+1)])
			b.Add(p)
			queued++
		}
		l := b.Len()
		bl := b.Bytes()
		n, err := w.ifp.Transmit(b)
		offered += uint64(l)
		accepted += uint64(n)
		progress.Store(accepted)
		bytesAccepted += uint64(bl - b.Bytes())
		switch {
		case err == nil:
			if n != l || b.Len() != 0 {
				t.Fatalf("no error but %d of %d taken", n, l)
			}
		case isErr(err, ifnet.ErrBusy):
			busyCalls++
			refused += uint64(l - n)
			if n == 0 {
				runtime.Gosched()
			}
		default:
			t.Fatalf("transmit after %d packets: %v", accepted, err)
		}
	}
	close(stopRx)
	rxWG.Wait()
	sendTime := time.Since(start)

	// Everything settles: the sink has every frame, every send and every
	// receive is completed.
	waitFor(t, "the switch to deliver every frame", func() bool { return gen.Frames() >= accepted })
	waitFor(t, "every send to complete", func() bool {
		s := w.dev.Stats()
		return s.TxOutstanding == 0 && s.SectionsInUse == 0 && s.BounceInUse == 0
	})
	generated := gen.Sent()
	waitFor(t, "every generated frame to be delivered or dropped", func() bool {
		h := w.nic.Stats()
		return h.RxFrames+h.RxDropped >= generated
	})
	waitFor(t, "hn0 to take every delivered frame", func() bool { return rxGot.Load() == w.nic.Stats().RxFrames })
	waitFor(t, "every receive to be completed to the host", func() bool {
		return w.nic.State().RecvInFlight == 0 && w.dev.Stats().RxCompletionsPending == 0
	})

	s, h, is := w.dev.Stats(), w.nic.Stats(), w.ifp.Stats()
	t.Logf("%d packets (%d TSO, %d bytes) in %v: %d offered, %d refused in %d busy calls; ring full %d, no resource %d; received %d, host dropped %d",
		accepted, tsoSent, bytesAccepted, sendTime, offered, refused, busyCalls, s.TxRingFull, s.TxNoResource, rxGot.Load(), h.RxDropped)
	if s.SectionsInUse != 0 || s.BounceInUse != 0 || s.TxOutstanding != 0 || s.RxCompletionsPending != 0 ||
		s.RxCompletionsDropped != 0 || w.nic.State().RecvInFlight != 0 {
		t.Fatalf("resources still in use: guest %+v, host %+v", s, w.nic.State())
	}
	if s.SectionsTotal != 256 || s.BounceTotal != 2 {
		t.Fatalf("%d sections, %d bounce slots", s.SectionsTotal, s.BounceTotal)
	}
	// Back-pressure happened, both kinds, many times.
	if s.TxRingFull == 0 || s.TxNoResource == 0 || busyCalls != s.TxRingFull+s.TxNoResource || refused == 0 {
		t.Fatalf("back-pressure: %d busy calls, ring full %d, no resource %d, refused %d",
			busyCalls, s.TxRingFull, s.TxNoResource, refused)
	}
	// Stack = driver + refused; driver = host = switch.
	if offered != accepted+refused || accepted != accountingPackets {
		t.Fatalf("offered %d, accepted %d, refused %d", offered, accepted, refused)
	}
	if is.OutPackets != accepted || is.OutBytes != bytesAccepted {
		t.Fatalf("ifnet counted %d packets %d bytes, stack %d / %d", is.OutPackets, is.OutBytes, accepted, bytesAccepted)
	}
	if s.TxPackets != accepted || s.TxSectionSends+s.TxGPADirectSends != accepted || s.TxCompletions != accepted ||
		s.TxTooBig != 0 || s.TxBadCompletions != 0 || s.TxFailedCompletions != 0 {
		t.Fatalf("driver %+v, accepted %d", s, accepted)
	}
	if s.TxGPADirectSends < tsoSent {
		t.Fatalf("%d GPA-direct sends for %d TSO frames", s.TxGPADirectSends, tsoSent)
	}
	if h.TxFrames != accepted || h.TxDropped != 0 || gen.Frames() != accepted {
		t.Fatalf("host switched %d (dropped %d), sink got %d, accepted %d", h.TxFrames, h.TxDropped, gen.Frames(), accepted)
	}
	if h.RxFrames+h.RxDropped != generated || s.RxPackets != rxGot.Load() || rxGot.Load() != h.RxFrames {
		t.Fatalf("generated %d, host delivered %d dropped %d, driver %d, stack %d",
			generated, h.RxFrames, h.RxDropped, s.RxPackets, rxGot.Load())
	}
	if rxGot.Load() < 2 {
		t.Fatalf("no receive traffic: %d", rxGot.Load())
	}

	// Detach: every page back, every goroutine gone.
	w.dev.Close(context.Background())
	if w.ram.Allocations() == 0 {
		t.Fatal("nothing allocated with the bus still up?")
	}
	w.close()
	if free, all := w.ram.FreePages(), w.ram.Pages(); free != all || w.ram.Allocations() != 0 {
		t.Fatalf("%d of %d pages free, %d regions left after detach", free, all, w.ram.Allocations())
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
	}
	t.Logf("total %v", time.Since(start))
}
