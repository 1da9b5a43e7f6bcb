package netvsc_test

// Non-transparent VF mode (spec/vf-modes.md §2): the VF stays a visible
// interface; when it goes up hn switches the host's data path to it,
// forces the promiscuous filter, relabels what still arrives on the
// synthetic path as the VF's and reports its own link down; when the VF
// goes down or detaches, everything returns to hn.

import (
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

func TestVFNonTransparent(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{mode: netvsc.VFNonTransparent})
	w.up()
	hnBefore := stateOf(w.ifp)
	filterBefore := w.nic.State().PacketFilter
	vf := newFakeVF(t, fakeVFOpts{})
	vfIn := make(chan *packet.Packet, 16)
	vf.ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		for _, p := range b.Packets() {
			vfIn <- p
		}
		b.Clear()
	})
	bcast := func(tag byte) {
		f := make([]byte, 60)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:], stationMAC[:])
		f[12], f[13], f[14] = 0x08, 0x06, tag
		if !w.station.Send(f, packet.Meta{}) {
			t.Fatal("station send")
		}
	}

	// Attached: paired, but the VF stays the user's.
	st := w.attach(vf, netvsc.VFAttached)
	if st.VF != "mce0" || st.Enabled {
		t.Fatalf("attached: %+v", st)
	}
	if v := stateOf(vf.ifp); v.Claimed != "" || v.Overrides != 0 || v.Flags&ifnet.FlagUp != 0 {
		t.Fatalf("VF taken over in non-transparent mode: %+v", v)
	}
	if stateOf(w.ifp) != hnBefore || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatal("hn changed before the VF went up")
	}
	// hn never configures the VF in this mode: whatever the VF's state is,
	// the user made it.
	vfBefore := stateOf(vf.ifp)
	vfUp := vfBefore
	vfUp.Flags |= ifnet.FlagUp | ifnet.FlagRunning

	for round := range 2 {
		// The user brings the VF up (as hyperv_vfattach does).
		if err := vf.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
			t.Fatal(err)
		}
		st = w.waitState(netvsc.VFActive)
		if w.hostPath() != nvsp.DataPathVF || st.RxVF != "mce0" || st.TxTarget != "synthetic" {
			t.Fatalf("round %d active: %+v path %d", round, st, w.hostPath())
		}
		if f := w.nic.State().PacketFilter; f != rndis.PacketTypePromiscuous {
			t.Fatalf("host filter %#x, want promiscuous", f)
		}
		if w.ifp.LinkState() != ifnet.LinkDown || w.ifp.Media().Status&ifnet.MediaActive != 0 {
			t.Fatalf("hn link %s media %v: must report down", w.ifp.LinkState(), w.ifp.Media().Status)
		}
		if got := stateOf(w.ifp); got.Caps != hnBefore.Caps || got.Enabled != hnBefore.Enabled || got.Assist != hnBefore.Assist ||
			got.TSO != hnBefore.TSO || got.Flags != hnBefore.Flags || got.MTU != hnBefore.MTU || got.Overrides != 0 || got.Claimed != "" {
			t.Fatalf("round %d: hn's own state changed beyond its link:\n got %+v\nwant %+v", round, got, hnBefore)
		}
		if got := stateOf(vf.ifp); got != vfUp {
			t.Fatalf("round %d: VF\n got %+v\nwant %+v (as the user set it)", round, got, vfUp)
		}
		// Synthetic receive is relabelled as the VF's, counted on both.
		hnIn, vfInCount := w.ifp.Stats().InPackets, vf.ifp.Stats().InPackets
		bcast(byte(0x40 + round))
		p := <-vfIn
		if p.Meta.RcvIf != vf.ifp.Index() || p.Bytes()[14] != byte(0x40+round) {
			t.Fatalf("relabelled frame rcvif %d (VF %d)", p.Meta.RcvIf, vf.ifp.Index())
		}
		p.Free()
		if w.ifp.Stats().InPackets != hnIn+1 || vf.ifp.Stats().InPackets != vfInCount+1 || len(w.in) != 0 {
			t.Fatalf("counters hn %d VF %d, hn input queue %d", w.ifp.Stats().InPackets, vf.ifp.Stats().InPackets, len(w.in))
		}
		if w.dev.Stats().RxRelabelledToVF != uint64(round+1) {
			t.Fatalf("RxRelabelledToVF %d", w.dev.Stats().RxRelabelledToVF)
		}
		// hn's synthetic receive stays alive even when hn is down.
		if err := w.ifp.Ioctl(&ifnet.SetFlags{}); err != nil {
			t.Fatal(err)
		}
		if f := w.nic.State().PacketFilter; f != rndis.PacketTypePromiscuous {
			t.Fatalf("host filter %#x after hn down", f)
		}
		w.up()

		if round == 0 {
			// VF down: everything returns to hn.
			if err := vf.ifp.Ioctl(&ifnet.SetFlags{}); err != nil {
				t.Fatal(err)
			}
			st = w.waitState(netvsc.VFAttached)
		} else {
			if err := w.reg.Detach(vf.ifp); err != nil {
				t.Fatal(err)
			}
			st = w.waitState(netvsc.VFNone)
		}
		if w.hostPath() != nvsp.DataPathSynthetic || st.RxVF != "" || w.nic.State().PacketFilter != filterBefore {
			t.Fatalf("round %d after: %+v path %d filter %#x", round, st, w.hostPath(), w.nic.State().PacketFilter)
		}
		if got := stateOf(w.ifp); got != hnBefore {
			t.Fatalf("hn not restored:\n got %+v\nwant %+v", got, hnBefore)
		}
		if got := stateOf(vf.ifp); round == 0 && got != vfBefore {
			t.Fatalf("VF after going down:\n got %+v\nwant %+v", got, vfBefore)
		}
		bcast(0x50)
		p = w.recv(1)[0]
		if p.Meta.RcvIf != w.ifp.Index() {
			t.Fatalf("frame after deactivation went to %d", p.Meta.RcvIf)
		}
		p.Free()
	}
}

// The VF mode switched at run time: the paired VF is handed back whole
// and paired again in the new mode, both ways.
func TestVFModeSwitch(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	hnBefore := stateOf(w.ifp)
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)

	if err := w.dev.SetVFMode(netvsc.VFNonTransparent); err != nil {
		t.Fatal(err)
	}
	st := w.waitState(netvsc.VFActive) // the VF is still up: non-transparent takes it at once
	if st.Mode != netvsc.VFNonTransparent || st.VF != "mce0" || st.RxVF != "mce0" || st.TxTarget != "synthetic" ||
		w.hostPath() != nvsp.DataPathVF || w.ifp.LinkState() != ifnet.LinkDown {
		t.Fatalf("non-transparent: %+v path %d hn link %s", st, w.hostPath(), w.ifp.LinkState())
	}
	if v := stateOf(vf.ifp); v.Claimed != "" || v.Overrides != 0 {
		t.Fatalf("VF still taken over after the switch: %+v", v)
	}
	if got := stateOf(w.ifp); got.Caps != hnBefore.Caps || got.Enabled != hnBefore.Enabled || got.TSO != hnBefore.TSO {
		t.Fatalf("hn kept the transparent limits: %+v, before %+v", got, hnBefore)
	}

	if err := w.dev.SetVFMode(netvsc.VFTransparent); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting) // adopted anew: the attach wait starts over
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	st = w.waitState(netvsc.VFActive)
	if st.Mode != netvsc.VFTransparent || st.TxTarget != "mce0" || st.RxVF != "" || w.ifp.LinkState() != ifnet.LinkUp {
		t.Fatalf("transparent again: %+v hn link %s", st, w.ifp.LinkState())
	}
	if v := stateOf(vf.ifp); v.Claimed != "hn0" || v.Overrides != 1 {
		t.Fatalf("VF not taken over again: %+v", v)
	}
	if err := w.dev.SetVFMode(netvsc.VFMode(7)); err == nil {
		t.Fatal("mode 7 accepted")
	}
}
