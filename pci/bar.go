package pci

import (
	"fmt"
	"math/bits"
)

// BARInfo is one decoded BAR.
type BARInfo struct {
	Index    int    // 0..5; a 64-bit BAR also occupies Index+1
	Base     uint64 // current address (0 when decoded from probe values alone)
	Size     uint64
	IO       bool
	Is64     bool
	Prefetch bool
}

// DecodeProbedBARs turns the six values read back after writing all-ones
// to each BAR (the vPCI QUERY_RESOURCE_REQUIREMENTS reply carries exactly
// these) into BAR descriptions; unimplemented BARs (probe 0) are left
// out. A 64-bit BAR takes its upper half from the next probe. A probe
// that is not a contiguous size mask, a reserved memory type, or a 64-bit
// BAR in slot 5 is ErrBadBAR.
func DecodeProbedBARs(probed [NumBARs]uint32) ([]BARInfo, error) {
	return decodeBARs(probed, [NumBARs]uint32{})
}

func decodeBARs(probed, current [NumBARs]uint32) ([]BARInfo, error) {
	var out []BARInfo
	for i := 0; i < NumBARs; i++ {
		p := probed[i]
		if p == 0 {
			continue
		}
		b := BARInfo{Index: i}
		var mask uint64
		switch {
		case p&BARSpaceIO != 0:
			b.IO = true
			// I/O BARs may implement only 16 address bits.
			mask = 0xFFFFFFFF_FFFF0000 | uint64(p&BARIOAddressMask)
			b.Base = uint64(current[i] & BARIOAddressMask)
		case p&BARMemTypeMask == BARMemType64:
			if i == NumBARs-1 {
				return nil, fmt.Errorf("%w: 64-bit BAR %d has no upper half", ErrBadBAR, i)
			}
			b.Is64 = true
			mask = uint64(probed[i+1])<<32 | uint64(p&BARMemAddressMask)
			b.Base = uint64(current[i+1])<<32 | uint64(current[i]&BARMemAddressMask)
		case p&BARMemTypeMask == BARMemType32, p&BARMemTypeMask == BARMemType1M:
			mask = 0xFFFFFFFF_00000000 | uint64(p&BARMemAddressMask)
			b.Base = uint64(current[i] & BARMemAddressMask)
		default:
			return nil, fmt.Errorf("%w: BAR %d has reserved memory type (probe %#x)", ErrBadBAR, i, p)
		}
		if !b.IO {
			b.Prefetch = p&BARMemPrefetch != 0
		}
		b.Size = ^mask + 1
		if mask == 0xFFFFFFFF_00000000 || b.Size == 0 || bits.OnesCount64(b.Size) != 1 {
			return nil, fmt.Errorf("%w: BAR %d probe %#x is not a size mask", ErrBadBAR, i, mask)
		}
		if b.IO && b.Size > 1<<16 {
			return nil, fmt.Errorf("%w: I/O BAR %d of %#x bytes", ErrBadBAR, i, b.Size)
		}
		out = append(out, b)
		if b.Is64 {
			i++
		}
	}
	return out, nil
}

// SizeBARs sizes every BAR of the function behind cs: it turns off I/O
// and memory decoding, writes all-ones to each BAR, reads the mask back,
// restores the BAR and finally the command register. It returns the
// implemented BARs with their current base addresses.
func SizeBARs(cs ConfigSpace) ([]BARInfo, error) {
	if cs.Read16(VendorID) == 0xFFFF {
		return nil, ErrNoDevice
	}
	cmd := cs.Read16(Command)
	cs.Write16(Command, cmd&^(CommandIO|CommandMemory))
	defer cs.Write16(Command, cmd)
	var probed, current [NumBARs]uint32
	for i := range NumBARs {
		off := BAROffset(i)
		current[i] = cs.Read32(off)
		cs.Write32(off, 0xFFFFFFFF)
		probed[i] = cs.Read32(off)
		cs.Write32(off, current[i])
	}
	return decodeBARs(probed, current)
}

// SetBARAddress programs BAR b to addr (both halves for a 64-bit BAR),
// with memory and I/O decoding off while the halves disagree. addr must
// be aligned to the BAR's size and, for a 32-bit BAR, below 4 GiB.
func SetBARAddress(cs ConfigSpace, b BARInfo, addr uint64) error {
	if b.Size == 0 || addr&(b.Size-1) != 0 || !b.Is64 && addr>>32 != 0 || b.Index < 0 || b.Index >= NumBARs || b.Is64 && b.Index == NumBARs-1 {
		return fmt.Errorf("%w: BAR %d of %#x bytes at %#x", ErrInvalid, b.Index, b.Size, addr)
	}
	cmd := cs.Read16(Command)
	cs.Write16(Command, cmd&^(CommandIO|CommandMemory))
	off := BAROffset(b.Index)
	cs.Write32(off, uint32(addr))
	if b.Is64 {
		cs.Write32(off+4, uint32(addr>>32))
	}
	cs.Write16(Command, cmd)
	return nil
}

// MemBARAddress reads the address memory BAR i holds (both halves of a
// 64-bit BAR), without probing: what a platform maps when a driver asks
// for the BAR. An I/O BAR, or one past the last, reads 0.
func MemBARAddress(cs ConfigSpace, i int) uint64 {
	if i < 0 || i >= NumBARs {
		return 0
	}
	lo := cs.Read32(BAROffset(i))
	switch {
	case lo&BARSpaceIO != 0:
		return 0
	case lo&BARMemTypeMask == BARMemType64 && i < NumBARs-1:
		return uint64(cs.Read32(BAROffset(i+1)))<<32 | uint64(lo&BARMemAddressMask)
	}
	return uint64(lo & BARMemAddressMask)
}

// SetCommand sets and clears bits of the command register.
func SetCommand(cs ConfigSpace, set, clear uint16) {
	cs.Write16(Command, cs.Read16(Command)&^clear|set)
}

// EnableMemory turns memory-space decoding on or off.
func EnableMemory(cs ConfigSpace, on bool) { setBit(cs, CommandMemory, on) }

// EnableBusMaster turns bus mastering (the function's DMA and MSI) on or
// off.
func EnableBusMaster(cs ConfigSpace, on bool) { setBit(cs, CommandMaster, on) }

func setBit(cs ConfigSpace, bit uint16, on bool) {
	if on {
		SetCommand(cs, bit, 0)
	} else {
		SetCommand(cs, 0, bit)
	}
}
