// Package vmbusmsg encodes and decodes VMBus channel-management messages:
// the 8..240-byte messages the guest posts with HvCallPostMessage and the
// host delivers into the guest's SynIC SINT 2 slot (offers, GPADLs,
// open/close, version negotiation, unload, hv_sock connect, and the 6.0
// additions).
//
// It is a wire package used by both sides: the guest VMBus client
// (hyperv/vmbus) and the simulated host's VMBus server (hyperv/host). It
// is pure data and parsing: no goroutines, no I/O, no locks. Decoders
// validate sizes and internal consistency and return errors; none panics on
// any input.
//
// Decoding is direction-aware: the guest calls DecodeFromHost and the host
// calls DecodeFromGuest, so a message that may only travel the other way is
// rejected with ErrWrongDirection before any field is trusted. Both return
// a Message; type-switch on the pointer types (*OfferChannel,
// *GPADLHeader, ...). Every message type has AppendTo and Encode producing
// the exact wire bytes.
//
// GPADLs larger than one message are split with SplitGPADL (guest) and
// reassembled with an Assembler (host), which bounds the memory a guest can
// make the host hold.
//
// Layouts follow Linux include/linux/hyperv.h (struct vmbus_channel_*),
// FreeBSD sys/dev/hyperv/vmbus/vmbus_reg.h (struct vmbus_chanmsg_*) and
// OpenVMM vm/devices/vmbus/vmbus_core/src/protocol.rs; each type's comment
// gives its offsets (header included) and the upstream struct. Everything is
// little-endian and packed.
package vmbusmsg

import "errors"

// Errors returned by this package, always wrapped with context; test them
// with errors.Is.
var (
	// ErrShort: shorter than the message type's minimum size.
	ErrShort = errors.New("vmbusmsg: message too short")
	// ErrTooLong: longer than the 240-byte SynIC payload.
	ErrTooLong = errors.New("vmbusmsg: message longer than 240 bytes")
	// ErrUnknownType: a message type this package does not know.
	ErrUnknownType = errors.New("vmbusmsg: unknown message type")
	// ErrWrongDirection: a known type that may not travel this way (a
	// host-to-guest type arriving at the host, or the reverse).
	ErrWrongDirection = errors.New("vmbusmsg: message type not valid in this direction")
	// ErrInconsistent: fields of one message that contradict each other
	// (e.g. a GPADL header whose range count, range_buflen and PFNs
	// disagree).
	ErrInconsistent = errors.New("vmbusmsg: inconsistent message")
	// ErrTooLarge: a GPADL beyond the wire format's or the caller's limits.
	ErrTooLarge = errors.New("vmbusmsg: GPADL too large")
	// ErrUnknownGPADL: a GPADL body for a GPADL id with no header pending.
	ErrUnknownGPADL = errors.New("vmbusmsg: GPADL body for an unknown GPADL")
	// ErrDuplicateGPADL: a GPADL header for an id that is already pending.
	ErrDuplicateGPADL = errors.New("vmbusmsg: GPADL id already pending")
	// ErrExtraData: GPADL bodies carrying more than range_buflen announced.
	ErrExtraData = errors.New("vmbusmsg: GPADL body past range_buflen")
)
