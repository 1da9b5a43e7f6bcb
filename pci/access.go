package pci

import "sync/atomic"

// ConfigSpace is access to one function's configuration space. A device
// model in-process (MemConfig), a shared-memory peer, the Hyper-V vPCI
// config window or a Linux sysfs/VFIO config file can back it.
//
// Offsets are bytes from the start of config space. Accesses are
// naturally aligned and stay below 4096; an implementation answers an
// access it cannot perform (out of range, misaligned, device gone, I/O
// failure) as PCI does a master abort: reads return all-ones and writes
// are dropped. Callers that must tell "gone" from data check for all-ones
// where a register cannot legitimately hold it (the vendor id).
type ConfigSpace interface {
	Read8(off int) uint8
	Read16(off int) uint16
	Read32(off int) uint32
	Write8(off int, v uint8)
	Write16(off int, v uint16)
	Write32(off int, v uint32)
}

// BAR is register access to one memory BAR, as a driver sees it.
//
// Barrier semantics are those of Linux readl/writel on the same BAR: each
// call is one naturally aligned access of its width, not torn or merged;
// accesses through one BAR reach the device in program order; a Write is
// ordered after every earlier store to DMA memory by the caller (so a
// doorbell write publishes the descriptors written before it); a Read
// completes before any later load from DMA memory (so data the device
// wrote before the status the Read returned is visible). Offsets are bytes
// from the BAR's start. Out-of-range or misaligned accesses read all-ones
// and drop writes.
type BAR interface {
	// Len is the BAR's size in bytes.
	Len() uint64
	Read32(off uint64) uint32
	Read64(off uint64) uint64
	Write32(off uint64, v uint32)
	Write64(off uint64, v uint64)
}

// MemBAR is a BAR backed by memory, for device models whose registers are
// plain storage, and for tests. Its accesses are sequentially consistent
// atomics, which give the ordering BAR promises. OnWrite, if set, runs
// after every write that lands (the device model's doorbell hook); it
// runs on the writer's goroutine.
type MemBAR struct {
	words   []uint64
	OnWrite func(off uint64, size int, v uint64)
}

// NewMemBAR returns a zeroed MemBAR of size bytes (rounded up to 8).
func NewMemBAR(size uint64) *MemBAR {
	return &MemBAR{words: make([]uint64, (size+7)/8)}
}

func (b *MemBAR) Len() uint64 { return uint64(len(b.words)) * 8 }

// The BAR's bytes are little-endian u64 words; a 32-bit access is the
// matching half of one word, read with an atomic load and written with a
// compare-and-swap loop, so no access is torn.
func (b *MemBAR) ok32(off uint64) bool { return off%4 == 0 && off < b.Len() }

func (b *MemBAR) Read32(off uint64) uint32 {
	if !b.ok32(off) {
		return ^uint32(0)
	}
	return uint32(atomic.LoadUint64(&b.words[off/8]) >> (8 * (off % 8)))
}

func (b *MemBAR) Read64(off uint64) uint64 {
	if off%8 != 0 || off >= b.Len() {
		return ^uint64(0)
	}
	return atomic.LoadUint64(&b.words[off/8])
}

func (b *MemBAR) Write32(off uint64, v uint32) {
	if !b.ok32(off) {
		return
	}
	w, shift := &b.words[off/8], 8*(off%8)
	for {
		old := atomic.LoadUint64(w)
		if atomic.CompareAndSwapUint64(w, old, old&^(0xFFFFFFFF<<shift)|uint64(v)<<shift) {
			break
		}
	}
	if b.OnWrite != nil {
		b.OnWrite(off, 4, uint64(v))
	}
}

func (b *MemBAR) Write64(off uint64, v uint64) {
	if off%8 != 0 || off >= b.Len() {
		return
	}
	atomic.StoreUint64(&b.words[off/8], v)
	if b.OnWrite != nil {
		b.OnWrite(off, 8, v)
	}
}
