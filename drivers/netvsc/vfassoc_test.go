package netvsc_test

// The host's VF association gates the data path (FreeBSD V2026, Linux
// vf_add, spec/vf-modes.md §1.5, A.4): a withdrawal or a change of
// serial takes transmit and the path back to synthetic; a fresh
// association for the paired VF brings them back. Failures to bring the
// VF up are retried on the platform clock.

import (
	"strings"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/ifnet"
)

func TestVFAssociationSerialChange(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{serial: 5})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{serial: 5, hasSerial: true})
	w.attach(vf, netvsc.VFActive)
	caps := stateOf(w.ifp)

	// The host now associates another function: not this VF.
	w.setVF(true, 6)
	waitFor(t, "association 6", func() bool { a := w.dev.VFAssociation(); return a.Allocated && a.Serial == 6 })
	st := w.waitState(netvsc.VFReady)
	if st.TxTarget != "synthetic" || st.Enabled || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("with a foreign serial: %+v path %d", st, w.hostPath())
	}
	if got := stateOf(w.ifp); got.Caps != caps.Caps || got.TSO != caps.TSO {
		t.Fatalf("hn limits changed while the VF stays attached: %+v", got)
	}
	sendVia(t, w, vf, 1, false)

	// And back to this VF's serial: active again, with a new generation.
	w.setVF(true, 5)
	st = w.waitState(netvsc.VFActive)
	if st.Association.Serial != 5 || st.Association.Generation < 4 || w.hostPath() != nvsp.DataPathVF {
		t.Fatalf("re-associated: %+v path %d", st, w.hostPath())
	}
	sendVia(t, w, vf, 2, true)
}

func TestVFBringUpRetried(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	vf.failUp = 2
	st := w.attach(vf, netvsc.VFReady)
	if !strings.Contains(st.LastError, "bringing up VF failed mce0") || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("after a refused bring-up: %+v", st)
	}
	w.clk.Advance(time.Second)
	waitFor(t, "second attempt", func() bool {
		r := vf.requests()
		n := 0
		for _, x := range r {
			if x == "SetFlags" {
				n++
			}
		}
		return n >= 2
	})
	w.clk.Advance(time.Second)
	st = w.waitState(netvsc.VFActive)
	if st.TxTarget != "mce0" || vf.ifp.Flags()&ifnet.FlagRunning == 0 {
		t.Fatalf("after retries: %+v", st)
	}
}

// An MTU change of hn while a non-transparent VF is active rebuilds the
// synthetic attachment; the new one starts synthetic with a fresh
// association, and hn re-activates the VF once the host associates it
// again (FreeBSD re-sends the switch after the re-attach, §2.3).
func TestVFNonTransparentSurvivesMTUChange(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{mode: netvsc.VFNonTransparent})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFAttached)
	if err := vf.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFActive)
	if err := w.ifp.Ioctl(&ifnet.SetMTU{MTU: 4000}); err != nil {
		t.Fatal(err)
	}
	st := w.waitState(netvsc.VFActive)
	if w.hostPath() != nvsp.DataPathVF || st.RxVF != "mce0" || w.ifp.LinkState() != ifnet.LinkDown || w.dev.Info().MTU != 4000 {
		t.Fatalf("after the MTU change: %+v path %d link %s", st, w.hostPath(), w.ifp.LinkState())
	}
}

// The VF device can show up before the host's association names it (Linux
// 365e1ececb29): a candidate whose serial the host has not associated
// waits, and is paired once the association for it arrives.
func TestVFDeviceBeforeItsAssociation(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{serial: 8})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{serial: 9, hasSerial: true})
	if err := w.reg.Attach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the candidate to be looked at", func() bool { return strings.Contains(w.log.String(), "candidate=mce0") })
	if st := w.dev.VFStatus(); st.VF != "" || stateOf(vf.ifp).Claimed != "" {
		t.Fatalf("paired against serial 8: %+v", st)
	}
	w.setVF(true, 9)
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	st := w.waitState(netvsc.VFActive)
	if st.VF != "mce0" || st.Serial != 9 || st.Association.Serial != 9 || w.hostPath() != nvsp.DataPathVF {
		t.Fatalf("after the association: %+v", st)
	}
}
