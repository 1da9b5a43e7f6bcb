package ring

import (
	"encoding/binary"
	"fmt"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// Writer is the sending end of one ring. Write* methods stage packets in
// the data area without publishing them; Commit publishes everything staged
// with one write_index store and says whether to signal the reader. A
// Writer is used by one goroutine at a time.
type Writer struct {
	ring
	next       uint32 // end of staged packets (private write index)
	committed  uint32 // last published write_index
	cachedRead uint32 // last read_index seen
	armed      bool   // we set pending_send_sz and have not cleared it
	err        error  // persistent corruption
}

// NewWriter returns the writing end of the ring in control and data. It
// starts at the published write_index and sets feature bit 0 (this writer
// sets pending_send_sz when it waits for space), which the ring's writer
// owns. Out-of-range indices in the control page are an error wrapping
// ErrCorrupt.
func NewWriter(control, data []byte) (*Writer, error) {
	g, err := newRing(control, data)
	if err != nil {
		return nil, err
	}
	w := &Writer{ring: g}
	wi := g.ctl.WriteIndex()
	if err := g.checkIndex("write index", wi); err != nil {
		return nil, err
	}
	ri := g.ctl.ReadIndex()
	if err := g.checkIndex("read index", ri); err != nil {
		return nil, err
	}
	w.next, w.committed, w.cachedRead = wi, wi, ri
	g.ctl.word(OffFeatureBits).Or(FeaturePendingSendSize)
	return w, nil
}

// Control returns the control-page accessor.
func (w *Writer) Control() Control { return w.ctl }

// Err returns the persistent corruption error, if any.
func (w *Writer) Err() error { return w.err }

// DataSize is the size of the data area.
func (w *Writer) DataSize() int { return int(w.size) }

// MaxPacketSize is the largest ring space (packet and trailer, as returned
// by InBandSize and friends) a single packet may take in this ring.
func (w *Writer) MaxPacketSize() int {
	m := int(w.size) - Align
	if m > MaxPacketLen+TrailerSize {
		m = MaxPacketLen + TrailerSize
	}
	return m
}

// Staged is the number of bytes written since the last Commit.
func (w *Writer) Staged() int { return int(w.used(w.next, w.committed)) }

// Abort drops the packets staged since the last Commit.
func (w *Writer) Abort() { w.next = w.committed }

// Free reports how many bytes of ring space (packet and trailer) the next
// packet may take, as of the last read_index load.
func (w *Writer) Free() int {
	f := int(w.free(w.next, w.cachedRead)) - Align
	if f < 0 {
		return 0
	}
	return f
}

// reserve checks that total bytes fit after the staged packets and returns
// the start offset.
func (w *Writer) reserve(total int) (uint32, error) {
	if w.err != nil {
		return 0, w.err
	}
	if total > w.MaxPacketSize() {
		return 0, fmt.Errorf("%w: %d bytes, ring allows %d", ErrTooLarge, total, w.MaxPacketSize())
	}
	// Never make write == read: the space must exceed the packet.
	if w.free(w.next, w.cachedRead) <= uint32(total) {
		ri := w.ctl.ReadIndex()
		if err := w.checkIndex("read index", ri); err != nil {
			w.err = err
			return 0, err
		}
		w.cachedRead = ri
		if w.free(w.next, ri) <= uint32(total) {
			return 0, ErrFull
		}
	}
	if w.armed {
		w.ctl.SetPendingSendSize(0)
		w.armed = false
	}
	return w.next, nil
}

// putWord stores an aligned u64; aligned words never straddle the end.
func (w *Writer) putWord(off uint32, v uint64) uint32 {
	binary.LittleEndian.PutUint64(w.data[off:], v)
	return w.add(off, 8)
}

// finish copies the payload, zeroes the padding, appends the trailer and
// advances the private write index.
func (w *Writer) finish(start, off uint32, payload []byte) {
	off = w.copyIn(off, payload)
	if pad := off % Align; pad != 0 {
		// The data size is a multiple of 8, so padding never wraps.
		end := off + Align - pad
		clear(w.data[off:end])
		off = end
		if off == w.size {
			off = 0
		}
	}
	w.next = w.putWord(off, uint64(start)<<32)
}

func (w *Writer) header(off uint32, typ PacketType, flags uint16, transID uint64, hdrLen, total int) uint32 {
	d := Descriptor{
		Type:    typ,
		Offset8: uint16(hdrLen / Align),
		Len8:    uint16((total - TrailerSize) / Align),
		Flags:   flags,
		TransID: transID,
	}
	off = w.putWord(off, d.word0())
	return w.putWord(off, transID)
}

// WriteInBand stages a TypeInBand packet with the given payload, asking
// for a completion if completion is set.
func (w *Writer) WriteInBand(transID uint64, completion bool, payload []byte) error {
	var flags uint16
	if completion {
		flags = FlagCompletionRequested
	}
	return w.writeSimple(TypeInBand, flags, transID, payload)
}

// WriteCompletion stages a TypeCompletion packet answering transID.
func (w *Writer) WriteCompletion(transID uint64, payload []byte) error {
	return w.writeSimple(TypeCompletion, 0, transID, payload)
}

func (w *Writer) writeSimple(typ PacketType, flags uint16, transID uint64, payload []byte) error {
	total := InBandSize(len(payload))
	start, err := w.reserve(total)
	if err != nil {
		return err
	}
	off := w.header(start, typ, flags, transID, DescriptorSize, total)
	w.finish(start, off, payload)
	return nil
}

// WriteGPADirect stages a TypeGPADirect packet: the header (reserved u32,
// rangecount u32), the ranges, then the payload. Linux always requests a
// completion for these. Every range must pass gpa.Range.Validate and there
// must be at least one.
func (w *Writer) WriteGPADirect(transID uint64, completion bool, ranges []gpa.Range, payload []byte) error {
	if len(ranges) == 0 {
		return fmt.Errorf("%w: gpa-direct packet without ranges", ErrArgument)
	}
	for i := range ranges {
		if err := ranges[i].Validate(); err != nil {
			return fmt.Errorf("%w: gpa-direct range %d: %w", ErrArgument, i, err)
		}
	}
	total := GPADirectSize(ranges, len(payload))
	if total > MaxPacketLen+TrailerSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, total)
	}
	start, err := w.reserve(total)
	if err != nil {
		return err
	}
	var flags uint16
	if completion {
		flags = FlagCompletionRequested
	}
	hdrLen := total - align8(len(payload)) - TrailerSize
	off := w.header(start, TypeGPADirect, flags, transID, hdrLen, total)
	off = w.putWord(off, uint64(len(ranges))<<32) // reserved 0, rangecount
	for i := range ranges {
		r := &ranges[i]
		off = w.putWord(off, uint64(r.ByteCount)|uint64(r.ByteOffset)<<32)
		for _, pfn := range r.PFNs {
			off = w.putWord(off, pfn)
		}
	}
	w.finish(start, off, payload)
	return nil
}

// WriteXferPages stages a TypeXferPages packet: the header
// (xfer_pageset_id u16, sender_owns_set u8, reserved u8, range count u32),
// the {byte_count, byte_offset} ranges, then the payload. Hosts send these
// for netvsc receive with a completion requested.
func (w *Writer) WriteXferPages(transID uint64, completion bool, setID uint16, senderOwns bool,
	ranges []XferRange, payload []byte) error {
	total := XferPagesSize(len(ranges), len(payload))
	if total > MaxPacketLen+TrailerSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, total)
	}
	start, err := w.reserve(total)
	if err != nil {
		return err
	}
	var flags uint16
	if completion {
		flags = FlagCompletionRequested
	}
	var owns uint64
	if senderOwns {
		owns = 1
	}
	hdrLen := DescriptorSize + ExtHeaderSize + 8*len(ranges)
	off := w.header(start, TypeXferPages, flags, transID, hdrLen, total)
	off = w.putWord(off, uint64(setID)|owns<<16|uint64(len(ranges))<<32)
	for _, r := range ranges {
		off = w.putWord(off, uint64(r.ByteCount)|uint64(r.ByteOffset)<<32)
	}
	w.finish(start, off, payload)
	return nil
}

// Commit publishes the staged packets with one write_index store and
// reports whether the reader must be signalled: only if the ring was empty
// before this commit (the reader had consumed everything up to the
// previous write_index) and the reader's interrupt_mask is 0 (Linux
// hv_signal_on_write; Windows hosts throttle guests that signal otherwise).
func (w *Writer) Commit() (signal bool) {
	if w.next == w.committed {
		return false
	}
	old := w.committed
	// The atomic store orders the packet copies before the index.
	w.ctl.SetWriteIndex(w.next)
	w.committed = w.next
	if w.ctl.InterruptMask() != 0 {
		return false
	}
	ri := w.ctl.ReadIndex()
	return ri == old
}

// ArmPendingSend is for a writer that got ErrFull for a packet needing
// total bytes of ring space (InBandSize and friends). It sets
// pending_send_sz so that the reader signals when that much space is free,
// then re-checks. If ready is true there is space now and the caller
// retries the write; otherwise it waits for the reader's signal and then
// retries. The next successful write clears pending_send_sz.
//
// Packets staged and not yet committed count against the space the reader
// sees, so they are added to pending_send_sz; commit before arming if
// possible so that the reader can drain them.
func (w *Writer) ArmPendingSend(total int) (ready bool, err error) {
	if w.err != nil {
		return false, w.err
	}
	if total > w.MaxPacketSize() {
		return false, fmt.Errorf("%w: %d bytes, ring allows %d", ErrTooLarge, total, w.MaxPacketSize())
	}
	need := uint64(align8(total)) + uint64(w.Staged())
	if need >= uint64(w.size) {
		return false, fmt.Errorf("%w: %d bytes plus %d staged: commit staged packets first",
			ErrTooLarge, total, w.Staged())
	}
	// The reader signals when its free space exceeds pending_send_sz;
	// its free space is ours plus the staged bytes.
	w.ctl.SetPendingSendSize(uint32(need))
	w.armed = true
	// Seq-cst store then load: a full barrier, so either the reader sees
	// our pending size or we see its read index.
	ri := w.ctl.ReadIndex()
	if err := w.checkIndex("read index", ri); err != nil {
		w.err = err
		return false, err
	}
	w.cachedRead = ri
	if w.free(w.next, ri) > uint32(total) {
		w.ctl.SetPendingSendSize(0)
		w.armed = false
		return true, nil
	}
	return false, nil
}
