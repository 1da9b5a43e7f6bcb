// Package ring implements the VMBus ring buffer: the single-producer,
// single-consumer byte ring through which a channel's packets travel between
// a Hyper-V guest and its host. Both sides of hvguest use it: the guest
// VMBus client (hyperv/vmbus) and the simulated host (hyperv/host) each
// build a Writer over the ring they send on and a Reader over the ring they
// receive on.
//
// It is a wire package: no goroutines, no I/O, no locks. A ring end has
// exactly one writer goroutine (Writer) or one reader goroutine (Reader);
// callers serialize all calls on one Writer or one Reader. The two ends may
// run concurrently in different goroutines, processes or virtual machines.
//
// # Memory
//
// A ring is a 4096-byte control page plus a data area. The package works on
// memory it is handed as []byte: the guest allocates one region for a ring
// pair, the host gets a view of guest RAM, and either may be an mmapped file
// shared with another process or with a QEMU guest. The control-page fields
// that the peer also touches are read and written only with sync/atomic
// 32-bit operations; the control page must therefore be 4-byte aligned
// (it is page aligned in every real layout). The data area is copied with
// ordinary loads and stores; the index stores and loads order them:
//
//   - the writer copies packet and trailer into the data area, then stores
//     write_index (an atomic store: release, and in Go a full barrier);
//   - the reader loads write_index (acquire), reads the packets, then stores
//     read_index, after which the writer may reuse the space.
//
// # Layout (Linux include/linux/hyperv.h struct hv_ring_buffer;
// FreeBSD sys/dev/hyperv/vmbus/vmbus_reg.h struct vmbus_bufring;
// OpenVMM vmbus_ring Control)
//
//	off  0 u32 write_index      byte offset into the data area; writer owns
//	off  4 u32 read_index       byte offset into the data area; reader owns
//	off  8 u32 interrupt_mask   reader: 1 = do not signal me on empty->non-empty
//	off 12 u32 pending_send_sz  writer: signal me when more than N bytes are free
//	off 16 u32 reserved1[12]
//	off 64 u32 feature_bits     bit 0: pending_send_sz is honoured (set by the writer)
//	off 68 ... pad to 4096; the data area follows the control page
//
// Each packet is a 16-byte descriptor, a type-specific extension, the
// payload, zero padding to a multiple of 8, and an 8-byte trailer holding
// the ring offset where the packet started, shifted left by 32. Readers
// ignore the trailer and advance by len8*8 + 8.
//
// # Signals
//
// The package never signals; it tells the caller when to. Writer.Commit
// returns true when the reader must be signalled (the ring went from empty
// to non-empty and the reader's interrupt_mask is 0); Reader.Commit returns
// true when the writer must be signalled (it was waiting, via
// pending_send_sz, for more free space than there was and now there is).
// Reader.BeginRead/EndRead implement the mask, drain, unmask, re-check
// pattern; Writer.ArmPendingSend implements set-pending-size-and-re-check.
//
// # Errors
//
// Flow-control conditions are the bare sentinels ErrEmpty and ErrFull, so
// the steady state allocates nothing. Everything the peer can get wrong is
// reported as an error wrapping both ErrCorrupt and a specific sentinel
// (ErrIndex, ErrDescriptor, ErrType, ...), never a panic. A corrupt ring is
// dead: once a Reader or Writer has seen corruption it returns the same
// error from then on, because after a bad index or a bad length there is no
// trustworthy position to resume from, and guessing would let a hostile
// peer steer the reader into its own data.
package ring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Control-page geometry and field offsets (Linux struct hv_ring_buffer).
const (
	// ControlSize is the size of the control page in front of the data.
	ControlSize = 4096

	OffWriteIndex      = 0  // u32 write_index
	OffReadIndex       = 4  // u32 read_index
	OffInterruptMask   = 8  // u32 interrupt_mask
	OffPendingSendSize = 12 // u32 pending_send_sz
	OffFeatureBits     = 64 // u32 feature_bits (after reserved1[12])

	// FeaturePendingSendSize is feature_bits bit 0 (feat_pending_send_sz):
	// the writer of the ring sets pending_send_sz when it waits for space
	// and expects the reader to signal it.
	FeaturePendingSendSize = 1 << 0
)

// Sizes of the fixed packet parts.
const (
	// Align is the unit of every index and length in the ring.
	Align = 8
	// DescriptorSize is the size of struct vmpacket_descriptor.
	DescriptorSize = 16
	// TrailerSize is the u64 previous-index trailer after each packet.
	TrailerSize = 8
	// ExtHeaderSize is the size of the GPA-direct and transfer-page
	// headers that follow the descriptor (8 bytes each).
	ExtHeaderSize = 8
	// MinDataSize is the smallest data area accepted: one empty packet
	// plus its trailer plus the slot that keeps write != read.
	MinDataSize = DescriptorSize + TrailerSize + Align
	// MaxDataSize bounds the data area so index sums never overflow u32.
	MaxDataSize = 1 << 31
	// MaxPacketLen is the largest packet a descriptor can describe
	// (len8 is a u16), trailer excluded.
	MaxPacketLen = 0xFFFF * Align
)

// Sentinel errors. Corruption errors wrap ErrCorrupt and one specific
// sentinel, with context.
var (
	// ErrEmpty: no packet to read (bare, never wrapped).
	ErrEmpty = errors.New("ring: empty")
	// ErrFull: not enough free space for the packet now (bare, never
	// wrapped). See Writer.ArmPendingSend.
	ErrFull = errors.New("ring: not enough free space")
	// ErrTooLarge: the packet can never fit in this ring or descriptor.
	ErrTooLarge = errors.New("ring: packet too large")
	// ErrMemory: the memory handed to a constructor is unusable.
	ErrMemory = errors.New("ring: bad ring memory")
	// ErrArgument: a caller-supplied packet part is invalid.
	ErrArgument = errors.New("ring: invalid argument")
	// ErrScratch: a wrapped packet is larger than the reader's scratch.
	ErrScratch = errors.New("ring: wrapped packet larger than scratch buffer")

	// ErrCorrupt is wrapped by every error that means the peer broke the
	// ring. The ring is dead after it.
	ErrCorrupt = errors.New("ring: corrupt")
	// ErrIndex: an index from the control page is out of range or not
	// 8-byte aligned.
	ErrIndex = errors.New("ring: bad index")
	// ErrTruncated: the published data ends inside a packet.
	ErrTruncated = errors.New("ring: truncated packet")
	// ErrDescriptor: offset8/len8 are inconsistent.
	ErrDescriptor = errors.New("ring: bad descriptor lengths")
	// ErrType: unknown or unsupported packet type.
	ErrType = errors.New("ring: bad packet type")
	// ErrFlags: reserved descriptor flag bits set.
	ErrFlags = errors.New("ring: bad packet flags")
	// ErrRangeCount: range count zero or larger than the packet holds.
	ErrRangeCount = errors.New("ring: bad range count")
	// ErrRange: a GPA range record is malformed.
	ErrRange = errors.New("ring: bad range")
)

func corrupt(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrCorrupt, kind}, args...)...)
}

// Control gives atomic access to the shared fields of a ring's control
// page. The zero value is unusable; get one from NewControl.
type Control struct {
	base unsafe.Pointer
}

// NewControl checks that page can serve as a control page (at least
// ControlSize bytes, 4-byte aligned) and returns an accessor for it.
func NewControl(page []byte) (Control, error) {
	if len(page) < ControlSize {
		return Control{}, fmt.Errorf("%w: control page is %d bytes, need %d", ErrMemory, len(page), ControlSize)
	}
	p := unsafe.Pointer(unsafe.SliceData(page))
	if uintptr(p)%4 != 0 {
		return Control{}, fmt.Errorf("%w: control page at %p is not 4-byte aligned", ErrMemory, p)
	}
	return Control{base: p}, nil
}

// InitControl prepares a fresh control page the way Linux's
// hv_ringbuffer_init does: the whole page zeroed (both indices 0, unmasked,
// no pending send) and feature bit 0 (pending send size) set. Only the side
// that creates the ring calls it, before the peer can see the page.
func InitControl(page []byte) error {
	c, err := NewControl(page)
	if err != nil {
		return err
	}
	clear(page[:ControlSize])
	c.word(OffFeatureBits).Store(FeaturePendingSendSize)
	return nil
}

func (c Control) word(off uintptr) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Add(c.base, off))
}

// WriteIndex loads write_index.
func (c Control) WriteIndex() uint32 { return c.word(OffWriteIndex).Load() }

// ReadIndex loads read_index.
func (c Control) ReadIndex() uint32 { return c.word(OffReadIndex).Load() }

// InterruptMask loads interrupt_mask.
func (c Control) InterruptMask() uint32 { return c.word(OffInterruptMask).Load() }

// PendingSendSize loads pending_send_sz.
func (c Control) PendingSendSize() uint32 { return c.word(OffPendingSendSize).Load() }

// FeatureBits loads feature_bits.
func (c Control) FeatureBits() uint32 { return c.word(OffFeatureBits).Load() }

// SetWriteIndex stores write_index. Normal code publishes through
// Writer.Commit; this is for inspection tools and fault injection.
func (c Control) SetWriteIndex(v uint32) { c.word(OffWriteIndex).Store(v) }

// SetReadIndex stores read_index (see SetWriteIndex).
func (c Control) SetReadIndex(v uint32) { c.word(OffReadIndex).Store(v) }

// SetInterruptMask stores interrupt_mask.
func (c Control) SetInterruptMask(v uint32) { c.word(OffInterruptMask).Store(v) }

// SetPendingSendSize stores pending_send_sz.
func (c Control) SetPendingSendSize(v uint32) { c.word(OffPendingSendSize).Store(v) }

// SetFeatureBits stores feature_bits.
func (c Control) SetFeatureBits(v uint32) { c.word(OffFeatureBits).Store(v) }

// ring is the state both ends share: the control accessor, the data area
// and its size.
type ring struct {
	ctl  Control
	data []byte
	size uint32
}

func newRing(control, data []byte) (ring, error) {
	c, err := NewControl(control)
	if err != nil {
		return ring{}, err
	}
	n := len(data)
	if n < MinDataSize || n > MaxDataSize || n%Align != 0 {
		return ring{}, fmt.Errorf("%w: data area of %d bytes (want a multiple of %d in [%d, %d])",
			ErrMemory, n, Align, MinDataSize, MaxDataSize)
	}
	return ring{ctl: c, data: data, size: uint32(n)}, nil
}

// checkIndex validates an index read from the control page.
func (g *ring) checkIndex(name string, v uint32) error {
	if v >= g.size {
		return corrupt(ErrIndex, "%s %#x outside data area of %#x bytes", name, v, g.size)
	}
	if v%Align != 0 {
		return corrupt(ErrIndex, "%s %#x not %d-byte aligned", name, v, Align)
	}
	return nil
}

// used is the number of bytes published and not yet consumed between
// read index r and write index w.
func (g *ring) used(w, r uint32) uint32 {
	if w >= r {
		return w - r
	}
	return g.size - r + w
}

// free is the raw free space: size - used. A write of n bytes (packet and
// trailer) is allowed only if free > n, so that it never makes w == r.
func (g *ring) free(w, r uint32) uint32 { return g.size - g.used(w, r) }

// add advances index i by n < size bytes, wrapping at the end.
func (g *ring) add(i, n uint32) uint32 {
	i += n
	if i >= g.size {
		i -= g.size
	}
	return i
}

// copyIn copies src into the data area at off, wrapping, and returns the
// index after it.
func (g *ring) copyIn(off uint32, src []byte) uint32 {
	n := copy(g.data[off:], src)
	if n < len(src) {
		return uint32(copy(g.data, src[n:]))
	}
	return g.add(off, uint32(n))
}

// copyOut copies len(dst) bytes from the data area at off, wrapping.
func (g *ring) copyOut(dst []byte, off uint32) {
	n := copy(dst, g.data[off:])
	if n < len(dst) {
		copy(dst[n:], g.data)
	}
}
