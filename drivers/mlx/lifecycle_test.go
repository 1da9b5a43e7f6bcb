package mlx

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Teardown, eject and surprise removal: everything is destroyed or
// reclaimed, nothing hangs, every frame is delivered or counted dropped.

// vfPages is how many guest pages the VF holds (DMA regions and firmware
// pages).
func vfPages(vf *VF) int {
	_, p := vf.dma.live()
	return p + vf.pages.count()
}

func TestTeardownReverse(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{Queues: 2}})
	vf := r.waitVF()
	dev := r.device()
	sk := r.up(vf)
	deliverTo(t, r, sk, net.HardwareAddr(vfMAC[:]), 10, 200, mlxdev.DropFilter)
	st := dev.State()
	if st.SQs != 2 || st.RQs != 2 || st.RQTs != 1 || st.TIRs != 1 || st.EQs != 4 || st.PagesGiven != 12 {
		t.Fatalf("device state with 2 queues: %+v", st)
	}
	// One MSI-X vector per EQ group (command/async + one per queue), each
	// programmed with the message the host translated.
	intrs := r.vbus.Interrupts(r.slot)
	if len(intrs) != 3 {
		t.Fatalf("%d interrupts created", len(intrs))
	}
	cs := dev.Config()
	off, _ := pci.FindCapability(cs, pci.CapMSIX)
	mx, _ := pci.ParseMSIX(cs, off)
	for i, in := range intrs {
		e, err := mx.ReadEntry(dev.BAR(0), i)
		if err != nil || e.Masked || e.Address != in.Translate.Address || e.Data != in.Translate.Data {
			t.Fatalf("MSI-X entry %d %+v, host translated %+v (%v)", i, e, in.Translate, err)
		}
	}
	if cs.Read16(off+pci.MSIXFlags)&pci.MSIXFlagsEnable == 0 {
		t.Fatal("MSI-X not enabled")
	}
	free, held := r.ram.FreePages(), vfPages(vf)
	ifp := vf.Interface()
	if err := r.vbus.Eject(r.slot); err != nil {
		t.Fatalf("eject: %v", err)
	}
	e := r.nextEvent("detach")
	if e.Attached || e.VF != vf {
		t.Fatalf("event %+v", e)
	}
	st = dev.State()
	if st.Objects() != 0 || st.PagesGiven != 0 || st.Phase != mlxdev.PhaseCmdqReady || st.DestroyedByReset != 0 {
		t.Fatalf("device after teardown: %+v", st)
	}
	noViolations(t, dev)
	if n, p := vf.dma.live(); n != 0 || p != 0 || vf.pages.count() != 0 {
		t.Fatalf("VF still holds %d regions, %d pages, %d firmware pages", n, p, vf.pages.count())
	}
	if got := r.ram.FreePages(); got != free+held {
		t.Fatalf("free pages %d, want %d + %d", got, free, held)
	}
	if !ifp.Detached() {
		t.Fatal("interface still attached")
	}
	if _, err := r.reg.ByName(ifp.Name()); err == nil {
		t.Fatal("registry still lists the interface")
	}
	if s := vf.Stats(); s.CommandTimeouts != 0 || s.CommandFailures != 0 {
		t.Fatalf("teardown commands: %+v", s)
	}
}

// traffic runs a sender on each side until stopped.
type traffic struct {
	stop        chan struct{}
	wg          sync.WaitGroup
	taken       atomic.Uint64 // frames the VF's Transmit took
	refused     atomic.Uint64
	stationSent atomic.Uint64
}

func startTraffic(t testing.TB, r *rig, vf *VF, rxToo bool) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	ifp := vf.Interface()
	vmac, smac := net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:])
	tx := tcpPacket(t, vmac, smac, vfIP, stationIP, 1, make([]byte, 200), false)
	rx := tcpPacket(t, smac, vmac, stationIP, vfIP, 1, make([]byte, 200), false)
	pool := packet.MustPool(packet.PoolConfig{})
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		b := packet.NewBatch(32)
		for {
			select {
			case <-tr.stop:
				return
			default:
			}
			pool.GetBatch(b, 32)
			for _, p := range b.Packets() {
				_ = p.SetBytes(tx)
			}
			n, _ := ifp.Transmit(b)
			tr.taken.Add(uint64(n))
			tr.refused.Add(uint64(b.Len()))
			b.Free()
			if n == 0 {
				runtime.Gosched()
			}
		}
	}()
	if rxToo {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				if r.st.Send(rx, packet.Meta{}) {
					tr.stationSent.Add(1)
				}
				runtime.Gosched()
			}
		}()
	}
	return tr
}

func (tr *traffic) halt() {
	close(tr.stop)
	tr.wg.Wait()
}

// checkAccounting, after unplugPort: every frame the VF took reached the
// station or was counted dropped (by the driver or the device); every
// frame the station sent reached the device's port or was counted dropped
// by the switch, every frame the port handed the device was placed in an
// RQ or counted dropped by the device with a reason, and every frame placed
// reached the stack or was counted dropped.
func checkAccounting(t testing.TB, r *rig, vf *VF, dev *mlxdev.Device, tr *traffic, stationFrames uint64, sk *sink) {
	t.Helper()
	vs, ds := vf.Stats(), dev.Stats()
	if tr.taken.Load() != stationFrames+vs.TxDrops+ds.TxDropped() {
		t.Fatalf("TX: taken %d != station %d + driver drops %d + device drops %d",
			tr.taken.Load(), stationFrames, vs.TxDrops, ds.TxDropped())
	}
	r.mu.Lock()
	ps := r.unplugged
	r.mu.Unlock()
	if sent := tr.stationSent.Load(); sent != ps.TxFrames+ps.TotalDrops() {
		t.Fatalf("RX: station sent %d, the device's port took %d and dropped %v", sent, ps.TxFrames, ps.Drops)
	}
	if ps.TxFrames != ds.RxPackets+ds.RxDropped() {
		t.Fatalf("RX: the port handed the device %d, it placed %d and dropped %v", ps.TxFrames, ds.RxPackets, ds.RxDrops)
	}
	if ds.RxPackets != vs.RxPackets+vs.RxDrops {
		t.Fatalf("RX: device placed %d, driver handed %d + dropped %d", ds.RxPackets, vs.RxPackets, vs.RxDrops)
	}
	ifs := vf.Interface().Stats()
	inputDrops := ifs.Drops[ifnet.DropDetached] - vs.DetachedDrops + ifs.Drops[ifnet.DropNoInput]
	if vs.RxPackets != ifs.InPackets || ifs.InPackets != sk.n.Load()+inputDrops {
		t.Fatalf("RX: driver handed %d, interface counted %d, stack got %d, interface dropped %d",
			vs.RxPackets, ifs.InPackets, sk.n.Load(), inputDrops)
	}
}

func removal(t *testing.T, eject bool) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	dev := r.device()
	sk := r.up(vf)
	tr := startTraffic(t, r, vf, true)
	var stationFrames uint64
	eventually(t, "traffic", func() bool {
		stationFrames = r.st.Stats().Frames
		return stationFrames > 2000 && sk.n.Load() > 50
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if eject {
			if err := r.vbus.Eject(r.slot); err != nil {
				t.Errorf("eject: %v", err)
			}
		} else {
			dev.SurpriseRemove()
			if err := r.vbus.Remove(r.slot); err != nil {
				t.Errorf("remove: %v", err)
			}
		}
	}()
	e := r.nextEvent("detach")
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("removal hung")
	}
	tr.halt()
	if e.Attached || e.VF != vf {
		t.Fatalf("event %+v", e)
	}
	r.unplugPort()
	stationFrames = r.st.Stats().Frames
	checkAccounting(t, r, vf, dev, tr, stationFrames, sk)
	if n, p := vf.dma.live(); n != 0 || p != 0 || vf.pages.count() != 0 {
		t.Fatalf("VF still holds %d regions, %d pages, %d firmware pages", n, p, vf.pages.count())
	}
	if !vf.Interface().Detached() {
		t.Fatal("interface still attached")
	}
	if eject {
		if st := dev.State(); st.Objects() != 0 || st.PagesGiven != 0 {
			t.Fatalf("device after eject %+v", st)
		}
		noViolations(t, dev)
	}
	t.Logf("taken %d refused %d station %d; vf %+v", tr.taken.Load(), tr.refused.Load(), stationFrames, vf.Stats())
}

func TestSurpriseRemovalMidTraffic(t *testing.T) { removal(t, false) }
func TestEjectMidTraffic(t *testing.T)           { removal(t, true) }
