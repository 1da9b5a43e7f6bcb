package netvsc_test

// Non-transparent mode as users run it (spec/vf-modes.md §2.1, §2.4): hn
// and its VF in a failover aggregate (net/failover, FreeBSD's failover
// lagg). hn's side makes the aggregate move to the VF while the VF is up
// (data path switched, hn's link held down, synthetic receive relabelled as
// the VF's) and back to hn when the VF leaves.

import (
	"bytes"
	"net"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/failover"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

func TestVFNonTransparentInFailover(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{mode: netvsc.VFNonTransparent})
	fo, err := failover.New(failover.Config{Name: "fo0", MAC: net.HardwareAddr(hnMAC[:]), Registry: w.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fo.Close() })
	agg := fo.Interface()
	in := make(chan *packet.Packet, 64)
	agg.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		for _, p := range b.Packets() {
			in <- p
		}
		b.Clear()
	})
	waitFor(t, "hn0 as standby", func() bool { return fo.Member(failover.Standby) == w.ifp })
	if err := agg.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	if w.ifp.Flags()&ifnet.FlagUp == 0 {
		t.Fatal("the aggregate did not bring hn0 up")
	}
	bcast := func(tag byte) *packet.Packet {
		t.Helper()
		f := make([]byte, 60)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:], stationMAC[:])
		f[12], f[13], f[14] = 0x08, 0x06, tag
		if !w.station.Send(f, packet.Meta{}) {
			t.Fatal("station send")
		}
		return <-in
	}
	send := func(tag byte) {
		t.Helper()
		b := packet.NewBatch(1)
		p := packet.New(packet.DefaultHeadroom, 64)
		_ = p.SetBytes(frame(stationHW, tag, 64))
		b.Add(p)
		if n, err := agg.Transmit(b); n != 1 {
			t.Fatalf("aggregate transmit: %d, %v", n, err)
		}
	}

	// The VF arrives: the aggregate takes it as primary and brings it up;
	// hn sees its VF up and hands the data path over.
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)
	waitFor(t, "VF as primary", func() bool { return fo.Member(failover.Primary) == vf.ifp })
	if w.hostPath() != nvsp.DataPathVF || w.ifp.LinkState() != ifnet.LinkDown {
		t.Fatalf("path %d, hn link %s", w.hostPath(), w.ifp.LinkState())
	}
	if p := bcast(1); p.Meta.RcvIf != agg.Index() || p.Bytes()[14] != 1 {
		t.Fatalf("broadcast rcvif %d, aggregate %d", p.Meta.RcvIf, agg.Index())
	}
	if vf.ifp.Stats().InPackets != 1 || w.dev.Stats().RxRelabelledToVF != 1 {
		t.Fatalf("not relabelled through the VF: VF in %d, stats %+v", vf.ifp.Stats().InPackets, w.dev.Stats())
	}
	send(2)
	if got := vf.sentFrames(); len(got) != 1 || got[0][14] != 2 {
		t.Fatalf("aggregate did not send through the VF: %d", len(got))
	}

	// The VF leaves: hn takes everything back and the aggregate fails over.
	if err := w.reg.Detach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFNone)
	waitFor(t, "hn0 link back", func() bool { return w.ifp.LinkState() == ifnet.LinkUp })
	if w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("path %d after the VF left", w.hostPath())
	}
	send(3)
	if f := w.stationFrames(1); f[0].Data[14] != 3 {
		t.Fatalf("station got tag %d", f[0].Data[14])
	}
	if p := bcast(4); p.Meta.RcvIf != agg.Index() {
		t.Fatalf("after failover: rcvif %d", p.Meta.RcvIf)
	}
}

// The aggregate claims the VF; hn still aligns RSS with it (its key and
// hash types are queries, which pass the aggregate's claim) and puts its own
// back when the VF leaves.
func TestVFNonTransparentInFailoverAlignsRSS(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{mode: netvsc.VFNonTransparent, queues: 4})
	fo, err := failover.New(failover.Config{Name: "fo0", MAC: net.HardwareAddr(hnMAC[:]), Registry: w.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fo.Close() })
	waitFor(t, "hn0 as standby", func() bool { return fo.Member(failover.Standby) == w.ifp })
	if err := fo.Interface().Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	before := w.ifp.RSS()
	if before.Func != ifnet.RSSFuncToeplitz || bytes.Equal(before.Key, vfKey) {
		t.Fatalf("no multi-queue RSS to align: %+v", before)
	}
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)
	waitFor(t, "VF as primary", func() bool { return fo.Member(failover.Primary) == vf.ifp })
	if owner, ok := vf.ifp.ClaimedBy(); !ok || owner != "failover:fo0" {
		t.Fatalf("VF claimed by %q (%v), want the aggregate", owner, ok)
	}
	wantTypes := before.Types & (ifnet.RSSIPv4 | ifnet.RSSTCPv4 | ifnet.RSSIPv6 | ifnet.RSSTCPv6)
	waitFor(t, "hn's RSS aligned with the VF", func() bool { return bytes.Equal(w.ifp.RSS().Key, vfKey) })
	if got := w.ifp.RSS(); got.Types != wantTypes || got.Func != ifnet.RSSFuncToeplitz {
		t.Fatalf("hn RSS %+v, want the VF's key and types %v", got, wantTypes)
	}
	if p := w.nic.State().RSS; p == nil || !bytes.Equal(p.HashKey, vfKey) {
		t.Fatalf("host RSS key not the VF's: %+v", p)
	}
	w.detachAndCheckRSS(vf, before)
}
