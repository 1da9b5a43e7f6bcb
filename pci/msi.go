package pci

import (
	"fmt"
	"math/bits"
)

// MSI is a parsed MSI capability.
type MSI struct {
	Offset        int
	Is64          bool
	PerVectorMask bool
	// MaxVectors is how many vectors the function can use (1..32).
	MaxVectors int
}

func (m MSI) size() int {
	n := 12
	if m.Is64 {
		n += 4
	}
	if m.PerVectorMask {
		n += 8
	}
	return n
}

func (m MSI) dataOffset() int {
	if m.Is64 {
		return m.Offset + MSIData64
	}
	return m.Offset + MSIData32
}

// ParseMSI reads the MSI capability at off, checking its id and that it
// fits below 0x100.
func ParseMSI(cs ConfigSpace, off int) (MSI, error) {
	if off < HeaderSize || off >= ConfigSize || off&3 != 0 {
		return MSI{}, fmt.Errorf("%w: MSI at %#x", ErrCapRange, off)
	}
	if id := cs.Read8(off + CapID); id != CapMSI {
		return MSI{}, fmt.Errorf("%w: id %#x at %#x is not MSI", ErrBadCapability, id, off)
	}
	f := cs.Read16(off + MSIFlags)
	q := int(f&MSIFlagsQMask) >> msiQMaskShift
	if q > 5 {
		return MSI{}, fmt.Errorf("%w: MSI at %#x claims 2^%d vectors", ErrBadCapability, off, q)
	}
	m := MSI{Offset: off, Is64: f&MSIFlags64Bit != 0, PerVectorMask: f&MSIFlagsMaskBit != 0, MaxVectors: 1 << q}
	if off+m.size() > ConfigSize {
		return MSI{}, fmt.Errorf("%w: MSI at %#x of %d bytes", ErrCapRange, off, m.size())
	}
	return m, nil
}

// Program writes the message address and data and enables vectors
// (a power of two up to MaxVectors) without touching the enable bit. A
// 64-bit address needs a 64-bit capable function.
func (m MSI) Program(cs ConfigSpace, addr uint64, data uint16, vectors int) error {
	if vectors < 1 || vectors > m.MaxVectors || bits.OnesCount(uint(vectors)) != 1 || addr&3 != 0 || !m.Is64 && addr>>32 != 0 {
		return fmt.Errorf("%w: MSI %d vectors at %#x (64-bit %v, max %d)", ErrInvalid, vectors, addr, m.Is64, m.MaxVectors)
	}
	cs.Write32(m.Offset+MSIAddressLo, uint32(addr))
	if m.Is64 {
		cs.Write32(m.Offset+MSIAddressHi, uint32(addr>>32))
	}
	cs.Write16(m.dataOffset(), data)
	f := cs.Read16(m.Offset + MSIFlags)
	f = f&^MSIFlagsQSize | uint16(bits.TrailingZeros(uint(vectors)))<<msiQSizeShift
	cs.Write16(m.Offset+MSIFlags, f)
	return nil
}

// SetEnabled sets the MSI enable bit.
func (m MSI) SetEnabled(cs ConfigSpace, on bool) {
	f := cs.Read16(m.Offset+MSIFlags) &^ MSIFlagsEnable
	if on {
		f |= MSIFlagsEnable
	}
	cs.Write16(m.Offset+MSIFlags, f)
}

// SetMask writes the per-vector mask bits.
func (m MSI) SetMask(cs ConfigSpace, mask uint32) error {
	if !m.PerVectorMask {
		return fmt.Errorf("%w: MSI at %#x has no per-vector masking", ErrInvalid, m.Offset)
	}
	cs.Write32(m.dataOffset()+4, mask)
	return nil
}

// MSIX is a parsed MSI-X capability.
type MSIX struct {
	Offset      int
	TableSize   int // entries, 1..2048
	TableBIR    int
	TableOffset uint32
	PBABIR      int
	PBAOffset   uint32
}

// ParseMSIX reads the MSI-X capability at off. A BIR above 5 is
// ErrBadCapability.
func ParseMSIX(cs ConfigSpace, off int) (MSIX, error) {
	if off < HeaderSize || off+12 > ConfigSize || off&3 != 0 {
		return MSIX{}, fmt.Errorf("%w: MSI-X at %#x", ErrCapRange, off)
	}
	if id := cs.Read8(off + CapID); id != CapMSIX {
		return MSIX{}, fmt.Errorf("%w: id %#x at %#x is not MSI-X", ErrBadCapability, id, off)
	}
	t, p := cs.Read32(off+MSIXTable), cs.Read32(off+MSIXPBA)
	m := MSIX{
		Offset:      off,
		TableSize:   int(cs.Read16(off+MSIXFlags)&MSIXFlagsQSize) + 1,
		TableBIR:    int(t & MSIXBIRMask),
		TableOffset: t & MSIXOffsetMask,
		PBABIR:      int(p & MSIXBIRMask),
		PBAOffset:   p & MSIXOffsetMask,
	}
	if m.TableBIR >= NumBARs || m.PBABIR >= NumBARs {
		return MSIX{}, fmt.Errorf("%w: MSI-X at %#x: table BIR %d, PBA BIR %d", ErrBadCapability, off, m.TableBIR, m.PBABIR)
	}
	return m, nil
}

// CheckTable reports whether the table (and the PBA, when it is in the
// same BAR) fits in table, the BAR mapped for TableBIR.
func (m MSIX) CheckTable(table BAR) error {
	end := uint64(m.TableOffset) + uint64(m.TableSize)*MSIXEntrySize
	if end > table.Len() {
		return fmt.Errorf("%w: MSI-X table of %d entries at %#x past BAR %d of %#x bytes", ErrBadCapability, m.TableSize, m.TableOffset, m.TableBIR, table.Len())
	}
	if m.PBABIR == m.TableBIR && uint64(m.PBAOffset)+uint64((m.TableSize+63)/64)*8 > table.Len() {
		return fmt.Errorf("%w: MSI-X PBA at %#x past BAR %d", ErrBadCapability, m.PBAOffset, m.PBABIR)
	}
	return nil
}

func (m MSIX) entry(table BAR, i int) (uint64, error) {
	if i < 0 || i >= m.TableSize {
		return 0, fmt.Errorf("%w: MSI-X entry %d of %d", ErrInvalid, i, m.TableSize)
	}
	if err := m.CheckTable(table); err != nil {
		return 0, err
	}
	return uint64(m.TableOffset) + uint64(i)*MSIXEntrySize, nil
}

// MSIXEntry is one table entry.
type MSIXEntry struct {
	Address uint64
	Data    uint32
	Masked  bool
}

// ReadEntry reads table entry i.
func (m MSIX) ReadEntry(table BAR, i int) (MSIXEntry, error) {
	e, err := m.entry(table, i)
	if err != nil {
		return MSIXEntry{}, err
	}
	return MSIXEntry{
		Address: uint64(table.Read32(e+MSIXEntryAddrHi))<<32 | uint64(table.Read32(e+MSIXEntryAddrLo)),
		Data:    table.Read32(e + MSIXEntryData),
		Masked:  table.Read32(e+MSIXEntryVectorCtrl)&MSIXEntryMasked != 0,
	}, nil
}

// WriteEntry programs entry i's address and data, leaving its mask bit
// as it is (mask it first to change a live vector).
func (m MSIX) WriteEntry(table BAR, i int, addr uint64, data uint32) error {
	e, err := m.entry(table, i)
	if err != nil {
		return err
	}
	if addr&3 != 0 {
		return fmt.Errorf("%w: MSI-X address %#x not dword aligned", ErrInvalid, addr)
	}
	table.Write32(e+MSIXEntryAddrLo, uint32(addr))
	table.Write32(e+MSIXEntryAddrHi, uint32(addr>>32))
	table.Write32(e+MSIXEntryData, data)
	return nil
}

// MaskEntry sets or clears entry i's vector-control mask bit.
func (m MSIX) MaskEntry(table BAR, i int, masked bool) error {
	e, err := m.entry(table, i)
	if err != nil {
		return err
	}
	v := table.Read32(e+MSIXEntryVectorCtrl) &^ MSIXEntryMasked
	if masked {
		v |= MSIXEntryMasked
	}
	table.Write32(e+MSIXEntryVectorCtrl, v)
	return nil
}

// SetEnabled sets the MSI-X enable bit.
func (m MSIX) SetEnabled(cs ConfigSpace, on bool) { m.setFlag(cs, MSIXFlagsEnable, on) }

// SetMaskAll sets the function mask bit.
func (m MSIX) SetMaskAll(cs ConfigSpace, on bool) { m.setFlag(cs, MSIXFlagsMaskAll, on) }

func (m MSIX) setFlag(cs ConfigSpace, bit uint16, on bool) {
	f := cs.Read16(m.Offset+MSIXFlags) &^ bit
	if on {
		f |= bit
	}
	cs.Write16(m.Offset+MSIXFlags, f)
}
