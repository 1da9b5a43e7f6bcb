package vmbusmsg

import "github.com/hvguest/hvguest/hyperv/tlfs"

// OfferChannelSize is the size of OFFERCHANNEL, header included.
const OfferChannelSize = 196

// UserDefinedSize is the size of the user-defined area of an offer and of
// OPENCHANNEL (Linux MAX_USER_DEFINED_BYTES).
const UserDefinedSize = 120

// OfferFlags is the offer's chn_flags (Linux VMBUS_CHANNEL_* server flags;
// OpenVMM OfferFlags).
type OfferFlags uint16

const (
	OfferEnumerateDeviceInterface OfferFlags = 0x0001
	// OfferConfidentialRingBuffer was SERVER_SUPPORTS_TRANSFER_PAGES; with
	// 6.0 confidential channels it asks for an encrypted ring.
	OfferConfidentialRingBuffer OfferFlags = 0x0002
	// OfferConfidentialExternalMemory was SERVER_SUPPORTS_GPADLS.
	OfferConfidentialExternalMemory   OfferFlags = 0x0004
	OfferRequirePinnedExternalMemory  OfferFlags = 0x0008
	OfferNamedPipeMode                OfferFlags = 0x0010
	OfferLoopback                     OfferFlags = 0x0100
	OfferParent                       OfferFlags = 0x0200
	OfferRequestMonitoredNotification OfferFlags = 0x0400
	OfferTLNPIProvider                OfferFlags = 0x2000 // hv_sock channel
)

// Pipe modes in the first u32 of a named-pipe offer's user-defined area.
const (
	PipeModeByte    = 0
	PipeModeMessage = 4
)

// NoMonitor is the monitor id OpenVMM writes when no monitor is allocated.
const NoMonitor = 0xFF

// OfferChannel is OFFERCHANNEL (1), host to guest, 196 bytes (Linux struct
// vmbus_channel_offer_channel with struct vmbus_channel_offer; OpenVMM
// OfferChannel):
//
//	off 8    GUID InterfaceType (if_type, the device class, tlfs.GUID*)
//	off 24   GUID InterfaceInstance (if_instance)
//	off 40   u64  Reserved1 (FreeBSD: interrupt latency, 100 ns)
//	off 48   u64  Reserved2 (FreeBSD: u32 revision, u32 server ctx size)
//	off 56   u16  Flags (chn_flags)
//	off 58   u16  MMIOMegabytes
//	off 60   u8   UserDefined[120] (pipe offers: u32 pipe_mode first)
//	off 180  u16  SubChannelIndex (0 = primary; Win8+)
//	off 182  u16  MMIOMegabytesOptional (Linux reserved3)
//	off 184  u32  ChildRelID
//	off 188  u8   MonitorID (0..127; 0xFF none)
//	off 189  u8   MonitorAllocated (bit 0; Linux monitor_allocated:1)
//	off 190  u16  DedicatedInterrupt (bit 0; Linux is_dedicated_interrupt:1)
//	off 192  u32  ConnectionID (guest-to-host HvSignalEvent id; opaque)
//
// The bitfield bytes are kept whole so that a decoded offer re-encodes to
// the same bytes; use Monitored and IsDedicatedInterrupt to read them.
type OfferChannel struct {
	InterfaceType         tlfs.GUID
	InterfaceInstance     tlfs.GUID
	Reserved1             uint64
	Reserved2             uint64
	Flags                 OfferFlags
	MMIOMegabytes         uint16
	UserDefined           [UserDefinedSize]byte
	SubChannelIndex       uint16
	MMIOMegabytesOptional uint16
	ChildRelID            uint32
	MonitorID             uint8
	MonitorAllocated      uint8
	DedicatedInterrupt    uint16
	ConnectionID          uint32
}

// IsSubchannel reports whether the offer is a sub-channel of a primary
// with the same interface type and instance.
func (m *OfferChannel) IsSubchannel() bool { return m.SubChannelIndex != 0 }

// Monitored reports monitor_allocated: the guest signals the host through
// the monitor page (MNF) instead of HvSignalEvent.
func (m *OfferChannel) Monitored() bool { return m.MonitorAllocated&1 != 0 }

// IsDedicatedInterrupt reports is_dedicated_interrupt: the guest must not
// set the channel's interrupt-page bit when it signals.
func (m *OfferChannel) IsDedicatedInterrupt() bool { return m.DedicatedInterrupt&1 != 0 }

// MonitorGroup returns the monitor page trigger group and bit of the
// offer's monitor id (group = id/32, bit = id%32).
func (m *OfferChannel) MonitorGroup() (group, bit int) {
	return int(m.MonitorID) / 32, int(m.MonitorID) % 32
}

// PipeMode returns the pipe mode of a named-pipe offer (the first u32 of
// the user-defined area).
func (m *OfferChannel) PipeMode() uint32 { return le.Uint32(m.UserDefined[:]) }

func (m *OfferChannel) Type() MessageType { return MsgOfferChannel }
func (m *OfferChannel) EncodedLen() int   { return OfferChannelSize }
func (m *OfferChannel) Encode() []byte    { return encode(m) }

func (m *OfferChannel) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgOfferChannel)
	b = append(b, m.InterfaceType[:]...)
	b = append(b, m.InterfaceInstance[:]...)
	b = le.AppendUint64(b, m.Reserved1)
	b = le.AppendUint64(b, m.Reserved2)
	b = le.AppendUint16(b, uint16(m.Flags))
	b = le.AppendUint16(b, m.MMIOMegabytes)
	b = append(b, m.UserDefined[:]...)
	b = le.AppendUint16(b, m.SubChannelIndex)
	b = le.AppendUint16(b, m.MMIOMegabytesOptional)
	b = le.AppendUint32(b, m.ChildRelID)
	b = append(b, m.MonitorID, m.MonitorAllocated)
	b = le.AppendUint16(b, m.DedicatedInterrupt)
	return le.AppendUint32(b, m.ConnectionID)
}

func (m *OfferChannel) decode(b []byte) error {
	m.InterfaceType = guid(b, 8)
	m.InterfaceInstance = guid(b, 24)
	m.Reserved1 = u64(b, 40)
	m.Reserved2 = u64(b, 48)
	m.Flags = OfferFlags(u16(b, 56))
	m.MMIOMegabytes = u16(b, 58)
	copy(m.UserDefined[:], b[60:180])
	m.SubChannelIndex = u16(b, 180)
	m.MMIOMegabytesOptional = u16(b, 182)
	m.ChildRelID = u32(b, 184)
	m.MonitorID = b[188]
	m.MonitorAllocated = b[189]
	m.DedicatedInterrupt = u16(b, 190)
	m.ConnectionID = u32(b, 192)
	return nil
}

// RescindChannelOffer is RESCIND_CHANNELOFFER (2), host to guest, 12 bytes
// (Linux struct vmbus_channel_rescind_offer; FreeBSD vmbus_chanmsg_chrescind):
//
//	off 8  u32 ChildRelID
type RescindChannelOffer struct{ ChildRelID uint32 }

func (m *RescindChannelOffer) Type() MessageType { return MsgRescindChannelOffer }
func (m *RescindChannelOffer) EncodedLen() int   { return 12 }
func (m *RescindChannelOffer) Encode() []byte    { return encode(m) }
func (m *RescindChannelOffer) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, MsgRescindChannelOffer), m.ChildRelID)
}
func (m *RescindChannelOffer) decode(b []byte) error { m.ChildRelID = u32(b, 8); return nil }

// RequestOffers is REQUESTOFFERS (3), guest to host, header only.
type RequestOffers struct{}

// AllOffersDelivered is ALLOFFERS_DELIVERED (4), host to guest, header only.
type AllOffersDelivered struct{}

// Unload is UNLOAD (16), guest to host, header only.
type Unload struct{}

// UnloadResponse is UNLOAD_RESPONSE (17), host to guest, header only
// (Win7+).
type UnloadResponse struct{}

// Pause is PAUSE (27), guest to host, header only (6.0 + pause_resume).
type Pause struct{}

// PauseResponse is PAUSE_RESPONSE (28), host to guest, header only.
type PauseResponse struct{}

// Resume is RESUME (29), guest to host, header only.
type Resume struct{}

func (m *RequestOffers) Type() MessageType      { return MsgRequestOffers }
func (m *AllOffersDelivered) Type() MessageType { return MsgAllOffersDelivered }
func (m *Unload) Type() MessageType             { return MsgUnload }
func (m *UnloadResponse) Type() MessageType     { return MsgUnloadResponse }
func (m *Pause) Type() MessageType              { return MsgPause }
func (m *PauseResponse) Type() MessageType      { return MsgPauseResponse }
func (m *Resume) Type() MessageType             { return MsgResume }

func (m *RequestOffers) EncodedLen() int      { return HeaderSize }
func (m *AllOffersDelivered) EncodedLen() int { return HeaderSize }
func (m *Unload) EncodedLen() int             { return HeaderSize }
func (m *UnloadResponse) EncodedLen() int     { return HeaderSize }
func (m *Pause) EncodedLen() int              { return HeaderSize }
func (m *PauseResponse) EncodedLen() int      { return HeaderSize }
func (m *Resume) EncodedLen() int             { return HeaderSize }

func (m *RequestOffers) AppendTo(b []byte) []byte      { return appendHeader(b, MsgRequestOffers) }
func (m *AllOffersDelivered) AppendTo(b []byte) []byte { return appendHeader(b, MsgAllOffersDelivered) }
func (m *Unload) AppendTo(b []byte) []byte             { return appendHeader(b, MsgUnload) }
func (m *UnloadResponse) AppendTo(b []byte) []byte     { return appendHeader(b, MsgUnloadResponse) }
func (m *Pause) AppendTo(b []byte) []byte              { return appendHeader(b, MsgPause) }
func (m *PauseResponse) AppendTo(b []byte) []byte      { return appendHeader(b, MsgPauseResponse) }
func (m *Resume) AppendTo(b []byte) []byte             { return appendHeader(b, MsgResume) }

func (m *RequestOffers) Encode() []byte      { return encode(m) }
func (m *AllOffersDelivered) Encode() []byte { return encode(m) }
func (m *Unload) Encode() []byte             { return encode(m) }
func (m *UnloadResponse) Encode() []byte     { return encode(m) }
func (m *Pause) Encode() []byte              { return encode(m) }
func (m *PauseResponse) Encode() []byte      { return encode(m) }
func (m *Resume) Encode() []byte             { return encode(m) }

func (m *RequestOffers) decode([]byte) error      { return nil }
func (m *AllOffersDelivered) decode([]byte) error { return nil }
func (m *Unload) decode([]byte) error             { return nil }
func (m *UnloadResponse) decode([]byte) error     { return nil }
func (m *Pause) decode([]byte) error              { return nil }
func (m *PauseResponse) decode([]byte) error      { return nil }
func (m *Resume) decode([]byte) error             { return nil }
