package vpci

import (
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// Window returns the bus's config window as the guest sees it at
// guest-physical address base: the 8 KiB MMIO range the guest names in
// BUS_D0ENTRY (spec §5.6). The simulation traps no MMIO, so an in-process
// guest (pci/hvpci) is handed this pci.MMIO and calls it where real
// hardware would load and store:
//
//   - a 32-bit write of a vpciwire.Slot at vpciwire.WindowSlotSelect
//     selects the function;
//   - a 1-, 2- or 4-byte access at vpciwire.WindowConfigPage + where that
//     stays inside one dword reaches config offset where of the selected
//     function.
//
// The window decodes only while the bus is in D0 with its MMIO base equal
// to base; otherwise, and for an empty or removed slot, a read returns
// all-ones and a write is dropped, as for unclaimed MMIO. Everything else
// (reads of the slot register, other sizes, crossing a dword, offsets
// past the window) is refused the same way (vpciwire.ClassifyWindowAccess).
// The slot selection is the bus's, shared by every Window value: like
// Linux, a guest serializes select-then-access itself.
func (b *Bus) Window(base uint64) pci.MMIO { return &window{b: b, base: base} }

type window struct {
	b    *Bus
	base uint64
}

// target returns the selected function's config space, or nil.
func (w *window) target() pci.ConfigSpace {
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.d0 || b.mmioBase != w.base {
		return nil
	}
	if f := b.funcs[b.selected]; f != nil {
		return f.f.Config()
	}
	return nil
}

func sizeMask(size int) uint32 {
	if size >= 4 {
		return ^uint32(0)
	}
	return 1<<(8*size) - 1
}

func (w *window) ReadMMIO(off uint64, size int) uint32 {
	ones := sizeMask(size)
	kind, where, err := vpciwire.ClassifyWindowAccess(off, size, false)
	if err != nil || kind != vpciwire.AccessConfig {
		return ones
	}
	cs := w.target()
	if cs == nil {
		return ones
	}
	if where%size == 0 {
		switch size {
		case 1:
			return uint32(cs.Read8(where))
		case 2:
			return uint32(cs.Read16(where))
		}
		return cs.Read32(where)
	}
	// Inside one dword but not naturally aligned: take it from the dword.
	return cs.Read32(where&^3) >> (8 * (where & 3)) & ones
}

func (w *window) WriteMMIO(off uint64, size int, v uint32) {
	kind, where, err := vpciwire.ClassifyWindowAccess(off, size, true)
	if err != nil {
		return
	}
	if kind == vpciwire.AccessSlotSelect {
		b := w.b
		b.mu.Lock()
		if b.d0 && b.mmioBase == w.base {
			b.selected = vpciwire.Slot(v)
		}
		b.mu.Unlock()
		return
	}
	cs := w.target()
	if cs == nil {
		return
	}
	switch {
	case size == 4:
		cs.Write32(where, v)
	case size == 2 && where%2 == 0:
		cs.Write16(where, uint16(v))
	default: // bytes, or an unaligned word split into bytes
		for i := range size {
			cs.Write8(where+i, uint8(v>>(8*i)))
		}
	}
}
