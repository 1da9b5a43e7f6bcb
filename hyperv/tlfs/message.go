package tlfs

import (
	"encoding/binary"
	"fmt"
)

// SynIC message sizes (TLFS HV_MESSAGE; Linux HV_MESSAGE_SIZE and
// HV_MESSAGE_PAYLOAD_BYTE_COUNT; FreeBSD VMBUS_MSG_SIZE/VMBUS_MSG_DSIZE_MAX).
const (
	MessageSize       = 256
	MessageHeaderSize = 16
	MessagePayloadMax = 240 // also the largest VMBus channel message
)

// MessageType is HV_MESSAGE_TYPE: the u32 at offset 0 of a SynIC message
// slot, and the MessageType argument of HvCallPostMessage.
type MessageType uint32

// Message types (TLFS HV_MESSAGE_TYPE; Linux enum hv_message_type). Types
// with the top bit set are reserved to the hypervisor; partitions post
// types in 1..0x7FFFFFFF, and VMBus uses 1.
const (
	MsgNone                   MessageType = 0x00000000 // slot empty
	MsgVMBus                  MessageType = 0x00000001 // VMBus channel message
	MsgUnmappedGPA            MessageType = 0x80000000
	MsgGPAIntercept           MessageType = 0x80000001
	MsgTimerExpired           MessageType = 0x80000010
	MsgInvalidVPRegisterValue MessageType = 0x80000020
	MsgUnrecoverableException MessageType = 0x80000021
	MsgUnsupportedFeature     MessageType = 0x80000022
	MsgOpaqueIntercept        MessageType = 0x8000003F
	MsgEventLogBufferComplete MessageType = 0x80000040
	MsgHypercallIntercept     MessageType = 0x80000050
	MsgSynICEventIntercept    MessageType = 0x80000060
	MsgSynICSINTIntercept     MessageType = 0x80000061
	MsgSynICSINTDeliverable   MessageType = 0x80000062
	MsgAsyncCallCompletion    MessageType = 0x80000070
	MsgX64IOPortIntercept     MessageType = 0x80010000
	MsgX64MSRIntercept        MessageType = 0x80010001
	MsgX64CPUIDIntercept      MessageType = 0x80010002
	MsgX64ExceptionIntercept  MessageType = 0x80010003
	MsgX64APICEOI             MessageType = 0x80010004
	MsgX64LegacyFPError       MessageType = 0x80010005
)

// Postable reports whether a partition may post this type with
// HvCallPostMessage: non-zero with the most significant bit clear.
func (t MessageType) Postable() bool { return t != 0 && t&0x80000000 == 0 }

var messageTypeNames = map[MessageType]string{
	MsgNone: "HVMSG_NONE", MsgVMBus: "VMBUS", MsgUnmappedGPA: "HVMSG_UNMAPPED_GPA",
	MsgGPAIntercept: "HVMSG_GPA_INTERCEPT", MsgTimerExpired: "HVMSG_TIMER_EXPIRED",
	MsgInvalidVPRegisterValue: "HVMSG_INVALID_VP_REGISTER_VALUE",
	MsgUnrecoverableException: "HVMSG_UNRECOVERABLE_EXCEPTION",
	MsgUnsupportedFeature:     "HVMSG_UNSUPPORTED_FEATURE",
	MsgOpaqueIntercept:        "HVMSG_OPAQUE_INTERCEPT",
	MsgEventLogBufferComplete: "HVMSG_EVENTLOG_BUFFERCOMPLETE",
	MsgHypercallIntercept:     "HVMSG_HYPERCALL_INTERCEPT",
	MsgSynICEventIntercept:    "HVMSG_SYNIC_EVENT_INTERCEPT",
	MsgSynICSINTIntercept:     "HVMSG_SYNIC_SINT_INTERCEPT",
	MsgSynICSINTDeliverable:   "HVMSG_SYNIC_SINT_DELIVERABLE",
	MsgAsyncCallCompletion:    "HVMSG_ASYNC_CALL_COMPLETION",
	MsgX64IOPortIntercept:     "HVMSG_X64_IO_PORT_INTERCEPT",
	MsgX64MSRIntercept:        "HVMSG_X64_MSR_INTERCEPT",
	MsgX64CPUIDIntercept:      "HVMSG_X64_CPUID_INTERCEPT",
	MsgX64ExceptionIntercept:  "HVMSG_X64_EXCEPTION_INTERCEPT",
	MsgX64APICEOI:             "HVMSG_X64_APIC_EOI",
	MsgX64LegacyFPError:       "HVMSG_X64_LEGACY_FP_ERROR",
}

func (t MessageType) String() string {
	if n, ok := messageTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("HVMSG(0x%08x)", uint32(t))
}

// MessageFlags is HV_MESSAGE_FLAGS, the byte at offset 5.
type MessageFlags uint8

// MessagePending: more messages are queued behind this slot; after
// emptying the slot the guest must write the EOM register (TLFS
// HV_MESSAGE_FLAGS.MessagePending; FreeBSD VMBUS_MSGFLAG_PENDING).
const MessagePending MessageFlags = 0x01

// Message is one SynIC message, HV_MESSAGE (TLFS HV_MESSAGE; Linux
// include/hyperv/hvgdk_mini.h struct hv_message_header + payload; FreeBSD
// struct vmbus_message):
//
//	off 0   u32 MessageType   (0 = HVMSG_NONE, slot empty)
//	off 4   u8  PayloadSize   (0..240)
//	off 5   u8  MessageFlags  (bit 0 MessagePending)
//	off 6   u16 Reserved
//	off 8   u64 OriginationId (sender partition, or port id for posted messages)
//	off 16  u8  Payload[240]
//
// The reserved field is written as zero and ignored on decode.
type Message struct {
	Type          MessageType
	PayloadSize   uint8
	Flags         MessageFlags
	OriginationID uint64
	Payload       [MessagePayloadMax]byte
}

// NewMessage builds a message of the given type carrying data (at most 240
// bytes) from the given origin (for VMBus: the port id).
func NewMessage(typ MessageType, origin uint64, data []byte) (Message, error) {
	var m Message
	if len(data) > MessagePayloadMax {
		return m, fmt.Errorf("%w: %d bytes", ErrPayloadSize, len(data))
	}
	m.Type, m.OriginationID, m.PayloadSize = typ, origin, uint8(len(data))
	copy(m.Payload[:], data)
	return m, nil
}

// Data returns the valid part of the payload (clamped to 240 bytes for a
// value built by hand with a larger PayloadSize).
func (m *Message) Data() []byte { return m.Payload[:min(int(m.PayloadSize), MessagePayloadMax)] }

// Pending reports the MessagePending flag.
func (m *Message) Pending() bool { return m.Flags&MessagePending != 0 }

// Put writes the 256-byte message into b, which must hold MessageSize
// bytes, and returns MessageSize.
func (m *Message) Put(b []byte) int {
	_ = b[MessageSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(m.Type))
	b[4] = m.PayloadSize
	b[5] = byte(m.Flags)
	b[6], b[7] = 0, 0
	binary.LittleEndian.PutUint64(b[8:], m.OriginationID)
	copy(b[MessageHeaderSize:MessageSize], m.Payload[:])
	return MessageSize
}

// AppendTo appends the 256-byte message to b.
func (m *Message) AppendTo(b []byte) []byte {
	n := len(b)
	b = append(b, make([]byte, MessageSize)...)
	m.Put(b[n:])
	return b
}

// Encode returns the 256-byte message.
func (m *Message) Encode() []byte { return m.AppendTo(nil) }

// DecodeMessage parses a 256-byte SynIC message. It rejects a buffer
// shorter than 256 bytes and a payload size above 240.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	err := m.Decode(b)
	return m, err
}

// Decode is DecodeMessage into m, for callers that reuse one Message.
func (m *Message) Decode(b []byte) error {
	if len(b) < MessageSize {
		return fmt.Errorf("%w: %d bytes for a SynIC message", ErrShort, len(b))
	}
	if b[4] > MessagePayloadMax {
		return fmt.Errorf("%w: SynIC message payload size %d > %d", ErrPayloadSize, b[4], MessagePayloadMax)
	}
	m.Type = MessageType(binary.LittleEndian.Uint32(b[0:]))
	m.PayloadSize = b[4]
	m.Flags = MessageFlags(b[5])
	m.OriginationID = binary.LittleEndian.Uint64(b[8:])
	copy(m.Payload[:], b[MessageHeaderSize:MessageSize])
	return nil
}

// TimerMessagePayload is the payload of HVMSG_TIMER_EXPIRED (TLFS
// HV_TIMER_MESSAGE_PAYLOAD; Linux struct hv_timer_message_payload):
//
//	off 0  u32 TimerIndex
//	off 4  u32 Reserved
//	off 8  u64 ExpirationTime (100 ns units)
//	off 16 u64 DeliveryTime   (100 ns units)
type TimerMessagePayload struct {
	TimerIndex     uint32
	ExpirationTime uint64
	DeliveryTime   uint64
}

// TimerMessagePayloadSize is the encoded size of TimerMessagePayload.
const TimerMessagePayloadSize = 24

// AppendTo appends the 24-byte payload to b.
func (p TimerMessagePayload) AppendTo(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, p.TimerIndex)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, p.ExpirationTime)
	return binary.LittleEndian.AppendUint64(b, p.DeliveryTime)
}

// DecodeTimerMessagePayload parses a timer-expired payload.
func DecodeTimerMessagePayload(b []byte) (TimerMessagePayload, error) {
	if len(b) < TimerMessagePayloadSize {
		return TimerMessagePayload{}, fmt.Errorf("%w: %d bytes for a timer payload", ErrShort, len(b))
	}
	return TimerMessagePayload{
		TimerIndex:     binary.LittleEndian.Uint32(b[0:]),
		ExpirationTime: binary.LittleEndian.Uint64(b[8:]),
		DeliveryTime:   binary.LittleEndian.Uint64(b[16:]),
	}, nil
}
