package netvsc_test

// Transparent VF mode (spec/vf-modes.md §3), one test per behaviour, each
// asserting the state of both interfaces, the host's data path and the
// transmit target before attach, after attach, after each ioctl and after
// detach.

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// "Each VF has exactly one hn with the same MAC" (§1.1, §3.0): Ethernet,
// not hn, not an aggregate or VLAN, same MAC; with a vPCI serial and the
// host's association both known, they agree (Linux, A.2). A second
// candidate is refused and logged with both names.
func TestVFPairing(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{serial: 7})
	w.up()
	hn := w.ifp
	other := net.HardwareAddr{0x00, 0x15, 0x5d, 0x09, 0x09, 0x09}
	vlan := newFakeVF(t, fakeVFOpts{name: "vlan5", kind: ifnet.KindVLAN})
	lagg := newFakeVF(t, fakeVFOpts{name: "lagg0", kind: ifnet.KindAggregate})
	wrongMAC := newFakeVF(t, fakeVFOpts{name: "mce9", mac: other, serial: 7, hasSerial: true})
	wrongSerial := newFakeVF(t, fakeVFOpts{name: "mce8", serial: 8, hasSerial: true})
	for _, f := range []*fakeVF{vlan, lagg, wrongMAC, wrongSerial} {
		if err := w.reg.Attach(f.ifp); err != nil {
			t.Fatal(err)
		}
	}
	good := newFakeVF(t, fakeVFOpts{name: "mce0", serial: 7, hasSerial: true})
	st := w.attach(good, netvsc.VFActive)
	if st.VF != "mce0" || st.Serial != 7 || !st.HasSerial {
		t.Fatalf("paired %+v, want mce0 serial 7", st)
	}
	for _, f := range []*fakeVF{vlan, lagg, wrongMAC, wrongSerial} {
		if s := stateOf(f.ifp); s.Claimed != "" || s.Overrides != 0 || s.Flags&ifnet.FlagUp != 0 {
			t.Errorf("%s touched by hn: %+v", f.ifp.Name(), s)
		}
	}
	if !strings.Contains(w.log.String(), "candidate=mce8") || !strings.Contains(w.log.String(), "serial 8") {
		t.Errorf("serial mismatch not logged:\n%s", w.log)
	}
	// A second matching VF is refused; the line names both, never a nil.
	second := newFakeVF(t, fakeVFOpts{name: "mce1", serial: 7, hasSerial: true})
	if err := w.reg.Attach(second.ifp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refusal", func() bool { return w.dev.VFStatus().Refused == 1 })
	if l := w.log.String(); !strings.Contains(l, "refused: one VF per hn") || !strings.Contains(l, "candidate=mce1 vf=mce0") {
		t.Errorf("refusal not logged with both names:\n%s", w.log)
	}
	if s := stateOf(second.ifp); s.Claimed != "" || s.Overrides != 0 {
		t.Errorf("second VF touched: %+v", s)
	}
	if s := stateOf(good.ifp); s.Claimed != hn.Name() || s.Overrides != 1 {
		t.Errorf("paired VF %+v", s)
	}
	// The refused candidate is kept: when the paired VF leaves, it pairs
	// (and was counted once, however many events passed).
	if err := w.reg.Detach(good.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	st = w.waitState(netvsc.VFActive)
	if st.VF != "mce1" || st.TxTarget != "mce1" || st.Refused != 1 {
		t.Fatalf("after the paired VF left: %+v, want mce1 active, refused once", st)
	}
	if s := stateOf(second.ifp); s.Claimed != hn.Name() || s.Overrides != 1 {
		t.Errorf("second VF not taken over: %+v", s)
	}
}

// A VF paired before the host said which one it allocated is handed back
// when the host names another that is present, and that one pairs: hn does
// not hold on to a VF the host contradicts (Linux's serial rule), and the
// first is left as it was found.
func TestVFReplacedWhenHostNamesAnother(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{noSetVF: true})
	w.up()
	first := newFakeVF(t, fakeVFOpts{name: "mce0", serial: 1, hasSerial: true})
	before := stateOf(first.ifp)
	if err := w.reg.Attach(first.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	w.waitState(netvsc.VFNoAssociation)
	if s := stateOf(first.ifp); s.Claimed != w.ifp.Name() || s.Overrides != 1 {
		t.Fatalf("first VF not paired while the association is unknown: %+v", s)
	}
	w.setVF(true, 2)
	right := newFakeVF(t, fakeVFOpts{name: "mce1", serial: 2, hasSerial: true})
	if err := w.reg.Attach(right.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	st := w.waitState(netvsc.VFActive)
	if st.VF != "mce1" || st.Serial != 2 || st.TxTarget != "mce1" || st.Refused != 0 || w.hostPath() != nvsp.DataPathVF {
		t.Fatalf("%+v path %d, want mce1 (serial 2) active", st, w.hostPath())
	}
	if got := stateOf(first.ifp); got != before {
		t.Errorf("first VF not restored: %+v, before %+v", got, before)
	}
	if !strings.Contains(w.log.String(), "VF replaced") || !strings.Contains(w.log.String(), "candidate=mce1") {
		t.Errorf("replacement not logged:\n%s", w.log)
	}
}

// On VF attach: claim it (no direct configuration from others) and
// override its input, so every packet it receives is relabelled as hn's
// and counted on both (§3.3 steps 4–5, §3.5). Nothing else changes during
// the attach wait.
func TestVFAttachClaimsAndRelabelsInput(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	hnBefore, vfBefore := stateOf(w.ifp), stateOf(vf.ifp)
	if err := w.reg.Attach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	hnNow, vfNow := stateOf(w.ifp), stateOf(vf.ifp)
	if hnNow != hnBefore {
		t.Errorf("hn changed during the attach wait:\n%+v\n%+v", hnBefore, hnNow)
	}
	vfBefore.Claimed, vfBefore.Overrides = "hn0", 1
	if vfNow != vfBefore {
		t.Errorf("VF after attach %+v, want %+v", vfNow, vfBefore)
	}
	if err := vf.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); !isErr(err, ifnet.ErrClaimed) {
		t.Fatalf("direct VF ioctl: %v, want ErrClaimed", err)
	}
	if st := w.dev.VFStatus(); st.TxTarget != "synthetic" || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("during the wait: %+v, host path %d", st, w.hostPath())
	}
	vf.inject(t, frame(net.HardwareAddr(hnMAC[:]), 1, 100), frame(net.HardwareAddr(hnMAC[:]), 2, 200))
	got := w.recv(2)
	for i, p := range got {
		if p.Meta.RcvIf != w.ifp.Index() || p.Bytes()[14] != byte(i+1) {
			t.Errorf("frame %d: rcvif %d (hn %d), tag %d", i, p.Meta.RcvIf, w.ifp.Index(), p.Bytes()[14])
		}
		p.Free()
	}
	if s := vf.ifp.Stats(); s.InPackets != 2 || s.InBytes != 300 {
		t.Errorf("VF counters %+v", s)
	}
	if s := w.ifp.Stats(); s.InPackets != 2 || s.InBytes != 300 {
		t.Errorf("hn counters %+v", s)
	}
	if s := w.dev.Stats(); s.VFRxPackets != 2 || s.VFRxBytes != 300 {
		t.Errorf("per-path counters %+v", s)
	}
}

// After the attach wait (on the platform clock, minimum 2 s), the VF's
// readiness and the host's "allocated": hn's capabilities become the
// intersection, enabled capabilities and hardware assist follow, TSO
// limits the minimum, media and link from the VF; hn is up, so the VF
// comes up with hn's flags, the host's data path switches to the VF
// (completion awaited), and only then transmit moves (§3.4).
func TestVFAdoptAfterWaitReadyAndAssociation(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{noSetVF: true})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{notReady: true})
	hnBefore, vfBefore := stateOf(w.ifp), stateOf(vf.ifp)
	if err := w.reg.Attach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait - time.Millisecond)
	if st := w.dev.VFStatus(); st.State != netvsc.VFWaiting {
		t.Fatalf("state %s before the wait ended", st.State)
	}
	w.clk.Advance(time.Millisecond)
	w.waitState(netvsc.VFNotReady)
	vf.setReady(true)
	w.clk.Advance(100 * time.Millisecond)
	w.waitState(netvsc.VFNoAssociation)
	if got := stateOf(w.ifp); got != hnBefore || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("hn adopted before the association: %+v", got)
	}
	w.setVF(true, 0)
	st := w.waitState(netvsc.VFActive)

	hn, v := stateOf(w.ifp), stateOf(vf.ifp)
	inter := hnBefore.Caps & vfCaps
	if hn.Caps != inter || hn.Enabled != hnBefore.Enabled&inter {
		t.Errorf("hn caps %v enabled %v, want %v / %v", hn.Caps, hn.Enabled, inter, hnBefore.Enabled&inter)
	}
	if want := ifnet.DeriveHWAssist(hn.Enabled) & hnBefore.Assist; hn.Assist != want {
		t.Errorf("hn hwassist %v, want %v", hn.Assist, want)
	}
	if hn.TSO.MaxBytes != minStated(hnBefore.TSO.MaxBytes, vfTSO.MaxBytes) ||
		hn.TSO.MaxSegments != minStated(hnBefore.TSO.MaxSegments, vfTSO.MaxSegments) ||
		hn.TSO.MaxSegmentSize != minStated(hnBefore.TSO.MaxSegmentSize, vfTSO.MaxSegmentSize) || hn.TSO.MaxBytes != 62780 {
		t.Errorf("hn TSO %+v, hn before %+v, VF %+v", hn.TSO, hnBefore.TSO, vfTSO)
	}
	if hn.Media != vfMedia || hn.Link != ifnet.LinkUp || hn.Flags != hnBefore.Flags || hn.MTU != 1500 {
		t.Errorf("hn %+v", hn)
	}
	// The VF: up and running with hn's flags, its offloads as hn's
	// enabled set asks within the intersection, its own bits kept.
	if v.Flags != vfBefore.Flags|ifnet.FlagUp|ifnet.FlagRunning || v.MTU != 1500 {
		t.Errorf("VF flags %v MTU %d", v.Flags, v.MTU)
	}
	if v.Enabled != vfCaps&^inter|hnBefore.Enabled&inter || v.Caps != vfCaps || v.TSO != vfTSO {
		t.Errorf("VF caps %v enabled %v TSO %+v", v.Caps, v.Enabled, v.TSO)
	}
	if st.TxTarget != "mce0" || !st.Enabled || !st.Ready || w.hostPath() != nvsp.DataPathVF || w.dev.DataPath() != nvsp.DataPathVF {
		t.Fatalf("status %+v, host path %d", st, w.hostPath())
	}
	// Transmit goes to the VF; the station sees nothing.
	w.send([][]byte{frame(stationHW, 1, 60), frame(stationHW, 2, 70), frame(stationHW, 3, 80)}, nil)
	sent := vf.sentFrames()
	if len(sent) != 3 || sent[2][14] != 3 {
		t.Fatalf("VF sent %d frames", len(sent))
	}
	if s := w.dev.Stats(); s.VFTxPackets != 3 || s.VFTxBytes != 210 || s.TxPackets != 0 {
		t.Errorf("per-path tx %+v", s)
	}
	if vf.ifp.Stats().OutPackets != 3 || w.ifp.Stats().OutPackets != 3 {
		t.Errorf("out packets VF %d hn %d", vf.ifp.Stats().OutPackets, w.ifp.Stats().OutPackets)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(w.station.Frames()); n != 0 {
		t.Errorf("station got %d frames while transmit is on the VF", n)
	}
}

// The attach wait has FreeBSD's minimum (HN_XPNT_VF_ATTWAIT_MIN, 2 s).
func TestVFAttachWaitMinimum(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{wait: 100 * time.Millisecond})
	if st := w.dev.VFStatus(); st.AttachWait != netvsc.MinVFAttachWait {
		t.Fatalf("attach wait %v, want %v", st.AttachWait, netvsc.MinVFAttachWait)
	}
	if got := w.dev.SetVFAttachWait(time.Millisecond); got != netvsc.MinVFAttachWait {
		t.Fatalf("SetVFAttachWait gave %v", got)
	}
	vf := newFakeVF(t, fakeVFOpts{})
	if err := w.reg.Attach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(time.Second)
	time.Sleep(10 * time.Millisecond)
	if st := w.dev.VFStatus(); st.State != netvsc.VFWaiting {
		t.Fatalf("adopted after 1 s: %s", st.State)
	}
	w.clk.Advance(time.Second)
	w.waitState(netvsc.VFReady) // hn is down: adopted, not switched
	if w.hostPath() != nvsp.DataPathSynthetic || vf.ifp.Flags()&ifnet.FlagUp != 0 {
		t.Fatalf("hn down, yet VF up %v or path %d", vf.ifp.Flags(), w.hostPath())
	}
}

// hn's MTU goes to the VF; when the VF refuses a jumbo MTU, hn falls back
// to 1500 (FreeBSD hn_xpnt_vf_setready).
func TestVFMTUAppliedWithFallback(t *testing.T) {
	for _, c := range []struct {
		name            string
		refuse          int
		wantHN, wantVF  int
		wantLogContains string
	}{
		{"accepted", 0, 9000, 9000, ""},
		{"refused", 1500, 1500, 1500, "VF refused MTU 9000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newVFWorld(t, vfWorldOpts{mtu: 9000})
			if w.ifp.MTU() != 9000 {
				t.Skipf("host gave MTU %d", w.ifp.MTU())
			}
			w.up()
			vf := newFakeVF(t, fakeVFOpts{refuseMTU: c.refuse})
			w.attach(vf, netvsc.VFActive)
			if w.ifp.MTU() != c.wantHN || vf.ifp.MTU() != c.wantVF {
				t.Fatalf("MTU hn %d VF %d, want %d / %d", w.ifp.MTU(), vf.ifp.MTU(), c.wantHN, c.wantVF)
			}
			if c.wantLogContains != "" && !strings.Contains(w.log.String(), c.wantLogContains) {
				t.Errorf("log lacks %q:\n%s", c.wantLogContains, w.log)
			}
		})
	}
}

// If hn is down when the VF becomes ready, the VF is adopted but stays
// down and the path synthetic; hn up then brings the VF up with hn's
// flags (ALLMULTI added for hn's multicast filters), switches the path
// and only then moves transmit (§3.4, §3.7 item 2).
func TestVFHnUpLater(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFReady)
	if err := w.ifp.Ioctl(&ifnet.AddMulti{Addr: net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if vf.ifp.Flags()&ifnet.FlagUp != 0 || w.dev.VFStatus().TxTarget != "synthetic" {
		t.Fatal("VF up while hn is down")
	}
	var pathAtUp nvsp.DataPath = 99
	vf.setHook(func(r ifnet.Request) {
		if f, ok := r.(*ifnet.SetFlags); ok && f.Flags&ifnet.FlagUp != 0 {
			pathAtUp = w.hostPath()
		}
	})
	w.up()
	st := w.waitState(netvsc.VFActive)
	vf.setHook(nil)
	if pathAtUp != nvsp.DataPathSynthetic {
		t.Errorf("host path %d when the VF was brought up; it must switch after", pathAtUp)
	}
	if f := vf.ifp.Flags(); f&(ifnet.FlagUp|ifnet.FlagRunning|ifnet.FlagAllMulti) != ifnet.FlagUp|ifnet.FlagRunning|ifnet.FlagAllMulti || f&ifnet.FlagPromisc != 0 {
		t.Errorf("VF flags %v", f)
	}
	if f := w.ifp.Flags(); f&ifnet.FlagAllMulti != 0 {
		t.Errorf("hn got ALLMULTI (flags set on the wrong interface): %v", f)
	}
	if st.TxTarget != "mce0" || w.hostPath() != nvsp.DataPathVF {
		t.Fatalf("%+v path %d", st, w.hostPath())
	}
}

// Transmit moves to the VF only after the host completed the switch of
// its data path (FreeBSD hn_xpnt_vf_init: the VF is up, then
// hn_nvs_set_datapath waits, then the transmit target changes): while the
// host holds the completion, hn's frames still go synthetic.
func TestVFTransmitWaitsForSwitchCompletion(t *testing.T) {
	held, gate := make(chan struct{}, 4), make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	w := newVFWorld(t, vfWorldOpts{beforeSwitch: func(toVF bool) {
		if toVF {
			held <- struct{}{}
			<-gate
		}
	}})
	t.Cleanup(open) // runs before the world's teardown, which needs the host's channel
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	if err := w.reg.Attach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("hn never asked the host to switch")
	}
	st := w.dev.VFStatus()
	if st.TxTarget != "synthetic" || st.Enabled || vf.ifp.Flags()&ifnet.FlagUp == 0 || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("while the switch is pending: %+v, VF flags %v, host path %d", st, vf.ifp.Flags(), w.hostPath())
	}
	w.send([][]byte{frame(stationHW, 1, 60)}, nil)
	if n := len(vf.sentFrames()); n != 0 {
		t.Fatalf("%d frames went to the VF before the host switched", n)
	}
	open()
	st = w.waitState(netvsc.VFActive)
	if st.TxTarget != "mce0" || !st.Enabled || w.hostPath() != nvsp.DataPathVF {
		t.Fatalf("after the completion: %+v, host path %d", st, w.hostPath())
	}
	if f := w.stationFrames(1); f[0].Data[14] != 1 {
		t.Fatalf("the frame sent while pending reached the station as tag %d", f[0].Data[14])
	}
	w.send([][]byte{frame(stationHW, 2, 60)}, nil)
	if got := vf.sentFrames(); len(got) != 1 || got[0][14] != 2 {
		t.Fatalf("after the switch the VF sent %d frames", len(got))
	}
}

// hn down brings the VF down, with transmit and the host's data path
// switched back to synthetic first (§3.7 item 9).
func TestVFHnDownSwitchesPathFirst(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)
	var pathAtDown nvsp.DataPath = 99
	target := ""
	vf.setHook(func(r ifnet.Request) {
		if f, ok := r.(*ifnet.SetFlags); ok && f.Flags&ifnet.FlagUp == 0 {
			pathAtDown, target = w.hostPath(), w.dev.VFStatus().TxTarget
		}
	})
	if err := w.ifp.Ioctl(&ifnet.SetFlags{}); err != nil {
		t.Fatal(err)
	}
	vf.setHook(nil)
	if pathAtDown != nvsp.DataPathSynthetic || target != "synthetic" {
		t.Fatalf("when the VF went down: host path %d, transmit %q", pathAtDown, target)
	}
	st := w.dev.VFStatus()
	if st.State != netvsc.VFReady || st.Enabled || vf.ifp.Flags()&(ifnet.FlagUp|ifnet.FlagRunning) != 0 || w.ifp.Flags()&ifnet.FlagUp != 0 {
		t.Fatalf("after hn down: %+v, VF %v, hn %v", st, vf.ifp.Flags(), w.ifp.Flags())
	}
	// Up again: back on the VF.
	w.up()
	if st := w.waitState(netvsc.VFActive); st.TxTarget != "mce0" || w.hostPath() != nvsp.DataPathVF {
		t.Fatalf("after hn up: %+v", st)
	}
}

// Packets that still arrive on the synthetic path while the VF carries
// the rest (broadcast, multicast, TCP SYN on Azure) are delivered
// normally as hn's (§1.8, A.3).
func TestVFSyntheticPathStillDelivers(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)
	bcast := make([]byte, 60)
	copy(bcast, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(bcast[6:], stationMAC[:])
	bcast[12], bcast[13], bcast[14] = 0x08, 0x06, 0x77
	if !w.station.Send(bcast, packet.Meta{}) {
		t.Fatal("station send")
	}
	p := w.recv(1)[0]
	if p.Meta.RcvIf != w.ifp.Index() || p.Bytes()[14] != 0x77 {
		t.Fatalf("broadcast rcvif %d tag %#x", p.Meta.RcvIf, p.Bytes()[14])
	}
	p.Free()
	if s := w.dev.Stats(); s.RxSynthWhileVF != 1 || s.RxPackets != 1 || s.VFRxPackets != 0 {
		t.Fatalf("per-path rx %+v", s)
	}
	if vf.ifp.Stats().InPackets != 0 {
		t.Fatal("synthetic packet counted on the VF")
	}
}

// Capture on hn sees transmitted packets before the VF takes them
// (default; so also what it refuses) or only what it accepted
// (VFCaptureAfter, FreeBSD vf_xpnt_accbpf).
func TestVFCaptureBeforeOrAfter(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)
	seen := 0
	obs, err := w.ifp.Observe(func(_ *ifnet.Interface, dir ifnet.Direction, b *packet.Batch) {
		if dir == ifnet.DirOut {
			seen += b.Len()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	try := func() (int, error) {
		b := packet.NewBatch(2)
		for i := range 2 {
			p := packet.New(packet.DefaultHeadroom, 64)
			_ = p.SetBytes(frame(stationHW, byte(i), 64))
			b.Add(p)
		}
		n, err := w.ifp.Transmit(b)
		b.Free()
		return n, err
	}
	vf.setBusy(true)
	if n, err := try(); n != 0 || !isErr(err, ifnet.ErrBusy) || seen != 2 {
		t.Fatalf("before, VF busy: sent %d err %v, captured %d (want 2)", n, err, seen)
	}
	w.dev.SetVFCaptureAfter(true)
	if n, err := try(); n != 0 || err == nil || seen != 2 {
		t.Fatalf("after, VF busy: sent %d err %v, captured %d (want still 2)", n, err, seen)
	}
	vf.setBusy(false)
	if n, err := try(); n != 2 || err != nil || seen != 4 {
		t.Fatalf("after, VF takes them: sent %d err %v, captured %d (want 4)", n, err, seen)
	}
	if st := w.dev.VFStatus(); !st.CaptureAfter || w.dev.Stats().VFTxBusy != 2 {
		t.Fatalf("status %+v busy %d", st, w.dev.Stats().VFTxBusy)
	}
}

// The VF's MAC changes under hn (its host gave it another: mlx
// NIC_VPORT_CHANGE): it is not hn's VF any more, so hn hands it back whole
// and carries on synthetic; when its MAC is hn's again, it pairs again.
func TestVFMACChangeUnpairs(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	hnBefore := stateOf(w.ifp)
	w.attach(vf, netvsc.VFActive)
	other := net.HardwareAddr{0x00, 0x15, 0x5d, 0x77, 0x77, 0x77}
	if err := vf.ifp.SetHardwareAddr(other); err != nil {
		t.Fatal(err)
	}
	st := w.waitState(netvsc.VFNone)
	if st.TxTarget != "synthetic" || w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("after the VF's MAC changed: %+v path %d", st, w.hostPath())
	}
	if got := stateOf(w.ifp); got != hnBefore {
		t.Fatalf("hn not restored:\n got %+v\nwant %+v", got, hnBefore)
	}
	if got := stateOf(vf.ifp); got.Claimed != "" || got.Overrides != 0 {
		t.Fatalf("VF still held: %+v", got)
	}
	if !strings.Contains(w.log.String(), "its MAC no longer matches") {
		t.Errorf("release not logged:\n%s", w.log)
	}
	w.send([][]byte{frame(stationHW, 7, 60)}, nil)
	if f := w.stationFrames(1); f[0].Data[14] != 7 || len(vf.sentFrames()) != 0 {
		t.Fatalf("synthetic transmit after the release: tag %d, VF sent %d", f[0].Data[14], len(vf.sentFrames()))
	}
	// Back to hn's MAC: a candidate again.
	if err := vf.ifp.SetHardwareAddr(net.HardwareAddr(hnMAC[:])); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFWaiting)
	w.clk.Advance(netvsc.DefaultVFAttachWait)
	if st := w.waitState(netvsc.VFActive); st.VF != "mce0" || st.TxTarget != "mce0" {
		t.Fatalf("re-paired: %+v", st)
	}
}
