package ring

import (
	"encoding/binary"
	"fmt"
)

// ReaderOptions configures a Reader.
type ReaderOptions struct {
	// Scratch receives the private copy of a packet that wraps around the
	// end of the data area. Packets that do not wrap are viewed in place.
	// Between two commits at most one packet can wrap (the unconsumed
	// span is shorter than the ring), so one buffer serves a whole batch.
	// Nil means the reader allocates DataSize bytes once, enough for any
	// packet; a smaller buffer makes larger wrapped packets fail with
	// ErrScratch.
	Scratch []byte
}

// Reader is the receiving end of one ring. Next peeks packets one by one,
// advancing a private read position; Commit publishes that position with
// one read_index store and says whether to signal the writer. A Reader is
// used by one goroutine at a time.
//
// # Wrapped packets
//
// A packet that does not wrap is returned as a view into the data area; a
// packet that straddles the end is copied, once, into the scratch buffer
// and viewed there, as Linux copies packets into its max_pkt_size buffer.
// Views of either kind stay valid until the next Commit. This keeps the
// common case zero-copy and the rare case zero-allocation, and it gives
// every consumer above a contiguous payload.
type Reader struct {
	ring
	next        uint32 // private read position
	committed   uint32 // last published read_index
	cachedWrite uint32 // last write_index seen
	scratch     []byte
	cur         Packet // handed to Drain visitors
	err         error  // persistent: corruption or a too-small scratch
}

// NewReader returns the reading end of the ring in control and data,
// starting at the published read_index. opts may be nil.
func NewReader(control, data []byte, opts *ReaderOptions) (*Reader, error) {
	g, err := newRing(control, data)
	if err != nil {
		return nil, err
	}
	r := &Reader{ring: g}
	ri := g.ctl.ReadIndex()
	if err := g.checkIndex("read index", ri); err != nil {
		return nil, err
	}
	wi := g.ctl.WriteIndex()
	if err := g.checkIndex("write index", wi); err != nil {
		return nil, err
	}
	r.next, r.committed, r.cachedWrite = ri, ri, wi
	if opts != nil && opts.Scratch != nil {
		r.scratch = opts.Scratch
	} else {
		r.scratch = make([]byte, len(data))
	}
	return r, nil
}

// Control returns the control-page accessor.
func (r *Reader) Control() Control { return r.ctl }

// Err returns the persistent error, if any.
func (r *Reader) Err() error { return r.err }

// DataSize is the size of the data area.
func (r *Reader) DataSize() int { return int(r.size) }

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// Available loads write_index and returns the number of published bytes
// after the private read position (0 if the index is bad; Next reports it).
func (r *Reader) Available() int {
	wi := r.ctl.WriteIndex()
	if r.checkIndex("write index", wi) != nil {
		return 0
	}
	return int(r.used(wi, r.next))
}

// Next validates the packet at the private read position, fills p with a
// view of it and advances past it (and its trailer). It returns ErrEmpty
// when no published packet remains. Nothing is released to the writer
// until Commit; Rollback re-delivers the packets read since.
func (r *Reader) Next(p *Packet) error {
	if r.err != nil {
		return r.err
	}
	if r.next == r.cachedWrite {
		wi := r.ctl.WriteIndex() // acquire: packet bytes before it are visible
		if err := r.checkIndex("write index", wi); err != nil {
			return r.fail(err)
		}
		r.cachedWrite = wi
		if wi == r.next {
			return ErrEmpty
		}
	}
	start := r.next
	avail := r.used(r.cachedWrite, start)
	if avail < DescriptorSize+TrailerSize {
		return r.fail(corrupt(ErrTruncated, "%d bytes published at %#x, less than a descriptor and trailer", avail, start))
	}
	// Both descriptor words are aligned, so neither straddles the end,
	// though the second may sit at offset 0 after the first.
	d := descriptorFromWords(
		binary.LittleEndian.Uint64(r.data[start:]),
		binary.LittleEndian.Uint64(r.data[r.add(start, 8):]))
	if d.Offset8 < DescriptorSize/Align || d.Len8 < d.Offset8 {
		return r.fail(corrupt(ErrDescriptor, "offset8 %d len8 %d at %#x", d.Offset8, d.Len8, start))
	}
	plen := uint32(d.Len8) * Align
	if plen+TrailerSize > avail {
		return r.fail(corrupt(ErrTruncated, "packet of %d bytes plus trailer at %#x, only %d published",
			plen, start, avail))
	}
	if d.Flags&^FlagCompletionRequested != 0 {
		return r.fail(corrupt(ErrFlags, "flags %#x at %#x", d.Flags, start))
	}
	switch d.Type {
	case TypeInBand, TypeCompletion, TypeGPADirect, TypeXferPages:
	default:
		return r.fail(corrupt(ErrType, "type %d (%v) at %#x", uint16(d.Type), d.Type, start))
	}

	var raw []byte
	wrapped := false
	if end := start + plen; end <= r.size {
		raw = r.data[start:end:end]
	} else {
		if int(plen) > len(r.scratch) {
			return r.fail(fmt.Errorf("%w: %d bytes at %#x, scratch holds %d", ErrScratch, plen, start, len(r.scratch)))
		}
		raw = r.scratch[:plen:plen]
		r.copyOut(raw, start)
		wrapped = true
	}
	hdr := int(d.Offset8) * Align
	*p = Packet{
		Descriptor: d,
		Raw:        raw,
		Payload:    raw[hdr:],
		Wrapped:    wrapped,
		Offset:     start,
	}
	switch d.Type {
	case TypeGPADirect:
		if hdr < DescriptorSize+ExtHeaderSize {
			return r.fail(corrupt(ErrDescriptor, "gpa-direct offset8 %d leaves no room for its header at %#x", d.Offset8, start))
		}
		// Bytes 16..19 are reserved; OpenVMM notes senders leave garbage.
		count := binary.LittleEndian.Uint32(raw[20:])
		ranges := raw[DescriptorSize+ExtHeaderSize : hdr]
		if err := checkGPARanges(ranges, count); err != nil {
			return r.fail(fmt.Errorf("%w (packet at %#x)", err, start))
		}
		p.RangeCount, p.ranges = count, ranges
	case TypeXferPages:
		if hdr < DescriptorSize+ExtHeaderSize {
			return r.fail(corrupt(ErrDescriptor, "xfer-pages offset8 %d leaves no room for its header at %#x", d.Offset8, start))
		}
		count := binary.LittleEndian.Uint32(raw[20:])
		ranges := raw[DescriptorSize+ExtHeaderSize : hdr]
		if uint64(count)*8 > uint64(len(ranges)) {
			return r.fail(corrupt(ErrRangeCount, "xfer-pages range count %d in %d bytes at %#x", count, len(ranges), start))
		}
		p.RangeCount, p.ranges = count, ranges
		p.XferSetID = binary.LittleEndian.Uint16(raw[16:])
		p.SenderOwnsSet = raw[18] // raw[19] is reserved
	}
	r.next = r.add(start, plen+TrailerSize)
	return nil
}

// ReadBatch peeks up to len(batch) packets into batch and returns how many
// it filled. It stops early, with a nil error, when the ring is empty; on
// corruption it returns the packets read before it and the error. The
// caller processes batch[:n] and then calls Commit.
func (r *Reader) ReadBatch(batch []Packet) (n int, err error) {
	for n < len(batch) {
		if err := r.Next(&batch[n]); err != nil {
			if err == ErrEmpty {
				return n, nil
			}
			return n, err
		}
		n++
	}
	return n, nil
}

// Drain reads up to max packets (all published ones if max <= 0), calls
// visit for each, then commits once. The *Packet is valid only during the
// call. If visit returns an error, that packet is not consumed (it is
// delivered again next time), the ones before it are committed, and the
// error is returned. signal is Commit's answer.
func (r *Reader) Drain(max int, visit func(*Packet) error) (n int, signal bool, err error) {
	for max <= 0 || n < max {
		before := r.next
		if err = r.Next(&r.cur); err != nil {
			if err == ErrEmpty {
				err = nil
			}
			break
		}
		if err = visit(&r.cur); err != nil {
			r.next = before
			break
		}
		n++
	}
	return n, r.Commit(), err
}

// Rollback forgets the packets read since the last Commit, so that Next
// returns them again.
func (r *Reader) Rollback() { r.next = r.committed }

// Commit publishes the private read position with one read_index store,
// releasing the space of every packet read so far, and reports whether the
// writer must be signalled: only if the ring's writer advertised the
// pending-send-size feature, has set pending_send_sz, and the free space
// went from at most pending_send_sz to more than it (Linux
// hv_pkt_iter_close). pending_send_sz is rounded down to a multiple of 8
// first, as OpenVMM does; with 8-byte free space the two published rules
// then agree. interrupt_mask plays no part here.
func (r *Reader) Commit() (signal bool) {
	if r.next == r.committed {
		return false
	}
	old := r.committed
	// The atomic store orders our reads of the packets before the index.
	r.ctl.SetReadIndex(r.next)
	r.committed = r.next
	if r.ctl.FeatureBits()&FeaturePendingSendSize == 0 {
		return false
	}
	// Seq-cst: read_index store, then pending_send_sz load, then
	// write_index load, the order Linux requires.
	pss := r.ctl.PendingSendSize() &^ (Align - 1)
	if pss == 0 {
		return false
	}
	wi := r.ctl.WriteIndex()
	if r.checkIndex("write index", wi) != nil {
		return false // Next will report it
	}
	return r.free(wi, old) <= pss && r.free(wi, r.next) > pss
}

// BeginRead sets interrupt_mask: the writer need not signal while this
// reader is draining. Use it around a drain loop:
//
//	for {
//		r.BeginRead()
//		... Next/ReadBatch/Drain, Commit (signal the writer if it says so)
//		if !r.EndRead() {
//			break // wait for the writer's signal
//		}
//	}
func (r *Reader) BeginRead() { r.ctl.SetInterruptMask(1) }

// EndRead clears interrupt_mask and then, after that full barrier, looks
// at write_index again. It returns true if data arrived that has not been
// read yet; the writer may have seen the mask set and not signalled, so
// the caller must drain again instead of waiting. When it returns false
// the writer's next commit will signal.
func (r *Reader) EndRead() (more bool) {
	r.ctl.SetInterruptMask(0)
	wi := r.ctl.WriteIndex()
	if r.checkIndex("write index", wi) != nil {
		return r.err == nil // let Next report it
	}
	return wi != r.next
}
