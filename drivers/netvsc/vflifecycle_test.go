package netvsc_test

// The whole transparent lifecycle with the complete state of both
// interfaces (capabilities, enabled capabilities, hardware assist, TSO
// limits, flags, MTU, media, link, input hook, claim), the transmit
// target and the host's data path checked before attach, after attach,
// after adoption, after each ioctl and after detach (spec/vf-modes.md
// §3.3–§3.9).

import (
	"net"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/ifnet"
)

func TestVFLifecycleSnapshots(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	hnWant, vfWant := stateOf(w.ifp), stateOf(vf.ifp)
	hnOrig := hnWant
	tx, path := "synthetic", nvsp.DataPathSynthetic
	check := func(step string) {
		t.Helper()
		if got := stateOf(w.ifp); got != hnWant {
			t.Fatalf("%s: hn\n got %+v\nwant %+v", step, got, hnWant)
		}
		if got := stateOf(vf.ifp); got != vfWant {
			t.Fatalf("%s: VF\n got %+v\nwant %+v", step, got, vfWant)
		}
		if st := w.dev.VFStatus(); st.TxTarget != tx || w.hostPath() != path || w.dev.DataPath() != path {
			t.Fatalf("%s: transmit %q host path %d guest path %d, want %q %d", step, st.TxTarget, w.hostPath(), w.dev.DataPath(), tx, path)
		}
	}
	ioctl := func(r ifnet.Request) {
		t.Helper()
		if err := w.ifp.Ioctl(r); err != nil {
			t.Fatalf("%s: %v", r.RequestName(), err)
		}
	}
	check("before attach")

	if err := w.reg.Attach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	vfWant.Claimed, vfWant.Overrides = "hn0", 1
	check("attached, waiting")

	w.clk.Advance(netvsc.DefaultVFAttachWait)
	w.waitState(netvsc.VFActive)
	inter := hnOrig.Caps & vfCaps
	hnWant.Caps, hnWant.Enabled = inter, hnOrig.Enabled&inter
	hnWant.Assist = ifnet.DeriveHWAssist(hnWant.Enabled) & hnOrig.Assist
	hnWant.TSO = hnOrig.TSO.Intersect(vfTSO)
	hnWant.Media, hnWant.Link = vfMedia, ifnet.LinkUp
	vfWant.Enabled = vfCaps&^inter | hnOrig.Enabled&inter
	vfWant.Assist = ifnet.DeriveHWAssist(vfWant.Enabled)
	vfWant.Flags |= ifnet.FlagUp | ifnet.FlagRunning
	tx, path = "mce0", nvsp.DataPathVF
	check("adopted and active")

	ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagPromisc})
	hnWant.Flags |= ifnet.FlagPromisc
	vfWant.Flags |= ifnet.FlagPromisc
	check("promisc")
	ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp})
	hnWant.Flags &^= ifnet.FlagPromisc
	vfWant.Flags &^= ifnet.FlagPromisc
	check("promisc off")

	grp := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	ioctl(&ifnet.AddMulti{Addr: grp})
	vfWant.Flags |= ifnet.FlagAllMulti
	check("multicast added")
	ioctl(&ifnet.DelMulti{Addr: grp})
	vfWant.Flags &^= ifnet.FlagAllMulti
	check("multicast deleted")

	ioctl(&ifnet.SetMTU{MTU: 3000})
	hnWant.MTU, vfWant.MTU = 3000, 3000
	check("MTU 3000")

	if hnWant.Enabled&ifnet.CapTSO4 == 0 {
		t.Fatalf("test needs TSO4 in the intersection: %v", hnWant.Enabled)
	}
	ioctl(&ifnet.SetCapabilities{Enable: hnWant.Enabled &^ ifnet.CapTSO4})
	hnWant.Enabled &^= ifnet.CapTSO4
	hnWant.Assist &^= ifnet.AssistIPTSO
	vfWant.Enabled &^= ifnet.CapTSO4
	vfWant.Assist &^= ifnet.AssistIPTSO
	check("TSO4 off")
	ioctl(&ifnet.SetCapabilities{Enable: hnWant.Enabled | ifnet.CapTSO4})
	hnWant.Enabled |= ifnet.CapTSO4
	hnWant.Assist |= ifnet.AssistIPTSO
	vfWant.Enabled |= ifnet.CapTSO4
	vfWant.Assist |= ifnet.AssistIPTSO
	check("TSO4 on")

	ioctl(&ifnet.SetFlags{})
	hnWant.Flags &^= ifnet.FlagUp | ifnet.FlagRunning
	vfWant.Flags &^= ifnet.FlagUp | ifnet.FlagRunning
	tx, path = "synthetic", nvsp.DataPathSynthetic
	check("hn down")
	ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp})
	hnWant.Flags |= ifnet.FlagUp | ifnet.FlagRunning
	vfWant.Flags |= ifnet.FlagUp | ifnet.FlagRunning
	tx, path = "mce0", nvsp.DataPathVF
	check("hn up again")

	if err := w.reg.Detach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFNone)
	hnWant = hnOrig
	hnWant.MTU = 3000 // the user's MTU stays; the synthetic path was rebuilt for it
	vfWant.Claimed, vfWant.Overrides = "", 0
	vfWant.Flags &^= ifnet.FlagRunning // detached
	tx, path = "synthetic", nvsp.DataPathSynthetic
	check("VF detached")
	if w.dev.Info().MTU != 3000 {
		t.Fatalf("synthetic MTU %d", w.dev.Info().MTU)
	}
}
