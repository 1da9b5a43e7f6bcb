package nvsp

import "fmt"

// SubchannelOp is the operation of a SUBCHANNEL request (Linux enum
// nvsp_subchannel_operation).
type SubchannelOp uint32

const (
	SubchannelNone     SubchannelOp = 0
	SubchannelAllocate SubchannelOp = 1
)

// SubchannelRequest is SUBCHANNEL (133) guest to host from Version5, 12
// bytes, completion requested (Linux struct nvsp_5_subchannel_request).
// The guest asks for num_chn - 1 subchannels on the primary channel.
//
//	off 4  u32 Op (1 allocate)
//	off 8  u32 Count (subchannels wanted)
type SubchannelRequest struct {
	Op    SubchannelOp
	Count uint32
}

func (m *SubchannelRequest) Type() MessageType { return MsgSubchannel }
func (m *SubchannelRequest) EncodedLen() int   { return 12 }
func (m *SubchannelRequest) Encode() []byte    { return encode(m) }
func (m *SubchannelRequest) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSubchannel))
	b = le.AppendUint32(b, uint32(m.Op))
	return le.AppendUint32(b, m.Count)
}
func (m *SubchannelRequest) decode(b []byte, _ Version) error {
	m.Op, m.Count = SubchannelOp(u32(b, 4)), u32(b, 8)
	return nil
}

// SubchannelComplete is SUBCHANNEL (133) host to guest, in the completion
// of the request, 12 bytes (Linux struct nvsp_5_subchannel_complete).
// Linux refuses a Count above the request; FreeBSD clamps.
//
//	off 4  u32 Status
//	off 8  u32 Count (subchannels allocated)
type SubchannelComplete struct {
	Status Status
	Count  uint32
}

func (m *SubchannelComplete) Type() MessageType { return MsgSubchannel }
func (m *SubchannelComplete) EncodedLen() int   { return 12 }
func (m *SubchannelComplete) Encode() []byte    { return encode(m) }
func (m *SubchannelComplete) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSubchannel))
	b = le.AppendUint32(b, uint32(m.Status))
	return le.AppendUint32(b, m.Count)
}
func (m *SubchannelComplete) decode(b []byte, _ Version) error {
	m.Status, m.Count = Status(u32(b, 4)), u32(b, 8)
	return nil
}

const (
	// SendTableSize is the number of entries Linux requires in a send
	// indirection table (VRSS_SEND_TAB_SIZE); tx channel = table[hash&15].
	SendTableSize = 16
	// SendTableFixedOffset is where Linux reads the table when the host
	// offset is not trusted: header + sizeof(union nvsp_6_message_uber),
	// 4 + 36. It is also the offset AppendTo uses when Offset is 0.
	SendTableFixedOffset = 40
	sendTableBody        = 12
)

// SendIndirectionTable is SEND_INDIRECTION_TABLE (134), host to guest from
// Version5, inband, no completion (Linux struct nvsp_5_send_indirect_table
// followed by the table):
//
//	off 4       u32 count (entries; Linux requires SendTableSize)
//	off 8       u32 offset (of the table, from the start of the message)
//	off offset  u32 table[count] (channel indices)
//
// Host quirk (spec §2.11; Linux netvsc_send_table): Windows hosts that
// negotiated at most Version6 put a wrong value in offset, so when the
// negotiated version is at most Version6 and the message holds 40 +
// 4·count bytes, the table is read at SendTableFixedOffset whatever the
// field says. Decoding applies the same rule and reports the offset it
// used in Offset. OpenVMM puts the table right after the body (offset
// 12, a 76-byte message, below the fix-up threshold). A host should send
// offset 40 with the table at 40, which both the old and fixed rules read
// correctly; AppendTo does so when Offset is 0.
//
// Decoding requires count ≥ 1 and the table inside the message, after the
// 12-byte body.
type SendIndirectionTable struct {
	Offset uint32   // table offset from the start of the message; 0: SendTableFixedOffset
	Table  []uint32 // channel (queue) index per entry
}

func (m *SendIndirectionTable) offset() int {
	if m.Offset == 0 {
		return SendTableFixedOffset
	}
	return int(max(m.Offset, sendTableBody))
}

func (m *SendIndirectionTable) Type() MessageType { return MsgSendIndirectionTable }
func (m *SendIndirectionTable) EncodedLen() int   { return m.offset() + 4*len(m.Table) }
func (m *SendIndirectionTable) Encode() []byte    { return encode(m) }
func (m *SendIndirectionTable) AppendTo(b []byte) []byte {
	off := m.offset()
	b = le.AppendUint32(b, uint32(MsgSendIndirectionTable))
	b = le.AppendUint32(b, uint32(len(m.Table)))
	b = le.AppendUint32(b, uint32(off))
	for i := sendTableBody; i < off; i++ {
		b = append(b, 0)
	}
	for _, e := range m.Table {
		b = le.AppendUint32(b, e)
	}
	return b
}

func (m *SendIndirectionTable) decode(b []byte, v Version) error {
	count, off := uint64(u32(b, 4)), uint64(u32(b, 8))
	n := uint64(len(b))
	if count == 0 || count*4 > n-sendTableBody {
		return fmt.Errorf("%w: send table of %d entries in %d bytes", ErrInvalid, count, n)
	}
	if v != 0 && v <= Version6 && n >= SendTableFixedOffset+count*4 {
		off = SendTableFixedOffset
	}
	if off < sendTableBody || off+count*4 > n {
		return fmt.Errorf("%w: send table of %d entries at offset %d in %d bytes", ErrInvalid, count, off, n)
	}
	m.Offset = uint32(off)
	m.Table = make([]uint32, count)
	for i := range m.Table {
		m.Table[i] = u32(b, int(off)+4*i)
	}
	return nil
}
