package vmbusmsg

import "fmt"

// PeekType returns the message type in b's header without validating the
// rest.
func PeekType(b []byte) (MessageType, error) {
	if len(b) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, no header", ErrShort, len(b))
	}
	return MessageType(u32(b, 0)), nil
}

// DecodeFromHost decodes a message the guest received from the host (the
// payload of a SynIC message of type 1). It accepts only host-to-guest
// types; a guest-to-host type is ErrWrongDirection.
func DecodeFromHost(b []byte) (Message, error) { return decode(b, HostToGuest) }

// DecodeFromGuest decodes a message the host received from the guest (the
// payload of HvCallPostMessage). It accepts only guest-to-host types; a
// host-to-guest type is ErrWrongDirection.
func DecodeFromGuest(b []byte) (Message, error) { return decode(b, GuestToHost) }

// Decode decodes a message of either direction, for tools that watch both
// (tracing, capture). Endpoints use DecodeFromHost or DecodeFromGuest.
func Decode(b []byte) (Message, error) { return decode(b, 0) }

// decode checks, in order: the header is present, the message fits the
// SynIC payload, the type is known, it travels in direction dir (0: any),
// the message holds the type's minimum size. Bytes past the largest form
// of a fixed-size type are ignored, as Linux and OpenVMM do; the
// variable-size GPADL messages account for every byte.
func decode(b []byte, dir Direction) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %s of %d bytes", ErrTooLong, t, len(b))
	}
	info := t.info()
	if info == nil {
		return nil, fmt.Errorf("%w: %d (%d bytes)", ErrUnknownType, uint32(t), len(b))
	}
	if dir != 0 && info.dir != dir {
		return nil, fmt.Errorf("%w: %s is %s, received %s", ErrWrongDirection, t, info.dir, dir)
	}
	if len(b) < info.minSize {
		return nil, fmt.Errorf("%w: %s of %d bytes, need %d", ErrShort, t, len(b), info.minSize)
	}
	m := info.make()
	if err := m.decode(b); err != nil {
		return nil, err
	}
	return m, nil
}
