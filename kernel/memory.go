package kernel

import (
	"errors"
	"fmt"
)

// PageSize is the size of a guest page as Hyper-V counts them.
const PageSize = 4096

// PageShift is log2(PageSize).
const PageShift = 12

// Errors of the kernel layer, wrapped with context.
var (
	ErrNoMemory      = errors.New("kernel: out of guest memory")
	ErrBadPFN        = errors.New("kernel: page frame number outside guest memory")
	ErrNotContiguous = errors.New("kernel: pages are not contiguous in the backing store")
	ErrBadRegion     = errors.New("kernel: region was not allocated here")
	ErrClosed        = errors.New("kernel: closed")
)

// Region is page-aligned memory that a device or host can reach: Bytes is
// the driver's view and PFNs[i] is the guest page frame number of
// Bytes[i*PageSize:(i+1)*PageSize].
type Region struct {
	Bytes []byte
	PFNs  []uint64
}

// Pages returns the number of pages in r.
func (r *Region) Pages() int { return len(r.PFNs) }

// GPA returns the guest physical address of byte off of r.
func (r *Region) GPA(off int) uint64 {
	return r.PFNs[off>>PageShift]<<PageShift | uint64(off&(PageSize-1))
}

// Sub returns the region made of pages [first, first+n) of r.
func (r *Region) Sub(first, n int) *Region {
	return &Region{Bytes: r.Bytes[first*PageSize : (first+n)*PageSize], PFNs: r.PFNs[first : first+n]}
}

// Memory allocates DMA-able guest memory. Implementations: SimRAM here;
// pinned hugepage memory on Linux; the importing OS's page allocator on
// bare metal. Alloc returns zeroed memory.
type Memory interface {
	Alloc(pages int) (*Region, error)
	Free(r *Region) error
}

// PhysMem is guest memory addressed by page frame number: the view of a
// host or a DMA-capable device model.
type PhysMem interface {
	// Page returns the 4 KiB page pfn.
	Page(pfn uint64) ([]byte, error)
	// View returns one contiguous slice covering the pages pfns in order,
	// or ErrNotContiguous if the backing cannot present them as one.
	View(pfns []uint64) ([]byte, error)
}

// CopyFromPhys copies len(dst) bytes starting at guest physical address
// gpa into dst, crossing pages as needed.
func CopyFromPhys(m PhysMem, dst []byte, gpa uint64) error {
	for len(dst) > 0 {
		p, err := m.Page(gpa >> PageShift)
		if err != nil {
			return err
		}
		n := copy(dst, p[gpa&(PageSize-1):])
		dst = dst[n:]
		gpa += uint64(n)
	}
	return nil
}

// CopyToPhys copies src to guest physical address gpa, crossing pages.
func CopyToPhys(m PhysMem, gpa uint64, src []byte) error {
	for len(src) > 0 {
		p, err := m.Page(gpa >> PageShift)
		if err != nil {
			return err
		}
		n := copy(p[gpa&(PageSize-1):], src)
		src = src[n:]
		gpa += uint64(n)
	}
	return nil
}

func pfnErr(pfn uint64) error { return fmt.Errorf("%w: %#x", ErrBadPFN, pfn) }
