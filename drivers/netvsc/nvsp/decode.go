package nvsp

import "fmt"

// PeekType returns the message type in b's header without validating the
// rest.
func PeekType(b []byte) (MessageType, error) {
	if len(b) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, no header", ErrShort, len(b))
	}
	return MessageType(u32(b, 0)), nil
}

// DecodeFromHost decodes a message the guest received from the host: an
// inband packet's payload, a completion's payload, or the inline message
// of a transfer-page packet. v is the negotiated version (0 before INIT
// completes; it then counts as the newest). Host-only types are accepted;
// a guest-only type is ErrWrongDirection.
func DecodeFromHost(b []byte, v Version) (Message, error) { return decode(b, v, HostToGuest) }

// DecodeFromGuest decodes a message the host received from the guest. v
// is the negotiated version (0 before INIT completes). A host-only type is
// ErrWrongDirection.
func DecodeFromGuest(b []byte, v Version) (Message, error) { return decode(b, v, GuestToHost) }

// decode checks, in order: the header is present, the type is known and
// decodable, it may travel in direction dir, the message holds the type's
// minimum size.
func decode(b []byte, v Version, dir Direction) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	info, ok := t.info()
	if !ok {
		return nil, fmt.Errorf("%w: %d (%d bytes)", ErrUnknownType, uint32(t), len(b))
	}
	if info.minSize == 0 {
		return nil, fmt.Errorf("%w: %s (%d bytes)", ErrUnsupportedType, t, len(b))
	}
	if info.dir&dir == 0 {
		return nil, fmt.Errorf("%w: %s is %s, received %s", ErrWrongDirection, t, info.dir, dir)
	}
	if len(b) < info.minSize {
		return nil, fmt.Errorf("%w: %s of %d bytes, need %d", ErrShort, t, len(b), info.minSize)
	}
	m := newMessage(t, dir)
	if m == nil { // types and newMessage disagree: a bug here, not bad input
		return nil, fmt.Errorf("%w: %s has no decoder", ErrUnsupportedType, t)
	}
	if err := m.decode(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return m, nil
}

func newMessage(t MessageType, dir Direction) Message {
	switch t {
	case MsgInit:
		return new(Init)
	case MsgInitComplete:
		return new(InitComplete)
	case MsgSendNDISVersion:
		return new(SendNDISVersion)
	case MsgSendReceiveBuffer:
		return new(SendReceiveBuffer)
	case MsgSendReceiveBufferComplete:
		return new(SendReceiveBufferComplete)
	case MsgRevokeReceiveBuffer:
		return new(RevokeReceiveBuffer)
	case MsgSendSendBuffer:
		return new(SendSendBuffer)
	case MsgSendSendBufferComplete:
		return new(SendSendBufferComplete)
	case MsgRevokeSendBuffer:
		return new(RevokeSendBuffer)
	case MsgSendRNDISPacket:
		return new(SendRNDISPacket)
	case MsgSendRNDISPacketComplete:
		return new(SendRNDISPacketComplete)
	case MsgSendNDISConfig:
		return new(SendNDISConfig)
	case MsgSendVFAssociation:
		return new(SendVFAssociation)
	case MsgSwitchDataPath:
		return new(SwitchDataPath)
	case MsgOIDQueryEx:
		return new(OIDQueryEx)
	case MsgOIDQueryExComplete:
		return new(OIDQueryExComplete)
	case MsgSubchannel:
		if dir == GuestToHost {
			return new(SubchannelRequest)
		}
		return new(SubchannelComplete)
	case MsgSendIndirectionTable:
		return new(SendIndirectionTable)
	}
	return nil
}
