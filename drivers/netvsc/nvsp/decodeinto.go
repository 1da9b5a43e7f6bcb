package nvsp

import "fmt"

// DecodeSendRNDISPacketInto decodes a SEND_RNDIS_PKT (valid in both
// directions) into m without allocating: it is the data path's message,
// decoded once per packet. It applies Decode's checks (header present,
// minimum size); a message of another type is ErrInvalid, and the caller
// can fall back to DecodeFromGuest/DecodeFromHost for it.
func DecodeSendRNDISPacketInto(b []byte, m *SendRNDISPacket) error {
	t, err := PeekType(b)
	if err != nil {
		return err
	}
	if t != MsgSendRNDISPacket {
		return fmt.Errorf("%w: %s is not %s", ErrInvalid, t, MsgSendRNDISPacket)
	}
	if info, _ := t.info(); len(b) < info.minSize {
		return fmt.Errorf("%w: %s of %d bytes, need %d", ErrShort, t, len(b), info.minSize)
	}
	return m.decode(b, 0)
}
