package mlx

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Ioctls end to end: what the driver programs is read back from the device
// model through QUERY_NIC_VPORT_CONTEXT and ACCESS_REG, and checked by the
// device's filter on real frames.

func vportCtx(t testing.TB, vf *VF) mlxhw.NICVportContext {
	t.Helper()
	var out mlxhw.QueryNICVportContextOut
	if err := vf.cmd.exec(context.Background(), &mlxhw.QueryNICVportContextIn{ListType: mlxhw.ListMC, MaxList: 128}, &out); err != nil {
		t.Fatal(err)
	}
	return out.Ctx
}

func pmtu(t testing.TB, vf *VF) mlxhw.PMTU {
	t.Helper()
	reg := make([]byte, mlxhw.PMTUSize)
	(&mlxhw.PMTU{LocalPort: 1}).Put(reg)
	var out mlxhw.AccessRegOut
	if err := vf.cmd.exec(context.Background(), &mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegRead, RegisterID: mlxhw.RegIDPMTU, Data: reg}, &out); err != nil {
		t.Fatal(err)
	}
	var p mlxhw.PMTU
	if err := p.Parse(out.Data); err != nil {
		t.Fatal(err)
	}
	return p
}

// deliverTo sends frames of size n to dst from the station and reports how
// many reached the VF's stack and how many the device dropped for reason.
func deliverTo(t testing.TB, r *rig, sk *sink, dst net.HardwareAddr, n, size int, reason mlxdev.DropReason) (got, dropped uint64) {
	t.Helper()
	dev := r.device()
	before, dropBefore := sk.n.Load(), dev.Stats().RxDrops[reason]
	smac := net.HardwareAddr(stationMAC[:])
	for i := range n {
		f := tcpPacket(t, smac, dst, stationIP, vfIP, uint32(i), bytes.Repeat([]byte{1}, size-54), false)
		if !r.st.Send(f, packet.Meta{}) {
			t.Fatalf("station refused a %d-byte frame", len(f))
		}
	}
	eventually(t, "frames accounted", func() bool {
		return sk.n.Load()-before+dev.Stats().RxDrops[reason]-dropBefore >= uint64(n)
	})
	return sk.n.Load() - before, dev.Stats().RxDrops[reason] - dropBefore
}

func TestIoctls(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{MaxMTU: 9000}})
	vf := r.waitVF()
	ifp := vf.Interface()
	sk := r.up(vf)
	vmac := net.HardwareAddr(vfMAC[:])

	// MTU: vport mtu = sw + 22, PMTU admin too; oversize frames dropped.
	if c := vportCtx(t, vf); c.MTU != 1522 || c.PermanentAddress != vfMAC {
		t.Fatalf("initial vport %+v", c)
	}
	if err := ifp.Ioctl(&ifnet.SetMTU{MTU: 9000}); err != nil {
		t.Fatal(err)
	}
	if c, p := vportCtx(t, vf), pmtu(t, vf); c.MTU != 9022 || p.AdminMTU != 9022 || ifp.MTU() != 9000 {
		t.Fatalf("after SetMTU 9000: vport %d, PMTU admin %d, ifp %d", c.MTU, p.AdminMTU, ifp.MTU())
	}
	if got, _ := deliverTo(t, r, sk, vmac, 3, 9014, mlxdev.DropMTU); got != 3 {
		t.Fatalf("jumbo frames: %d of 3", got)
	}
	if err := ifp.Ioctl(&ifnet.SetMTU{MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	if c := vportCtx(t, vf); c.MTU != 1522 {
		t.Fatalf("vport mtu %d", c.MTU)
	}
	if got, dropped := deliverTo(t, r, sk, vmac, 3, 3000, mlxdev.DropMTU); got != 0 || dropped != 3 {
		t.Fatalf("oversize frames: %d delivered, %d dropped", got, dropped)
	}

	// Promiscuous: foreign unicast is filtered, then accepted.
	foreign := net.HardwareAddr{0x02, 9, 9, 9, 9, 9}
	if got, dropped := deliverTo(t, r, sk, foreign, 2, 100, mlxdev.DropFilter); got != 0 || dropped != 2 {
		t.Fatalf("foreign unicast: %d delivered, %d dropped", got, dropped)
	}
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagPromisc}); err != nil {
		t.Fatal(err)
	}
	if c := vportCtx(t, vf); !c.PromiscAll || c.PromiscMC || c.PromiscUC {
		t.Fatalf("promisc vport %+v", c)
	}
	if got, _ := deliverTo(t, r, sk, foreign, 2, 100, mlxdev.DropFilter); got != 2 {
		t.Fatalf("promisc: %d of 2", got)
	}
	// Allmulti.
	group := net.HardwareAddr{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagAllMulti}); err != nil {
		t.Fatal(err)
	}
	if c := vportCtx(t, vf); c.PromiscAll || !c.PromiscMC {
		t.Fatalf("allmulti vport %+v", c)
	}
	if got, _ := deliverTo(t, r, sk, group, 2, 100, mlxdev.DropFilter); got != 2 {
		t.Fatalf("allmulti: %d of 2", got)
	}
	// Multicast list: only the joined group passes.
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	joined := net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
	if err := ifp.Ioctl(&ifnet.AddMulti{Addr: joined}); err != nil {
		t.Fatal(err)
	}
	if c := vportCtx(t, vf); c.PromiscMC || c.ListType != mlxhw.ListMC || len(c.Addresses) != 1 || !bytes.Equal(c.Addresses[0][:], joined) {
		t.Fatalf("MC list vport %+v", c)
	}
	if got, _ := deliverTo(t, r, sk, joined, 2, 100, mlxdev.DropFilter); got != 2 {
		t.Fatalf("joined group: %d of 2", got)
	}
	if got, dropped := deliverTo(t, r, sk, group, 2, 100, mlxdev.DropFilter); got != 0 || dropped != 2 {
		t.Fatalf("other group: %d delivered, %d dropped", got, dropped)
	}
	if err := ifp.Ioctl(&ifnet.DelMulti{Addr: joined}); err != nil {
		t.Fatal(err)
	}
	if c := vportCtx(t, vf); len(c.Addresses) != 0 {
		t.Fatalf("MC list after leave %+v", c.Addresses)
	}

	// Capabilities off: no RX checksum verdicts, VLAN tags left in the
	// frame, no TX assists.
	sk.keep = true
	if err := ifp.Ioctl(&ifnet.SetCapabilities{Enable: ifnet.CapLinkState}); err != nil {
		t.Fatal(err)
	}
	if ifp.HWAssist() != 0 || ifp.CapEnabled() != ifnet.CapLinkState {
		t.Fatalf("hwassist %v enabled %v", ifp.HWAssist(), ifp.CapEnabled())
	}
	deliverTo(t, r, sk, vmac, 1, 100, mlxdev.DropFilter)
	if g := sk.got(); g[len(g)-1].Meta.Csum != 0 {
		t.Fatalf("RX csum with offload off: %v", g[len(g)-1].Meta.Csum)
	}
	if err := ifp.Ioctl(&ifnet.SetCapabilities{Enable: ifp.Capabilities()}); err != nil {
		t.Fatal(err)
	}
	deliverTo(t, r, sk, vmac, 1, 100, mlxdev.DropFilter)
	if g := sk.got(); g[len(g)-1].Meta.Csum != packet.CsumRxIPOK|packet.CsumRxL4OK {
		t.Fatalf("RX csum with offload on: %v", g[len(g)-1].Meta.Csum)
	}

	// Media and link: from the vport state and PTYS; a flap reaches ifnet.
	links := make(chan ifnet.LinkState, 8)
	sub, err := r.reg.Subscribe(func(e ifnet.Event) {
		if e.Type == ifnet.EventLink && e.Interface == ifp {
			links <- e.Link
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	gm := ifnet.GetMedia{}
	if err := ifp.Ioctl(&gm); err != nil || gm.State.Status != ifnet.MediaValid|ifnet.MediaActive || gm.State.Active.Speed != 25e9 {
		t.Fatalf("media %+v %v", gm.State, err)
	}
	r.device().SetLink(false)
	if l := <-links; l != ifnet.LinkDown {
		t.Fatalf("link event %v", l)
	}
	if err := ifp.Ioctl(&gm); err != nil || gm.State.Status != ifnet.MediaValid || gm.State.Active.Speed != 0 {
		t.Fatalf("media down %+v %v", gm.State, err)
	}
	r.device().SetLink(true)
	if l := <-links; l != ifnet.LinkUp || ifp.LinkState() != ifnet.LinkUp {
		t.Fatalf("link event %v", l)
	}
	if vf.Stats().LinkEvents < 2 {
		t.Fatalf("link events %d", vf.Stats().LinkEvents)
	}
	noViolations(t, r.device())
}

func TestLinkDownAtAttachAndAdmin(t *testing.T) {
	r := newRig(t, rigOpts{devCfg: func(c *mlxdev.Config) { c.LinkDown = true }})
	vf := r.waitVF()
	ifp := vf.Interface()
	if ifp.LinkState() != ifnet.LinkDown || ifp.Media().Status&ifnet.MediaActive != 0 || ifp.Media().Active.Speed != 0 {
		t.Fatalf("link %v media %+v", ifp.LinkState(), ifp.Media())
	}
	r.device().SetLink(true)
	eventually(t, "link up", func() bool { return ifp.LinkState() == ifnet.LinkUp })
	if m := ifp.Media(); m.Status&ifnet.MediaActive == 0 || m.Active.Speed != 25e9 {
		t.Fatalf("media %+v", m)
	}
	// The hypervisor forces the vport down with the link still up.
	r.device().SetAdmin(mlxdev.AdminDown)
	eventually(t, "link down by admin", func() bool { return ifp.LinkState() == ifnet.LinkDown })
	r.device().SetAdmin(mlxdev.AdminAuto)
	eventually(t, "link up again", func() bool { return ifp.LinkState() == ifnet.LinkUp })
	noViolations(t, r.device())
}
