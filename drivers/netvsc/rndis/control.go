package rndis

import "fmt"

// HeaderSize is the common header: u32 msg_type @0, u32 msg_len @4
// (msg_len counts the whole message: header, body, data and padding).
const HeaderSize = 8

const (
	requestFixed    = 28 // QUERY and SET up to dev_vc_handle
	initCompleteMin = 48 // FreeBSD accepts an INITIALIZE_CMPLT without af_list_size
	initCompleteLen = 52

	// RequestInfoOffset is info_buf_offset in QUERY and SET: the data
	// starts at byte 28, 20 bytes after RequestID. Hyper-V requires it
	// even when there is no data (FreeBSD hn_rndis.c).
	RequestInfoOffset = 20
	// CompleteInfoOffset is info_buf_offset in QUERY_CMPLT as hosts
	// send it: data at byte 24.
	CompleteInfoOffset = 16
	// StatusBufferOffset is status_buf_offset in INDICATE_STATUS as
	// OpenVMM sends it: buffer at byte 20.
	StatusBufferOffset = 12
)

// Message is one decoded RNDIS message; the concrete types are pointers to
// the structs of this package.
type Message interface {
	// Type returns the message type written in the header.
	Type() MessageType
	// EncodedLen returns the number of bytes AppendTo writes (msg_len).
	EncodedLen() int
	// AppendTo appends the message's exact wire bytes.
	AppendTo(b []byte) []byte
	// Encode returns AppendTo's bytes in a new slice.
	Encode() []byte

	// decode fills the message from b, whose type and minimum size the
	// caller has checked. b ends at msg_len, except for
	// INDICATE_STATUS, which gets every received byte.
	decode(b []byte) error
}

func encode(m Message) []byte { return m.AppendTo(make([]byte, 0, m.EncodedLen())) }

func appendHeader(b []byte, t MessageType, n int) []byte {
	return le.AppendUint32(le.AppendUint32(b, uint32(t)), uint32(n))
}

func appendU32s(b []byte, v ...uint32) []byte {
	for _, x := range v {
		b = le.AppendUint32(b, x)
	}
	return b
}

// region validates a (length, offset) pair whose offset counts from byte
// base of b and may not point below byte base+minOff, and returns a copy
// of the bytes (nil when the length is 0: the offset is then ignored).
func region(b []byte, what string, length, off uint32, base, minOff int) ([]byte, error) {
	if length == 0 {
		return nil, nil
	}
	start := uint64(base) + uint64(off)
	if off < uint32(minOff) || start+uint64(length) > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %s of %d bytes at offset %d in %d bytes", ErrOffset, what, length, off, len(b))
	}
	return append([]byte(nil), b[start:start+uint64(length)]...), nil
}

// Initialize is INITIALIZE_MSG, guest to host, 24 bytes (Linux struct
// rndis_initialize_request):
//
//	off 8   u32 RequestID
//	off 12  u32 MajorVersion (1)
//	off 16  u32 MinorVersion (0)
//	off 20  u32 MaxTransferSize (Linux/DPDK 0x4000, FreeBSD 2048)
type Initialize struct {
	RequestID       uint32
	MajorVersion    uint32
	MinorVersion    uint32
	MaxTransferSize uint32
}

func (m *Initialize) Type() MessageType { return MsgInitialize }
func (m *Initialize) EncodedLen() int   { return 24 }
func (m *Initialize) Encode() []byte    { return encode(m) }
func (m *Initialize) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgInitialize, 24), m.RequestID, m.MajorVersion, m.MinorVersion, m.MaxTransferSize)
}
func (m *Initialize) decode(b []byte) error {
	*m = Initialize{u32(b, 8), u32(b, 12), u32(b, 16), u32(b, 20)}
	return nil
}

// InitializeComplete is INITIALIZE_CMPLT, host to guest, 52 bytes (Linux
// struct rndis_initialize_complete; 48 accepted, as FreeBSD does, with
// AFListSize then 0):
//
//	off 8   u32 RequestID
//	off 12  u32 Status
//	off 16  u32 MajorVersion
//	off 20  u32 MinorVersion
//	off 24  u32 DeviceFlags (1 connectionless)
//	off 28  u32 Medium (0 = 802.3)
//	off 32  u32 MaxPacketsPerMessage (OpenVMM 8)
//	off 36  u32 MaxTransferSize (OpenVMM 0xEFFFFFFF)
//	off 40  u32 PacketAlignmentFactor (alignment = 1 << factor; OpenVMM 3)
//	off 44  u32 AFListOffset
//	off 48  u32 AFListSize
type InitializeComplete struct {
	RequestID             uint32
	Status                Status
	MajorVersion          uint32
	MinorVersion          uint32
	DeviceFlags           uint32
	Medium                uint32
	MaxPacketsPerMessage  uint32
	MaxTransferSize       uint32
	PacketAlignmentFactor uint32
	AFListOffset          uint32
	AFListSize            uint32
}

// PacketAlignment returns 1 << PacketAlignmentFactor, capped at 4 KiB so a
// hostile factor cannot overflow.
func (m *InitializeComplete) PacketAlignment() int {
	return 1 << min(m.PacketAlignmentFactor, 12)
}

func (m *InitializeComplete) Type() MessageType { return MsgInitializeComplete }
func (m *InitializeComplete) EncodedLen() int   { return initCompleteLen }
func (m *InitializeComplete) Encode() []byte    { return encode(m) }
func (m *InitializeComplete) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgInitializeComplete, initCompleteLen), m.RequestID, uint32(m.Status),
		m.MajorVersion, m.MinorVersion, m.DeviceFlags, m.Medium, m.MaxPacketsPerMessage, m.MaxTransferSize,
		m.PacketAlignmentFactor, m.AFListOffset, m.AFListSize)
}
func (m *InitializeComplete) decode(b []byte) error {
	*m = InitializeComplete{u32(b, 8), Status(u32(b, 12)), u32(b, 16), u32(b, 20), u32(b, 24), u32(b, 28),
		u32(b, 32), u32(b, 36), u32(b, 40), u32(b, 44), 0}
	if len(b) >= initCompleteLen {
		m.AFListSize = u32(b, 48)
	}
	return nil
}

// reqOnly is the layout of HALT_MSG and KEEPALIVE_MSG (12 bytes) and,
// with Reserved in place of RequestID, RESET_MSG:
//
//	off 8  u32 RequestID
type reqOnly struct{ RequestID uint32 }

func (m *reqOnly) decode(b []byte) error { m.RequestID = u32(b, 8); return nil }

// Halt is HALT_MSG, guest to host; the host sends no RNDIS reply (Linux
// struct rndis_halt_request).
type Halt struct{ reqOnly }

func (m *Halt) Type() MessageType { return MsgHalt }
func (m *Halt) EncodedLen() int   { return 12 }
func (m *Halt) Encode() []byte    { return encode(m) }
func (m *Halt) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgHalt, 12), m.RequestID)
}

// KeepAlive is KEEPALIVE_MSG, guest to host (Linux struct
// rndis_keepalive_request).
type KeepAlive struct{ reqOnly }

func (m *KeepAlive) Type() MessageType { return MsgKeepAlive }
func (m *KeepAlive) EncodedLen() int   { return 12 }
func (m *KeepAlive) Encode() []byte    { return encode(m) }
func (m *KeepAlive) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgKeepAlive, 12), m.RequestID)
}

// Reset is RESET_MSG, guest to host, 12 bytes (Linux struct
// rndis_reset_request; unused on Hyper-V, OpenVMM does not implement it):
//
//	off 8  u32 Reserved
type Reset struct{ Reserved uint32 }

func (m *Reset) Type() MessageType { return MsgReset }
func (m *Reset) EncodedLen() int   { return 12 }
func (m *Reset) Encode() []byte    { return encode(m) }
func (m *Reset) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgReset, 12), m.Reserved)
}
func (m *Reset) decode(b []byte) error { m.Reserved = u32(b, 8); return nil }

// reqStatus is the layout of SET_CMPLT and KEEPALIVE_CMPLT, 16 bytes
// (Linux struct rndis_set_complete, rndis_keepalive_complete):
//
//	off 8   u32 RequestID
//	off 12  u32 Status
type reqStatus struct {
	RequestID uint32
	Status    Status
}

func (m *reqStatus) decode(b []byte) error {
	m.RequestID, m.Status = u32(b, 8), Status(u32(b, 12))
	return nil
}

// SetComplete is SET_CMPLT, host to guest; see reqStatus.
type SetComplete struct{ reqStatus }

func (m *SetComplete) Type() MessageType { return MsgSetComplete }
func (m *SetComplete) EncodedLen() int   { return 16 }
func (m *SetComplete) Encode() []byte    { return encode(m) }
func (m *SetComplete) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgSetComplete, 16), m.RequestID, uint32(m.Status))
}

// KeepAliveComplete is KEEPALIVE_CMPLT, host to guest; see reqStatus.
type KeepAliveComplete struct{ reqStatus }

func (m *KeepAliveComplete) Type() MessageType { return MsgKeepAliveComplete }
func (m *KeepAliveComplete) EncodedLen() int   { return 16 }
func (m *KeepAliveComplete) Encode() []byte    { return encode(m) }
func (m *KeepAliveComplete) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgKeepAliveComplete, 16), m.RequestID, uint32(m.Status))
}

// ResetComplete is RESET_CMPLT, host to guest, 16 bytes; it has no
// request id (Linux struct rndis_reset_complete):
//
//	off 8   u32 Status
//	off 12  u32 AddressingReset
type ResetComplete struct {
	Status          Status
	AddressingReset uint32
}

func (m *ResetComplete) Type() MessageType { return MsgResetComplete }
func (m *ResetComplete) EncodedLen() int   { return 16 }
func (m *ResetComplete) Encode() []byte    { return encode(m) }
func (m *ResetComplete) AppendTo(b []byte) []byte {
	return appendU32s(appendHeader(b, MsgResetComplete, 16), uint32(m.Status), m.AddressingReset)
}
func (m *ResetComplete) decode(b []byte) error {
	m.Status, m.AddressingReset = Status(u32(b, 8)), u32(b, 12)
	return nil
}

// request is the layout of QUERY_MSG and SET_MSG, 28 bytes plus the
// information buffer (Linux struct rndis_query_request /
// rndis_set_request):
//
//	off 8   u32 RequestID
//	off 12  u32 OID
//	off 16  u32 info_buflen
//	off 20  u32 info_buf_offset (from RequestID, byte 8; encoded as 20 even when empty)
//	off 24  u32 DeviceVCHandle (0)
//	off 28  Info (the query's input, or the value to set)
//
// Decoding accepts the buffer anywhere from byte 28 to msg_len.
type request struct {
	RequestID      uint32
	OID            OID
	Info           []byte
	DeviceVCHandle uint32
}

func (m *request) appendTo(b []byte, t MessageType) []byte {
	b = appendU32s(appendHeader(b, t, requestFixed+len(m.Info)), m.RequestID, uint32(m.OID),
		uint32(len(m.Info)), RequestInfoOffset, m.DeviceVCHandle)
	return append(b, m.Info...)
}

func (m *request) decode(b []byte) error {
	info, err := region(b, "information buffer", u32(b, 16), u32(b, 20), HeaderSize, RequestInfoOffset)
	if err != nil {
		return err
	}
	*m = request{u32(b, 8), OID(u32(b, 12)), info, u32(b, 24)}
	return nil
}

// Query is QUERY_MSG, guest to host; see request for the layout. Some
// queries carry input: OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES and
// OID_GEN_RECEIVE_SCALE_CAPABILITIES send an NDIS object header.
type Query struct{ request }

func (m *Query) Type() MessageType        { return MsgQuery }
func (m *Query) EncodedLen() int          { return requestFixed + len(m.Info) }
func (m *Query) Encode() []byte           { return encode(m) }
func (m *Query) AppendTo(b []byte) []byte { return m.appendTo(b, MsgQuery) }

// Set is SET_MSG, guest to host; see request for the layout.
type Set struct{ request }

func (m *Set) Type() MessageType        { return MsgSet }
func (m *Set) EncodedLen() int          { return requestFixed + len(m.Info) }
func (m *Set) Encode() []byte           { return encode(m) }
func (m *Set) AppendTo(b []byte) []byte { return m.appendTo(b, MsgSet) }

// NewQuery returns a QUERY_MSG for oid with optional input.
func NewQuery(id uint32, oid OID, input []byte) *Query {
	return &Query{request{RequestID: id, OID: oid, Info: input}}
}

// NewSet returns a SET_MSG setting oid to value.
func NewSet(id uint32, oid OID, value []byte) *Set {
	return &Set{request{RequestID: id, OID: oid, Info: value}}
}

// QueryComplete is QUERY_CMPLT, host to guest, 24 bytes plus the answer
// (Linux struct rndis_query_complete):
//
//	off 8   u32 RequestID
//	off 12  u32 Status
//	off 16  u32 info_buflen
//	off 20  u32 info_buf_offset (from RequestID, byte 8; encoded as 16)
//	off 24  Info
type QueryComplete struct {
	RequestID uint32
	Status    Status
	Info      []byte
}

func (m *QueryComplete) Type() MessageType { return MsgQueryComplete }
func (m *QueryComplete) EncodedLen() int   { return 24 + len(m.Info) }
func (m *QueryComplete) Encode() []byte    { return encode(m) }
func (m *QueryComplete) AppendTo(b []byte) []byte {
	b = appendU32s(appendHeader(b, MsgQueryComplete, 24+len(m.Info)), m.RequestID, uint32(m.Status),
		uint32(len(m.Info)), CompleteInfoOffset)
	return append(b, m.Info...)
}
func (m *QueryComplete) decode(b []byte) error {
	info, err := region(b, "information buffer", u32(b, 16), u32(b, 20), HeaderSize, CompleteInfoOffset)
	if err != nil {
		return err
	}
	*m = QueryComplete{u32(b, 8), Status(u32(b, 12)), info}
	return nil
}

// IndicateStatus is INDICATE_STATUS_MSG, host to guest, unsolicited, 20
// bytes plus the status buffer (Linux struct rndis_indicate_status):
//
//	off 8   u32 Status (the event: StatusMediaConnect, StatusLinkSpeedChange, ...)
//	off 12  u32 status_buflen
//	off 16  u32 status_buf_offset (from Status, byte 8; encoded as 12, or 0 when empty)
//	off 20  Buffer
//
// Old vSwitches left the buffer out of msg_len; like Linux, decoding
// bounds it by the bytes received rather than by msg_len.
type IndicateStatus struct {
	Status Status
	Buffer []byte
}

// U32 returns the buffer's leading u32 (the speed of LINK_SPEED_CHANGE,
// the type of NETWORK_CHANGE) and whether there is one.
func (m *IndicateStatus) U32() (uint32, bool) {
	if len(m.Buffer) < 4 {
		return 0, false
	}
	return u32(m.Buffer, 0), true
}

func (m *IndicateStatus) Type() MessageType { return MsgIndicateStatus }
func (m *IndicateStatus) EncodedLen() int   { return 20 + len(m.Buffer) }
func (m *IndicateStatus) Encode() []byte    { return encode(m) }
func (m *IndicateStatus) AppendTo(b []byte) []byte {
	var off uint32
	if len(m.Buffer) > 0 {
		off = StatusBufferOffset
	}
	b = appendU32s(appendHeader(b, MsgIndicateStatus, 20+len(m.Buffer)), uint32(m.Status), uint32(len(m.Buffer)), off)
	return append(b, m.Buffer...)
}
func (m *IndicateStatus) decode(b []byte) error {
	buf, err := region(b, "status buffer", u32(b, 12), u32(b, 16), HeaderSize, StatusBufferOffset)
	if err != nil {
		return err
	}
	m.Status, m.Buffer = Status(u32(b, 8)), buf
	return nil
}

// NewLinkSpeedChange returns the indication of a new link speed in bit/s.
func NewLinkSpeedChange(bps uint64) *IndicateStatus {
	return &IndicateStatus{StatusLinkSpeedChange, le.AppendUint32(nil, uint32(min(bps/LinkSpeedUnit, 0xFFFFFFFF)))}
}

// NewNetworkChange returns a NETWORK_CHANGE indication carrying t.
func NewNetworkChange(t NetworkChangeType) *IndicateStatus {
	return &IndicateStatus{StatusNetworkChange, le.AppendUint32(nil, uint32(t))}
}
