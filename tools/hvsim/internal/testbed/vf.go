package testbed

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx"
	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/failover"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// The VF as the host offers it: an mlx-lite device model (drivers/mlx/mlxdev)
// on the vPCI bus and on a port of the switch that netvsp steers the NIC's
// unicast to while the guest's data path is the VF; and the guest's side:
// the mlx VF driver attached by its hvpci glue.
const vfWired = true

// hostVF is one offered VF: a fresh device model per offer, as a host
// hands the guest a new VF after a live migration.
type hostVF struct {
	index int
	dev   *mlxdev.Device
	port  *vfPort
	sp    *vswitch.SwitchPort
	slot  vpciwire.Slot
}

// vfPort joins the device model to the switch: the switch delivers into
// the device (Deliver) and the device transmits into the switch (Transmit,
// the model's Wire). Every stream frame that crosses it is marked as
// having taken the VF path: this is where the host knows the path exactly.
//
// Ownership: dev is set before the port is attached and never changes; sp
// is published once after Attach (atomic: frames may flow before).
type vfPort struct {
	tb  *Testbed
	dev *mlxdev.Device
	sp  atomic.Pointer[vswitch.SwitchPort]
}

func (p *vfPort) Deliver(b *packet.Batch) {
	for _, pk := range b.Packets() {
		p.tb.toGuest.markVF(pk.Bytes())
	}
	p.dev.Deliver(b)
}

func (p *vfPort) Transmit(b *packet.Batch) {
	for _, pk := range b.Packets() {
		p.tb.toStation.markVF(pk.Bytes())
	}
	if sp := p.sp.Load(); sp != nil {
		sp.Input(b)
		return
	}
	b.Free()
}

// attachVFDriver registers the guest's VF driver with the vPCI bus
// driver, and in failover mode creates the aggregate.
func (tb *Testbed) attachVFDriver() error {
	var err error
	tb.mlxBus, err = mlx.NewBusDriver(mlx.BusConfig{
		VF:  mlx.Config{Name: "mlx", Registry: tb.reg, Memory: tb.ram, Logger: tb.log.With("side", "guest", "dev", "mlx")},
		Bus: tb.pciDrv,
		Events: func(e mlx.BusEvent) {
			if e.Attached && e.Err == nil {
				tb.vfAttached.Add(1) // after Attach returned: see waitVFTaken
			}
			if e.Err != nil {
				tb.vfErr.Store(e.Err.Error())
				tb.log.Warn("testbed: the guest's VF failed to attach", "serial", e.Serial, "err", e.Err)
			}
		},
	})
	return err
}

// mapBAR is the in-process platform's BAR mapping for hvpci: the guest
// reaches the current VF model's BAR directly, where the guest placed it
// (the address must be what the device's config space holds, as a
// platform mapping by guest-physical address would find it).
func (tb *Testbed) mapBAR(f *hvpci.Function, bar int, gpa, _ uint64) (pci.BAR, error) {
	vf := tb.curVF.Load()
	if vf == nil || f.Serial() != VFSerial {
		return nil, fmt.Errorf("%w: no device model behind serial %#x", ErrMigrate, f.Serial())
	}
	if at := pci.MemBARAddress(vf.dev.Config(), bar); gpa == 0 || at != gpa {
		return nil, fmt.Errorf("%w: BAR%d asked for at %#x, the device decodes it at %#x", ErrMigrate, bar, gpa, at)
	}
	b := vf.dev.BAR(bar)
	if b == nil {
		return nil, fmt.Errorf("%w: BAR %d not implemented", ErrMigrate, bar)
	}
	return b, nil
}

// offerVF creates a VF model, puts it on the switch, binds it to the NIC's
// steering, associates it and hot-adds it (spec/openvmm-notes.md §2.4 F:
// the association, then the device).
func (tb *Testbed) offerVF(index int) (*hostVF, error) {
	port := &vfPort{tb: tb}
	dev, err := mlxdev.New(mlxdev.Config{Mem: tb.ram, MAC: GuestMAC, Serial: VFSerial, Wire: port,
		Interrupt: func(v int) { tb.mlxBus.Interrupt(VFSerial, v) },
		Logger:    tb.log.With("side", "host", "dev", "mlxdev", "vf", index)})
	if err != nil {
		return nil, fmt.Errorf("%w: VF %d model: %v", ErrMigrate, index, err)
	}
	port.dev = dev
	vf := &hostVF{index: index, dev: dev, port: port}
	if vf.sp, err = tb.sw.Attach(fmt.Sprintf("vf%d", index), port, vswitch.VLANConfig{}); err != nil {
		dev.Close()
		return nil, fmt.Errorf("%w: VF %d port: %v", ErrMigrate, index, err)
	}
	port.sp.Store(vf.sp)
	if err := tb.nic.SetVFPort(vf.sp); err != nil {
		vf.release(tb)
		return nil, fmt.Errorf("%w: VF %d steering: %v", ErrMigrate, index, err)
	}
	tb.curVF.Store(vf)
	tb.nic.SetVF(true, VFSerial)
	if vf.slot, err = tb.vbus.AddFunction(dev); err != nil {
		tb.nic.SetVF(false, VFSerial)
		tb.curVF.Store(nil)
		vf.release(tb)
		return nil, fmt.Errorf("%w: hot add VF %d: %v", ErrMigrate, index, err)
	}
	return vf, nil
}

// release takes the VF's port off the switch and stops the model, and
// adds the model's drops to the run's.
func (vf *hostVF) release(tb *Testbed) {
	tb.nic.SetVFPort(nil) // waits until no frame is on its way to the port
	vf.port.sp.Store(nil)
	vf.sp.Detach()
	st := vf.dev.Stats()
	vf.dev.Close()
	tb.dropMu.Lock()
	for r := range mlxdev.NumDropReasons {
		if n := st.RxDrops[r]; n > 0 {
			tb.hostDrops["vf_rx_"+r.String()] += n
		}
		if n := st.TxDrops[r]; n > 0 {
			tb.hostDrops["vf_tx_"+r.String()] += n
		}
	}
	tb.dropMu.Unlock()
}

// surpriseLoss is what a surprise removal could lose: frames the device
// had placed in the guest's receive ring that the guest's VF never took,
// frames the guest's VF had taken (received, or queued for transmit) and
// dropped because the device was gone, and frames steered to the device
// after it vanished.
type surpriseLoss struct {
	RxInRing      uint64 `json:"rx_in_vf_ring"`
	VFDropped     uint64 `json:"vf_dropped_detached"`
	RxAfterRemove uint64 `json:"rx_dropped_removed"`
	Bound         uint64 `json:"bound"`
}

// surpriseRecord is what the host and the guest looked like at a surprise
// removal; the loss is computed from it once the run has drained.
type surpriseRecord struct {
	dev     *mlxdev.Device
	devRx   uint64 // frames the device had placed in receive queues
	guestVF *mlx.VF
}

func (r *surpriseRecord) loss() surpriseLoss {
	var l surpriseLoss
	if r.guestVF != nil {
		gs := r.guestVF.Stats()
		if r.devRx > gs.RxPackets {
			l.RxInRing = r.devRx - gs.RxPackets
		}
		if ifp := r.guestVF.Interface(); ifp != nil {
			st := ifp.Stats()
			l.VFDropped = st.Drops[ifnet.DropDetached] + st.Drops[ifnet.DropDown]
		}
	}
	ds := r.dev.Stats()
	l.RxAfterRemove = ds.RxDropped()
	l.Bound = l.RxInRing + l.VFDropped + l.RxAfterRemove
	return l
}

// withdrawVF removes the VF the way the host does for a planned live
// migration (spec/openvmm-notes.md §2.4 C, spec/vf-modes.md A.9): switch the
// data path back to synthetic and withdraw the association (SetVF(false)
// does both, in that order, after waiting for frames headed to the VF),
// wait Config.EjectDelay, then eject the vPCI function, which returns after
// the guest's EJECTION_COMPLETE. With surprise set the device vanishes first (its rings
// with it); the host then switches back and removes the function.
//
// It returns when the host had switched the data path back (ns since the
// epoch) and, for a surprise removal, the record its loss bound comes from.
func (tb *Testbed) withdrawVF(vf *hostVF, surprise bool) (switched int64, rec *surpriseRecord, err error) {
	defer tb.curVF.CompareAndSwap(vf, nil)
	guestVF := tb.guestVF()
	tb.noteInterface(guestVF)
	if !surprise {
		tb.nic.SetVF(false, VFSerial)
		switched = tb.now()
		time.Sleep(tb.cfg.EjectDelay)
		if err := tb.vbus.Eject(vf.slot); err != nil {
			return switched, nil, fmt.Errorf("%w: eject VF %d: %v", ErrMigrate, vf.index, err)
		}
		vf.release(tb)
		return switched, nil, nil
	}
	vf.dev.SurpriseRemove()
	rec = &surpriseRecord{dev: vf.dev, devRx: vf.dev.Stats().RxPackets, guestVF: guestVF}
	tb.nic.SetVF(false, VFSerial)
	switched = tb.now()
	if err := tb.vbus.Remove(vf.slot); err != nil {
		return switched, nil, fmt.Errorf("%w: surprise-remove VF %d: %v", ErrMigrate, vf.index, err)
	}
	if guestVF != nil {
		select {
		case <-guestVF.Gone():
		case <-time.After(5 * time.Second):
			return switched, nil, fmt.Errorf("%w: the guest did not notice VF %d's removal", ErrMigrate, vf.index)
		}
	}
	vf.release(tb)
	return switched, rec, nil
}

// noteInterface remembers a guest VF's interface so the report can sum
// its drops after it is gone.
func (tb *Testbed) noteInterface(vf *mlx.VF) {
	if vf == nil || vf.Interface() == nil {
		return
	}
	tb.dropMu.Lock()
	tb.guestIfs = append(tb.guestIfs, vf.Interface())
	tb.dropMu.Unlock()
}

// guestDrops sums the drop counters of the guest interfaces by name and
// reason: hn0, the aggregate, and every VF interface the run saw.
func (tb *Testbed) guestDrops() map[string]uint64 {
	tb.dropMu.Lock()
	ifs := append([]*ifnet.Interface{tb.hn.Interface()}, tb.guestIfs...)
	tb.dropMu.Unlock()
	if tb.fo != nil {
		ifs = append(ifs, tb.fo.Interface())
	}
	if v := tb.guestVF(); v != nil {
		ifs = append(ifs, v.Interface())
	}
	out := map[string]uint64{}
	seen := map[*ifnet.Interface]bool{}
	for _, ifp := range ifs {
		if seen[ifp] {
			continue
		}
		seen[ifp] = true
		st := ifp.Stats()
		for r := range ifnet.NumDropReasons {
			if n := st.Drops[r]; n > 0 {
				out[ifp.Name()+"_"+r.String()] += n
			}
		}
	}
	return out
}

// guestVF is the guest's VF driver instance for the host's VF, or nil.
func (tb *Testbed) guestVF() *mlx.VF {
	for _, v := range tb.mlxBus.VFs() {
		if v.Interface() != nil {
			if s, ok := v.Interface().BusSerial(); ok && s == VFSerial {
				return v
			}
		}
	}
	return nil
}

// dataPath is the data path the host's netvsp is on.
func (tb *Testbed) dataPath() Path {
	if tb.nic.State().DataPath == nvsp.DataPathVF {
		return PathVF
	}
	return PathSynthetic
}

// waitVFTaken waits until the guest has taken VF index back: the host's
// data path is the VF and hn reports the VF enabled. With SkipAttachWait the guest hn's clock jumps
// over its attach wait as soon as hn is waiting.
func (tb *Testbed) waitVFTaken(ctx context.Context, index int) error {
	deadline := time.Now().Add(15*time.Second + tb.attachWait())
	skipped := false
	// The attach count is read too: seeing the bus driver's attach event
	// orders everything the VF's bring-up wrote before what the testbed
	// does next (Close detaches the VF from this goroutine).
	for tb.dataPath() != PathVF || !tb.hn.VFStatus().Enabled || tb.vfAttached.Load() < int64(index+1) {
		if tb.clock != nil && !skipped && tb.hn.VFStatus().State == netvsc.VFWaiting {
			tb.clock.Skip(tb.attachWait())
			skipped = true
		}
		if time.Now().After(deadline) {
			st := tb.hn.VFStatus()
			vfErr, _ := tb.vfErr.Load().(string)
			return fmt.Errorf("%w: the guest did not take VF %d (hn VF state %s, last error %q; VF attach error %q)",
				ErrMigrate, index, st.State, st.LastError, vfErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}

// attachWait is the attach wait in effect on hn.
func (tb *Testbed) attachWait() time.Duration {
	if tb.hn == nil {
		return max(tb.cfg.AttachWait, netvsc.MinVFAttachWait)
	}
	return tb.hn.VFStatus().AttachWait
}

// stackInterface is the interface the guest's stack runs on: hn0 in
// transparent mode, the failover aggregate over hn0 and the VF otherwise.
func (tb *Testbed) stackInterface() (*ifnet.Interface, error) {
	if tb.cfg.Mode != ModeFailover {
		return tb.hn.Interface(), nil
	}
	var err error
	tb.fo, err = failover.New(failover.Config{Name: "failover0", MAC: GuestMAC[:], Registry: tb.reg,
		Logger: tb.log.With("side", "guest", "dev", "failover")})
	if err != nil {
		return nil, fmt.Errorf("%w: failover aggregate: %v", ErrBoot, err)
	}
	ifp := tb.fo.Interface()
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		return nil, fmt.Errorf("%w: failover0 up: %v", ErrBoot, err)
	}
	return ifp, nil
}
