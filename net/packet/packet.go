package packet

import (
	"errors"
	"fmt"
)

// Sentinel errors of this package. Callers test them with errors.Is.
var (
	// ErrNoSpace: the buffer has not enough headroom or tailroom.
	ErrNoSpace = errors.New("packet: no space in buffer")
	// ErrInvalid: an argument is out of range.
	ErrInvalid = errors.New("packet: invalid argument")
)

// Preallocated wrapped errors, so the data path reports context without
// allocating.
var (
	errNoHeadroom  = fmt.Errorf("%w: not enough headroom to prepend", ErrNoSpace)
	errNoTailroom  = fmt.Errorf("%w: not enough tailroom to append", ErrNoSpace)
	errTrimTooMuch = fmt.Errorf("%w: trim longer than the data", ErrInvalid)
	errNegative    = fmt.Errorf("%w: negative length", ErrInvalid)
)

// Packet is one network packet: a fixed buffer, a data window in it and
// metadata. The zero value is an empty packet without a buffer; use New or a
// Pool.
//
// A Packet is not safe for concurrent use; it has exactly one owner at a time
// (see the package documentation).
type Packet struct {
	// Meta is the packet's metadata; the owner reads and writes it freely.
	Meta Meta

	buf      []byte // the whole buffer: headroom + data + tailroom
	off, end int    // data window buf[off:end]
	headroom int    // headroom a Reset restores
	pool     *Pool  // the pool Free returns to (nil: garbage collected)
	inPool   bool   // on pool's free list; guarded by pool.mu
}

// New returns an unpooled packet with a buffer of headroom+size bytes and the
// data window empty at offset headroom. Free on it only clears it.
func New(headroom, size int) *Packet {
	if headroom < 0 || size < 0 {
		panic("packet.New: negative size")
	}
	p := &Packet{buf: make([]byte, headroom+size), headroom: headroom}
	p.Reset()
	return p
}

// Reset empties the data window (back at the initial headroom) and clears
// the metadata. It keeps the buffer.
func (p *Packet) Reset() {
	p.Meta = Meta{}
	p.off, p.end = p.headroom, p.headroom
}

// Bytes returns the packet data. The slice aliases the buffer and is valid
// until the next call that changes the window or frees the packet.
func (p *Packet) Bytes() []byte { return p.buf[p.off:p.end:p.end] }

// Len returns the data length.
func (p *Packet) Len() int { return p.end - p.off }

// Headroom returns how many bytes can be prepended.
func (p *Packet) Headroom() int { return p.off }

// Tailroom returns how many bytes can be appended.
func (p *Packet) Tailroom() int { return len(p.buf) - p.end }

// Cap returns the size of the whole buffer.
func (p *Packet) Cap() int { return len(p.buf) }

// Pool returns the pool the packet returns to when freed (nil if unpooled).
func (p *Packet) Pool() *Pool { return p.pool }

// Prepend grows the data window by n bytes at the front and returns those n
// bytes for the caller to fill (their content is undefined).
func (p *Packet) Prepend(n int) ([]byte, error) {
	if n < 0 {
		return nil, errNegative
	}
	if n > p.off {
		return nil, errNoHeadroom
	}
	p.off -= n
	return p.buf[p.off : p.off+n : p.off+n], nil
}

// Append grows the data window by n bytes at the end and returns those n
// bytes for the caller to fill (their content is undefined).
func (p *Packet) Append(n int) ([]byte, error) {
	if n < 0 {
		return nil, errNegative
	}
	if n > len(p.buf)-p.end {
		return nil, errNoTailroom
	}
	p.end += n
	return p.buf[p.end-n : p.end : p.end], nil
}

// AppendBytes copies data to the end of the packet.
func (p *Packet) AppendBytes(data []byte) error {
	b, err := p.Append(len(data))
	if err != nil {
		return err
	}
	copy(b, data)
	return nil
}

// SetBytes replaces the data with a copy of data, placed after the initial
// headroom. The metadata is kept.
func (p *Packet) SetBytes(data []byte) error {
	if p.headroom+len(data) > len(p.buf) {
		return errNoTailroom
	}
	p.off = p.headroom
	p.end = p.off + copy(p.buf[p.off:], data)
	return nil
}

// TrimFront removes n bytes from the front of the data (a header that was
// parsed); they become headroom.
func (p *Packet) TrimFront(n int) error {
	if n < 0 {
		return errNegative
	}
	if n > p.Len() {
		return errTrimTooMuch
	}
	p.off += n
	return nil
}

// TrimBack removes n bytes from the end of the data (a trailer such as an
// FCS); they become tailroom.
func (p *Packet) TrimBack(n int) error {
	if n < 0 {
		return errNegative
	}
	if n > p.Len() {
		return errTrimTooMuch
	}
	p.end -= n
	return nil
}

// CopyTo copies p's data and metadata into dst, placing the data after dst's
// initial headroom.
func (p *Packet) CopyTo(dst *Packet) error {
	if err := dst.SetBytes(p.Bytes()); err != nil {
		return err
	}
	dst.Meta = p.Meta
	return nil
}

// IsMulticast reports whether the packet starts with an Ethernet destination
// address that has the group bit set (multicast or broadcast).
func (p *Packet) IsMulticast() bool { return p.Len() >= 6 && p.buf[p.off]&1 != 0 }

// Free gives the packet back to its pool; an unpooled packet is only reset.
// The caller must own the packet and must not use it afterwards. Freeing a
// packet that is already in its pool panics.
func (p *Packet) Free() {
	if p.pool == nil {
		p.Reset()
		return
	}
	p.pool.put(p)
}
