// Package rndis encodes and decodes the RNDIS messages, per-packet info
// and NDIS objects that the Hyper-V synthetic NIC carries inside NVSP
// SEND_RNDIS_PKT messages (spec/nvsp-rndis.md §3 and §4).
//
// It is a wire package used by both sides: the hn guest driver
// (drivers/netvsc) and the simulated host's NetVSP (hyperv/host/netvsp).
// It is pure data and parsing: no goroutines, no I/O, no locks. Decoders
// validate lengths and offsets and return errors; none panics on any
// input.
//
// # Control plane
//
// DecodeMessage decodes any RNDIS message; DecodeFromHost and
// DecodeFromGuest additionally refuse a type that may only travel the
// other way. Each message type has AppendTo/Encode/EncodedLen. Offsets
// inside messages have three different bases, all handled here:
//
//   - QUERY, SET and QUERY_CMPLT info_buf_offset: from the RequestID field
//     (byte 8). Encoders always write 20 for requests (16 for
//     QUERY_CMPLT), even without data: Hyper-V fails a query whose offset
//     is 0 (FreeBSD hn_rndis.c).
//   - INDICATE_STATUS status_buf_offset: from the Status field (byte 8).
//     Old vSwitches left the buffer out of msg_len, so the buffer is
//     bounded by the bytes received, as Linux does.
//   - PACKET data, OOB and per-packet-info offsets: from the DataOffset
//     field (byte 8), minimum 36 (the end of the 44-byte header).
//
// # Data plane
//
// PutPacket and PutPacketHeader build a PACKET message with its
// per-packet info in a caller's buffer; PacketIter walks the PACKET
// messages lying back to back in one range (a send-buffer section holds
// up to max_pkt_per_msg of them) and returns each frame as a view with
// its PacketInfo. PPIIter and the PPI appenders work on raw per-packet
// info. None of these allocate.
//
// # NDIS objects and OIDs
//
// The OID_* constants, packet-filter bits and status codes come from
// Linux include/linux/rndis.h and drivers/net/hyperv/hyperv_net.h,
// FreeBSD sys/net/rndis.h and OpenVMM netvsp/src/rndisprot.rs. The NDIS
// objects exchanged through OIDs (offload parameters and capabilities,
// RSS capabilities and parameters, the RNDIS config parameter) have
// Encode/Decode pairs that validate their headers, sizes and offsets.
//
// Everything is little-endian. RNDIS messages are arrays of u32; NDIS
// objects use natural C alignment, with the padding called out in each
// type's offset table.
package rndis

import "errors"

// Errors returned by this package, always wrapped with context; test them
// with errors.Is.
var (
	// ErrShort: fewer bytes than the message or object needs.
	ErrShort = errors.New("rndis: too short")
	// ErrLength: a length field (msg_len, a buffer length, an object
	// size) that disagrees with the bytes present.
	ErrLength = errors.New("rndis: bad length")
	// ErrOffset: an offset that points outside its message or object, or
	// into its fixed header.
	ErrOffset = errors.New("rndis: bad offset")
	// ErrUnknownType: a message type this package does not know.
	ErrUnknownType = errors.New("rndis: unknown message type")
	// ErrWrongDirection: a known type that may not travel this way.
	ErrWrongDirection = errors.New("rndis: message type not valid in this direction")
	// ErrNotPacket: a data-path parser met a message that is not PACKET.
	ErrNotPacket = errors.New("rndis: not a PACKET message")
	// ErrPPI: a malformed per-packet-info record.
	ErrPPI = errors.New("rndis: bad per-packet info")
	// ErrObject: an NDIS object with the wrong type or revision.
	ErrObject = errors.New("rndis: bad NDIS object")
	// ErrBuffer: the caller's buffer is too small for what it asked to
	// build.
	ErrBuffer = errors.New("rndis: buffer too small")
)
