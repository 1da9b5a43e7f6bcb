// Package gpa encodes and decodes VMBus guest-physical address ranges: the
// {byte_count, byte_offset, pfn_array[]} records that appear both in
// GPA-direct ring packets (type 9) and in GPADL_HEADER channel messages.
//
// It is a wire package shared by the guest and the host side: pure data and
// parsing, no I/O, no goroutines, no locks. Every decoder checks lengths and
// returns an error; none panics on any input.
//
// Layout (Linux include/linux/hyperv.h struct gpa_range and
// vmbus_channel_packet_multipage_buffer; FreeBSD sys/dev/hyperv/include/vmbus.h
// struct vmbus_gpa_range; OpenVMM vmbus_ring GpaRange):
//
//	off 0  u32 byte_count   bytes described by the range (> 0)
//	off 4  u32 byte_offset  offset into the first page (< 4096)
//	off 8  u64 pfn[n]       n = ceil((byte_offset + byte_count) / 4096)
//
// PFNs are always 4 KiB Hyper-V page numbers, whatever the guest page size.
package gpa

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// PageSize is the Hyper-V page size that PFNs count in.
const PageSize = 4096

// PageShift is log2(PageSize).
const PageShift = 12

// HeaderSize is the size of a range record before its PFN array.
const HeaderSize = 8

// Errors returned by the decoders, wrapped with context.
var (
	ErrShort       = errors.New("gpa: buffer too short")
	ErrZeroLength  = errors.New("gpa: range with zero byte count")
	ErrOffset      = errors.New("gpa: byte offset not inside the first page")
	ErrPageCount   = errors.New("gpa: page count does not match byte count and offset")
	ErrTooManyPFNs = errors.New("gpa: more pages than the caller allows")
)

// Range is one guest-physical range: ByteCount bytes starting ByteOffset
// bytes into page PFNs[0], continuing through the following PFNs.
type Range struct {
	ByteCount  uint32
	ByteOffset uint32
	PFNs       []uint64
}

// PagesFor returns how many 4 KiB pages a range of count bytes starting at
// offset within its first page touches.
func PagesFor(offset, count uint32) int {
	return int((uint64(offset) + uint64(count) + PageSize - 1) >> PageShift)
}

// Validate checks the invariants every reader of host or guest input must
// enforce before touching memory through the range.
func (r *Range) Validate() error {
	if r.ByteCount == 0 {
		return ErrZeroLength
	}
	if r.ByteOffset >= PageSize {
		return fmt.Errorf("%w: offset %d", ErrOffset, r.ByteOffset)
	}
	if want := PagesFor(r.ByteOffset, r.ByteCount); want != len(r.PFNs) {
		return fmt.Errorf("%w: %d pfns for %d bytes at offset %d (want %d)",
			ErrPageCount, len(r.PFNs), r.ByteCount, r.ByteOffset, want)
	}
	return nil
}

// EncodedLen is the number of bytes Append writes for r.
func (r *Range) EncodedLen() int { return HeaderSize + 8*len(r.PFNs) }

// Append appends the wire form of r to b and returns the extended slice.
// It does not validate; callers building ranges from their own memory do
// that once with Validate.
func (r *Range) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.ByteCount)
	b = binary.LittleEndian.AppendUint32(b, r.ByteOffset)
	for _, pfn := range r.PFNs {
		b = binary.LittleEndian.AppendUint64(b, pfn)
	}
	return b
}

// Put writes the wire form of r at the start of b, which must hold
// EncodedLen bytes, and returns the number of bytes written.
func (r *Range) Put(b []byte) int {
	n := r.EncodedLen()
	if len(b) < n {
		panic("gpa: Put into a short buffer") // caller bug, never input-driven
	}
	binary.LittleEndian.PutUint32(b[0:], r.ByteCount)
	binary.LittleEndian.PutUint32(b[4:], r.ByteOffset)
	for i, pfn := range r.PFNs {
		binary.LittleEndian.PutUint64(b[HeaderSize+8*i:], pfn)
	}
	return n
}

// Decode parses one range from the start of b into r, reusing r.PFNs'
// backing array when it is large enough (so a steady-state reader
// allocates nothing). maxPFNs bounds the page count a hostile peer can
// make the decoder accept; 0 means no bound beyond the buffer length.
// It returns the number of bytes consumed.
func Decode(b []byte, r *Range, maxPFNs int) (int, error) {
	if len(b) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes for a range header", ErrShort, len(b))
	}
	count := binary.LittleEndian.Uint32(b[0:])
	offset := binary.LittleEndian.Uint32(b[4:])
	if count == 0 {
		return 0, ErrZeroLength
	}
	if offset >= PageSize {
		return 0, fmt.Errorf("%w: offset %d", ErrOffset, offset)
	}
	n := PagesFor(offset, count)
	if maxPFNs > 0 && n > maxPFNs {
		return 0, fmt.Errorf("%w: %d > %d", ErrTooManyPFNs, n, maxPFNs)
	}
	need := HeaderSize + 8*n
	if len(b) < need {
		return 0, fmt.Errorf("%w: range of %d pages needs %d bytes, have %d", ErrShort, n, need, len(b))
	}
	if cap(r.PFNs) >= n {
		r.PFNs = r.PFNs[:n]
	} else {
		r.PFNs = make([]uint64, n)
	}
	for i := range r.PFNs {
		r.PFNs[i] = binary.LittleEndian.Uint64(b[HeaderSize+8*i:])
	}
	r.ByteCount, r.ByteOffset = count, offset
	return need, nil
}

// Span returns the guest-physical address of the byte at offset off within
// the range and how many bytes from there stay in the same page. The caller
// has validated the range and off < ByteCount.
func (r *Range) Span(off uint32) (gpa uint64, contiguous uint32) {
	abs := uint64(r.ByteOffset) + uint64(off)
	page := abs >> PageShift
	in := abs & (PageSize - 1)
	left := uint64(r.ByteCount) - uint64(off)
	if room := PageSize - in; room < left {
		left = room
	}
	return r.PFNs[page]<<PageShift | in, uint32(left)
}
