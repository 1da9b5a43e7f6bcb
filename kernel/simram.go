package kernel

import (
	"fmt"
	"math/bits"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultBasePFN is the first page frame number of a SimRAM unless told
// otherwise. It is not zero so that a zero PFN (a common bug) never names
// valid memory.
const DefaultBasePFN = 0x100

// SimRAM is simulated guest RAM: one run of pages whose PFNs are
// BasePFN, BasePFN+1, ... It is both the guest's allocator (Memory) and the
// host's view by PFN (PhysMem).
//
// Across processes, only the process playing the guest allocates; the other
// (the host) opens the same file and only reads and writes by PFN, as a
// real host does. The allocator state therefore lives in this process only.
type SimRAM struct {
	mem  []byte
	base uint64

	mu   sync.Mutex // guards used and live
	used []uint64   // allocation bitmap, one bit per page
	live map[*byte]int
}

// NewSimRAM returns in-process simulated RAM of the given number of pages.
func NewSimRAM(pages int) *SimRAM {
	return newSimRAM(make([]byte, pages*PageSize), DefaultBasePFN)
}

// NewSimRAMOver returns simulated RAM over mem (a multiple of PageSize,
// for instance part of a shared mapping), whose first page is basePFN.
func NewSimRAMOver(mem []byte, basePFN uint64) (*SimRAM, error) {
	if len(mem)%PageSize != 0 || len(mem) == 0 {
		return nil, fmt.Errorf("kernel: simulated RAM of %d bytes is not a whole number of pages", len(mem))
	}
	return newSimRAM(mem, basePFN), nil
}

func newSimRAM(mem []byte, base uint64) *SimRAM {
	pages := len(mem) / PageSize
	return &SimRAM{mem: mem, base: base, used: make([]uint64, (pages+63)/64), live: map[*byte]int{}}
}

// MapSharedFile maps size bytes of the file at path shared and writable,
// creating and sizing it when create is set. Two processes that map the
// same file see the same bytes; the caller unmaps with UnmapShared.
func MapSharedFile(path string, size int, create bool) ([]byte, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kernel: open shared memory: %w", err)
	}
	defer f.Close()
	if create {
		if err := f.Truncate(int64(size)); err != nil {
			return nil, fmt.Errorf("kernel: size shared memory: %w", err)
		}
	} else if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Size() < int64(size) {
		return nil, fmt.Errorf("kernel: shared memory file %s has %d bytes, need %d", path, st.Size(), size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("kernel: map shared memory: %w", err)
	}
	return mem, nil
}

// UnmapShared releases a mapping made by MapSharedFile.
func UnmapShared(mem []byte) error { return unix.Munmap(mem) }

// BasePFN returns the PFN of the first page.
func (m *SimRAM) BasePFN() uint64 { return m.base }

// Pages returns the size in pages.
func (m *SimRAM) Pages() int { return len(m.mem) / PageSize }

// Page implements PhysMem.
func (m *SimRAM) Page(pfn uint64) ([]byte, error) {
	i := pfn - m.base
	if pfn < m.base || i >= uint64(len(m.mem)/PageSize) {
		return nil, pfnErr(pfn)
	}
	return m.mem[i*PageSize : (i+1)*PageSize : (i+1)*PageSize], nil
}

// View implements PhysMem: the pages must be consecutive PFNs, since the
// backing store is one linear run.
func (m *SimRAM) View(pfns []uint64) ([]byte, error) {
	if len(pfns) == 0 {
		return nil, nil
	}
	for i := 1; i < len(pfns); i++ {
		if pfns[i] != pfns[0]+uint64(i) {
			return nil, fmt.Errorf("%w: pfn %#x follows %#x", ErrNotContiguous, pfns[i], pfns[i-1])
		}
	}
	first := pfns[0] - m.base
	last := pfns[len(pfns)-1]
	if pfns[0] < m.base || last < pfns[0] || last-m.base >= uint64(len(m.mem)/PageSize) {
		return nil, pfnErr(pfns[0])
	}
	end := (first + uint64(len(pfns))) * PageSize
	return m.mem[first*PageSize : end : end], nil
}

// Alloc implements Memory with first-fit over whole pages; the pages of a
// region are consecutive, so a host can view them as one slice.
func (m *SimRAM) Alloc(pages int) (*Region, error) {
	if pages <= 0 {
		return nil, fmt.Errorf("kernel: allocate %d pages", pages)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	total := len(m.mem) / PageSize
	run := 0
	for i := 0; i < total; i++ {
		if m.used[i/64]&(1<<(i%64)) != 0 {
			run = 0
			continue
		}
		run++
		if run == pages {
			first := i - pages + 1
			for j := first; j <= i; j++ {
				m.used[j/64] |= 1 << (j % 64)
			}
			r := &Region{Bytes: m.mem[first*PageSize : (i+1)*PageSize : (i+1)*PageSize], PFNs: make([]uint64, pages)}
			clear(r.Bytes)
			for j := range r.PFNs {
				r.PFNs[j] = m.base + uint64(first+j)
			}
			m.live[&r.Bytes[0]] = pages
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %d contiguous pages of %d (%d free)", ErrNoMemory, pages, total, m.freeLocked())
}

// Free implements Memory.
func (m *SimRAM) Free(r *Region) error {
	if r == nil || len(r.Bytes) == 0 {
		return ErrBadRegion
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pages, ok := m.live[&r.Bytes[0]]
	if !ok || pages != len(r.PFNs) {
		return ErrBadRegion
	}
	delete(m.live, &r.Bytes[0])
	first := int(r.PFNs[0] - m.base)
	for j := first; j < first+pages; j++ {
		m.used[j/64] &^= 1 << (j % 64)
	}
	return nil
}

// FreePages returns how many pages are not allocated; tests use it to
// prove that a driver gave back everything it took.
func (m *SimRAM) FreePages() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.freeLocked()
}

// Allocations returns the number of live regions.
func (m *SimRAM) Allocations() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

func (m *SimRAM) freeLocked() int {
	used := 0
	for _, w := range m.used {
		used += bits.OnesCount64(w)
	}
	return len(m.mem)/PageSize - used
}
