package ring

import (
	"encoding/binary"
	"fmt"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// PacketType is vmpacket_descriptor.type (Linux enum vmbus_packet_type,
// FreeBSD VMBUS_CHANPKT_TYPE_*, OpenVMM PACKET_TYPE_*).
type PacketType uint16

// Packet types. Only InBand, XferPages, GPADirect and Completion are used
// on real channels; the reader rejects the others, as OpenVMM does.
const (
	TypeInvalid         PacketType = 0
	TypeSynch           PacketType = 1
	TypeAddXferPageset  PacketType = 2
	TypeRmXferPageset   PacketType = 3
	TypeEstablishGPADL  PacketType = 4
	TypeTeardownGPADL   PacketType = 5
	TypeInBand          PacketType = 6 // VM_PKT_DATA_INBAND
	TypeXferPages       PacketType = 7 // VM_PKT_DATA_USING_XFER_PAGES
	TypeUsingGPADL      PacketType = 8
	TypeGPADirect       PacketType = 9 // VM_PKT_DATA_USING_GPA_DIRECT
	TypeCancelRequest   PacketType = 10
	TypeCompletion      PacketType = 11 // VM_PKT_COMP
	TypeUsingAdditional PacketType = 12
	TypeAdditionalData  PacketType = 13
)

var typeNames = [...]string{
	"invalid", "synch", "add-xfer-pageset", "rm-xfer-pageset", "establish-gpadl",
	"teardown-gpadl", "inband", "xfer-pages", "using-gpadl", "gpa-direct",
	"cancel-request", "completion", "using-additional-pkt", "additional-data",
}

func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type-%d", uint16(t))
}

// FlagCompletionRequested is VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED:
// the receiver must answer with a TypeCompletion packet carrying the same
// transaction id. No other flag bit is defined; the reader rejects them.
const FlagCompletionRequested uint16 = 1

// Descriptor is struct vmpacket_descriptor (Linux include/linux/hyperv.h):
//
//	off 0 u16 type
//	off 2 u16 offset8   payload offset from the packet start, 8-byte units (>= 2)
//	off 4 u16 len8      packet length without trailer, 8-byte units (>= offset8)
//	off 6 u16 flags
//	off 8 u64 trans_id
type Descriptor struct {
	Type    PacketType
	Offset8 uint16
	Len8    uint16
	Flags   uint16
	TransID uint64
}

// Put writes the 16-byte wire form of d at the start of b.
func (d *Descriptor) Put(b []byte) {
	_ = b[DescriptorSize-1]
	binary.LittleEndian.PutUint64(b[0:], d.word0())
	binary.LittleEndian.PutUint64(b[8:], d.TransID)
}

func (d *Descriptor) word0() uint64 {
	return uint64(d.Type) | uint64(d.Offset8)<<16 | uint64(d.Len8)<<32 | uint64(d.Flags)<<48
}

// ParseDescriptor decodes the 16 bytes at the start of b without
// validating them.
func ParseDescriptor(b []byte) Descriptor {
	_ = b[DescriptorSize-1]
	return descriptorFromWords(binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:]))
}

func descriptorFromWords(w0, w1 uint64) Descriptor {
	return Descriptor{
		Type:    PacketType(w0),
		Offset8: uint16(w0 >> 16),
		Len8:    uint16(w0 >> 32),
		Flags:   uint16(w0 >> 48),
		TransID: w1,
	}
}

// CompletionRequested reports whether the sender asked for a completion.
func (d *Descriptor) CompletionRequested() bool { return d.Flags&FlagCompletionRequested != 0 }

// XferRange is struct vmtransfer_page_range: ByteCount bytes at ByteOffset
// into the transfer page set (for netvsc, the receive-buffer GPADL).
type XferRange struct {
	ByteCount  uint32
	ByteOffset uint32
}

// Packet is a validated view of one packet in a Reader. Its slices point
// into the ring's data area, or into the reader's scratch buffer when the
// packet wrapped around the end of the ring; either way they are valid only
// until the Reader's next Commit (after which the writer may overwrite the
// space) and must not be written to.
//
// Descriptor fields were read once and validated; the slices are live
// shared memory for in-place packets, so a hostile peer can still change
// payload bytes after validation. Parse each payload field once.
type Packet struct {
	Descriptor

	// Raw is the whole packet, descriptor included, trailer excluded:
	// Len8*8 bytes.
	Raw []byte
	// Payload is Raw[Offset8*8:]: the bytes after the descriptor and its
	// type-specific extension, padding included. The ring does not record
	// the unpadded length; the protocol above (NVSP, vPCI, ...) carries it.
	Payload []byte
	// Wrapped reports that the packet straddled the end of the data area
	// and Raw is a private copy in the reader's scratch buffer.
	Wrapped bool
	// Offset is the ring offset where the packet starts.
	Offset uint32

	// RangeCount is the number of ranges of a GPA-direct or transfer-page
	// packet, validated against the packet length.
	RangeCount uint32
	// XferSetID and SenderOwnsSet are the transfer-page header fields
	// (xfer_pageset_id, sender_owns_set) of a TypeXferPages packet.
	XferSetID     uint16
	SenderOwnsSet uint8

	// ranges is the range records after the 24-byte header.
	ranges []byte
}

// XferRange returns transfer-page range i; 0 <= i < RangeCount.
func (p *Packet) XferRange(i int) XferRange {
	b := p.ranges[8*i:]
	return XferRange{
		ByteCount:  binary.LittleEndian.Uint32(b[0:]),
		ByteOffset: binary.LittleEndian.Uint32(b[4:]),
	}
}

// AppendXferRanges appends the packet's transfer-page ranges to dst.
func (p *Packet) AppendXferRanges(dst []XferRange) []XferRange {
	if p.Type != TypeXferPages {
		return dst
	}
	for i := 0; i < int(p.RangeCount); i++ {
		dst = append(dst, p.XferRange(i))
	}
	return dst
}

// GPARanges returns an iterator over the ranges of a TypeGPADirect packet
// (empty for other types).
func (p *Packet) GPARanges() GPARangeIter {
	if p.Type != TypeGPADirect {
		return GPARangeIter{}
	}
	return GPARangeIter{b: p.ranges, left: p.RangeCount}
}

// GPARangeIter walks the gpa_range records of a GPA-direct packet without
// allocating, as long as the caller's Range has room for the PFNs.
type GPARangeIter struct {
	b    []byte
	left uint32
	err  error
}

// Len is the number of ranges not yet returned.
func (it *GPARangeIter) Len() int { return int(it.left) }

// Next decodes the next range into r, reusing r.PFNs (see gpa.Decode), and
// reports whether there was one. The reader validated every range when it
// accepted the packet; an error here means the peer changed the packet in
// shared memory since, and is reported by Err.
func (it *GPARangeIter) Next(r *gpa.Range) bool {
	if it.left == 0 || it.err != nil {
		return false
	}
	n, err := gpa.Decode(it.b, r, 0)
	if err != nil {
		it.err = corrupt(ErrRange, "range changed after validation: %w", err)
		return false
	}
	it.b = it.b[n:]
	it.left--
	return true
}

// Err returns the error that stopped Next, if any.
func (it *GPARangeIter) Err() error { return it.err }

// checkGPARanges validates count gpa_range records at the start of b
// without allocating.
func checkGPARanges(b []byte, count uint32) error {
	// Each record is at least a header and one PFN.
	if count == 0 || uint64(count)*(gpa.HeaderSize+8) > uint64(len(b)) {
		return corrupt(ErrRangeCount, "gpa-direct range count %d in %d bytes of ranges", count, len(b))
	}
	for i := uint32(0); i < count; i++ {
		if len(b) < gpa.HeaderSize {
			return corrupt(ErrRange, "range %d: header past the end of the packet", i)
		}
		bc := binary.LittleEndian.Uint32(b[0:])
		bo := binary.LittleEndian.Uint32(b[4:])
		if bc == 0 {
			return corrupt(ErrRange, "range %d: zero byte count", i)
		}
		if bo >= gpa.PageSize {
			return corrupt(ErrRange, "range %d: byte offset %d not inside the first page", i, bo)
		}
		need := gpa.HeaderSize + 8*gpa.PagesFor(bo, bc)
		if len(b) < need {
			return corrupt(ErrRange, "range %d: %d bytes of pfns past the end of the packet", i, need)
		}
		b = b[need:]
	}
	return nil
}

func align8(n int) int { return (n + Align - 1) &^ (Align - 1) }

// InBandSize is the ring space (packet and trailer) an in-band or
// completion packet with a payload of n bytes takes.
func InBandSize(n int) int { return DescriptorSize + align8(n) + TrailerSize }

// XferPagesSize is the ring space of a transfer-page packet with nranges
// ranges and a payload of n bytes.
func XferPagesSize(nranges, n int) int {
	return DescriptorSize + ExtHeaderSize + 8*nranges + align8(n) + TrailerSize
}

// GPADirectSize is the ring space of a GPA-direct packet with the given
// ranges and a payload of n bytes.
func GPADirectSize(ranges []gpa.Range, n int) int {
	s := DescriptorSize + ExtHeaderSize + align8(n) + TrailerSize
	for i := range ranges {
		s += ranges[i].EncodedLen()
	}
	return s
}
