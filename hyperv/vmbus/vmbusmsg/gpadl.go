package vmbusmsg

import (
	"fmt"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// GPADL message geometry (spec §4; FreeBSD VMBUS_CHANMSG_GPADL_CONN_PGMAX
// = 26 and VMBUS_CHANMSG_GPADL_SUBCONN_PGMAX = 28; OpenVMM
// GpadlHeader::MAX_DATA_VALUES = 27 u64 words including the range header).
//
// A GPADL's range array (range_buflen bytes of gpa.Range records) is a
// sequence of u64 words: the header message carries the first
// GPADLHeaderMaxData bytes, each body the next GPADLBodyMaxData.
const (
	gpadlHeaderFixed   = 20                                          // header + relid + gpadl + range_buflen + rangecount
	gpadlBodyFixed     = 16                                          // header + msgnumber + gpadl
	GPADLHeaderMaxData = (MaxMessageSize - gpadlHeaderFixed) / 8 * 8 // 216 bytes = 27 words
	GPADLBodyMaxData   = MaxMessageSize - gpadlBodyFixed             // 224 bytes = 28 words
	// GPADLHeaderMaxPFNs is how many PFNs of a single-range GPADL fit in
	// the header message.
	GPADLHeaderMaxPFNs = GPADLHeaderMaxData/8 - 1 // 26
	// GPADLBodyMaxPFNs is how many PFNs fit in one body message.
	GPADLBodyMaxPFNs = GPADLBodyMaxData / 8 // 28
	// MaxRangeBufLen is the largest range array range_buflen (u16) can
	// describe: 8190 pages (just under 32 MiB) in one range.
	MaxRangeBufLen = 0xFFF8
)

// Status values seen in GPADL_CREATED, OPENCHANNEL_RESULT and
// TL_CONNECT_RESULT (OpenVMM protocol.rs).
const (
	StatusSuccess           = 0
	StatusUnsuccessful      = 0x8000FFFF // what OpenVMM sends for a failed GPADL or open
	StatusConnectionRefused = 0xC0000236
)

// GPADLHeader is GPADL_HEADER (8), guest to host (Linux struct
// vmbus_channel_gpadl_header; FreeBSD vmbus_chanmsg_gpadl_conn; OpenVMM
// GpadlHeader):
//
//	off 8   u32 ChildRelID
//	off 12  u32 GPADL (guest-chosen handle, non-zero)
//	off 16  u16 RangeBufLen (bytes of the whole range array, incl. bodies)
//	off 18  u16 RangeCount
//	off 20  u8  Data[] (the first bytes of the range array: gpa.Range
//	            records {u32 byte_count, u32 byte_offset, u64 pfn[]};
//	            the PFNs are not 8-byte aligned in the message)
//
// Decoding checks that Data is whole u64 words, holds at least the first
// range's header, does not exceed RangeBufLen, and that every range
// present so far is valid and fits RangeBufLen and RangeCount; when Data
// is the whole array, the ranges must consume it exactly. Data is a copy.
type GPADLHeader struct {
	ChildRelID  uint32
	GPADL       uint32
	RangeBufLen uint16
	RangeCount  uint16
	Data        []byte
}

// Complete reports whether the header carries the whole range array (no
// GPADL_BODY follows).
func (m *GPADLHeader) Complete() bool { return len(m.Data) == int(m.RangeBufLen) }

// Ranges parses the range array of a complete header.
func (m *GPADLHeader) Ranges() ([]gpa.Range, error) {
	if !m.Complete() {
		return nil, fmt.Errorf("%w: GPADL %#x header holds %d of %d range bytes", ErrInconsistent, m.GPADL, len(m.Data), m.RangeBufLen)
	}
	return parseRanges(m.Data, int(m.RangeCount))
}

func (m *GPADLHeader) Type() MessageType { return MsgGPADLHeader }
func (m *GPADLHeader) EncodedLen() int   { return gpadlHeaderFixed + len(m.Data) }
func (m *GPADLHeader) Encode() []byte    { return encode(m) }
func (m *GPADLHeader) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgGPADLHeader)
	b = le.AppendUint32(b, m.ChildRelID)
	b = le.AppendUint32(b, m.GPADL)
	b = le.AppendUint16(b, m.RangeBufLen)
	b = le.AppendUint16(b, m.RangeCount)
	return append(b, m.Data...)
}

func (m *GPADLHeader) decode(b []byte) error {
	m.ChildRelID, m.GPADL = u32(b, 8), u32(b, 12)
	m.RangeBufLen, m.RangeCount = u16(b, 16), u16(b, 18)
	data := b[gpadlHeaderFixed:]
	if err := m.check(data); err != nil {
		return err
	}
	m.Data = append([]byte(nil), data...)
	return nil
}

// Validate applies the checks decoding does to a header built by hand.
func (m *GPADLHeader) Validate() error {
	if len(m.Data) > GPADLHeaderMaxData {
		return fmt.Errorf("%w: GPADL %#x header carries %d range bytes, max %d", ErrTooLong, m.GPADL, len(m.Data), GPADLHeaderMaxData)
	}
	if len(m.Data) < gpa.HeaderSize {
		return fmt.Errorf("%w: GPADL %#x header without its first range", ErrShort, m.GPADL)
	}
	return m.check(m.Data)
}

func (m *GPADLHeader) check(data []byte) error {
	switch {
	case len(data)%8 != 0:
		return fmt.Errorf("%w: GPADL %#x header carries %d range bytes, not whole words", ErrInconsistent, m.GPADL, len(data))
	case m.RangeCount == 0:
		return fmt.Errorf("%w: GPADL %#x with no ranges", ErrInconsistent, m.GPADL)
	case m.RangeBufLen%8 != 0 || int(m.RangeBufLen) < 16*int(m.RangeCount):
		return fmt.Errorf("%w: GPADL %#x range_buflen %d for %d ranges", ErrInconsistent, m.GPADL, m.RangeBufLen, m.RangeCount)
	case len(data) > int(m.RangeBufLen):
		return fmt.Errorf("%w: GPADL %#x header carries %d range bytes, range_buflen %d", ErrInconsistent, m.GPADL, len(data), m.RangeBufLen)
	}
	if err := checkRangePrefix(data, int(m.RangeCount), int(m.RangeBufLen)); err != nil {
		return fmt.Errorf("GPADL %#x header: %w", m.GPADL, err)
	}
	return nil
}

// checkRangePrefix validates the range records whose headers lie in data,
// the first len(data) bytes of a range array of buflen bytes and count
// ranges. With the whole array present the ranges must fill it exactly.
func checkRangePrefix(data []byte, count, buflen int) error {
	off, n := 0, 0
	for off+gpa.HeaderSize <= len(data) {
		if n == count {
			return fmt.Errorf("%w: more than %d ranges", ErrInconsistent, count)
		}
		bc, bo := u32(data, off), u32(data, off+4)
		if bc == 0 || bo >= gpa.PageSize {
			return fmt.Errorf("%w: range %d byte_count %d byte_offset %d", ErrInconsistent, n, bc, bo)
		}
		end := off + gpa.HeaderSize + 8*gpa.PagesFor(bo, bc)
		// Every later range needs at least 16 bytes.
		if end+16*(count-n-1) > buflen {
			return fmt.Errorf("%w: range %d of %d pages overruns range_buflen %d", ErrInconsistent, n, gpa.PagesFor(bo, bc), buflen)
		}
		off, n = end, n+1
	}
	if len(data) == buflen && (n != count || off != buflen) {
		return fmt.Errorf("%w: %d ranges in %d bytes, want %d ranges in %d", ErrInconsistent, n, off, count, buflen)
	}
	return nil
}

// parseRanges decodes exactly count ranges filling data.
func parseRanges(data []byte, count int) ([]gpa.Range, error) {
	if err := checkRangePrefix(data, count, len(data)); err != nil {
		return nil, err
	}
	out := make([]gpa.Range, count)
	off := 0
	for i := range out {
		n, err := gpa.Decode(data[off:], &out[i], 0)
		if err != nil {
			return nil, fmt.Errorf("%w: range %d: %w", ErrInconsistent, i, err)
		}
		off += n
	}
	return out, nil
}

// GPADLBody is GPADL_BODY (9), guest to host (Linux struct
// vmbus_channel_gpadl_body; FreeBSD vmbus_chanmsg_gpadl_subconn; OpenVMM
// GpadlBody):
//
//	off 8   u32 MsgNumber (Linux and FreeBSD send 0; OpenVMM calls it rsvd)
//	off 12  u32 GPADL
//	off 16  u8  Data[] (the next whole u64 words of the range array:
//	            normally PFNs, or a later range's header)
//
// Data is a copy, at least one word.
type GPADLBody struct {
	MsgNumber uint32
	GPADL     uint32
	Data      []byte
}

func (m *GPADLBody) Type() MessageType { return MsgGPADLBody }
func (m *GPADLBody) EncodedLen() int   { return gpadlBodyFixed + len(m.Data) }
func (m *GPADLBody) Encode() []byte    { return encode(m) }
func (m *GPADLBody) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgGPADLBody)
	b = le.AppendUint32(b, m.MsgNumber)
	b = le.AppendUint32(b, m.GPADL)
	return append(b, m.Data...)
}

func (m *GPADLBody) decode(b []byte) error {
	m.MsgNumber, m.GPADL = u32(b, 8), u32(b, 12)
	data := b[gpadlBodyFixed:]
	if len(data)%8 != 0 {
		return fmt.Errorf("%w: GPADL %#x body carries %d bytes, not whole words", ErrInconsistent, m.GPADL, len(data))
	}
	m.Data = append([]byte(nil), data...)
	return nil
}

// PageRange returns the range describing whole 4 KiB pages: byte_offset 0,
// byte_count = 4096 × len(pfns). A ring-buffer GPADL is one such range
// over both rings (the guest-to-host ring's pages first).
func PageRange(pfns []uint64) gpa.Range {
	return gpa.Range{ByteCount: uint32(len(pfns)) * gpa.PageSize, PFNs: pfns}
}

// SplitGPADL builds the GPADL_HEADER and as many GPADL_BODY messages as the
// ranges need: the header carries the first 27 words of the range array
// (26 PFNs of a single range), each body the next 28. Every range must be
// valid (gpa.Range.Validate), and the array must fit range_buflen's u16
// (ErrTooLarge). The messages share no memory with ranges.
func SplitGPADL(childRelID, gpadlID uint32, ranges []gpa.Range) (*GPADLHeader, []*GPADLBody, error) {
	if len(ranges) == 0 {
		return nil, nil, fmt.Errorf("%w: GPADL %#x with no ranges", ErrInconsistent, gpadlID)
	}
	total := 0
	for i := range ranges {
		if err := ranges[i].Validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: GPADL %#x range %d: %w", ErrInconsistent, gpadlID, i, err)
		}
		total += ranges[i].EncodedLen()
		if total > MaxRangeBufLen || len(ranges) > 0xFFFF {
			return nil, nil, fmt.Errorf("%w: GPADL %#x range array over %d bytes", ErrTooLarge, gpadlID, MaxRangeBufLen)
		}
	}
	data := make([]byte, 0, total)
	for i := range ranges {
		data = ranges[i].Append(data)
	}
	n := min(len(data), GPADLHeaderMaxData)
	h := &GPADLHeader{ChildRelID: childRelID, GPADL: gpadlID, RangeBufLen: uint16(total),
		RangeCount: uint16(len(ranges)), Data: data[:n:n]}
	var bodies []*GPADLBody
	for rest := data[n:]; len(rest) > 0; {
		k := min(len(rest), GPADLBodyMaxData)
		bodies = append(bodies, &GPADLBody{GPADL: gpadlID, Data: rest[:k:k]})
		rest = rest[k:]
	}
	return h, bodies, nil
}

// GPADLCreated is GPADL_CREATED (10), host to guest, 20 bytes, sent once
// every range byte arrived (Linux struct vmbus_channel_gpadl_created;
// FreeBSD vmbus_chanmsg_gpadl_connresp):
//
//	off 8   u32 ChildRelID
//	off 12  u32 GPADL
//	off 16  u32 CreationStatus (0 = success)
type GPADLCreated struct {
	ChildRelID     uint32
	GPADL          uint32
	CreationStatus uint32
}

func (m *GPADLCreated) Type() MessageType { return MsgGPADLCreated }
func (m *GPADLCreated) EncodedLen() int   { return 20 }
func (m *GPADLCreated) Encode() []byte    { return encode(m) }
func (m *GPADLCreated) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendHeader(b, MsgGPADLCreated), m.ChildRelID)
	b = le.AppendUint32(b, m.GPADL)
	return le.AppendUint32(b, m.CreationStatus)
}
func (m *GPADLCreated) decode(b []byte) error {
	m.ChildRelID, m.GPADL, m.CreationStatus = u32(b, 8), u32(b, 12), u32(b, 16)
	return nil
}

// GPADLTeardown is GPADL_TEARDOWN (11), guest to host, 16 bytes (Linux
// struct vmbus_channel_gpadl_teardown; FreeBSD vmbus_chanmsg_gpadl_disconn):
//
//	off 8   u32 ChildRelID
//	off 12  u32 GPADL
type GPADLTeardown struct {
	ChildRelID uint32
	GPADL      uint32
}

func (m *GPADLTeardown) Type() MessageType { return MsgGPADLTeardown }
func (m *GPADLTeardown) EncodedLen() int   { return 16 }
func (m *GPADLTeardown) Encode() []byte    { return encode(m) }
func (m *GPADLTeardown) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendHeader(b, MsgGPADLTeardown), m.ChildRelID)
	return le.AppendUint32(b, m.GPADL)
}
func (m *GPADLTeardown) decode(b []byte) error {
	m.ChildRelID, m.GPADL = u32(b, 8), u32(b, 12)
	return nil
}

// GPADLTorndown is GPADL_TORNDOWN (12), host to guest, 12 bytes, matched by
// the GPADL handle alone (Linux struct vmbus_channel_gpadl_torndown):
//
//	off 8  u32 GPADL
type GPADLTorndown struct{ GPADL uint32 }

func (m *GPADLTorndown) Type() MessageType { return MsgGPADLTorndown }
func (m *GPADLTorndown) EncodedLen() int   { return 12 }
func (m *GPADLTorndown) Encode() []byte    { return encode(m) }
func (m *GPADLTorndown) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, MsgGPADLTorndown), m.GPADL)
}
func (m *GPADLTorndown) decode(b []byte) error { m.GPADL = u32(b, 8); return nil }
