package vmbusmsg

import "fmt"

// HeaderSize is the size of the common header every channel message starts
// with: u32 msgtype @0, u32 padding @4 (Linux struct
// vmbus_channel_message_header; FreeBSD struct vmbus_chanmsg_hdr).
const HeaderSize = 8

// MaxMessageSize is the largest channel message: the SynIC payload.
const MaxMessageSize = 240

// MessageType is the channel message type at offset 0 (Linux enum
// vmbus_channel_message_type; OpenVMM MessageType).
type MessageType uint32

// Channel message types, spec §2.3.
const (
	MsgInvalid                  MessageType = 0
	MsgOfferChannel             MessageType = 1
	MsgRescindChannelOffer      MessageType = 2
	MsgRequestOffers            MessageType = 3
	MsgAllOffersDelivered       MessageType = 4
	MsgOpenChannel              MessageType = 5
	MsgOpenChannelResult        MessageType = 6
	MsgCloseChannel             MessageType = 7
	MsgGPADLHeader              MessageType = 8
	MsgGPADLBody                MessageType = 9
	MsgGPADLCreated             MessageType = 10
	MsgGPADLTeardown            MessageType = 11
	MsgGPADLTorndown            MessageType = 12
	MsgRelIDReleased            MessageType = 13
	MsgInitiateContact          MessageType = 14
	MsgVersionResponse          MessageType = 15
	MsgUnload                   MessageType = 16
	MsgUnloadResponse           MessageType = 17
	MsgOpenReservedChannel      MessageType = 18 // Linux CHANNELMSG_18
	MsgCloseReservedChannel     MessageType = 19 // Linux CHANNELMSG_19
	MsgCloseReservedResponse    MessageType = 20 // Linux CHANNELMSG_20
	MsgTLConnectRequest         MessageType = 21
	MsgModifyChannel            MessageType = 22
	MsgTLConnectResult          MessageType = 23
	MsgModifyChannelResponse    MessageType = 24
	MsgModifyConnection         MessageType = 25
	MsgModifyConnectionResponse MessageType = 26
	MsgPause                    MessageType = 27
	MsgPauseResponse            MessageType = 28
	MsgResume                   MessageType = 29
	msgCount                    MessageType = 30
)

// Direction says which way a message type travels.
type Direction uint8

const (
	// HostToGuest: delivered by the host into the guest's SynIC slot.
	HostToGuest Direction = 1
	// GuestToHost: posted by the guest with HvCallPostMessage.
	GuestToHost Direction = 2
)

func (d Direction) String() string {
	switch d {
	case HostToGuest:
		return "host-to-guest"
	case GuestToHost:
		return "guest-to-host"
	}
	return "no-direction"
}

// typeInfo is one row of spec §2.3.
type typeInfo struct {
	name    string
	dir     Direction
	minSize int          // smallest accepted size, header included
	minVer  Version      // first protocol version that has the message
	feature FeatureFlags // 6.0 feature the message needs, if any
	make    func() Message
}

// Minimum sizes are the struct sizes of the smallest form. For the
// host-to-guest types Linux checks (drivers/hv/channel_mgmt.c
// channel_message_table: OFFER 196, RESCIND 12, OPEN_RESULT 20,
// GPADL_CREATED 20, GPADL_TORNDOWN 12, VERSION_RESPONSE 16,
// MODIFYCHANNEL_RESPONSE 16) they are the same numbers.
var types = [msgCount]typeInfo{
	MsgOfferChannel:             {"OFFERCHANNEL", HostToGuest, OfferChannelSize, VersionWS2008, 0, func() Message { return new(OfferChannel) }},
	MsgRescindChannelOffer:      {"RESCIND_CHANNELOFFER", HostToGuest, 12, VersionWS2008, 0, func() Message { return new(RescindChannelOffer) }},
	MsgRequestOffers:            {"REQUESTOFFERS", GuestToHost, HeaderSize, VersionWS2008, 0, func() Message { return new(RequestOffers) }},
	MsgAllOffersDelivered:       {"ALLOFFERS_DELIVERED", HostToGuest, HeaderSize, VersionWS2008, 0, func() Message { return new(AllOffersDelivered) }},
	MsgOpenChannel:              {"OPENCHANNEL", GuestToHost, OpenChannelSize, VersionWS2008, 0, func() Message { return new(OpenChannel) }},
	MsgOpenChannelResult:        {"OPENCHANNEL_RESULT", HostToGuest, 20, VersionWS2008, 0, func() Message { return new(OpenChannelResult) }},
	MsgCloseChannel:             {"CLOSECHANNEL", GuestToHost, 12, VersionWS2008, 0, func() Message { return new(CloseChannel) }},
	MsgGPADLHeader:              {"GPADL_HEADER", GuestToHost, gpadlHeaderFixed + 8, VersionWS2008, 0, func() Message { return new(GPADLHeader) }},
	MsgGPADLBody:                {"GPADL_BODY", GuestToHost, gpadlBodyFixed + 8, VersionWS2008, 0, func() Message { return new(GPADLBody) }},
	MsgGPADLCreated:             {"GPADL_CREATED", HostToGuest, 20, VersionWS2008, 0, func() Message { return new(GPADLCreated) }},
	MsgGPADLTeardown:            {"GPADL_TEARDOWN", GuestToHost, 16, VersionWS2008, 0, func() Message { return new(GPADLTeardown) }},
	MsgGPADLTorndown:            {"GPADL_TORNDOWN", HostToGuest, 12, VersionWS2008, 0, func() Message { return new(GPADLTorndown) }},
	MsgRelIDReleased:            {"RELID_RELEASED", GuestToHost, 12, VersionWS2008, 0, func() Message { return new(RelIDReleased) }},
	MsgInitiateContact:          {"INITIATE_CONTACT", GuestToHost, InitiateContactSize, VersionWS2008, 0, func() Message { return new(InitiateContact) }},
	MsgVersionResponse:          {"VERSION_RESPONSE", HostToGuest, VersionResponseSize, VersionWS2008, 0, func() Message { return new(VersionResponse) }},
	MsgUnload:                   {"UNLOAD", GuestToHost, HeaderSize, VersionWS2008, 0, func() Message { return new(Unload) }},
	MsgUnloadResponse:           {"UNLOAD_RESPONSE", HostToGuest, HeaderSize, VersionWin7, 0, func() Message { return new(UnloadResponse) }},
	MsgOpenReservedChannel:      {"OPEN_RESERVED_CHANNEL", GuestToHost, 28, VersionWin10, 0, func() Message { return new(OpenReservedChannel) }},
	MsgCloseReservedChannel:     {"CLOSE_RESERVED_CHANNEL", GuestToHost, 20, VersionWin10, 0, func() Message { return new(CloseReservedChannel) }},
	MsgCloseReservedResponse:    {"CLOSE_RESERVED_RESPONSE", HostToGuest, 12, VersionWin10, 0, func() Message { return new(CloseReservedResponse) }},
	MsgTLConnectRequest:         {"TL_CONNECT_REQUEST", GuestToHost, TLConnectRequestSize, VersionWin10, 0, func() Message { return new(TLConnectRequest) }},
	MsgModifyChannel:            {"MODIFYCHANNEL", GuestToHost, 16, VersionWin10V4_1, 0, func() Message { return new(ModifyChannel) }},
	MsgTLConnectResult:          {"TL_CONNECT_RESULT", HostToGuest, 44, VersionWin10V4_1, 0, func() Message { return new(TLConnectResult) }},
	MsgModifyChannelResponse:    {"MODIFYCHANNEL_RESPONSE", HostToGuest, 16, VersionWin10V5_3, 0, func() Message { return new(ModifyChannelResponse) }},
	MsgModifyConnection:         {"MODIFY_CONNECTION", GuestToHost, 24, VersionWin10V6_0, FeatureModifyConnection, func() Message { return new(ModifyConnection) }},
	MsgModifyConnectionResponse: {"MODIFY_CONNECTION_RESPONSE", HostToGuest, 9, VersionWin10V6_0, FeatureModifyConnection, func() Message { return new(ModifyConnectionResponse) }},
	MsgPause:                    {"PAUSE", GuestToHost, HeaderSize, VersionWin10V6_0, FeaturePauseResume, func() Message { return new(Pause) }},
	MsgPauseResponse:            {"PAUSE_RESPONSE", HostToGuest, HeaderSize, VersionWin10V6_0, FeaturePauseResume, func() Message { return new(PauseResponse) }},
	MsgResume:                   {"RESUME", GuestToHost, HeaderSize, VersionWin10V6_0, FeaturePauseResume, func() Message { return new(Resume) }},
}

func (t MessageType) info() *typeInfo {
	if t >= msgCount || types[t].make == nil {
		return nil
	}
	return &types[t]
}

// Known reports whether t is a message type this package decodes.
func (t MessageType) Known() bool { return t.info() != nil }

// String returns the Linux-style name, e.g. "GPADL_HEADER".
func (t MessageType) String() string {
	if i := t.info(); i != nil {
		return i.name
	}
	return fmt.Sprintf("CHANNELMSG(%d)", uint32(t))
}

// Direction returns the way the type travels (zero for unknown types).
func (t MessageType) Direction() Direction {
	if i := t.info(); i != nil {
		return i.dir
	}
	return 0
}

// MinSize returns the smallest size (header included) a message of this
// type may have, or 0 for an unknown type.
func (t MessageType) MinSize() int {
	if i := t.info(); i != nil {
		return i.minSize
	}
	return 0
}

// MinVersion returns the first protocol version that defines the type
// (spec §2.3). Decoding does not enforce it: it depends on the negotiated
// version, which is the connection state machine's business.
func (t MessageType) MinVersion() Version {
	if i := t.info(); i != nil {
		return i.minVer
	}
	return 0
}

// RequiredFeature returns the 6.0 feature flag the type needs, or 0.
func (t MessageType) RequiredFeature() FeatureFlags {
	if i := t.info(); i != nil {
		return i.feature
	}
	return 0
}

// Message is one decoded channel message. The concrete types are pointers
// to the structs of this package.
type Message interface {
	// Type returns the message type written in the header.
	Type() MessageType
	// EncodedLen returns the number of bytes AppendTo writes.
	EncodedLen() int
	// AppendTo appends the message's exact wire bytes, header included.
	AppendTo(b []byte) []byte
	// Encode returns the wire bytes in a new slice.
	Encode() []byte

	// decode fills the message from b, whose type, direction and minimum
	// size the caller has checked.
	decode(b []byte) error
}

// encode is the shared body of every Encode method.
func encode(m Message) []byte { return m.AppendTo(make([]byte, 0, m.EncodedLen())) }
