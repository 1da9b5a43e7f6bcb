package vmbusmsg

// Sizes of the two OPENCHANNEL forms, header included.
const (
	OpenChannelSize  = 148
	OpenChannel2Size = 156
)

// TargetVPDisableInterrupts in OpenChannel.TargetVP asks the host not to
// interrupt for the channel (OpenVMM VP_INDEX_DISABLE_INTERRUPT).
const TargetVPDisableInterrupts = 0xFFFFFFFF

// OpenChannelRedirectInterrupt is bit 0 of OpenChannel.OpenFlags
// (OpenVMM OpenChannelFlags.redirect_interrupt).
const OpenChannelRedirectInterrupt = 0x0001

// OpenChannel is OPENCHANNEL (5), guest to host (Linux struct
// vmbus_channel_open_channel; FreeBSD vmbus_chanmsg_chopen; OpenVMM
// OpenChannel and OpenChannel2):
//
//	off 8    u32 ChildRelID
//	off 12   u32 OpenID (Linux and FreeBSD use the relid)
//	off 16   u32 RingBufferGPADL
//	off 20   u32 TargetVP (0xFFFFFFFF: no interrupts)
//	off 24   u32 DownstreamRingBufferPageOffset (4 KiB pages to the host-to-guest ring)
//	off 28   u8  UserData[120]
//	-- OpenChannel2 (156 bytes; 6.0 with signal-parameter or redirection features)
//	off 148  u32 ConnectionID (guest-chosen signal connection)
//	off 152  u16 EventFlag
//	off 154  u16 OpenFlags (bit 0 redirect interrupt)
//
// V2 selects the 156-byte form; a message of 156 bytes or more decodes
// with V2 set.
type OpenChannel struct {
	ChildRelID                     uint32
	OpenID                         uint32
	RingBufferGPADL                uint32
	TargetVP                       uint32
	DownstreamRingBufferPageOffset uint32
	UserData                       [UserDefinedSize]byte
	V2                             bool
	ConnectionID                   uint32
	EventFlag                      uint16
	OpenFlags                      uint16
}

func (m *OpenChannel) Type() MessageType { return MsgOpenChannel }
func (m *OpenChannel) Encode() []byte    { return encode(m) }
func (m *OpenChannel) EncodedLen() int {
	if m.V2 {
		return OpenChannel2Size
	}
	return OpenChannelSize
}

func (m *OpenChannel) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgOpenChannel)
	b = le.AppendUint32(b, m.ChildRelID)
	b = le.AppendUint32(b, m.OpenID)
	b = le.AppendUint32(b, m.RingBufferGPADL)
	b = le.AppendUint32(b, m.TargetVP)
	b = le.AppendUint32(b, m.DownstreamRingBufferPageOffset)
	b = append(b, m.UserData[:]...)
	if m.V2 {
		b = le.AppendUint32(b, m.ConnectionID)
		b = le.AppendUint16(b, m.EventFlag)
		b = le.AppendUint16(b, m.OpenFlags)
	}
	return b
}

func (m *OpenChannel) decode(b []byte) error {
	m.ChildRelID = u32(b, 8)
	m.OpenID = u32(b, 12)
	m.RingBufferGPADL = u32(b, 16)
	m.TargetVP = u32(b, 20)
	m.DownstreamRingBufferPageOffset = u32(b, 24)
	copy(m.UserData[:], b[28:148])
	if m.V2 = len(b) >= OpenChannel2Size; m.V2 {
		m.ConnectionID = u32(b, 148)
		m.EventFlag = u16(b, 152)
		m.OpenFlags = u16(b, 154)
	}
	return nil
}

// OpenChannelResult is OPENCHANNEL_RESULT (6), host to guest, 20 bytes
// (Linux struct vmbus_channel_open_result; FreeBSD
// vmbus_chanmsg_chopen_resp; OpenVMM OpenResult). Linux matches it to the
// request by (ChildRelID, OpenID).
//
//	off 8   u32 ChildRelID
//	off 12  u32 OpenID
//	off 16  u32 Status (0 = success)
type OpenChannelResult struct {
	ChildRelID uint32
	OpenID     uint32
	Status     uint32
}

func (m *OpenChannelResult) Type() MessageType { return MsgOpenChannelResult }
func (m *OpenChannelResult) EncodedLen() int   { return 20 }
func (m *OpenChannelResult) Encode() []byte    { return encode(m) }
func (m *OpenChannelResult) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgOpenChannelResult)
	b = le.AppendUint32(b, m.ChildRelID)
	b = le.AppendUint32(b, m.OpenID)
	return le.AppendUint32(b, m.Status)
}
func (m *OpenChannelResult) decode(b []byte) error {
	m.ChildRelID, m.OpenID, m.Status = u32(b, 8), u32(b, 12), u32(b, 16)
	return nil
}

// CloseChannel is CLOSECHANNEL (7), guest to host, 12 bytes, no reply
// (Linux struct vmbus_channel_close_channel):
//
//	off 8  u32 ChildRelID
type CloseChannel struct{ ChildRelID uint32 }

func (m *CloseChannel) Type() MessageType { return MsgCloseChannel }
func (m *CloseChannel) EncodedLen() int   { return 12 }
func (m *CloseChannel) Encode() []byte    { return encode(m) }
func (m *CloseChannel) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, MsgCloseChannel), m.ChildRelID)
}
func (m *CloseChannel) decode(b []byte) error { m.ChildRelID = u32(b, 8); return nil }

// RelIDReleased is RELID_RELEASED (13), guest to host, 12 bytes: the guest
// is done with a rescinded channel (Linux struct
// vmbus_channel_relid_released; FreeBSD vmbus_chanmsg_chfree):
//
//	off 8  u32 ChildRelID
type RelIDReleased struct{ ChildRelID uint32 }

func (m *RelIDReleased) Type() MessageType { return MsgRelIDReleased }
func (m *RelIDReleased) EncodedLen() int   { return 12 }
func (m *RelIDReleased) Encode() []byte    { return encode(m) }
func (m *RelIDReleased) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, MsgRelIDReleased), m.ChildRelID)
}
func (m *RelIDReleased) decode(b []byte) error { m.ChildRelID = u32(b, 8); return nil }

// ModifyChannel is MODIFYCHANNEL (22), guest to host, 16 bytes (4.1+;
// Linux struct vmbus_channel_modifychannel):
//
//	off 8   u32 ChildRelID
//	off 12  u32 TargetVP
type ModifyChannel struct {
	ChildRelID uint32
	TargetVP   uint32
}

func (m *ModifyChannel) Type() MessageType { return MsgModifyChannel }
func (m *ModifyChannel) EncodedLen() int   { return 16 }
func (m *ModifyChannel) Encode() []byte    { return encode(m) }
func (m *ModifyChannel) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendHeader(b, MsgModifyChannel), m.ChildRelID)
	return le.AppendUint32(b, m.TargetVP)
}
func (m *ModifyChannel) decode(b []byte) error {
	m.ChildRelID, m.TargetVP = u32(b, 8), u32(b, 12)
	return nil
}

// ModifyChannelResponse is MODIFYCHANNEL_RESPONSE (24), host to guest, 16
// bytes (5.3+; Linux struct vmbus_channel_modifychannel_response):
//
//	off 8   u32 ChildRelID
//	off 12  i32 Status (0 = success)
type ModifyChannelResponse struct {
	ChildRelID uint32
	Status     int32
}

func (m *ModifyChannelResponse) Type() MessageType { return MsgModifyChannelResponse }
func (m *ModifyChannelResponse) EncodedLen() int   { return 16 }
func (m *ModifyChannelResponse) Encode() []byte    { return encode(m) }
func (m *ModifyChannelResponse) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendHeader(b, MsgModifyChannelResponse), m.ChildRelID)
	return le.AppendUint32(b, uint32(m.Status))
}
func (m *ModifyChannelResponse) decode(b []byte) error {
	m.ChildRelID, m.Status = u32(b, 8), int32(u32(b, 12))
	return nil
}

// OpenReservedChannel is message 18, guest to host, 28 bytes (4.0+; used by
// the Windows kernel debugger; layout from OpenVMM OpenReservedChannel,
// unnamed CHANNELMSG_18 in Linux):
//
//	off 8   u32 ChannelID
//	off 12  u32 TargetVP
//	off 16  u32 TargetSINT
//	off 20  u32 RingBufferGPADL
//	off 24  u32 DownstreamPageOffset
type OpenReservedChannel struct {
	ChannelID            uint32
	TargetVP             uint32
	TargetSINT           uint32
	RingBufferGPADL      uint32
	DownstreamPageOffset uint32
}

func (m *OpenReservedChannel) Type() MessageType { return MsgOpenReservedChannel }
func (m *OpenReservedChannel) EncodedLen() int   { return 28 }
func (m *OpenReservedChannel) Encode() []byte    { return encode(m) }
func (m *OpenReservedChannel) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgOpenReservedChannel)
	for _, v := range [...]uint32{m.ChannelID, m.TargetVP, m.TargetSINT, m.RingBufferGPADL, m.DownstreamPageOffset} {
		b = le.AppendUint32(b, v)
	}
	return b
}
func (m *OpenReservedChannel) decode(b []byte) error {
	m.ChannelID, m.TargetVP, m.TargetSINT = u32(b, 8), u32(b, 12), u32(b, 16)
	m.RingBufferGPADL, m.DownstreamPageOffset = u32(b, 20), u32(b, 24)
	return nil
}

// CloseReservedChannel is message 19, guest to host, 20 bytes (OpenVMM
// CloseReservedChannel):
//
//	off 8   u32 ChannelID
//	off 12  u32 TargetVP
//	off 16  u32 TargetSINT
type CloseReservedChannel struct {
	ChannelID  uint32
	TargetVP   uint32
	TargetSINT uint32
}

func (m *CloseReservedChannel) Type() MessageType { return MsgCloseReservedChannel }
func (m *CloseReservedChannel) EncodedLen() int   { return 20 }
func (m *CloseReservedChannel) Encode() []byte    { return encode(m) }
func (m *CloseReservedChannel) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendHeader(b, MsgCloseReservedChannel), m.ChannelID)
	b = le.AppendUint32(b, m.TargetVP)
	return le.AppendUint32(b, m.TargetSINT)
}
func (m *CloseReservedChannel) decode(b []byte) error {
	m.ChannelID, m.TargetVP, m.TargetSINT = u32(b, 8), u32(b, 12), u32(b, 16)
	return nil
}

// CloseReservedResponse is message 20, host to guest, 12 bytes (OpenVMM
// CloseReservedChannelResponse):
//
//	off 8  u32 ChannelID
type CloseReservedResponse struct{ ChannelID uint32 }

func (m *CloseReservedResponse) Type() MessageType { return MsgCloseReservedResponse }
func (m *CloseReservedResponse) EncodedLen() int   { return 12 }
func (m *CloseReservedResponse) Encode() []byte    { return encode(m) }
func (m *CloseReservedResponse) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, MsgCloseReservedResponse), m.ChannelID)
}
func (m *CloseReservedResponse) decode(b []byte) error { m.ChannelID = u32(b, 8); return nil }
