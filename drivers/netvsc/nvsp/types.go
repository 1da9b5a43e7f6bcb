package nvsp

import (
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

func u16(b []byte, off int) uint16 { return le.Uint16(b[off:]) }
func u32(b []byte, off int) uint32 { return le.Uint32(b[off:]) }
func u64(b []byte, off int) uint64 { return le.Uint64(b[off:]) }

// HeaderSize is the size of the header every message starts with: u32
// msg_type @0 (Linux struct nvsp_message_header).
const HeaderSize = 4

// MessageType is the u32 at offset 0 (Linux enum NVSP_MSG_TYPE_*; the
// numbers agree in Windows, OpenVMM, FreeBSD and DPDK, spec §2.3).
type MessageType uint32

// Message types. The ones without a Go type here are obsolete
// (ErrUnsupportedType on decode).
const (
	MsgNone         MessageType = 0
	MsgInit         MessageType = 1
	MsgInitComplete MessageType = 2

	MsgSendNDISVersion            MessageType = 100
	MsgSendReceiveBuffer          MessageType = 101
	MsgSendReceiveBufferComplete  MessageType = 102
	MsgRevokeReceiveBuffer        MessageType = 103
	MsgSendSendBuffer             MessageType = 104
	MsgSendSendBufferComplete     MessageType = 105
	MsgRevokeSendBuffer           MessageType = 106
	MsgSendRNDISPacket            MessageType = 107
	MsgSendRNDISPacketComplete    MessageType = 108
	MsgSendChimneyDelegatedBuffer MessageType = 109 // 109..124: v2 chimney/VMQ, obsolete
	MsgSendVMQRNDISPacketComplete MessageType = 124
	MsgSendNDISConfig             MessageType = 125
	MsgAllocChimneyHandle         MessageType = 126 // obsolete
	MsgAllocChimneyHandleComplete MessageType = 127 // obsolete; last v2 type
	MsgSendVFAssociation          MessageType = 128
	MsgSwitchDataPath             MessageType = 129
	MsgUplinkConnectState         MessageType = 130 // deprecated; last v4 type
	MsgOIDQueryEx                 MessageType = 131
	MsgOIDQueryExComplete         MessageType = 132
	MsgSubchannel                 MessageType = 133 // request and completion
	MsgSendIndirectionTable       MessageType = 134
	MsgPDAPI                      MessageType = 135 // PacketDirect, unused by guests
	MsgPDPostBatch                MessageType = 136
)

// Direction says which way a message travels.
type Direction uint8

const (
	// HostToGuest: sent by the host (NetVSP).
	HostToGuest Direction = 1
	// GuestToHost: sent by the guest (NetVSC).
	GuestToHost Direction = 2
	// Both: SEND_RNDIS_PKT and its completion, SWITCH_DATA_PATH (OpenVMM
	// sends it to switch back when a VF disappears) and SUBCHANNEL.
	Both Direction = GuestToHost | HostToGuest
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
	minSize int // smallest accepted size, header included; 0: not decoded
	minVer  Version
}

// Minimum sizes are the header plus the packed upstream body (Linux
// hyperv_net.h). The two buffer registrations accept the 10 bytes of the
// packed Linux body; OpenVMM adds a u16 reserved that AppendTo writes.
var types = map[MessageType]typeInfo{
	MsgInit:                      {"INIT", GuestToHost, 12, Version1},
	MsgInitComplete:              {"INIT_COMPLETE", HostToGuest, 16, Version1},
	MsgSendNDISVersion:           {"SEND_NDIS_VER", GuestToHost, 12, Version1},
	MsgSendReceiveBuffer:         {"SEND_RECV_BUF", GuestToHost, 10, Version1},
	MsgSendReceiveBufferComplete: {"SEND_RECV_BUF_COMPLETE", HostToGuest, 28, Version1},
	MsgRevokeReceiveBuffer:       {"REVOKE_RECV_BUF", GuestToHost, 6, Version1},
	MsgSendSendBuffer:            {"SEND_SEND_BUF", GuestToHost, 10, Version1},
	MsgSendSendBufferComplete:    {"SEND_SEND_BUF_COMPLETE", HostToGuest, 12, Version1},
	MsgRevokeSendBuffer:          {"REVOKE_SEND_BUF", GuestToHost, 6, Version1},
	MsgSendRNDISPacket:           {"SEND_RNDIS_PKT", Both, 16, Version1},
	MsgSendRNDISPacketComplete:   {"SEND_RNDIS_PKT_COMPLETE", Both, 8, Version1},
	MsgSendNDISConfig:            {"SEND_NDIS_CONFIG", GuestToHost, 20, Version2},
	MsgSendVFAssociation:         {"SEND_VF_ASSOCIATION", HostToGuest, 12, Version4},
	MsgSwitchDataPath:            {"SWITCH_DATA_PATH", Both, 8, Version4},
	MsgUplinkConnectState:        {"UPLINK_CONNECT_STATE", Both, 0, Version4},
	MsgOIDQueryEx:                {"OID_QUERY_EX", GuestToHost, 12, Version5},
	MsgOIDQueryExComplete:        {"OID_QUERY_EX_COMPLETE", HostToGuest, 12, Version5},
	MsgSubchannel:                {"SUBCHANNEL", Both, 12, Version5},
	MsgSendIndirectionTable:      {"SEND_INDIRECTION_TABLE", HostToGuest, 12, Version5},
	MsgPDAPI:                     {"PD_API", Both, 0, Version6},
	MsgPDPostBatch:               {"PD_POST_BATCH", Both, 0, Version6},
}

var v2Names = [...]string{
	"SEND_CHIMNEY_DELEGATED_BUF", "SEND_CHIMNEY_DELEGATED_BUF_COMP", "REVOKE_CHIMNEY_DELEGATED_BUF",
	"RESUME_CHIMNEY_RX_INDICATION", "TERMINATE_CHIMNEY", "TERMINATE_CHIMNEY_COMP",
	"INDICATE_CHIMNEY_EVENT", "SEND_CHIMNEY_PKT", "SEND_CHIMNEY_PKT_COMP",
	"POST_CHIMNEY_RECV_REQ", "POST_CHIMNEY_RECV_REQ_COMP", "ALLOC_RXBUF", "ALLOC_RXBUF_COMP",
	"FREE_RXBUF", "SEND_VMQ_RNDIS_PKT", "SEND_VMQ_RNDIS_PKT_COMP",
}

func (t MessageType) info() (typeInfo, bool) {
	if i, ok := types[t]; ok {
		return i, true
	}
	switch {
	case t >= MsgSendChimneyDelegatedBuffer && t <= MsgSendVMQRNDISPacketComplete:
		return typeInfo{v2Names[t-MsgSendChimneyDelegatedBuffer], Both, 0, Version2}, true
	case t == MsgAllocChimneyHandle:
		return typeInfo{"ALLOC_CHIMNEY_HANDLE", Both, 0, Version2}, true
	case t == MsgAllocChimneyHandleComplete:
		return typeInfo{"ALLOC_CHIMNEY_HANDLE_COMP", Both, 0, Version2}, true
	}
	return typeInfo{}, false
}

// Known reports whether some NVSP version defines t.
func (t MessageType) Known() bool { _, ok := t.info(); return ok }

// Supported reports whether this package decodes t.
func (t MessageType) Supported() bool { i, _ := t.info(); return i.minSize > 0 }

// String returns the Linux-style name without prefix, e.g. "SEND_RNDIS_PKT".
func (t MessageType) String() string {
	if i, ok := t.info(); ok {
		return i.name
	}
	return fmt.Sprintf("NVSP_MSG(%d)", uint32(t))
}

// Direction returns the way t travels (zero for unknown types).
func (t MessageType) Direction() Direction { i, _ := t.info(); return i.dir }

// MinSize returns the smallest size, header included, of a decodable t,
// or 0.
func (t MessageType) MinSize() int { i, _ := t.info(); return i.minSize }

// MinVersion returns the first protocol version that defines t, or 0.
func (t MessageType) MinVersion() Version { i, _ := t.info(); return i.minVer }

// Message is one decoded NVSP message; the concrete types are pointers to
// the structs of this package.
type Message interface {
	// Type returns the message type written in the header.
	Type() MessageType
	// EncodedLen returns the number of bytes AppendTo writes.
	EncodedLen() int
	// AppendTo appends the message's natural wire bytes (header and
	// body, no padding; see AppendPadded).
	AppendTo(b []byte) []byte
	// Encode returns AppendTo's bytes in a new slice.
	Encode() []byte

	// decode fills the message from b, whose type, direction and minimum
	// size the caller has checked; v is the negotiated version.
	decode(b []byte, v Version) error
}

func encode(m Message) []byte { return m.AppendTo(make([]byte, 0, m.EncodedLen())) }
