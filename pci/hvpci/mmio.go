package hvpci

import (
	"fmt"
	"slices"
	"sync"

	"github.com/hvguest/hvguest/pci"
)

// BAR placement (spec/vmbus-vpci.md §5.5 steps 6 and 8; Linux
// pci-hyperv.c hv_pci_allocate_bridge_windows and the PCI core's resource
// assignment): the guest places every memory BAR of a new function in the
// MMIO ranges the platform gives it (on Hyper-V the VMBus device's ACPI
// ranges, one below 4 GiB and one above), naturally aligned to its size,
// 64-bit BARs above 4 GiB where there is room and 32-bit ones below, and
// writes the addresses through config space with decoding off. The host
// learns them from those writes; RESOURCES_ASSIGNED carries no address.
// A function's ranges are freed when it is removed.

// MMIORange is one guest-physical range BARs may be placed in.
type MMIORange struct{ Base, Size uint64 }

func (r MMIORange) end() uint64 { return r.Base + r.Size }

// mmioSpace hands out naturally aligned pieces of the platform's ranges,
// first fit. Its own mutex guards it (buses allocate concurrently).
type mmioSpace struct {
	mu     sync.Mutex
	ranges []MMIORange
	used   []MMIORange // sorted by Base
}

func newMMIOSpace(ranges []MMIORange) (*mmioSpace, error) {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b MMIORange) int { return cmpU64(a.Base, b.Base) })
	for i, r := range rs {
		if r.Size == 0 || r.end() < r.Base || r.Base%pageSize != 0 || r.Size%pageSize != 0 {
			return nil, fmt.Errorf("%w: MMIO range %#x+%#x (empty, wrapping or not page-aligned)", ErrConfig, r.Base, r.Size)
		}
		if i > 0 && rs[i-1].end() > r.Base {
			return nil, fmt.Errorf("%w: MMIO ranges %#x+%#x and %#x+%#x overlap", ErrConfig, rs[i-1].Base, rs[i-1].Size, r.Base, r.Size)
		}
	}
	return &mmioSpace{ranges: rs}, nil
}

const pageSize = 4096

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// alloc finds size bytes aligned to align (powers of two); high asks for
// an address at or above 4 GiB first, low-only for one below.
func (m *mmioSpace) alloc(size, align uint64, high, lowOnly bool) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	try := func(above4G bool) (uint64, bool) {
		for _, r := range m.ranges {
			if (r.Base >= 1<<32) != above4G {
				continue
			}
			if a, ok := m.fitLocked(r, size, align); ok {
				return a, true
			}
		}
		return 0, false
	}
	if high && !lowOnly {
		if a, ok := try(true); ok {
			return a, true
		}
	}
	return try(false)
}

// fitLocked is first fit of [a, a+size) inside r between the used pieces.
func (m *mmioSpace) fitLocked(r MMIORange, size, align uint64) (uint64, bool) {
	a := alignUp(r.Base, align)
	for _, u := range m.used {
		if a+size <= u.Base || u.end() <= a {
			if u.Base >= a+size {
				break
			}
			continue
		}
		a = alignUp(u.end(), align)
	}
	if a < r.Base || a+size > r.end() || a+size < a {
		return 0, false
	}
	i, _ := slices.BinarySearchFunc(m.used, a, func(u MMIORange, t uint64) int { return cmpU64(u.Base, t) })
	m.used = slices.Insert(m.used, i, MMIORange{a, size})
	return a, true
}

func (m *mmioSpace) free(base uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := slices.BinarySearchFunc(m.used, base, func(u MMIORange, t uint64) int { return cmpU64(u.Base, t) }); ok {
		m.used = slices.Delete(m.used, i, i+1)
	}
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// placeBARs gives every memory BAR an address and programs it; on failure
// it frees what it took. The BARs' Base fields are set.
func (m *mmioSpace) placeBARs(cs pci.ConfigSpace, bars []pci.BARInfo) error {
	var took []uint64
	undo := func() {
		for _, a := range took {
			m.free(a)
		}
	}
	for i := range bars {
		b := &bars[i]
		if b.IO {
			continue // Hyper-V passes no I/O BARs; there is no I/O space to place one in
		}
		align := max(b.Size, pageSize) // keep BARs on their own pages, as Linux does for mmap
		a, ok := m.alloc(align, align, b.Is64, !b.Is64)
		if !ok {
			undo()
			return fmt.Errorf("%w: no room for BAR%d (%#x bytes, 64-bit %t)", ErrResources, b.Index, b.Size, b.Is64)
		}
		took = append(took, a)
		if err := pci.SetBARAddress(cs, *b, a); err != nil {
			undo()
			return fmt.Errorf("%w: BAR%d: %w", ErrHost, b.Index, err)
		}
		b.Base = a
	}
	return nil
}

func (m *mmioSpace) freeBARs(bars []pci.BARInfo) {
	for _, b := range bars {
		if !b.IO && b.Base != 0 {
			m.free(b.Base)
		}
	}
}
