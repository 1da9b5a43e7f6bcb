package pci

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// Errors from this package, wrapped with context; test with errors.Is.
var (
	// ErrNoDevice: the function reads all-ones (absent or gone).
	ErrNoDevice = errors.New("pci: no device")
	// ErrCapRange: a capability pointer or body outside its config space
	// region (standard list 0x40..0xFF, extended 0x100..0xFFF).
	ErrCapRange = errors.New("pci: capability outside config space")
	// ErrCapMisaligned: a capability pointer not dword aligned.
	ErrCapMisaligned = errors.New("pci: misaligned capability pointer")
	// ErrCapLoop: a capability list that revisits an entry.
	ErrCapLoop = errors.New("pci: capability list loops")
	// ErrNoCapability: the capability is not in the list.
	ErrNoCapability = errors.New("pci: capability not present")
	// ErrBadBAR: a BAR whose probed value is not a valid size mask, or a
	// 64-bit BAR in the last slot.
	ErrBadBAR = errors.New("pci: invalid BAR")
	// ErrBadCapability: a capability whose contents are invalid (wrong id
	// at the offset, MSI-X BIR above 5, table outside its BAR).
	ErrBadCapability = errors.New("pci: invalid capability")
	// ErrInvalid: a caller argument out of range.
	ErrInvalid = errors.New("pci: invalid argument")
)

// Header is the identity of a function in a MemConfig.
type Header struct {
	VendorID, DeviceID uint16
	Revision           uint8
	// ClassCode is base<<16 | sub<<8 | prog-if.
	ClassCode                      uint32
	SubsystemVendorID, SubsystemID uint16
	HeaderType                     uint8
	InterruptPin                   uint8
}

// BARFlags describe a BAR for MemConfig.SetBAR.
type BARFlags uint8

const (
	BARIO       BARFlags = 1 << iota // I/O space (else memory)
	BAR64                            // 64-bit memory BAR (uses BAR i+1 too)
	BARPrefetch                      // prefetchable memory
)

// MemConfig is a 4 KiB configuration space in memory for device models.
// Each bit has a write mask (read-only unless made writable) and may be
// RW1C (cleared by writing 1); BAR address bits are writable only down to
// the BAR's size, so the sizing handshake (write all-ones, read back the
// mask) works as on hardware. It is safe for concurrent use.
type MemConfig struct {
	mu      sync.Mutex
	data    [ExtConfigSize]byte
	wmask   [ExtConfigSize]byte
	w1c     [ExtConfigSize]byte
	lastCap int // offset of the last capability, 0 if none
	nextCap int // next free offset in the standard capability area
	hook    func(off, size int)
}

// NewMemConfig returns a type 0 config space with h's identity. Command
// bits CommandWritable, cache line size, latency timer and interrupt line
// are writable; status bits StatusRW1C are RW1C; everything else is read
// only until SetBAR, AddCapability or SetWriteMask say otherwise.
func NewMemConfig(h Header) *MemConfig {
	c := &MemConfig{nextCap: HeaderSize}
	c.put(VendorID, 2, uint32(h.VendorID))
	c.put(DeviceID, 2, uint32(h.DeviceID))
	c.put(RevisionID, 4, uint32(h.Revision)|h.ClassCode<<8)
	c.put(HeaderType, 1, uint32(h.HeaderType))
	c.put(SubsystemVendorID, 2, uint32(h.SubsystemVendorID))
	c.put(SubsystemID, 2, uint32(h.SubsystemID))
	c.put(InterruptPin, 1, uint32(h.InterruptPin))
	putLE(c.wmask[:], Command, 2, CommandWritable)
	putLE(c.w1c[:], Status, 2, StatusRW1C)
	putLE(c.wmask[:], CacheLineSize, 2, 0xFFFF)
	putLE(c.wmask[:], InterruptLine, 1, 0xFF)
	return c
}

func putLE(b []byte, off, size int, v uint32) {
	for i := range size {
		b[off+i] = byte(v >> (8 * i))
	}
}

func getLE(b []byte, off, size int) uint32 {
	var v uint32
	for i := range size {
		v |= uint32(b[off+i]) << (8 * i)
	}
	return v
}

func (c *MemConfig) put(off, size int, v uint32) { putLE(c.data[:], off, size, v) }

// OnWrite sets a hook run after every accepted write, outside the lock
// (the device model reacts to command, MSI-X enable and BAR changes).
func (c *MemConfig) OnWrite(f func(off, size int)) {
	c.mu.Lock()
	c.hook = f
	c.mu.Unlock()
}

func okAccess(off, size int) bool {
	return off >= 0 && off+size <= ExtConfigSize && off&(size-1) == 0
}

func (c *MemConfig) read(off, size int) uint32 {
	if !okAccess(off, size) {
		return ^uint32(0) >> (32 - 8*size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return getLE(c.data[:], off, size)
}

func (c *MemConfig) write(off, size int, v uint32) {
	if !okAccess(off, size) {
		return
	}
	c.mu.Lock()
	for i := range size {
		b := byte(v >> (8 * i))
		o := off + i
		c.data[o] = c.data[o]&^c.wmask[o] | b&c.wmask[o]
		c.data[o] &^= b & c.w1c[o]
	}
	hook := c.hook
	c.mu.Unlock()
	if hook != nil {
		hook(off, size)
	}
}

func (c *MemConfig) Read8(off int) uint8       { return uint8(c.read(off, 1)) }
func (c *MemConfig) Read16(off int) uint16     { return uint16(c.read(off, 2)) }
func (c *MemConfig) Read32(off int) uint32     { return c.read(off, 4) }
func (c *MemConfig) Write8(off int, v uint8)   { c.write(off, 1, uint32(v)) }
func (c *MemConfig) Write16(off int, v uint16) { c.write(off, 2, uint32(v)) }
func (c *MemConfig) Write32(off int, v uint32) { c.write(off, 4, v) }
func (c *MemConfig) span(off, n int) (int, bool) {
	return off, off >= 0 && n >= 0 && off+n <= ExtConfigSize
}

// SetRaw stores b at off regardless of write masks: the device model's
// own view (status bits it raises, read-only fields it updates).
func (c *MemConfig) SetRaw(off int, b []byte) error {
	if _, ok := c.span(off, len(b)); !ok {
		return fmt.Errorf("%w: raw write of %d bytes at %#x", ErrInvalid, len(b), off)
	}
	c.mu.Lock()
	copy(c.data[off:], b)
	c.mu.Unlock()
	return nil
}

// SetWriteMask sets which bits of the bytes at off the guest may write,
// and which of those are RW1C (rw1c may be nil).
func (c *MemConfig) SetWriteMask(off int, mask, rw1c []byte) error {
	if _, ok := c.span(off, max(len(mask), len(rw1c))); !ok {
		return fmt.Errorf("%w: mask of %d bytes at %#x", ErrInvalid, len(mask), off)
	}
	c.mu.Lock()
	copy(c.wmask[off:], mask)
	copy(c.w1c[off:], rw1c)
	c.mu.Unlock()
	return nil
}

// Bytes returns a copy of the config space.
func (c *MemConfig) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.data[:]...)
}

// SetBAR makes BAR i (and i+1 for BAR64) a BAR of size bytes: a power of
// two, at least 16 for memory and 4 for I/O (at most 2 GiB for 32-bit
// memory, 64 KiB for I/O). Its address bits above the size become
// writable and it reads as address 0 with the type bits set.
func (c *MemConfig) SetBAR(i int, size uint64, f BARFlags) error {
	is64 := f&BAR64 != 0
	switch {
	case i < 0 || i >= NumBARs || is64 && i == NumBARs-1:
		return fmt.Errorf("%w: BAR %d (64-bit %v)", ErrInvalid, i, is64)
	case bits.OnesCount64(size) != 1:
		return fmt.Errorf("%w: BAR size %#x not a power of two", ErrInvalid, size)
	case f&BARIO != 0 && (is64 || f&BARPrefetch != 0 || size < 4 || size > 1<<16):
		return fmt.Errorf("%w: I/O BAR of %#x bytes, flags %#x", ErrInvalid, size, f)
	case f&BARIO == 0 && (size < 16 || !is64 && size > 1<<31):
		return fmt.Errorf("%w: memory BAR of %#x bytes (64-bit %v)", ErrInvalid, size, is64)
	}
	var low uint32
	switch {
	case f&BARIO != 0:
		low = BARSpaceIO
	case is64:
		low = BARMemType64
	}
	if f&BARPrefetch != 0 {
		low |= BARMemPrefetch
	}
	mask := ^(size - 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	off := BAROffset(i)
	c.put(off, 4, low)
	lowBits := uint32(0xF)
	if f&BARIO != 0 {
		lowBits = 0x3
	}
	putLE(c.wmask[:], off, 4, uint32(mask)&^lowBits)
	if is64 {
		c.put(off+4, 4, 0)
		putLE(c.wmask[:], off+4, 4, uint32(mask>>32))
	}
	return nil
}

// AddCapability appends a capability with id and body (the bytes after
// the id and next pointer) to the standard list, dword aligned from 0x40,
// and makes the bits set in wmask (same length as body, or nil) writable.
// It returns the capability's offset.
func (c *MemConfig) AddCapability(id uint8, body, wmask []byte) (int, error) {
	if wmask != nil && len(wmask) != len(body) {
		return 0, fmt.Errorf("%w: write mask of %d bytes for a %d-byte body", ErrInvalid, len(wmask), len(body))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	off := c.nextCap
	if off+2+len(body) > ConfigSize {
		return 0, fmt.Errorf("%w: capability %#x of %d bytes at %#x", ErrCapRange, id, 2+len(body), off)
	}
	c.data[off+CapID] = id
	c.data[off+CapNext] = 0
	copy(c.data[off+2:], body)
	copy(c.wmask[off+2:], wmask)
	if c.lastCap == 0 {
		c.data[CapabilitiesPtr] = byte(off)
	} else {
		c.data[c.lastCap+CapNext] = byte(off)
	}
	c.data[Status] |= StatusCapList
	c.lastCap = off
	c.nextCap = (off + 2 + len(body) + 3) &^ 3
	return off, nil
}

// AddMSI adds an MSI capability for 1<<log2Vectors vectors (at most 32),
// 64-bit capable if is64, with per-vector masking if maskable.
func (c *MemConfig) AddMSI(log2Vectors uint8, is64, maskable bool) (int, error) {
	if log2Vectors > 5 {
		return 0, fmt.Errorf("%w: MSI with 2^%d vectors", ErrInvalid, log2Vectors)
	}
	flags := uint16(log2Vectors) << msiQMaskShift
	size := 10 // flags, address, data (+2 pad)
	if is64 {
		flags |= MSIFlags64Bit
		size = 14
	}
	if maskable {
		flags |= MSIFlagsMaskBit
		size += 8
	}
	body := make([]byte, size)
	wm := make([]byte, size)
	putLE(body, 0, 2, uint32(flags))
	putLE(wm, 0, 2, msiFlagsWritable)
	putLE(wm, MSIAddressLo-2, 4, 0xFFFFFFFC)
	data := MSIData32
	if is64 {
		putLE(wm, MSIAddressHi-2, 4, 0xFFFFFFFF)
		data = MSIData64
	}
	putLE(wm, data-2, 2, 0xFFFF)
	if maskable {
		putLE(wm, data+4-2, 4, uint32(uint64(1)<<(1<<log2Vectors)-1))
	}
	return c.AddCapability(CapMSI, body, wm)
}

// AddMSIX adds an MSI-X capability with a table of n entries (1..2048)
// at tableOffset in BAR tableBIR and its pending-bit array at pbaOffset in
// BAR pbaBIR (offsets 8-byte aligned).
func (c *MemConfig) AddMSIX(n int, tableBIR uint8, tableOffset uint32, pbaBIR uint8, pbaOffset uint32) (int, error) {
	if n < 1 || n > 2048 || tableBIR >= NumBARs || pbaBIR >= NumBARs || tableOffset&7 != 0 || pbaOffset&7 != 0 {
		return 0, fmt.Errorf("%w: MSI-X of %d entries, table %d:%#x, PBA %d:%#x", ErrInvalid, n, tableBIR, tableOffset, pbaBIR, pbaOffset)
	}
	body := make([]byte, 10)
	wm := make([]byte, 10)
	putLE(body, 0, 2, uint32(n-1))
	putLE(wm, 0, 2, MSIXFlagsEnable|MSIXFlagsMaskAll)
	putLE(body, MSIXTable-2, 4, tableOffset|uint32(tableBIR))
	putLE(body, MSIXPBA-2, 4, pbaOffset|uint32(pbaBIR))
	return c.AddCapability(CapMSIX, body, wm)
}
