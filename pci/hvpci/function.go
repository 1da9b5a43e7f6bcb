package hvpci

import (
	"context"
	"fmt"
	"sync"

	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// Function is one PCI function on a vPCI bus.
type Function struct {
	bus  *Bus
	desc vpciwire.Description
	bars []pci.BARInfo

	mu      sync.Mutex
	removed bool
	gone    chan struct{}
}

func newFunction(b *Bus, desc vpciwire.Description, bars []pci.BARInfo) *Function {
	return &Function{bus: b, desc: desc, bars: bars, gone: make(chan struct{})}
}

// Bus is the bus the function sits on.
func (f *Function) Bus() *Bus { return f.bus }

// Description is the function's description from the bus relations.
func (f *Function) Description() vpciwire.Description { return f.desc }

// Slot is the function's win_slot.
func (f *Function) Slot() vpciwire.Slot { return f.desc.Slot }

// Serial is the function's serial number: the key netvsc pairs a VF on
// (spec §5.8); Linux names the PCI slot after it in decimal.
func (f *Function) Serial() uint32 { return f.desc.Serial }

// SlotName is the Linux slot name: the serial in decimal.
func (f *Function) SlotName() string { return fmt.Sprint(f.desc.Serial) }

// BARs returns the BARs the host's probe values describe, each at the
// address the driver placed it (Config.MMIO; Base 0 without it).
func (f *Function) BARs() []pci.BARInfo { return append([]pci.BARInfo(nil), f.bars...) }

// MapBAR returns register access to memory BAR bar (its first register
// index) through Config.MapBAR. It fails with ErrConfig when there is no
// hook or no such memory BAR, and with ErrRemoved after removal.
func (f *Function) MapBAR(bar int) (pci.BAR, error) {
	if f.Removed() {
		return nil, ErrRemoved
	}
	hook := f.bus.d.cfg.MapBAR
	if hook == nil {
		return nil, fmt.Errorf("%w: no MapBAR hook", ErrConfig)
	}
	for _, b := range f.bars {
		if b.Index == bar && !b.IO {
			m, err := hook(f, bar, b.Base, b.Size)
			if err != nil {
				return nil, fmt.Errorf("hvpci: map BAR%d: %w", bar, err)
			}
			if m == nil || m.Len() < b.Size {
				return nil, fmt.Errorf("%w: BAR%d mapping shorter than the BAR", ErrConfig, bar)
			}
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: no memory BAR%d", ErrConfig, bar)
}

// Gone closes when the function is removed.
func (f *Function) Gone() <-chan struct{} { return f.gone }

// Removed reports whether the function is gone.
func (f *Function) Removed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removed
}

// kill marks the function gone and frees its BAR addresses (once).
func (f *Function) kill() {
	f.mu.Lock()
	first := !f.removed
	if first {
		f.removed = true
		close(f.gone)
	}
	f.mu.Unlock()
	if m := f.bus.d.mmio; first && m != nil {
		m.freeBARs(f.bars)
	}
}

// ReadConfig reads size (1, 2, 4) bytes at config offset where. As Linux
// does, vendor/device, revision/class and subsystem come from the
// description, the expansion ROM and interrupt line read 0, and the rest
// goes through the window. After removal it fails with ErrRemoved.
func (f *Function) ReadConfig(where, size int) (uint32, error) {
	off, err := vpciwire.WindowOffset(where, size)
	if err != nil {
		return allOnes(size), fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if f.Removed() {
		return allOnes(size), ErrRemoved
	}
	if v, ok := f.desc.ConfigRead(where, size); ok {
		return v, nil
	}
	if (where >= pci.ExpansionROM && where < pci.ExpansionROM+4) || where == pci.InterruptLine {
		return 0, nil
	}
	b := f.bus
	b.winMu.Lock()
	defer b.winMu.Unlock()
	if f.Removed() {
		return allOnes(size), ErrRemoved
	}
	if err := b.win.Write(vpciwire.WindowSlotSelect, 4, uint32(f.desc.Slot)); err != nil {
		return allOnes(size), err
	}
	return b.win.Read(off, size)
}

// WriteConfig writes size (1, 2, 4) bytes at config offset where through
// the window; writes to 0x2C-0x33 (subsystem, ROM) are ignored as in Linux.
func (f *Function) WriteConfig(where, size int, v uint32) error {
	off, err := vpciwire.WindowOffset(where, size)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if f.Removed() {
		return ErrRemoved
	}
	if where >= pci.SubsystemVendorID && where < pci.ExpansionROM+4 {
		return nil
	}
	b := f.bus
	b.winMu.Lock()
	defer b.winMu.Unlock()
	if f.Removed() {
		return ErrRemoved
	}
	if err := b.win.Write(vpciwire.WindowSlotSelect, 4, uint32(f.desc.Slot)); err != nil {
		return err
	}
	return b.win.Write(off, size, v)
}

func allOnes(size int) uint32 {
	if size >= 4 {
		return 0xFFFFFFFF
	}
	return 1<<(8*size) - 1
}

// Config returns the function's config space as a pci.ConfigSpace; a
// failed access (function removed, window error) reads all-ones and drops
// writes, as a master abort does.
func (f *Function) Config() pci.ConfigSpace { return configSpace{f} }

type configSpace struct{ f *Function }

func (c configSpace) Read8(off int) uint8 {
	v, _ := c.f.ReadConfig(off, 1)
	return uint8(v)
}

func (c configSpace) Read16(off int) uint16 {
	v, _ := c.f.ReadConfig(off, 2)
	return uint16(v)
}

func (c configSpace) Read32(off int) uint32 {
	v, _ := c.f.ReadConfig(off, 4)
	return v
}

func (c configSpace) Write8(off int, v uint8)   { _ = c.f.WriteConfig(off, 1, uint32(v)) }
func (c configSpace) Write16(off int, v uint16) { _ = c.f.WriteConfig(off, 2, uint32(v)) }
func (c configSpace) Write32(off int, v uint32) { _ = c.f.WriteConfig(off, 4, v) }

// InterruptRequest describes the MSI/MSI-X vectors to ask the host for.
type InterruptRequest struct {
	Vector       uint32 // u8 below protocol 1.4
	DeliveryMode uint8  // vpciwire.DeliveryFixed or DeliveryLowestPriority
	VectorCount  uint16 // multi-MSI block size (1 for MSI-X)
	// Processors are the target VP indexes (at most 32); protocol 1.1
	// turns them into a CPU mask (indexes below 64).
	Processors []uint16
}

// CreateInterrupt asks the host to map an interrupt for the function
// (CREATE_INTERRUPT, 2 or 3 by protocol version) and returns the MSI
// address/data to program into the device.
func (f *Function) CreateInterrupt(ctx context.Context, r InterruptRequest) (vpciwire.TranslatedInterrupt, error) {
	var zero vpciwire.TranslatedInterrupt
	if f.Removed() {
		return zero, ErrRemoved
	}
	if len(r.Processors) == 0 || len(r.Processors) > vpciwire.MaxProcessors {
		return zero, fmt.Errorf("%w: %d processors", ErrConfig, len(r.Processors))
	}
	m := vpciwire.CreateInterrupt{Slot: f.desc.Slot, Vector: r.Vector, DeliveryMode: r.DeliveryMode,
		VectorCount: r.VectorCount}
	switch v := f.bus.Version(); {
	case v >= vpciwire.Version1_4:
		m.Variant, m.Processors = 3, r.Processors
	case v >= vpciwire.Version1_2:
		m.Variant, m.Processors = 2, r.Processors
	default:
		m.Variant = 1
		for _, p := range r.Processors {
			if p >= 64 {
				return zero, fmt.Errorf("%w: processor %d above 63 for protocol %v", ErrConfig, p, v)
			}
			m.CPUMask |= 1 << p
		}
	}
	if m.Variant < 3 && r.Vector > 0xFF {
		return zero, fmt.Errorf("%w: vector %d needs protocol 1.4", ErrConfig, r.Vector)
	}
	reply, err := f.bus.rawRequest(ctx, m.Encode())
	if err != nil {
		return zero, err
	}
	cr, err := vpciwire.DecodeCreateInterruptReply(reply)
	if err != nil {
		f.bus.bad.Add(1)
		return zero, fmt.Errorf("%w: create interrupt: %w", ErrHost, err)
	}
	if cr.Status.Failed() {
		return zero, fmt.Errorf("%w: create interrupt: %v", ErrHost, cr.Status)
	}
	return cr.Interrupt, nil
}

// DeleteInterrupt hands an interrupt CreateInterrupt returned back to the
// host (DELETE_INTERRUPT, no completion, as Linux sends it). After removal
// the host has already dropped it and this is a no-op.
func (f *Function) DeleteInterrupt(ti vpciwire.TranslatedInterrupt) error {
	if f.Removed() {
		return nil
	}
	m := vpciwire.DeleteInterrupt{Slot: f.desc.Slot, Interrupt: ti}
	return f.bus.ch.SendInBand(0, false, m.Encode())
}
