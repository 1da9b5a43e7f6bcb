package rndis

import "fmt"

// PeekType returns the message type in b's header without validating the
// rest.
func PeekType(b []byte) (MessageType, error) {
	if len(b) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, no RNDIS header", ErrShort, len(b))
	}
	return MessageType(u32(b, 0)), nil
}

// DecodeMessage decodes the RNDIS message at the start of b, of either
// direction. b may hold more bytes after msg_len (a receive range, a
// send section); they are ignored except by INDICATE_STATUS (see
// IndicateStatus). Decoded messages own their bytes: nothing aliases b.
func DecodeMessage(b []byte) (Message, error) { return decode(b, 0) }

// DecodeFromHost decodes a message the guest received; a guest-to-host
// type is ErrWrongDirection.
func DecodeFromHost(b []byte) (Message, error) { return decode(b, HostToGuest) }

// DecodeFromGuest decodes a message the host received; a host-to-guest
// type is ErrWrongDirection.
func DecodeFromGuest(b []byte) (Message, error) { return decode(b, GuestToHost) }

// decode checks, in order: the header, a known type, the direction,
// msg_len at least the type's minimum and within b.
func decode(b []byte, dir Direction) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	info, ok := types[t]
	if !ok {
		return nil, fmt.Errorf("%w: %#x (%d bytes)", ErrUnknownType, uint32(t), len(b))
	}
	if dir != 0 && info.dir&dir == 0 {
		return nil, fmt.Errorf("%w: %s is %s, received %s", ErrWrongDirection, t, info.dir, dir)
	}
	n := u32(b, 4)
	if uint64(n) > uint64(len(b)) || n < uint32(info.minSize) {
		return nil, fmt.Errorf("%w: %s msg_len %d with %d bytes, need %d", ErrLength, t, n, len(b), info.minSize)
	}
	var m Message
	switch t {
	case MsgPacket:
		m = new(Packet)
	case MsgInitialize:
		m = new(Initialize)
	case MsgInitializeComplete:
		m = new(InitializeComplete)
	case MsgHalt:
		m = new(Halt)
	case MsgQuery:
		m = new(Query)
	case MsgQueryComplete:
		m = new(QueryComplete)
	case MsgSet:
		m = new(Set)
	case MsgSetComplete:
		m = new(SetComplete)
	case MsgReset:
		m = new(Reset)
	case MsgResetComplete:
		m = new(ResetComplete)
	case MsgKeepAlive:
		m = new(KeepAlive)
	case MsgKeepAliveComplete:
		m = new(KeepAliveComplete)
	case MsgIndicateStatus:
		// Bounded by the bytes received, not msg_len (IndicateStatus).
		m := new(IndicateStatus)
		if err := m.decode(b); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		return m, nil
	}
	if err := m.decode(b[:n]); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return m, nil
}
