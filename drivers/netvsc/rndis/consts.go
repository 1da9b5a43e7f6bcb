package rndis

import (
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

func u16(b []byte, off int) uint16 { return le.Uint16(b[off:]) }
func u32(b []byte, off int) uint32 { return le.Uint32(b[off:]) }
func u64(b []byte, off int) uint64 { return le.Uint64(b[off:]) }

// MessageType is the u32 at offset 0 of every RNDIS message (Linux
// RNDIS_MSG_*, FreeBSD REMOTE_NDIS_*, spec §3.1).
type MessageType uint32

// CompletionBit marks a completion type (RNDIS_MSG_COMPLETION).
const CompletionBit MessageType = 0x80000000

// RNDIS message types.
const (
	MsgPacket             MessageType = 0x00000001
	MsgInitialize         MessageType = 0x00000002
	MsgInitializeComplete MessageType = 0x80000002
	MsgHalt               MessageType = 0x00000003 // no RNDIS reply
	MsgQuery              MessageType = 0x00000004
	MsgQueryComplete      MessageType = 0x80000004
	MsgSet                MessageType = 0x00000005
	MsgSetComplete        MessageType = 0x80000005
	MsgReset              MessageType = 0x00000006
	MsgResetComplete      MessageType = 0x80000006
	MsgIndicateStatus     MessageType = 0x00000007
	MsgKeepAlive          MessageType = 0x00000008
	MsgKeepAliveComplete  MessageType = 0x80000008
)

// Direction says which way a message type travels on Hyper-V.
type Direction uint8

const (
	HostToGuest Direction = 1
	GuestToHost Direction = 2
	Both        Direction = HostToGuest | GuestToHost
)

func (d Direction) String() string {
	switch d {
	case HostToGuest:
		return "host-to-guest"
	case GuestToHost:
		return "guest-to-host"
	case Both:
		return "both"
	}
	return "no-direction"
}

type typeInfo struct {
	name    string
	dir     Direction
	minSize int
}

var types = map[MessageType]typeInfo{
	MsgPacket:             {"PACKET_MSG", Both, PacketHeaderSize},
	MsgInitialize:         {"INITIALIZE_MSG", GuestToHost, 24},
	MsgInitializeComplete: {"INITIALIZE_CMPLT", HostToGuest, initCompleteMin},
	MsgHalt:               {"HALT_MSG", GuestToHost, 12},
	MsgQuery:              {"QUERY_MSG", GuestToHost, requestFixed},
	MsgQueryComplete:      {"QUERY_CMPLT", HostToGuest, 24},
	MsgSet:                {"SET_MSG", GuestToHost, requestFixed},
	MsgSetComplete:        {"SET_CMPLT", HostToGuest, 16},
	MsgReset:              {"RESET_MSG", GuestToHost, 12},
	MsgResetComplete:      {"RESET_CMPLT", HostToGuest, 16},
	MsgIndicateStatus:     {"INDICATE_STATUS_MSG", HostToGuest, 20},
	MsgKeepAlive:          {"KEEPALIVE_MSG", GuestToHost, 12},
	MsgKeepAliveComplete:  {"KEEPALIVE_CMPLT", HostToGuest, 16},
}

// Known reports whether this package decodes t.
func (t MessageType) Known() bool { _, ok := types[t]; return ok }

// Direction returns the way t travels (zero if unknown).
func (t MessageType) Direction() Direction { return types[t].dir }

// MinSize returns the smallest msg_len of a t, header included (0 if
// unknown).
func (t MessageType) MinSize() int { return types[t].minSize }

func (t MessageType) String() string {
	if i, ok := types[t]; ok {
		return i.name
	}
	return fmt.Sprintf("RNDIS_MSG(%#x)", uint32(t))
}

// Protocol version sent in INITIALIZE and returned in its completion.
const (
	MajorVersion = 1
	MinorVersion = 0
)

// Values of InitializeComplete fields (OpenVMM rndisprot.rs).
const (
	DeviceFlagConnectionless     = 0x00000001 // DF_CONNECTIONLESS
	DeviceFlagConnectionOriented = 0x00000002
	Medium8023                   = 0x00000000 // MEDIUM_802_3
)

// Status is an RNDIS/NDIS status: the status of a completion, or the
// event of an INDICATE_STATUS (Linux RNDIS_STATUS_*).
type Status uint32

// Completion statuses (spec §3.6).
const (
	StatusSuccess          Status = 0x00000000
	StatusPending          Status = 0x00000103
	StatusBufferOverflow   Status = 0x80000005
	StatusFailure          Status = 0xC0000001
	StatusResources        Status = 0xC000009A
	StatusNotSupported     Status = 0xC00000BB // OpenVMM's answer to unknown OIDs
	StatusClosing          Status = 0xC0010002
	StatusBadVersion       Status = 0xC0010004
	StatusMulticastFull    Status = 0xC0010009
	StatusMulticastExists  Status = 0xC001000A
	StatusMulticastMissing Status = 0xC001000B
	StatusInvalidPacket    Status = 0xC001000F
	StatusAdapterNotReady  Status = 0xC0010011
	StatusInvalidLength    Status = 0xC0010014
	StatusInvalidData      Status = 0xC0010015 // OpenVMM: bad OID input
	StatusBufferTooShort   Status = 0xC0010016
	StatusInvalidOID       Status = 0xC0010017
)

// Indications: the Status of an INDICATE_STATUS message.
const (
	StatusOnline                   Status = 0x40010003
	StatusResetStart               Status = 0x40010004
	StatusResetEnd                 Status = 0x40010005
	StatusMediaConnect             Status = 0x4001000B // no buffer
	StatusMediaDisconnect          Status = 0x4001000C // no buffer
	StatusInterfaceUp              Status = 0x4001000F
	StatusInterfaceDown            Status = 0x40010010
	StatusMediaBusy                Status = 0x40010011
	StatusMediaSpecificIndication  Status = 0x40010012
	StatusLinkSpeedChange          Status = 0x40010013 // u32 speed, 100 bps units
	StatusNetworkChange            Status = 0x40010018 // optional u32 NetworkChangeType
	StatusTaskOffloadCurrentConfig Status = 0x40020006 // NDIS_OFFLOAD
)

// NetworkChangeType is the optional u32 buffer of a NETWORK_CHANGE
// indication (NDIS_NETCHANGE_TYPE).
type NetworkChangeType uint32

const (
	NetworkChangePossible  NetworkChangeType = 1
	NetworkChangeDefinite  NetworkChangeType = 2
	NetworkChangeFromMedia NetworkChangeType = 3
)

var statusNames = map[Status]string{
	StatusSuccess: "SUCCESS", StatusPending: "PENDING", StatusBufferOverflow: "BUFFER_OVERFLOW",
	StatusFailure: "FAILURE", StatusResources: "RESOURCES", StatusNotSupported: "NOT_SUPPORTED",
	StatusClosing: "CLOSING", StatusBadVersion: "BAD_VERSION", StatusMulticastFull: "MULTICAST_FULL",
	StatusMulticastExists: "MULTICAST_EXISTS", StatusMulticastMissing: "MULTICAST_NOT_FOUND",
	StatusInvalidPacket: "INVALID_PACKET", StatusAdapterNotReady: "ADAPTER_NOT_READY",
	StatusInvalidLength: "INVALID_LENGTH", StatusInvalidData: "INVALID_DATA",
	StatusBufferTooShort: "BUFFER_TOO_SHORT", StatusInvalidOID: "INVALID_OID",
	StatusOnline: "ONLINE", StatusResetStart: "RESET_START", StatusResetEnd: "RESET_END",
	StatusMediaConnect: "MEDIA_CONNECT", StatusMediaDisconnect: "MEDIA_DISCONNECT",
	StatusInterfaceUp: "INTERFACE_UP", StatusInterfaceDown: "INTERFACE_DOWN", StatusMediaBusy: "MEDIA_BUSY",
	StatusMediaSpecificIndication: "MEDIA_SPECIFIC_INDICATION", StatusLinkSpeedChange: "LINK_SPEED_CHANGE",
	StatusNetworkChange: "NETWORK_CHANGE", StatusTaskOffloadCurrentConfig: "TASK_OFFLOAD_CURRENT_CONFIG",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("RNDIS_STATUS(%#x)", uint32(s))
}

// MediaConnectState is the u32 answer to OID_GEN_MEDIA_CONNECT_STATUS.
type MediaConnectState uint32

const (
	MediaConnected    MediaConnectState = 0
	MediaDisconnected MediaConnectState = 1
)

// LinkSpeedUnit is the unit of OID_GEN_LINK_SPEED and of the
// LINK_SPEED_CHANGE indication: 100 bit/s (10 Gbit/s = 100_000_000).
const LinkSpeedUnit = 100

// OID is an NDIS object identifier (spec §4.1).
type OID uint32

// General OIDs.
const (
	OIDGenSupportedList            OID = 0x00010101
	OIDGenHardwareStatus           OID = 0x00010102
	OIDGenMediaSupported           OID = 0x00010103
	OIDGenMediaInUse               OID = 0x00010104
	OIDGenMaximumLookahead         OID = 0x00010105
	OIDGenMaximumFrameSize         OID = 0x00010106 // u32 MTU without the Ethernet header
	OIDGenLinkSpeed                OID = 0x00010107 // u32, 100 bps units
	OIDGenTransmitBufferSpace      OID = 0x00010108
	OIDGenReceiveBufferSpace       OID = 0x00010109
	OIDGenTransmitBlockSize        OID = 0x0001010A
	OIDGenReceiveBlockSize         OID = 0x0001010B
	OIDGenVendorID                 OID = 0x0001010C
	OIDGenVendorDescription        OID = 0x0001010D
	OIDGenCurrentPacketFilter      OID = 0x0001010E // u32 PacketFilter
	OIDGenCurrentLookahead         OID = 0x0001010F
	OIDGenDriverVersion            OID = 0x00010110
	OIDGenMaximumTotalSize         OID = 0x00010111 // u32 MTU with the Ethernet header
	OIDGenProtocolOptions          OID = 0x00010112
	OIDGenMACOptions               OID = 0x00010113
	OIDGenMediaConnectStatus       OID = 0x00010114 // u32 MediaConnectState
	OIDGenMaximumSendPackets       OID = 0x00010115
	OIDGenVendorDriverVersion      OID = 0x00010116
	OIDGenNetworkLayerAddresses    OID = 0x00010118
	OIDGenTransportHeaderOffset    OID = 0x00010119
	OIDGenReceiveScaleCapabilities OID = 0x00010203 // RSSCapabilities
	OIDGenReceiveScaleParameters   OID = 0x00010204 // RSSParameters
	OIDGenMaxLinkSpeed             OID = 0x00010206
	OIDGenLinkState                OID = 0x00010207
	OIDGenLinkParameters           OID = 0x00010208
	OIDGenMachineName              OID = 0x0001021A
	OIDGenRNDISConfigParameter     OID = 0x0001021B // ConfigParameter
	OIDGenVLANID                   OID = 0x0001021C
	OIDGenFriendlyName             OID = 0x00020216 // UTF-16LE
	OIDGenXmitOK                   OID = 0x00020101
	OIDGenRcvOK                    OID = 0x00020102
	OIDGenBytesRcv                 OID = 0x00020219
	OIDGenBytesXmit                OID = 0x0002021A
)

// 802.3 and offload OIDs.
const (
	OID8023PermanentAddress       OID = 0x01010101 // 6-byte MAC
	OID8023CurrentAddress         OID = 0x01010102
	OID8023MulticastList          OID = 0x01010103
	OID8023MaximumListSize        OID = 0x01010104
	OID8023MACOptions             OID = 0x01010105
	OIDOffloadEncapsulation       OID = 0x0101010A
	OID8023AddMulticastAddress    OID = 0x01010208
	OID8023DeleteMulticastAddress OID = 0x01010209

	OIDTCPOffloadCurrentConfig                  OID = 0xFC01020B // Offload
	OIDTCPOffloadParameters                     OID = 0xFC01020C // OffloadParameters
	OIDTCPOffloadHardwareCapabilities           OID = 0xFC01020D // Offload
	OIDTCPConnectionOffloadCurrentConfig        OID = 0xFC01020E
	OIDTCPConnectionOffloadHardwareCapabilities OID = 0xFC01020F
)

// PacketFilter is the u32 of OID_GEN_CURRENT_PACKET_FILTER (NDIS 6 values
// as in Linux hyperv_net.h; Linux rndis.h disagrees on the last four,
// which Ethernet does not use).
type PacketFilter uint32

const (
	PacketTypeNone          PacketFilter = 0
	PacketTypeDirected      PacketFilter = 0x00000001
	PacketTypeMulticast     PacketFilter = 0x00000002
	PacketTypeAllMulticast  PacketFilter = 0x00000004
	PacketTypeBroadcast     PacketFilter = 0x00000008
	PacketTypeSourceRouting PacketFilter = 0x00000010
	PacketTypePromiscuous   PacketFilter = 0x00000020
	PacketTypeSMT           PacketFilter = 0x00000040
	PacketTypeAllLocal      PacketFilter = 0x00000080
	PacketTypeGroup         PacketFilter = 0x00000100
	PacketTypeAllFunctional PacketFilter = 0x00000200
	PacketTypeFunctional    PacketFilter = 0x00000400
	PacketTypeMACFrame      PacketFilter = 0x00000800

	// PacketFilterDefault is what Linux sets on open: directed, all
	// multicast, broadcast (0x0D).
	PacketFilterDefault = PacketTypeDirected | PacketTypeAllMulticast | PacketTypeBroadcast
)

// VendorIDMicrosoft is OID_GEN_VENDOR_ID as vmswitch answers it.
const VendorIDMicrosoft = 0x0000155D
