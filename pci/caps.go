package pci

import "fmt"

// Capability is one entry of a capability list.
type Capability struct {
	ID     uint16 // 8-bit id in the standard list, 16-bit in the extended
	Offset int
}

// MaxCapabilities bounds the standard list: 48 dword slots in 0x40..0xFF.
const MaxCapabilities = (ConfigSize - HeaderSize) / 4

// Capabilities walks the standard capability list of the function behind
// cs. It returns nothing when the status register has no capability list.
// A pointer below 0x40 (other than the terminating 0), not dword aligned,
// or an entry visited twice is an error; the walk stops at an entry whose
// id reads 0xFF (the function went away), as Linux does.
func Capabilities(cs ConfigSpace) ([]Capability, error) {
	st := cs.Read16(Status)
	if st == 0xFFFF {
		return nil, ErrNoDevice
	}
	if st&StatusCapList == 0 {
		return nil, nil
	}
	var seen [ConfigSize / 4]bool
	var out []Capability
	from := CapabilitiesPtr
	ptr := int(cs.Read8(CapabilitiesPtr))
	for ptr != 0 {
		switch {
		case ptr&3 != 0:
			return out, fmt.Errorf("%w: %#x at %#x", ErrCapMisaligned, ptr, from)
		case ptr < HeaderSize || ptr >= ConfigSize:
			return out, fmt.Errorf("%w: pointer %#x at %#x", ErrCapRange, ptr, from)
		case seen[ptr/4]:
			return out, fmt.Errorf("%w: %#x revisited from %#x", ErrCapLoop, ptr, from)
		}
		seen[ptr/4] = true
		id := cs.Read8(ptr + CapID)
		if id == 0xFF {
			break
		}
		out = append(out, Capability{ID: uint16(id), Offset: ptr})
		from, ptr = ptr+CapNext, int(cs.Read8(ptr+CapNext))
	}
	return out, nil
}

// FindCapability returns the offset of the first standard capability with
// id, ErrNoCapability if there is none, or the walk's error.
func FindCapability(cs ConfigSpace, id uint8) (int, error) {
	caps, err := Capabilities(cs)
	for _, c := range caps {
		if c.ID == uint16(id) {
			return c.Offset, nil
		}
	}
	if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%w: id %#x", ErrNoCapability, id)
}

// ExtendedCapabilities walks the PCI Express extended capability list at
// 0x100..0xFFF. A header of 0 or all-ones means there is none. A next
// pointer below 0x100 (other than 0), misaligned, or revisiting an entry
// is an error.
func ExtendedCapabilities(cs ConfigSpace) ([]Capability, error) {
	var seen [ExtConfigSize / 4]bool
	var out []Capability
	ptr := ExtCapStart
	for ptr != 0 {
		switch {
		case ptr&3 != 0:
			return out, fmt.Errorf("%w: extended %#x", ErrCapMisaligned, ptr)
		case ptr < ExtCapStart || ptr+4 > ExtConfigSize:
			return out, fmt.Errorf("%w: extended pointer %#x", ErrCapRange, ptr)
		case seen[ptr/4]:
			return out, fmt.Errorf("%w: extended %#x revisited", ErrCapLoop, ptr)
		}
		seen[ptr/4] = true
		h := cs.Read32(ptr)
		if h == 0 || h == 0xFFFFFFFF {
			break
		}
		out = append(out, Capability{ID: uint16(h), Offset: ptr})
		ptr = int(h >> 20)
	}
	return out, nil
}
