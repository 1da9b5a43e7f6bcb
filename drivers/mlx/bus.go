package mlx

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// The glue to the guest vPCI bus driver: a subscriber that attaches a VF
// to every mlx5 VF function (vendor 0x15b3, device 0x1016 or 0x1018) the
// bus announces, and takes it away again on removal. On an eject it
// detaches before returning from the callback, so the bus sends
// EJECTION_COMPLETE only once the device is quiet (spec/vmbus-vpci.md §5);
// on a surprise removal or a vanished bus it stops at once.

// BusConfig configures a BusDriver.
type BusConfig struct {
	// VF is the template for every VF: Name is used as the unit prefix
	// ("mlx" gives mlx0, mlx1, ...); the rest as in Config.
	VF Config
	// Bus is the vPCI bus driver to subscribe to (required).
	Bus *hvpci.Driver
	// AttachTimeout bounds one bring-up and DetachTimeout one orderly
	// teardown (defaults 30 s and 10 s).
	AttachTimeout, DetachTimeout time.Duration
	// Events, if set, is told about every VF attached and detached (for
	// tests and the platform's interrupt routing).
	Events func(e BusEvent)
}

// BusEvent says a VF came or went.
type BusEvent struct {
	Attached bool // else detached
	VF       *VF
	Serial   uint32
	Err      error // a failed attach (VF nil)
}

// BusDriver attaches VFs to hvpci functions.
//
// Ownership: mu guards vfs and units. Bus events arrive on the
// subscription's goroutine, one at a time.
type BusDriver struct {
	cfg    BusConfig
	cancel func()
	mu     sync.Mutex
	vfs    map[*hvpci.Function]*busVF
	units  map[int]bool
}

type busVF struct {
	vf    *VF
	unit  int
	intrs []vpciwire.TranslatedInterrupt
}

// NewBusDriver subscribes to cfg.Bus; functions already present are
// attached first.
func NewBusDriver(cfg BusConfig) (*BusDriver, error) {
	if cfg.Bus == nil || cfg.VF.Name == "" {
		return nil, fmt.Errorf("%w: BusConfig needs Bus and VF.Name", ErrConfig)
	}
	if cfg.AttachTimeout == 0 {
		cfg.AttachTimeout = 30 * time.Second
	}
	if cfg.DetachTimeout == 0 {
		cfg.DetachTimeout = 10 * time.Second
	}
	d := &BusDriver{cfg: cfg, vfs: map[*hvpci.Function]*busVF{}, units: map[int]bool{}}
	d.cancel = cfg.Bus.Subscribe(d.event)
	return d, nil
}

// Close unsubscribes and detaches every VF.
func (d *BusDriver) Close(ctx context.Context) {
	d.cancel()
	d.mu.Lock()
	var all []*busVF
	for f, b := range d.vfs {
		all = append(all, b)
		delete(d.vfs, f)
		delete(d.units, b.unit)
	}
	d.mu.Unlock()
	for _, b := range all {
		_ = b.vf.Detach(ctx)
		d.notify(BusEvent{VF: b.vf, Serial: b.vf.dev.Serial})
	}
}

// VFs returns the attached VFs, by unit.
func (d *BusDriver) VFs() []*VF {
	d.mu.Lock()
	defer d.mu.Unlock()
	var bs []*busVF
	for _, b := range d.vfs {
		bs = append(bs, b)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].unit < bs[j].unit })
	out := make([]*VF, len(bs))
	for i, b := range bs {
		out[i] = b.vf
	}
	return out
}

// Interrupt routes MSI-X vector of the function with serial to its VF (the
// platform's interrupt dispatch). It never blocks.
func (d *BusDriver) Interrupt(serial uint32, vector int) {
	d.mu.Lock()
	var vf *VF
	for _, b := range d.vfs {
		if b.vf.dev.Serial == serial {
			vf = b.vf
		}
	}
	d.mu.Unlock()
	if vf != nil {
		vf.Interrupt(vector)
	}
}

func (d *BusDriver) notify(e BusEvent) {
	if d.cfg.Events != nil {
		d.cfg.Events(e)
	}
}

// IsVF reports whether a function is an mlx5 VF this driver takes.
func IsVF(desc vpciwire.Description) bool {
	return desc.VendorID == mlxhw.VendorMellanox && (desc.DeviceID == mlxhw.DeviceCX4LxVF || desc.DeviceID == mlxhw.DeviceCX5VF)
}

func (d *BusDriver) event(e hvpci.Event) {
	f := e.Function
	switch e.Type {
	case hvpci.Added:
		if !IsVF(f.Description()) {
			return
		}
		d.attach(f)
	case hvpci.Removed:
		d.mu.Lock()
		b := d.vfs[f]
		delete(d.vfs, f)
		if b != nil {
			delete(d.units, b.unit)
		}
		d.mu.Unlock()
		if b == nil {
			return
		}
		if e.Reason == hvpci.ReasonEject {
			// The function is reachable until we return: tear down in
			// order, then give the interrupts back.
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.DetachTimeout)
			err := b.vf.Detach(ctx)
			cancel()
			if err != nil {
				b.vf.log.Warn("mlx: detach on eject", "err", err)
			}
			for _, ti := range b.intrs {
				_ = f.DeleteInterrupt(ti)
			}
		} else {
			b.vf.Surprise()
		}
		d.notify(BusEvent{VF: b.vf, Serial: e.Serial})
	}
}

func (d *BusDriver) attach(f *hvpci.Function) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.AttachTimeout)
	defer cancel()
	fail := func(err error) {
		d.notify(BusEvent{Attached: true, Serial: f.Serial(), Err: err})
	}
	bar, err := f.MapBAR(0)
	if err != nil {
		fail(err)
		return
	}
	cfg := d.cfg.VF
	nvec := 1 + max(cfg.Queues, 1)
	var intrs []vpciwire.TranslatedInterrupt
	var msix []MSIXMessage
	for i := range nvec {
		ti, err := f.CreateInterrupt(ctx, hvpci.InterruptRequest{Vector: uint32(0x30 + i),
			DeliveryMode: vpciwire.DeliveryFixed, VectorCount: 1, Processors: []uint16{0}})
		if err != nil {
			for _, t := range intrs {
				_ = f.DeleteInterrupt(t)
			}
			fail(err)
			return
		}
		intrs = append(intrs, ti)
		msix = append(msix, MSIXMessage{Address: ti.Address, Data: ti.Data})
	}
	d.mu.Lock()
	unit := 0
	for d.units[unit] {
		unit++
	}
	d.units[unit] = true
	d.mu.Unlock()
	cfg.Name = fmt.Sprintf("%s%d", d.cfg.VF.Name, unit)
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("serial", f.Serial())
	} else {
		cfg.Logger = kernel.DiscardLogger()
	}
	// Register before Attach returns so interrupts during bring-up (the
	// command EQ) reach the VF: Attach publishes it through pending.
	vf, err := Attach(ctx, cfg, Device{Config: f.Config(), BAR0: bar, Serial: f.Serial(), Gone: f.Gone(), MSIX: msix,
		OnCreate: func(vf *VF) { d.mu.Lock(); d.vfs[f] = &busVF{vf: vf, unit: unit, intrs: intrs}; d.mu.Unlock() }})
	if err != nil {
		d.mu.Lock()
		delete(d.vfs, f)
		delete(d.units, unit)
		d.mu.Unlock()
		for _, t := range intrs {
			_ = f.DeleteInterrupt(t)
		}
		fail(err)
		return
	}
	d.notify(BusEvent{Attached: true, VF: vf, Serial: f.Serial()})
}
