package netvsc_test

import (
	"context"
	"net"
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Four queues: UDP flows from the station spread over all four channels
// exactly as the Toeplitz hash through the indirection table predicts,
// the hash travels in Meta.Hash, and detach leaves nothing behind.
func TestMultiQueueReceive(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	w := newWorld(t, worldOpts{hostCfg: func(c *netvsp.Config) { c.MaxQueues = 4 }, cfg: func(c *netvsc.Config) { c.MaxQueues = 8 }})
	w.up()
	rss := w.ifp.RSS()
	if rss.Func != ifnet.RSSFuncToeplitz || string(rss.Key) != string(rndis.DefaultHashKey[:]) || rss.Types&ifnet.RSSUDPv4 == 0 {
		t.Fatalf("published RSS %+v", rss)
	}
	st := w.nic.State()
	if st.RSS == nil || len(st.RSS.IndirectionTable) != rndis.RSSIndirectionEntries {
		t.Fatalf("host RSS state %+v", st.RSS)
	}
	const flows = 64
	want := make([]uint64, 4)
	hashes := map[uint32]bool{}
	hnIP := net.IPv4(192, 0, 2, 1)
	for i := range flows {
		f := udpFrame(t, net.HardwareAddr(stationMAC[:]), net.HardwareAddr(hnMAC[:]), stationIP.AsSlice(), hnIP, uint16(10000+i), 64)
		h, _, ok := rndis.HashFrame(rndis.DefaultHashKey[:], st.RSS.HashInfo, f)
		if !ok {
			t.Fatal("frame not hashable")
		}
		want[st.RSS.IndirectionTable[h%uint32(len(st.RSS.IndirectionTable))]]++
		hashes[h] = true
		if !w.station.Send(f, packet.Meta{}) {
			t.Fatal("station send failed")
		}
	}
	for _, p := range w.recv(flows) {
		if p.Meta.HashType != packet.HashUDPv4 || !hashes[p.Meta.Hash] {
			t.Errorf("frame meta %+v: hash not one of the flows'", p.Meta)
		}
		p.Free()
	}
	got := w.dev.Stats().RxQueuePackets
	if len(got) != 4 {
		t.Fatalf("queues %v", got)
	}
	for q := range 4 {
		if got[q] == 0 || got[q] != want[q] {
			t.Errorf("queue %d: %d frames, predicted %d (all %v, predicted %v)", q, got[q], want[q], got, want)
		}
	}
	// Transmit over several flows uses the subchannels too and completes.
	var frames [][]byte
	for i := range 16 {
		frames = append(frames, udpFrame(t, net.HardwareAddr(hnMAC[:]), net.HardwareAddr(stationMAC[:]), hnIP, stationIP.AsSlice(), uint16(20000+i), 32))
	}
	w.send(frames, nil)
	w.stationFrames(16)

	w.dev.Close(context.Background())
	left := w.ram.Allocations()
	w.close()
	// A single-queue device leaves the same allocations (the bus's own).
	w1 := newWorld(t, worldOpts{})
	w1.dev.Close(context.Background())
	if base := w1.ram.Allocations(); left != base {
		t.Errorf("%d allocations after a 4-queue detach, %d after a 1-queue one", left, base)
	}
	w1.close()
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines+2 })
}

// A host without vRSS (MaxQueues 1) or below NVSP 5 leaves one channel.
func TestSingleQueueHosts(t *testing.T) {
	for _, o := range []worldOpts{
		{},
		{hostCfg: func(c *netvsp.Config) { c.MaxQueues = 4 }, versions: []nvsp.Version{nvsp.Version4}},
		{hostCfg: func(c *netvsp.Config) { c.MaxQueues = 4 }, cfg: func(c *netvsc.Config) { c.MaxQueues = 1 }},
	} {
		w := newWorld(t, o)
		w.up()
		if q := w.dev.Stats().RxQueuePackets; len(q) != 1 {
			t.Errorf("queues %v", q)
		}
		if w.ifp.RSS().Func != ifnet.RSSFuncNone {
			t.Errorf("RSS published on one queue: %+v", w.ifp.RSS())
		}
		w.close()
	}
}
