package mlx

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Device faults from the model's fault injection (spec §7.12): a command
// that never completes, error CQEs, page requests, fatal health.

func TestCommandTimeoutDuringAttach(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{CommandTimeout: 100 * time.Millisecond}})
	// The first device attaches; eject it, then offer one whose CREATE_CQ
	// never completes.
	vf := r.waitVF()
	held := vfPages(vf)
	before := r.ram.FreePages()
	if err := r.vbus.Eject(r.slot); err != nil {
		t.Fatal(err)
	}
	r.nextEvent("detach")
	r.unplugPort()
	if got := r.ram.FreePages(); got != before+held {
		t.Fatalf("free pages %d after eject, want %d", got, before+held)
	}
	dev := r.plugDeviceWith(func(d *mlxdev.Device) { d.Faults().CommandTimeout(mlxhw.OpCreateCQ, true) })
	start := time.Now()
	e := r.nextEvent("failed attach")
	if !e.Attached || e.VF != nil || !errors.Is(e.Err, ErrTimeout) {
		t.Fatalf("event %+v", e)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("failed attach took %v", el)
	}
	if dev.Faults().TimedOut() != 1 {
		t.Fatalf("device swallowed %d commands", dev.Faults().TimedOut())
	}
	// Everything the failed attach allocated is back.
	if got := r.ram.FreePages(); got != before+held {
		t.Fatalf("free pages %d after the failed attach, want %d", got, before+held)
	}
	if len(r.reg.Interfaces()) != 0 {
		t.Fatal("an interface was left attached")
	}
}

// plugDeviceWith plugs a fresh device, letting f configure it first.
func (r *rig) plugDeviceWith(f func(*mlxdev.Device)) *mlxdev.Device {
	r.preAdd = f
	defer func() { r.preAdd = nil }()
	return r.plugDevice(false)
}

func TestSQErrorRecovery(t *testing.T) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	dev := r.device()
	r.up(vf)
	if !dev.Faults().ErrorCQEOnSQ(vf.sqs[0].n, 3) {
		t.Fatal("no SQ")
	}
	vmac, smac := net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:])
	for i := range 5 {
		sendVF(t, vf, tcpPacket(t, vmac, smac, vfIP, stationIP, uint32(i), []byte("x"), false), packet.Meta{})
	}
	eventually(t, "SQ recovery", func() bool { return vf.Stats().SQRecoveries == 1 })
	for i := range 5 {
		sendVF(t, vf, tcpPacket(t, vmac, smac, vfIP, stationIP, uint32(10+i), []byte("y"), false), packet.Meta{})
	}
	var got int
	eventually(t, "frames after recovery", func() bool {
		got += len(r.st.Frames())
		return vf.Stats().TxPackets+vf.Stats().TxDrops == 10
	})
	got += len(r.st.Frames())
	s := vf.Stats()
	// WQE 3 failed; frames posted behind it before the driver saw the error
	// CQE (0 to 2 of them, by timing) were flushed; the rest went out
	// after the recovery.
	if s.TxErrCQEs != 1 || s.TxDrops < 1 || s.TxDrops > 3 || s.TxPackets != 10-s.TxDrops || uint64(got) != s.TxPackets {
		t.Fatalf("stats %+v, station got %d", s, got)
	}
	ifs := vf.Interface().Stats()
	if ifs.Drops[ifnet.DropInvalid] != 1 || ifs.Drops[ifnet.DropDown] != s.TxDrops-1 || ifs.OutErrors != s.TxDrops {
		t.Fatalf("interface drops %v out errors %d", ifs.Drops, ifs.OutErrors)
	}
	noViolations(t, dev)
}

func TestRQErrorCQE(t *testing.T) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	dev := r.device()
	sk := r.up(vf)
	dev.Faults().ErrorCQEOnRQ(vf.rqs[0].n, 2)
	got, _ := deliverTo(t, r, sk, net.HardwareAddr(vfMAC[:]), 1, 100, mlxdev.DropFilter)
	deliverTo(t, r, sk, net.HardwareAddr(vfMAC[:]), 1, 100, mlxdev.DropRxError)
	got2, _ := deliverTo(t, r, sk, net.HardwareAddr(vfMAC[:]), 3, 100, mlxdev.DropFilter)
	eventually(t, "error CQE counted", func() bool { return vf.Stats().RxErrCQEs == 1 })
	if got != 1 || got2 != 3 || vf.Stats().RxDrops != 1 {
		t.Fatalf("got %d+%d, stats %+v", got, got2, vf.Stats())
	}
	noViolations(t, dev)
}

func TestPageRequests(t *testing.T) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	dev := r.device()
	if !dev.Faults().PageRequest(5) {
		t.Fatal("page request refused")
	}
	eventually(t, "5 more pages", func() bool { return vf.Stats().FirmwarePages == 17 && dev.State().PagesGiven == 17 })
	dev.Faults().PageRequest(-3)
	eventually(t, "3 pages back", func() bool { return vf.Stats().FirmwarePages == 14 && dev.State().PagesGiven == 14 })
	if err := r.vbus.Eject(r.slot); err != nil {
		t.Fatal(err)
	}
	r.nextEvent("detach")
	if st := dev.State(); st.PagesGiven != 0 || st.Objects() != 0 || vf.pages.count() != 0 {
		t.Fatalf("after eject %+v", st)
	}
	noViolations(t, dev)
}

func TestHealthSyndromeIsFatal(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{HealthInterval: 10 * time.Millisecond}})
	vf := r.waitVF()
	r.up(vf)
	r.device().Faults().SetHealthSynd(mlxhw.HealthSyndFWErr, 0)
	eventually(t, "fatal detection", func() bool { return vf.Stats().FatalErrors == 1 && vf.Interface().Detached() })
	eventually(t, "memory released", func() bool { n, _ := vf.dma.live(); return n == 0 })
	select {
	case <-vf.Gone():
	default:
		t.Fatal("VF not marked gone")
	}
}

// Commands completing later than the doorbell (device latency): the early
// ones are polled, the rest complete through CMD EQEs.
func TestAsyncCommandCompletion(t *testing.T) {
	r := newRig(t, rigOpts{devCfg: func(c *mlxdev.Config) { c.CommandLatency = 300 * time.Microsecond }})
	vf := r.waitVF()
	dev := r.device()
	sk := r.up(vf)
	if got, _ := deliverTo(t, r, sk, net.HardwareAddr(vfMAC[:]), 20, 300, mlxdev.DropFilter); got != 20 {
		t.Fatalf("received %d of 20", got)
	}
	if err := vf.Interface().Ioctl(&ifnet.SetMTU{MTU: 1400}); err != nil {
		t.Fatal(err)
	}
	if c := vportCtx(t, vf); c.MTU != 1422 {
		t.Fatalf("vport mtu %d", c.MTU)
	}
	if vf.Stats().Events == 0 {
		t.Fatal("no CMD EQEs consumed")
	}
	if err := r.vbus.Eject(r.slot); err != nil {
		t.Fatal(err)
	}
	r.nextEvent("detach")
	if st := dev.State(); st.Objects() != 0 || st.PagesGiven != 0 {
		t.Fatalf("device after eject %+v", st)
	}
	noViolations(t, dev)
}

// A destroy that never completes during an eject: the teardown times out
// that command, skips the rest, frees everything and the eject finishes.
func TestCommandTimeoutDuringTeardown(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{CommandTimeout: 100 * time.Millisecond}})
	vf := r.waitVF()
	dev := r.device()
	r.up(vf)
	dev.Faults().CommandTimeout(mlxhw.OpDestroySQ, true)
	start := time.Now()
	if err := r.vbus.Eject(r.slot); err != nil {
		t.Fatal(err)
	}
	r.nextEvent("detach")
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("eject took %v", el)
	}
	if n, p := vf.dma.live(); n != 0 || p != 0 || vf.pages.count() != 0 {
		t.Fatalf("VF holds %d regions, %d pages, %d firmware pages", n, p, vf.pages.count())
	}
	if s := vf.Stats(); s.CommandTimeouts != 1 || dev.Faults().TimedOut() != 1 {
		t.Fatalf("timeouts: driver %d, device %d", s.CommandTimeouts, dev.Faults().TimedOut())
	}
	if !vf.Interface().Detached() {
		t.Fatal("interface still attached")
	}
}

// The device vanishes without the bus saying so: the health check sees
// all-ones registers and stops the VF on its own.
func TestAllOnesRegistersDetected(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{HealthInterval: 10 * time.Millisecond}})
	vf := r.waitVF()
	r.up(vf)
	r.device().SurpriseRemove()
	eventually(t, "VF stops", func() bool { return vf.Stats().FatalErrors == 1 && vf.Interface().Detached() })
	eventually(t, "memory released", func() bool { n, _ := vf.dma.live(); return n == 0 && vf.pages.count() == 0 })
}

// The whole vPCI bus goes (its VMBus channel is rescinded): the VF stops at
// once, as for a surprise removal.
func TestBusRescinded(t *testing.T) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	sk := r.up(vf)
	tr := startTraffic(t, r, vf, true)
	eventually(t, "traffic", func() bool { return tr.taken.Load() > 1000 && sk.n.Load() > 10 })
	// The host takes the device away with its bus.
	r.device().SurpriseRemove()
	if _, err := r.srv.Rescind(r.vbus); err != nil {
		t.Fatal(err)
	}
	e := r.nextEvent("detach")
	tr.halt()
	if e.Attached || e.VF != vf || !vf.Interface().Detached() {
		t.Fatalf("event %+v", e)
	}
	r.unplugPort()
	checkAccounting(t, r, vf, r.device(), tr, r.st.Stats().Frames, sk)
	if n, p := vf.dma.live(); n != 0 || p != 0 {
		t.Fatalf("VF holds %d regions, %d pages", n, p)
	}
}
