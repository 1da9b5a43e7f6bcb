package mlx

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hvguest/hvguest/kernel"
)

// DMA memory bookkeeping. Every region the driver hands the device is
// recorded here so teardown (orderly or surprise) frees each exactly once,
// after the device can no longer reach it.
//
// Ownership: mu guards regions.
type dmaPool struct {
	mem     kernel.Memory
	mu      sync.Mutex
	regions []*kernel.Region
}

func (p *dmaPool) alloc(pages int, what string) (*kernel.Region, error) {
	r, err := p.mem.Alloc(pages)
	if err != nil {
		return nil, fmt.Errorf("mlx: %s (%d pages): %w: %w", what, pages, ErrNoMemory, err)
	}
	p.mu.Lock()
	p.regions = append(p.regions, r)
	p.mu.Unlock()
	return r, nil
}

// freeAll frees every region; the device must no longer DMA.
func (p *dmaPool) freeAll() (n int) {
	p.mu.Lock()
	rs := p.regions
	p.regions = nil
	p.mu.Unlock()
	for _, r := range rs {
		if p.mem.Free(r) == nil {
			n++
		}
	}
	return n
}

// live returns how many regions and pages the pool holds.
func (p *dmaPool) live() (regions, pages int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.regions {
		pages += r.Pages()
	}
	return len(p.regions), pages
}

// regionDMA implements mlxhw.DMA over one region the driver owns: the
// command mailboxes. An address outside the region is an error, never an
// access elsewhere.
type regionDMA struct {
	r    *kernel.Region
	page map[uint64]int // pfn -> page index in r
}

func newRegionDMA(r *kernel.Region) *regionDMA {
	d := &regionDMA{r: r, page: make(map[uint64]int, len(r.PFNs))}
	for i, pfn := range r.PFNs {
		d.page[pfn] = i
	}
	return d
}

func (d *regionDMA) slice(addr uint64, n int) ([]byte, error) {
	i, ok := d.page[addr>>kernel.PageShift]
	off := int(addr & (kernel.PageSize - 1))
	if !ok || off+n > kernel.PageSize {
		return nil, fmt.Errorf("mlx: DMA %#x+%d outside the command mailboxes: %w", addr, n, ErrDevice)
	}
	base := i*kernel.PageSize + off
	return d.r.Bytes[base : base+n], nil
}

func (d *regionDMA) ReadDMA(addr uint64, b []byte) error {
	s, err := d.slice(addr, len(b))
	if err == nil {
		copy(b, s)
	}
	return err
}

func (d *regionDMA) WriteDMA(addr uint64, b []byte) error {
	s, err := d.slice(addr, len(b))
	if err == nil {
		copy(s, b)
	}
	return err
}

// Shared dwords. The device writes ownership bytes and reads doorbell
// records while the driver runs; both sides touch those dwords with
// sync/atomic so the exchange is ordered (the body of an entry is
// published before its owner dword, a WQE before its doorbell record).
// Values are big-endian in memory.

func dwordPtr(b []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[off : off+4][0]))
}

// loadBE32 atomically loads the big-endian dword at b[off:] (4-aligned).
func loadBE32(b []byte, off int) uint32 {
	v := atomic.LoadUint32(dwordPtr(b, off))
	var t [4]byte
	binary.NativeEndian.PutUint32(t[:], v)
	return binary.BigEndian.Uint32(t[:])
}

// storeBE32 atomically stores v big-endian at b[off:] (4-aligned).
func storeBE32(b []byte, off int, v uint32) {
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], v)
	atomic.StoreUint32(dwordPtr(b, off), binary.NativeEndian.Uint32(t[:]))
}
