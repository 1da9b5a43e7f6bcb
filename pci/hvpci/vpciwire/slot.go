package vpciwire

import "fmt"

// Slot is the Windows "win_slot" encoding of a PCI function on the
// virtual bus (Linux union win_slot_encoding, OpenVMM SlotNumber): bits
// 4:0 device, bits 7:5 function, bits 31:8 reserved (zero).
type Slot uint32

// MakeSlot encodes device (0..31) and function (0..7); higher bits are
// dropped.
func MakeSlot(device, function uint8) Slot {
	return Slot(uint32(device&0x1F) | uint32(function&0x7)<<5)
}

func (s Slot) Device() uint8   { return uint8(s & 0x1F) }
func (s Slot) Function() uint8 { return uint8(s>>5) & 0x7 }

// Valid reports whether the reserved bits are zero.
func (s Slot) Valid() bool { return s>>8 == 0 }

// DevFn is the Linux devfn (device<<3 | function) of s.
func (s Slot) DevFn() uint8 { return s.Device()<<3 | s.Function() }

// SlotFromDevFn converts a Linux devfn to a Slot.
func SlotFromDevFn(devfn uint8) Slot { return MakeSlot(devfn>>3, devfn&7) }

func (s Slot) String() string {
	if !s.Valid() {
		return fmt.Sprintf("slot(%#x)", uint32(s))
	}
	return fmt.Sprintf("%02x.%d", s.Device(), s.Function())
}

// The configuration-space MMIO window (Linux PCI_CONFIG_MMIO_LENGTH,
// CFG_PAGE_OFFSET; OpenVMM MMIO_PAGE_SLOT_NUMBER, MMIO_PAGE_CONFIG_SPACE).
// The guest allocates WindowSize bytes of MMIO space (4 KiB aligned) and
// passes its base in BUS_D0ENTRY. To reach a function it writes the u32
// Slot at WindowSlotSelect (a 32-bit write; OpenVMM rejects anything
// else there, including reads), then accesses config offset `where` at
// WindowConfigPage + where with a 1-, 2- or 4-byte access that does not
// cross a dword. A slot with no device reads all-ones.
const (
	WindowSize       = 0x2000
	WindowSlotSelect = 0x0000
	WindowConfigPage = 0x1000
	ConfigPageSize   = 0x1000
)

// WindowOffset returns the window offset of a size-byte access (1, 2, 4)
// to config offset where of the selected function.
func WindowOffset(where, size int) (uint64, error) {
	if err := checkConfigAccess(where, size); err != nil {
		return 0, err
	}
	return uint64(WindowConfigPage + where), nil
}

func checkConfigAccess(where, size int) error {
	if size != 1 && size != 2 && size != 4 {
		return fmt.Errorf("%w: size %d", ErrWindow, size)
	}
	if where < 0 || where+size > ConfigPageSize {
		return fmt.Errorf("%w: config offset %#x size %d outside 4 KiB", ErrWindow, where, size)
	}
	if where&(size-1) != 0 {
		return fmt.Errorf("%w: config offset %#x not aligned to %d", ErrWindow, where, size)
	}
	return nil
}

// WindowAccessKind classifies an access to the window.
type WindowAccessKind uint8

const (
	// AccessSlotSelect: a 32-bit write of a Slot at WindowSlotSelect.
	AccessSlotSelect WindowAccessKind = iota + 1
	// AccessConfig: an access to the selected function's config space.
	AccessConfig
)

// ClassifyWindowAccess tells the host what an access of size bytes at
// window offset off is: a slot select (write only) or a config access,
// returning the config offset for the latter. Like OpenVMM it accepts a
// config access of 1, 2 or 4 bytes that stays inside one dword (the guest
// side, WindowOffset, asks for natural alignment). Anything else is
// ErrWindow.
func ClassifyWindowAccess(off uint64, size int, write bool) (WindowAccessKind, int, error) {
	switch {
	case off < WindowConfigPage:
		if off != WindowSlotSelect || size != 4 || !write {
			return 0, 0, fmt.Errorf("%w: slot page accepts only a 32-bit write at 0 (off %#x size %d write %v)",
				ErrWindow, off, size, write)
		}
		return AccessSlotSelect, 0, nil
	case off < WindowSize:
		where := int(off - WindowConfigPage)
		if size != 1 && size != 2 && size != 4 || where&3+size > 4 {
			return 0, 0, fmt.Errorf("%w: config access of %d bytes at %#x crosses a dword", ErrWindow, size, where)
		}
		return AccessConfig, where, nil
	}
	return 0, 0, fmt.Errorf("%w: offset %#x past the %#x-byte window", ErrWindow, off, WindowSize)
}
