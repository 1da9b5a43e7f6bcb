package rndis

import "fmt"

// ObjectHeader is NDIS_OBJECT_HEADER, 4 bytes, at the start of every NDIS
// object (Linux struct ndis_object_header):
//
//	off 0  u8  Type
//	off 1  u8  Revision
//	off 2  u16 Size (of the whole object, header included)
type ObjectHeader struct {
	Type     uint8
	Revision uint8
	Size     uint16
}

// ObjectHeaderSize is the size of ObjectHeader.
const ObjectHeaderSize = 4

// NDIS object types (spec §4.3).
const (
	ObjectTypeDefault              = 0x80 // NDIS_OFFLOAD_PARAMETERS, NDIS_LINK_STATE
	ObjectTypeRSSCapabilities      = 0x88
	ObjectTypeRSSParameters        = 0x89
	ObjectTypeOIDRequest           = 0x96
	ObjectTypeOffload              = 0xA7 // NDIS_OFFLOAD
	ObjectTypeOffloadEncapsulation = 0xA8
)

// AppendTo appends the 4 header bytes, e.g. as the input of a query for
// OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES or
// OID_GEN_RECEIVE_SCALE_CAPABILITIES.
func (h ObjectHeader) AppendTo(b []byte) []byte {
	return le.AppendUint16(append(b, h.Type, h.Revision), h.Size)
}

func (h *ObjectHeader) put(b []byte) { b[0], b[1] = h.Type, h.Revision; le.PutUint16(b[2:], h.Size) }

// DecodeObjectHeader reads the header at the start of b.
func DecodeObjectHeader(b []byte) (ObjectHeader, error) {
	if len(b) < ObjectHeaderSize {
		return ObjectHeader{}, fmt.Errorf("%w: %d bytes, no NDIS object header", ErrShort, len(b))
	}
	return ObjectHeader{b[0], b[1], u16(b, 2)}, nil
}

// checkObject reads and checks an object header: the type, a revision of
// at least 1, a size of at least minSize that fits b. It returns the
// object's bytes.
func checkObject(b []byte, what string, typ uint8, minSize int) (ObjectHeader, []byte, error) {
	h, err := DecodeObjectHeader(b)
	if err != nil {
		return h, nil, err
	}
	switch {
	case h.Type != typ || h.Revision == 0:
		return h, nil, fmt.Errorf("%w: %s with type %#x revision %d", ErrObject, what, h.Type, h.Revision)
	case int(h.Size) < minSize || int(h.Size) > len(b):
		return h, nil, fmt.Errorf("%w: %s of size %d in %d bytes, need %d", ErrLength, what, h.Size, len(b), minSize)
	}
	return h, b[:h.Size], nil
}

// appendSized appends the first size bytes of the full encoding full,
// zero-extended if size is larger.
func appendSized(b, full []byte, size int) []byte {
	if size <= len(full) {
		return append(b, full[:size]...)
	}
	b = append(b, full...)
	return append(b, make([]byte, size-len(full))...)
}

// OffloadSetting values of the checksum fields of OffloadParameters
// (NDIS_OFFLOAD_PARAMETERS_*).
const (
	OffloadNoChange            = 0
	OffloadTxRxDisabled        = 1
	OffloadTxEnabledRxDisabled = 2
	OffloadRxEnabledTxDisabled = 3
	OffloadTxRxEnabled         = 4

	// LSO and RSC fields: 0 no change, 1 disabled, 2 enabled.
	OffloadDisabled = 1
	OffloadEnabled  = 2
)

// Sizes of NDIS_OFFLOAD_PARAMETERS per revision: rev 1 ends at flags
// (OpenVMM's minimum), rev 2 (NDIS 6.1) at the IPsec v2 bytes (Linux
// VERSION_4_OFFLOAD_SIZE), rev 3 (NDIS 6.30) is sizeof = 28 as Linux and
// FreeBSD send it.
const (
	OffloadParametersSizeRev1 = 20
	OffloadParametersSizeRev2 = 22
	OffloadParametersSizeRev3 = 28
)

// OffloadParameters is NDIS_OFFLOAD_PARAMETERS, the value of SET
// OID_TCP_OFFLOAD_PARAMETERS (Linux struct ndis_offload_params; natural
// alignment):
//
//	off 0   header {0x80, rev, size}
//	off 4   u8 IPv4Checksum       off 9   u8 LSOv1
//	off 5   u8 TCPIPv4Checksum    off 10  u8 IPsecV1
//	off 6   u8 UDPIPv4Checksum    off 11  u8 LSOv2IPv4
//	off 7   u8 TCPIPv6Checksum    off 12  u8 LSOv2IPv6
//	off 8   u8 UDPIPv6Checksum    off 13  u8 TCPConnectionIPv4
//	off 14  u8 TCPConnectionIPv6  off 15  padding
//	off 16  u32 Flags                                   -- end of rev 1 (20)
//	off 20  u8 IPsecV2            off 21  u8 IPsecV2IPv4 -- end of rev 2 (22)
//	off 22  u8 RSCIPv4            off 23  u8 RSCIPv6
//	off 24  u8 EncapsulatedPacketTaskOffload
//	off 25  u8 EncapsulationTypes off 26  padding       -- 28
//
// Only the fields inside Header.Size are encoded or decoded.
type OffloadParameters struct {
	Header                                            ObjectHeader
	IPv4Checksum, TCPIPv4Checksum, UDPIPv4Checksum    uint8
	TCPIPv6Checksum, UDPIPv6Checksum                  uint8
	LSOv1, IPsecV1, LSOv2IPv4, LSOv2IPv6              uint8
	TCPConnectionIPv4, TCPConnectionIPv6              uint8
	Flags                                             uint32
	IPsecV2, IPsecV2IPv4, RSCIPv4, RSCIPv6            uint8
	EncapsulatedPacketTaskOffload, EncapsulationTypes uint8
}

// NewOffloadParameters returns parameters with a rev 1, 2 or 3 header
// and every field "no change".
func NewOffloadParameters(rev uint8) *OffloadParameters {
	size := map[uint8]uint16{1: OffloadParametersSizeRev1, 2: OffloadParametersSizeRev2}[rev]
	if size == 0 {
		rev, size = 3, OffloadParametersSizeRev3
	}
	return &OffloadParameters{Header: ObjectHeader{ObjectTypeDefault, rev, size}}
}

func (p *OffloadParameters) full() (s [OffloadParametersSizeRev3]byte) {
	p.Header.put(s[:])
	copy(s[4:15], []byte{p.IPv4Checksum, p.TCPIPv4Checksum, p.UDPIPv4Checksum, p.TCPIPv6Checksum,
		p.UDPIPv6Checksum, p.LSOv1, p.IPsecV1, p.LSOv2IPv4, p.LSOv2IPv6, p.TCPConnectionIPv4, p.TCPConnectionIPv6})
	le.PutUint32(s[16:], p.Flags)
	copy(s[20:26], []byte{p.IPsecV2, p.IPsecV2IPv4, p.RSCIPv4, p.RSCIPv6, p.EncapsulatedPacketTaskOffload, p.EncapsulationTypes})
	return s
}

// EncodedLen returns Header.Size (at least the 4 header bytes).
func (p *OffloadParameters) EncodedLen() int { return max(int(p.Header.Size), ObjectHeaderSize) }

// AppendTo appends the object's Header.Size bytes.
func (p *OffloadParameters) AppendTo(b []byte) []byte {
	s := p.full()
	return appendSized(b, s[:], p.EncodedLen())
}

// Encode returns AppendTo's bytes in a new slice.
func (p *OffloadParameters) Encode() []byte { return p.AppendTo(nil) }

// DecodeOffloadParameters decodes the object at the start of b: type
// 0x80, revision ≥ 1, 20 ≤ size ≤ len(b) (OpenVMM's host rules).
func DecodeOffloadParameters(b []byte) (*OffloadParameters, error) {
	h, obj, err := checkObject(b, "NDIS_OFFLOAD_PARAMETERS", ObjectTypeDefault, OffloadParametersSizeRev1)
	if err != nil {
		return nil, err
	}
	var s [OffloadParametersSizeRev3]byte
	copy(s[:], obj)
	return &OffloadParameters{
		Header: h, IPv4Checksum: s[4], TCPIPv4Checksum: s[5], UDPIPv4Checksum: s[6], TCPIPv6Checksum: s[7],
		UDPIPv6Checksum: s[8], LSOv1: s[9], IPsecV1: s[10], LSOv2IPv4: s[11], LSOv2IPv6: s[12],
		TCPConnectionIPv4: s[13], TCPConnectionIPv6: s[14], Flags: u32(s[:], 16), IPsecV2: s[20],
		IPsecV2IPv4: s[21], RSCIPv4: s[22], RSCIPv6: s[23], EncapsulatedPacketTaskOffload: s[24],
		EncapsulationTypes: s[25],
	}, nil
}
