package nvsp

import "fmt"

// Init is INIT (1), guest to host, 12 bytes (Linux struct
// nvsp_message_init). Guests offer one version at a time: Min = Max.
//
//	off 4  u32 MinVersion (Windows "ProtocolVersion")
//	off 8  u32 MaxVersion ("ProtocolVersion2")
type Init struct {
	MinVersion Version
	MaxVersion Version
}

// NewInit returns the INIT a guest sends to offer exactly v.
func NewInit(v Version) *Init { return &Init{MinVersion: v, MaxVersion: v} }

func (m *Init) Type() MessageType { return MsgInit }
func (m *Init) EncodedLen() int   { return 12 }
func (m *Init) Encode() []byte    { return encode(m) }
func (m *Init) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgInit))
	b = le.AppendUint32(b, uint32(m.MinVersion))
	return le.AppendUint32(b, uint32(m.MaxVersion))
}
func (m *Init) decode(b []byte, _ Version) error {
	m.MinVersion, m.MaxVersion = Version(u32(b, 4)), Version(u32(b, 8))
	return nil
}

// MaxMDLChainLength is what OpenVMM reports in InitComplete.
const MaxMDLChainLength = 34

// InitComplete is INIT_COMPLETE (2), host to guest in the completion of
// INIT, 16 bytes (Linux struct nvsp_message_init_complete). Guests test
// only Status == StatusSuccess; on another status they offer the next
// lower version. OpenVMM answers an unknown version with StatusNone.
//
//	off 4   u32 NegotiatedVersion (deprecated: OpenVMM sends VersionInvalid, or 2 for Version1)
//	off 8   u32 MaxMDLChainLength (OpenVMM: 34)
//	off 12  u32 Status
type InitComplete struct {
	NegotiatedVersion Version
	MaxMDLChainLength uint32
	Status            Status
}

func (m *InitComplete) Type() MessageType { return MsgInitComplete }
func (m *InitComplete) EncodedLen() int   { return 16 }
func (m *InitComplete) Encode() []byte    { return encode(m) }
func (m *InitComplete) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgInitComplete))
	b = le.AppendUint32(b, uint32(m.NegotiatedVersion))
	b = le.AppendUint32(b, m.MaxMDLChainLength)
	return le.AppendUint32(b, uint32(m.Status))
}
func (m *InitComplete) decode(b []byte, _ Version) error {
	m.NegotiatedVersion, m.MaxMDLChainLength, m.Status = Version(u32(b, 4)), u32(b, 8), Status(u32(b, 12))
	return nil
}

// SendNDISVersion is SEND_NDIS_VER (100), guest to host, 12 bytes, no
// reply (Linux struct nvsp_1_message_send_ndis_version).
//
//	off 4  u32 Major (6)
//	off 8  u32 Minor (1 up to NVSP 4, 30 from NVSP 5)
type SendNDISVersion struct {
	Major uint32
	Minor uint32
}

// NewSendNDISVersion returns the message announcing n.
func NewSendNDISVersion(n NDISVersion) *SendNDISVersion {
	return &SendNDISVersion{Major: n.Major(), Minor: n.Minor()}
}

// Version returns the announced version as an NDISVersion (16 bits each).
func (m *SendNDISVersion) Version() NDISVersion {
	return NDISVersion(m.Major<<16 | m.Minor&0xFFFF)
}

func (m *SendNDISVersion) Type() MessageType { return MsgSendNDISVersion }
func (m *SendNDISVersion) EncodedLen() int   { return 12 }
func (m *SendNDISVersion) Encode() []byte    { return encode(m) }
func (m *SendNDISVersion) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSendNDISVersion))
	b = le.AppendUint32(b, m.Major)
	return le.AppendUint32(b, m.Minor)
}
func (m *SendNDISVersion) decode(b []byte, _ Version) error {
	m.Major, m.Minor = u32(b, 4), u32(b, 8)
	return nil
}

// Buffer ids the guest registers and later revokes (spec §2.5).
const (
	ReceiveBufferID      uint16 = 0xCAFE // Linux, FreeBSD HN_NVS_RXBUF_SIG, DPDK
	SendBufferIDLinux    uint16 = 0      // Linux NETVSC_SEND_BUFFER_ID
	SendBufferIDFreeBSD  uint16 = 0xFACE // FreeBSD/DPDK HN_NVS_CHIM_SIG
	MinSubAllocationSize        = 68     // Linux floor for receive slots and send sections
)

// bufferMsg is the shared layout of SEND_RECV_BUF (101) and SEND_SEND_BUF
// (104), guest to host with a completion requested (Linux struct
// nvsp_1_message_send_receive_buffer / _send_buffer, packed; OpenVMM adds
// a u16 reserved, which AppendTo writes, giving 12 bytes):
//
//	off 4   u32 GPADL (handle of the buffer's GPADL on the primary channel)
//	off 8   u16 ID
//	off 10  u16 reserved
type bufferMsg struct {
	GPADL uint32
	ID    uint16
}

func (m *bufferMsg) appendTo(b []byte, t MessageType) []byte {
	b = le.AppendUint32(b, uint32(t))
	b = le.AppendUint32(b, m.GPADL)
	b = le.AppendUint16(b, m.ID)
	return le.AppendUint16(b, 0)
}
func (m *bufferMsg) decode(b []byte, _ Version) error {
	m.GPADL, m.ID = u32(b, 4), u16(b, 8)
	return nil
}

// SendReceiveBuffer is SEND_RECV_BUF (101); see bufferMsg for the layout.
// ID is ReceiveBufferID for every known guest.
type SendReceiveBuffer struct{ bufferMsg }

func (m *SendReceiveBuffer) Type() MessageType        { return MsgSendReceiveBuffer }
func (m *SendReceiveBuffer) EncodedLen() int          { return 12 }
func (m *SendReceiveBuffer) Encode() []byte           { return encode(m) }
func (m *SendReceiveBuffer) AppendTo(b []byte) []byte { return m.appendTo(b, MsgSendReceiveBuffer) }

// SendSendBuffer is SEND_SEND_BUF (104); see bufferMsg for the layout.
type SendSendBuffer struct{ bufferMsg }

func (m *SendSendBuffer) Type() MessageType        { return MsgSendSendBuffer }
func (m *SendSendBuffer) EncodedLen() int          { return 12 }
func (m *SendSendBuffer) Encode() []byte           { return encode(m) }
func (m *SendSendBuffer) AppendTo(b []byte) []byte { return m.appendTo(b, MsgSendSendBuffer) }

// ReceiveBufferSection is one section of the receive buffer (Linux struct
// nvsp_1_receive_buffer_section), 16 bytes.
type ReceiveBufferSection struct {
	Offset       uint32 // from the start of the buffer; Linux requires 0
	SubAllocSize uint32 // slot size (OpenVMM: 256 + L2 MTU + 36)
	NumSubAllocs uint32 // slot count
	EndOffset    uint32 // OpenVMM: SubAllocSize * NumSubAllocs
}

// SendReceiveBufferComplete is SEND_RECV_BUF_COMPLETE (102), host to
// guest in the completion of SEND_RECV_BUF, 28 bytes (Linux struct
// nvsp_1_message_send_receive_buffer_complete). No host has sent more
// than one section and none fits a 40-byte message, so one is decoded.
//
//	off 4   u32 Status
//	off 8   u32 NumSections (always 1)
//	off 12  ReceiveBufferSection Section {Offset, SubAllocSize, NumSubAllocs, EndOffset}
type SendReceiveBufferComplete struct {
	Status      Status
	NumSections uint32
	Section     ReceiveBufferSection
}

func (m *SendReceiveBufferComplete) Type() MessageType { return MsgSendReceiveBufferComplete }
func (m *SendReceiveBufferComplete) EncodedLen() int   { return 28 }
func (m *SendReceiveBufferComplete) Encode() []byte    { return encode(m) }
func (m *SendReceiveBufferComplete) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSendReceiveBufferComplete))
	b = le.AppendUint32(b, uint32(m.Status))
	b = le.AppendUint32(b, m.NumSections)
	b = le.AppendUint32(b, m.Section.Offset)
	b = le.AppendUint32(b, m.Section.SubAllocSize)
	b = le.AppendUint32(b, m.Section.NumSubAllocs)
	return le.AppendUint32(b, m.Section.EndOffset)
}
func (m *SendReceiveBufferComplete) decode(b []byte, _ Version) error {
	m.Status, m.NumSections = Status(u32(b, 4)), u32(b, 8)
	m.Section = ReceiveBufferSection{u32(b, 12), u32(b, 16), u32(b, 20), u32(b, 24)}
	return nil
}

// Check applies the guest's acceptance rules (Linux netvsc_init_buf) for
// a receive buffer of bufSize bytes: success, exactly one section at
// offset 0, slots of at least MinSubAllocationSize bytes, at least one
// slot, and all slots inside the buffer.
func (m *SendReceiveBufferComplete) Check(bufSize uint32) error {
	s := m.Section
	switch {
	case m.Status != StatusSuccess:
		return fmt.Errorf("%w: receive buffer refused: %s", ErrInvalid, m.Status)
	case m.NumSections != 1:
		return fmt.Errorf("%w: receive buffer with %d sections", ErrInvalid, m.NumSections)
	case s.Offset != 0:
		return fmt.Errorf("%w: receive section at offset %d", ErrInvalid, s.Offset)
	case s.SubAllocSize < MinSubAllocationSize || s.NumSubAllocs == 0:
		return fmt.Errorf("%w: receive section of %d slots of %d bytes", ErrInvalid, s.NumSubAllocs, s.SubAllocSize)
	case uint64(s.SubAllocSize)*uint64(s.NumSubAllocs) > uint64(bufSize):
		return fmt.Errorf("%w: %d slots of %d bytes exceed the %d-byte buffer", ErrInvalid, s.NumSubAllocs, s.SubAllocSize, bufSize)
	}
	return nil
}

// SendSectionSize is the send-buffer section size Hyper-V and OpenVMM
// choose (Linux NETVSC_SEND_SECTION_SIZE).
const SendSectionSize = 6144

// SendSendBufferComplete is SEND_SEND_BUF_COMPLETE (105), host to guest in
// the completion of SEND_SEND_BUF, 12 bytes (Linux struct
// nvsp_1_message_send_send_buffer_complete). Section i of the send buffer
// is bytes [i*SectionSize, (i+1)*SectionSize).
//
//	off 4  u32 Status
//	off 8  u32 SectionSize (host's choice; 6144)
type SendSendBufferComplete struct {
	Status      Status
	SectionSize uint32
}

func (m *SendSendBufferComplete) Type() MessageType { return MsgSendSendBufferComplete }
func (m *SendSendBufferComplete) EncodedLen() int   { return 12 }
func (m *SendSendBufferComplete) Encode() []byte    { return encode(m) }
func (m *SendSendBufferComplete) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSendSendBufferComplete))
	b = le.AppendUint32(b, uint32(m.Status))
	return le.AppendUint32(b, m.SectionSize)
}
func (m *SendSendBufferComplete) decode(b []byte, _ Version) error {
	m.Status, m.SectionSize = Status(u32(b, 4)), u32(b, 8)
	return nil
}

// Sections applies the guest's acceptance rules for a send buffer of
// bufSize bytes (Linux: section size at least 68; FreeBSD: non-zero
// multiple of 4) and returns the number of sections.
func (m *SendSendBufferComplete) Sections(bufSize uint32) (uint32, error) {
	switch {
	case m.Status != StatusSuccess:
		return 0, fmt.Errorf("%w: send buffer refused: %s", ErrInvalid, m.Status)
	case m.SectionSize < MinSubAllocationSize || m.SectionSize%4 != 0 || m.SectionSize > bufSize:
		return 0, fmt.Errorf("%w: send section size %d for a %d-byte buffer", ErrInvalid, m.SectionSize, bufSize)
	}
	return bufSize / m.SectionSize, nil
}

// revokeMsg is the layout of REVOKE_RECV_BUF (103) and REVOKE_SEND_BUF
// (106), guest to host, no reply (Linux struct
// nvsp_1_message_revoke_receive_buffer / _send_buffer), 6 bytes:
//
//	off 4  u16 ID (the id that was registered)
type revokeMsg struct{ ID uint16 }

func (m *revokeMsg) appendTo(b []byte, t MessageType) []byte {
	return le.AppendUint16(le.AppendUint32(b, uint32(t)), m.ID)
}
func (m *revokeMsg) decode(b []byte, _ Version) error { m.ID = u16(b, 4); return nil }

// RevokeReceiveBuffer is REVOKE_RECV_BUF (103); see revokeMsg.
type RevokeReceiveBuffer struct{ revokeMsg }

func (m *RevokeReceiveBuffer) Type() MessageType        { return MsgRevokeReceiveBuffer }
func (m *RevokeReceiveBuffer) EncodedLen() int          { return 6 }
func (m *RevokeReceiveBuffer) Encode() []byte           { return encode(m) }
func (m *RevokeReceiveBuffer) AppendTo(b []byte) []byte { return m.appendTo(b, MsgRevokeReceiveBuffer) }

// RevokeSendBuffer is REVOKE_SEND_BUF (106); see revokeMsg.
type RevokeSendBuffer struct{ revokeMsg }

func (m *RevokeSendBuffer) Type() MessageType        { return MsgRevokeSendBuffer }
func (m *RevokeSendBuffer) EncodedLen() int          { return 6 }
func (m *RevokeSendBuffer) Encode() []byte           { return encode(m) }
func (m *RevokeSendBuffer) AppendTo(b []byte) []byte { return m.appendTo(b, MsgRevokeSendBuffer) }
