package netvsc_test

// Transparent mode: every ioctl on hn is passed through to the VF and hn
// updates its own state (spec/vf-modes.md §3.7).

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
)

func TestVFIoctlPassThrough(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{refuseMTU: 8000})
	w.attach(vf, netvsc.VFActive)
	hn := w.ifp
	user := func(ifp *ifnet.Interface) ifnet.Flags { return ifp.Flags() & ifnet.UserFlags }
	set := func(r ifnet.Request) {
		t.Helper()
		if err := hn.Ioctl(r); err != nil {
			t.Fatalf("%s: %v", r.RequestName(), err)
		}
	}

	// Flags: promiscuous and all-multicast reach the VF; hn keeps its own
	// and its synthetic filter follows.
	set(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagPromisc})
	if user(hn) != ifnet.FlagUp|ifnet.FlagPromisc || user(vf.ifp) != ifnet.FlagUp|ifnet.FlagPromisc {
		t.Fatalf("promisc: hn %v VF %v", hn.Flags(), vf.ifp.Flags())
	}
	if f := w.nic.State().PacketFilter; f != rndis.PacketTypePromiscuous {
		t.Errorf("host filter %#x, want promiscuous", f)
	}
	set(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagAllMulti})
	if user(hn) != ifnet.FlagUp|ifnet.FlagAllMulti || user(vf.ifp) != ifnet.FlagUp|ifnet.FlagAllMulti {
		t.Fatalf("allmulti: hn %v VF %v", hn.Flags(), vf.ifp.Flags())
	}
	set(&ifnet.SetFlags{Flags: ifnet.FlagUp})
	if user(vf.ifp) != ifnet.FlagUp || vf.ifp.Flags()&ifnet.FlagRunning == 0 {
		t.Fatalf("plain up: VF %v", vf.ifp.Flags())
	}

	// Multicast add/delete become ALLMULTI on the VF; the list stays hn's.
	grp := net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
	set(&ifnet.AddMulti{Addr: grp})
	if user(vf.ifp) != ifnet.FlagUp|ifnet.FlagAllMulti || user(hn) != ifnet.FlagUp || len(vf.ifp.Multicast()) != 0 || len(hn.Multicast()) != 1 {
		t.Fatalf("add multi: hn %v %v, VF %v %v", hn.Flags(), hn.Multicast(), vf.ifp.Flags(), vf.ifp.Multicast())
	}
	set(&ifnet.DelMulti{Addr: grp})
	if user(vf.ifp) != ifnet.FlagUp || len(hn.Multicast()) != 0 {
		t.Fatalf("del multi: VF %v", vf.ifp.Flags())
	}

	// MTU: the VF first; its refusal is hn's error and nothing changes.
	set(&ifnet.SetMTU{MTU: 4000})
	if hn.MTU() != 4000 || vf.ifp.MTU() != 4000 {
		t.Fatalf("MTU hn %d VF %d", hn.MTU(), vf.ifp.MTU())
	}
	if err := hn.Ioctl(&ifnet.SetMTU{MTU: 9000}); !isErr(err, ifnet.ErrInvalid) || hn.MTU() != 4000 || vf.ifp.MTU() != 4000 {
		t.Fatalf("refused MTU: err %v, hn %d VF %d", err, hn.MTU(), vf.ifp.MTU())
	}

	// Capabilities: turning IPv4 transmit checksum and TSO4 off on hn turns
	// them off on the VF; the VF's own extra bits (LRO, not hn's) stay.
	before := stateOf(hn)
	set(&ifnet.SetCapabilities{Enable: before.Enabled &^ (ifnet.CapTxCsum | ifnet.CapTSO4)})
	if vf.ifp.CapEnabled()&(ifnet.CapTxCsum|ifnet.CapTSO4) != 0 || vf.ifp.CapEnabled()&ifnet.CapLRO == 0 {
		t.Errorf("VF enabled %v", vf.ifp.CapEnabled())
	}
	if hn.CapEnabled() != before.Enabled&^(ifnet.CapTxCsum|ifnet.CapTSO4) ||
		hn.HWAssist()&(ifnet.AssistCsumIPv4|ifnet.AssistIPTSO) != 0 || hn.Capabilities() != before.Caps {
		t.Errorf("hn caps %v enabled %v assist %v", hn.Capabilities(), hn.CapEnabled(), hn.HWAssist())
	}
	set(&ifnet.SetCapabilities{Enable: before.Enabled})
	if hn.CapEnabled() != before.Enabled || hn.HWAssist() != before.Assist || vf.ifp.CapEnabled() != vfCaps {
		t.Errorf("re-enable: hn %v/%v VF %v", hn.CapEnabled(), hn.HWAssist(), vf.ifp.CapEnabled())
	}

	// Media: read from and set on the VF.
	var gm ifnet.GetMedia
	set(&gm)
	if gm.State != vfMedia {
		t.Errorf("GetMedia %+v", gm.State)
	}
	set(&ifnet.SetMedia{Media: ifnet.Media{Type: ifnet.MediaEthernet, Speed: 10_000_000_000, FullDuplex: true}})
	if vf.ifp.Media().Current.Speed != 10_000_000_000 {
		t.Errorf("VF media %+v", vf.ifp.Media())
	}
	reqs := vf.requests()
	for _, want := range []string{"SetMedia", "GetMedia", "SetCapabilities", "SetMTU", "SetFlags"} {
		found := false
		for _, r := range reqs {
			found = found || r == want
		}
		if !found {
			t.Errorf("VF never saw %s (saw %v)", want, reqs)
		}
	}
	// RSS key and hash are answered from hn's synced state.
	var k ifnet.GetRSSKey
	set(&k)
	if rss := hn.RSS(); k.Func != rss.Func || !bytes.Equal(k.Key, rss.Key) {
		t.Errorf("GetRSSKey %+v, published %+v", k, rss)
	}
	// A MAC change moves the VF's address too (Linux, not FreeBSD, whose
	// pair breaks): the pair holds, transmit stays on the VF.
	newMAC := net.HardwareAddr{0x00, 0x15, 0x5d, 0x01, 0x02, 0x04}
	set(&ifnet.SetMAC{MAC: newMAC})
	if !bytes.Equal(hn.MAC(), newMAC) || !bytes.Equal(vf.ifp.MAC(), newMAC) {
		t.Fatalf("SetMAC: hn %v VF %v", hn.MAC(), vf.ifp.MAC())
	}
	// The worker looks at both MAC events; the pair must hold throughout.
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if st := w.dev.VFStatus(); st.State != netvsc.VFActive || st.TxTarget != "mce0" {
			t.Fatalf("after SetMAC: %+v", st)
		}
	}
	if s := stateOf(vf.ifp); s.Claimed != "hn0" || s.Overrides != 1 {
		t.Fatalf("VF after SetMAC: %+v", s)
	}
	// A VF that refuses the address: hn's error, neither MAC moves.
	vf.mu.Lock()
	vf.refuseMAC = true
	vf.mu.Unlock()
	if err := hn.Ioctl(&ifnet.SetMAC{MAC: net.HardwareAddr{0x00, 0x15, 0x5d, 0x01, 0x02, 0x05}}); !isErr(err, ifnet.ErrNotSupported) {
		t.Fatalf("refused SetMAC: %v", err)
	}
	if !bytes.Equal(hn.MAC(), newMAC) || !bytes.Equal(vf.ifp.MAC(), newMAC) {
		t.Fatalf("after a refused SetMAC: hn %v VF %v", hn.MAC(), vf.ifp.MAC())
	}
	// Direct configuration of the VF is refused while hn owns it.
	if err := vf.ifp.Ioctl(&ifnet.SetMTU{MTU: 1500}); !isErr(err, ifnet.ErrClaimed) {
		t.Errorf("direct VF ioctl: %v", err)
	}
	// Only the VF learnt MTU 4000; when it leaves, the synthetic path is
	// rebuilt with hn's MTU, so the fallback carries what hn promises.
	if w.dev.Info().MTU != 1500 {
		t.Fatalf("synthetic MTU %d while the VF is active (only the VF changes)", w.dev.Info().MTU)
	}
	if err := w.reg.Detach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFNone)
	if hn.MTU() != 4000 || w.dev.Info().MTU != 4000 || w.nic.State().MTU != 4000+14 {
		t.Fatalf("after detach: hn MTU %d, synthetic %d, host %d", hn.MTU(), w.dev.Info().MTU, w.nic.State().MTU)
	}
	if hn.Flags()&(ifnet.FlagUp|ifnet.FlagRunning) != ifnet.FlagUp|ifnet.FlagRunning {
		t.Fatalf("hn flags %v after the synthetic rebuild", hn.Flags())
	}
	w.send([][]byte{frame(stationHW, 0x99, 3000)}, nil)
	if f := w.stationFrames(1); len(f[0].Data) != 3000 {
		t.Fatalf("station got %d bytes", len(f[0].Data))
	}
}

// RSS: hn takes the VF's Toeplitz key and the hash types both support,
// so one flow hashes alike on both paths, and gets its own back when the
// VF leaves (FreeBSD hn_vf_rss_fixup / hn_vf_rss_restore, §1.7).
func TestVFRSSAlignAndRestore(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{queues: 4})
	w.up()
	before := w.ifp.RSS()
	if before.Func != ifnet.RSSFuncToeplitz || bytes.Equal(before.Key, vfKey) {
		t.Skipf("no multi-queue RSS to align: %+v", before)
	}
	vf := newFakeVF(t, fakeVFOpts{})
	w.attach(vf, netvsc.VFActive)
	got := w.ifp.RSS()
	wantTypes := before.Types & (ifnet.RSSIPv4 | ifnet.RSSTCPv4 | ifnet.RSSIPv6 | ifnet.RSSTCPv6)
	if !bytes.Equal(got.Key, vfKey) || got.Types != wantTypes || got.Func != ifnet.RSSFuncToeplitz {
		t.Fatalf("hn RSS %+v, want VF key and types %v", got, wantTypes)
	}
	if p := w.nic.State().RSS; p == nil || !bytes.Equal(p.HashKey, vfKey) {
		t.Fatalf("host RSS key not the VF's: %+v", p)
	}
	var h ifnet.GetRSSHash
	if err := w.ifp.Ioctl(&h); err != nil || h.Types != wantTypes {
		t.Fatalf("GetRSSHash %+v %v", h, err)
	}
	w.detachAndCheckRSS(vf, before)
}

// detachAndCheckRSS detaches the VF and checks hn's RSS key and types,
// and the host's key, are hn's own again.
func (vw *vfWorld) detachAndCheckRSS(vf *fakeVF, before ifnet.RSSConfig) {
	vw.t.Helper()
	if err := vw.reg.Detach(vf.ifp); err != nil {
		vw.t.Fatal(err)
	}
	vw.waitState(netvsc.VFNone)
	if after := vw.ifp.RSS(); !bytes.Equal(after.Key, before.Key) || after.Types != before.Types {
		vw.t.Fatalf("RSS after detach %+v, before %+v", after, before)
	}
	if p := vw.nic.State().RSS; p == nil || !bytes.Equal(p.HashKey, before.Key) {
		vw.t.Fatalf("host RSS key not restored")
	}
}
