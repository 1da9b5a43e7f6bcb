package netvsc_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Tiny rings and few sections make the ring and the send buffer run full
// over and over, both ways at once; afterwards every section, bounce slot
// and descriptor is free, every send completed and every receive completed
// back to the host.
func TestAccountingUnderRingFull(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: func(c *netvsc.Config) {
		c.RingPages = 2 // 4 KiB of ring each way
		c.SendBufferSize = 16 * nvsp.SendSectionSize
		c.BounceSlots = 2
	}})
	w.up()
	const n = 3000
	hn := net.HardwareAddr(hnMAC[:])
	st := net.HardwareAddr(stationMAC[:])
	out := udpFrame(t, hn, st, hnIP, stationIP.AsSlice(), 41000, 1000)
	in := udpFrame(t, st, hn, stationIP.AsSlice(), hnIP, 42000, 700)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the station floods hn0 while hn0 floods the station
		defer wg.Done()
		for i := 0; i < n; i++ {
			for !w.station.Send(in, packet.Meta{}) {
				time.Sleep(time.Microsecond)
			}
			if i%64 == 63 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	b := packet.NewBatch(32)
	sent := 0
	for sent < n {
		for !b.Full() && sent+b.Len() < n {
			p := packet.New(packet.DefaultHeadroom, len(out))
			_ = p.SetBytes(out)
			b.Add(p)
		}
		k, err := w.ifp.Transmit(b)
		sent += k
		if err != nil && !errorsIsBusy(err) {
			t.Fatalf("transmit: %v", err)
		}
	}
	wg.Wait()
	// The host drops what it cannot deliver (ring full, no free slot), as
	// Hyper-V does; everything else must arrive.
	received := 0
	deadline := time.After(15 * time.Second)
	for received+int(w.nic.Stats().RxDropped) < n {
		select {
		case p := <-w.in:
			p.Free()
			received++
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("received %d of %d (host %+v, guest %+v)", received, n, w.nic.Stats(), w.dev.Stats())
		}
	}
	waitFor(t, "the station to see every frame", func() bool { return w.station.Stats().Frames >= n })
	waitFor(t, "every send to complete", func() bool { return w.dev.Stats().TxOutstanding == 0 })
	waitFor(t, "every receive to be completed", func() bool { return w.nic.State().RecvInFlight == 0 })
	s := w.dev.Stats()
	if s.SectionsInUse != 0 || s.BounceInUse != 0 || s.TxOutstanding != 0 || s.TxCompletions != s.TxPackets ||
		s.TxBadCompletions != 0 || s.RxCompletionsPending != 0 || s.RxCompletionsDropped != 0 {
		t.Fatalf("resources leaked: %+v", s)
	}
	if received == 0 || uint64(received) != s.RxPackets {
		t.Fatalf("received %d, driver counted %d", received, s.RxPackets)
	}
	if s.TxRingFull+s.TxNoResource == 0 {
		t.Fatalf("no back-pressure seen: %+v", s)
	}
	t.Logf("guest %+v", s)
	t.Logf("host %+v", w.nic.Stats())
}

func errorsIsBusy(err error) bool { return err != nil && (isErr(err, ifnet.ErrBusy)) }

func TestLinkIndications(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.nic.SetLink(false)
	waitFor(t, "link down", func() bool { return w.ifp.LinkState() == ifnet.LinkDown })
	if w.ifp.Media().Status&ifnet.MediaActive != 0 {
		t.Fatal("media still active")
	}
	w.nic.SetLink(true)
	waitFor(t, "link up", func() bool { return w.ifp.LinkState() == ifnet.LinkUp })
}

func TestMTUChangeReattaches(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.up()
	echoBothWays(t, w, 4)
	if err := w.ifp.Ioctl(&ifnet.SetMTU{MTU: 4000}); err != nil {
		t.Fatal(err)
	}
	if w.ifp.MTU() != 4000 || w.nic.State().MTU != 4014 || w.dev.Info().MTU != 4000 {
		t.Fatalf("MTU %d, host %d", w.ifp.MTU(), w.nic.State().MTU)
	}
	if w.nic.State().PacketFilter == 0 || w.ifp.Flags()&ifnet.FlagRunning == 0 {
		t.Fatal("filter or running lost across the re-attach")
	}
	echoBothWays(t, w, 4)
	if n := w.ram.Allocations(); n > 20 {
		t.Fatalf("%d regions after re-attach", n)
	}
}

func TestVFAssociationAndSwitch(t *testing.T) {
	w := newWorld(t, worldOpts{})
	ctx := context.Background()
	a0 := w.dev.VFAssociation()
	w.nic.SetVF(true, 0x1234)
	a, err := w.dev.WaitVFAssociation(ctx, a0.Generation)
	if err != nil || !a.Allocated || a.Serial != 0x1234 {
		t.Fatalf("association %+v %v", a, err)
	}
	if err := w.dev.SwitchDataPath(ctx, true); err != nil {
		t.Fatal(err)
	}
	if w.dev.DataPath() != nvsp.DataPathVF || w.nic.State().DataPath != nvsp.DataPathVF {
		t.Fatalf("data path guest %d host %d", w.dev.DataPath(), w.nic.State().DataPath)
	}
	// The host yanks the VF: it switches back and withdraws it.
	w.nic.SetVF(false, 0x1234)
	a, err = w.dev.WaitVFAssociation(ctx, a.Generation)
	if err != nil || a.Allocated {
		t.Fatalf("association after removal %+v %v", a, err)
	}
	if w.dev.DataPath() != nvsp.DataPathSynthetic {
		t.Fatalf("data path %d after the host switched back", w.dev.DataPath())
	}
	if err := w.dev.SwitchDataPath(ctx, false); err != nil {
		t.Fatal(err)
	}
}

func TestVFSwitchNeedsNVSP4(t *testing.T) {
	w := newWorld(t, worldOpts{versions: []nvsp.Version{nvsp.Version2}, maxNDIS: nvsp.NDIS61})
	if err := w.dev.SwitchDataPath(context.Background(), true); !isErr(err, ifnet.ErrNotSupported) {
		t.Fatalf("switch at NVSP 2: %v", err)
	}
}
