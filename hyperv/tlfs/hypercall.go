package tlfs

import (
	"encoding/binary"
	"fmt"
)

// HypercallCode is the call code in bits 15:0 of the hypercall control
// word (TLFS "Hypercall interface"; Linux include/hyperv/hvgdk_mini.h
// HVCALL_*).
type HypercallCode uint16

// Hypercall codes a VMBus transport uses.
const (
	HvCallPostMessage             HypercallCode = 0x005C // slow, 256-byte input
	HvCallSignalEvent             HypercallCode = 0x005D // usually fast, 8-byte input
	HvCallRetargetDeviceInterrupt HypercallCode = 0x007E // vPCI MSI retargeting
	HvCallSignalEventDirect       HypercallCode = 0x00C0
	HvCallPostMessageDirect       HypercallCode = 0x00C1
	HvCallMmioRead                HypercallCode = 0x0106
	HvCallMmioWrite               HypercallCode = 0x0107
)

// Hypercall control word fields (RCX on x64).
const (
	ControlFast           = 1 << 16 // register-based (fast) call
	ControlVarHeaderShift = 17      // bits 26:17, variable header size in 8-byte units
	ControlNested         = 1 << 31
	ControlRepCountShift  = 32 // bits 43:32
	ControlRepStartShift  = 48 // bits 59:48
	controlRepMask        = 0xFFF
	controlVarHeaderMask  = 0x3FF
	resultRepsDoneShift   = 32 // result bits 43:32
	resultStatusMask      = 0xFFFF
)

// Control builds a hypercall control word for a simple (non-rep) call.
func Control(code HypercallCode, fast bool) uint64 {
	c := uint64(code)
	if fast {
		c |= ControlFast
	}
	return c
}

// RepControl builds a control word for a rep call of count elements
// starting at element start.
func RepControl(code HypercallCode, fast bool, count, start uint16) uint64 {
	return Control(code, fast) |
		uint64(count&controlRepMask)<<ControlRepCountShift |
		uint64(start&controlRepMask)<<ControlRepStartShift
}

// ControlCode extracts the call code from a control word.
func ControlCode(control uint64) HypercallCode { return HypercallCode(control) }

// ControlIsFast reports the fast bit of a control word.
func ControlIsFast(control uint64) bool { return control&ControlFast != 0 }

// ControlVarHeaderSize returns the variable header size in 8-byte units.
func ControlVarHeaderSize(control uint64) int {
	return int(control>>ControlVarHeaderShift) & controlVarHeaderMask
}

// Result builds the hypercall return value (RAX on x64): status in bits
// 15:0, reps completed in bits 43:32.
func Result(s Status, repsDone uint16) uint64 {
	return uint64(s) | uint64(repsDone&controlRepMask)<<resultRepsDoneShift
}

// StatusFromResult extracts the status from a hypercall return value.
func StatusFromResult(rax uint64) Status { return Status(rax & resultStatusMask) }

// RepsFromResult extracts the completed rep count from a return value.
func RepsFromResult(rax uint64) uint16 {
	return uint16(rax>>resultRepsDoneShift) & controlRepMask
}

// Connection ids are 24 bits; the top 8 bits of the u32 are reserved
// (Linux union hv_connection_id).
const ConnectionIDMask = 0x00FFFFFF

// PostMessageInputSize is the size of the HvCallPostMessage input block.
const PostMessageInputSize = 16 + MessagePayloadMax

// PostMessageInput is the HvCallPostMessage input (TLFS HvCallPostMessage;
// Linux drivers/hv/hyperv_vmbus.h struct hv_input_post_message):
//
//	off 0   u32 ConnectionId  (low 24 bits; top 8 reserved)
//	off 4   u32 RsvdZ
//	off 8   u32 MessageType   (non-zero, MSB clear; VMBus uses 1)
//	off 12  u32 PayloadSize   (0..240)
//	off 16  u8  Payload[240]  (only PayloadSize bytes are delivered)
type PostMessageInput struct {
	ConnectionID uint32
	MessageType  MessageType
	PayloadSize  uint32
	Payload      [MessagePayloadMax]byte
}

// NewPostMessageInput builds an input posting payload (at most 240 bytes)
// to the connection with the given message type.
func NewPostMessageInput(conn uint32, typ MessageType, payload []byte) (PostMessageInput, error) {
	var in PostMessageInput
	if len(payload) > MessagePayloadMax {
		return in, fmt.Errorf("%w: %d bytes", ErrPayloadSize, len(payload))
	}
	in.ConnectionID, in.MessageType, in.PayloadSize = conn, typ, uint32(len(payload))
	copy(in.Payload[:], payload)
	return in, nil
}

// Data returns the delivered part of the payload. PayloadSize above 240
// (possible only in a value built by hand) is clamped.
func (p *PostMessageInput) Data() []byte {
	return p.Payload[:min(int(p.PayloadSize), MessagePayloadMax)]
}

// Put writes the 256-byte input block into b, which must hold
// PostMessageInputSize bytes, and returns the number written.
func (p *PostMessageInput) Put(b []byte) int {
	_ = b[PostMessageInputSize-1]
	binary.LittleEndian.PutUint32(b[0:], p.ConnectionID)
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint32(b[8:], uint32(p.MessageType))
	binary.LittleEndian.PutUint32(b[12:], p.PayloadSize)
	copy(b[16:PostMessageInputSize], p.Payload[:])
	return PostMessageInputSize
}

// AppendTo appends the 256-byte input block to b.
func (p *PostMessageInput) AppendTo(b []byte) []byte {
	n := len(b)
	b = append(b, make([]byte, PostMessageInputSize)...)
	p.Put(b[n:])
	return b
}

// Encode returns the 256-byte input block.
func (p *PostMessageInput) Encode() []byte { return p.AppendTo(nil) }

// DecodePostMessageInput parses an HvCallPostMessage input block as the
// hypervisor does. b must hold the 16-byte header and at least PayloadSize
// payload bytes (a whole 256-byte block always does). A block the
// hypervisor would refuse returns the Status it would return
// (StatusInvalidParameter for a zero or MSB-set message type, a payload
// size above 240, or non-zero reserved bits), wrapped with context, so a
// simulated hypervisor can hand it back with errors.As.
func DecodePostMessageInput(b []byte) (PostMessageInput, error) {
	var p PostMessageInput
	if len(b) < 16 {
		return p, fmt.Errorf("%w: %d bytes for a post-message input", ErrShort, len(b))
	}
	p.ConnectionID = binary.LittleEndian.Uint32(b[0:])
	rsvd := binary.LittleEndian.Uint32(b[4:])
	p.MessageType = MessageType(binary.LittleEndian.Uint32(b[8:]))
	p.PayloadSize = binary.LittleEndian.Uint32(b[12:])
	switch {
	case p.PayloadSize > MessagePayloadMax:
		return p, fmt.Errorf("post message: payload size %d > %d: %w", p.PayloadSize, MessagePayloadMax, StatusInvalidParameter)
	case !p.MessageType.Postable():
		return p, fmt.Errorf("post message: message type %#x: %w", uint32(p.MessageType), StatusInvalidParameter)
	case rsvd != 0 || p.ConnectionID&^ConnectionIDMask != 0:
		return p, fmt.Errorf("post message: reserved bits set: %w", StatusInvalidParameter)
	}
	if len(b) < 16+int(p.PayloadSize) {
		return p, fmt.Errorf("%w: payload of %d bytes, have %d", ErrShort, p.PayloadSize, len(b)-16)
	}
	copy(p.Payload[:], b[16:16+p.PayloadSize])
	return p, nil
}

// SignalEventInputSize is the size of the HvCallSignalEvent input.
const SignalEventInputSize = 8

// SignalEventInput is the HvCallSignalEvent input (TLFS HvCallSignalEvent;
// Linux include/hyperv/hvgdk_mini.h struct hv_input_signal_event, FreeBSD
// struct hyperv_mon_param):
//
//	off 0  u32 ConnectionId (low 24 bits)
//	off 4  u16 FlagNumber   (relative to the port's base flag; VMBus uses 0)
//	off 6  u16 RsvdZ
//
// Linux issues it as a fast call with the whole input in RDX (see Fast).
type SignalEventInput struct {
	ConnectionID uint32
	FlagNumber   uint16
}

// Put writes the 8-byte input into b and returns 8.
func (s SignalEventInput) Put(b []byte) int {
	_ = b[SignalEventInputSize-1]
	binary.LittleEndian.PutUint64(b, s.Fast())
	return SignalEventInputSize
}

// AppendTo appends the 8-byte input to b.
func (s SignalEventInput) AppendTo(b []byte) []byte {
	return binary.LittleEndian.AppendUint64(b, s.Fast())
}

// Encode returns the 8-byte input.
func (s SignalEventInput) Encode() []byte { return s.AppendTo(nil) }

// Fast returns the input as the one 64-bit register of a fast call.
func (s SignalEventInput) Fast() uint64 {
	return uint64(s.ConnectionID) | uint64(s.FlagNumber)<<32
}

// SignalEventFromFast decodes the register of a fast HvCallSignalEvent.
// Reserved bits set yield StatusInvalidParameter.
func SignalEventFromFast(v uint64) (SignalEventInput, error) {
	s := SignalEventInput{ConnectionID: uint32(v), FlagNumber: uint16(v >> 32)}
	if v>>48 != 0 || s.ConnectionID&^ConnectionIDMask != 0 {
		return s, fmt.Errorf("signal event: reserved bits set in %#x: %w", v, StatusInvalidParameter)
	}
	return s, nil
}

// DecodeSignalEventInput decodes the 8-byte input of a slow call.
func DecodeSignalEventInput(b []byte) (SignalEventInput, error) {
	if len(b) < SignalEventInputSize {
		return SignalEventInput{}, fmt.Errorf("%w: %d bytes for a signal-event input", ErrShort, len(b))
	}
	return SignalEventFromFast(binary.LittleEndian.Uint64(b))
}
