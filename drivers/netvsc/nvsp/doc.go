// Package nvsp encodes and decodes NVSP (Network Virtual Service Provider)
// messages: the control protocol of the Hyper-V synthetic NIC that travels
// in VMBus packets on a netvsc channel (spec/nvsp-rndis.md §2).
//
// It is a wire package used by both sides: the hn guest driver
// (drivers/netvsc) and the simulated host's NetVSP (hyperv/host/netvsp).
// It is pure data and parsing: no goroutines, no I/O, no locks. Decoders
// validate sizes and offsets and return errors; none panics on any input.
//
// # Messages
//
// Every message is a u32 type followed by a per-type body. Each type in
// this package has AppendTo/Encode/EncodedLen producing its natural size:
// the header plus the packed upstream body struct. On the wire peers pad
// messages to a fixed size (§2.2): Linux and DPDK guests always send 40
// bytes, FreeBSD at least 32 (a 12-byte INIT is never answered by
// Hyper-V), and the host answers with 28 bytes before NVSP 6.1 and 40 from
// 6.1 on. Use AppendPadded with GuestMessageSize or HostMessageSize(v).
//
// Decoding is direction-aware: the guest calls DecodeFromHost and the host
// DecodeFromGuest, so a type that may only travel the other way fails with
// ErrWrongDirection before any field is trusted. SUBCHANNEL (133) uses one
// type number for the request and its completion; the direction picks
// *SubchannelRequest or *SubchannelComplete. Bytes beyond a type's body are
// ignored, as every upstream peer does, except for SEND_INDIRECTION_TABLE
// whose table lives there. Decoders take the negotiated protocol version
// because one host quirk depends on it (§2.11, see SendIndirectionTable);
// decoding does not otherwise enforce which types a version has (see
// MessageType.MinVersion), which is the channel state machine's business.
//
// Layouts follow Linux drivers/net/hyperv/hyperv_net.h (struct nvsp_*),
// FreeBSD sys/dev/hyperv/netvsc/if_hnreg.h (struct hn_nvs_*), DPDK
// drivers/net/netvsc/hn_nvs.h and OpenVMM vm/devices/net/netvsp/src/
// protocol.rs; each type's comment gives its offsets (header included) and
// the upstream struct. Everything is little-endian and packed.
package nvsp

import "errors"

// Errors returned by this package, always wrapped with context; test them
// with errors.Is.
var (
	// ErrShort: shorter than the message type's minimum size.
	ErrShort = errors.New("nvsp: message too short")
	// ErrUnknownType: a type number no NVSP version defines.
	ErrUnknownType = errors.New("nvsp: unknown message type")
	// ErrUnsupportedType: a type NVSP defines but that no current peer
	// uses (v2 chimney and VMQ messages, the deprecated uplink state,
	// PacketDirect); this package does not decode its body.
	ErrUnsupportedType = errors.New("nvsp: obsolete or unsupported message type")
	// ErrWrongDirection: a known type that may not travel this way.
	ErrWrongDirection = errors.New("nvsp: message type not valid in this direction")
	// ErrInvalid: a field value the format rules out (e.g. a send
	// indirection table that does not fit the message).
	ErrInvalid = errors.New("nvsp: invalid message")
)
