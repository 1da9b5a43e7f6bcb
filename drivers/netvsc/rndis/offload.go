package rndis

// Sizes of NDIS_OFFLOAD per revision (Windows PDB offsets; Linux struct
// ndis_offload with u8 IPsec v2 and RSC fields). FreeBSD and DPDK declare
// those fields u16 and get 156/168 for rev 2/3; the Windows layout is
// the one on the wire.
const (
	OffloadSizeRev1 = 112 // NDIS 6.0: up to Flags
	OffloadSizeRev2 = 144 // NDIS 6.1: + IPsec v2
	OffloadSizeRev3 = 156 // NDIS 6.30: + RSC, GRE encapsulation
)

// Encapsulation values of the *Encap fields (NDIS_OFFLOAD_ENCAP_*).
const (
	EncapNone        = 0x00
	EncapNull        = 0x01
	Encap8023        = 0x02 // what Hyper-V reports
	Encap8023PQ      = 0x04
	Encap8023PQInOOB = 0x08
	EncapRFC1483     = 0x10
)

// Checksum capability flags (Linux NDIS_TXCSUM_CAP_*, NDIS_RXCSUM_CAP_*):
// each capability is a 2-bit field holding 1 (supported).
const (
	CsumIPv4Options = 0x001 // IPv4 fields
	CsumTCPOptions  = 0x004
	CsumTCP         = 0x010
	CsumUDP         = 0x040
	CsumIPv4Header  = 0x100
	CsumIPv6ExtHdrs = 0x001 // IPv6 fields: extension headers

	// LSOv2 IPv6 options (Linux requires both for TSO6).
	LSOv2IPv6ExtHdrs    = 0x001
	LSOv2IPv6TCPOptions = 0x004
)

// ChecksumOffload is NDIS_TCP_IP_CHECKSUM_OFFLOAD: encapsulation and
// flags per IP version and direction.
type ChecksumOffload struct {
	IPv4TxEncap, IPv4TxFlags, IPv4RxEncap, IPv4RxFlags uint32
	IPv6TxEncap, IPv6TxFlags, IPv6RxEncap, IPv6RxFlags uint32
}

// LSOv1Offload is NDIS_TCP_LARGE_SEND_OFFLOAD_V1 (IPv4 only).
type LSOv1Offload struct{ Encap, MaxSize, MinSegments, Options uint32 }

// IPsecV1Offload is NDIS_IPSEC_OFFLOAD_V1 (unused on Hyper-V).
type IPsecV1Offload struct {
	Encap, AHESP, TransportTunnel, IPv4Options, Flags, IPv4AH, IPv4ESP uint32
}

// LSOv2Offload is NDIS_TCP_LARGE_SEND_OFFLOAD_V2. Hyper-V: max size
// 0xF53C (62780), min segments 2.
type LSOv2Offload struct {
	IPv4Encap, IPv4MaxSize, IPv4MinSegments uint32
	IPv6Encap, IPv6MaxSize, IPv6MinSegments uint32
	IPv6Options                             uint32
}

// IPsecV2Offload is NDIS_IPSEC_OFFLOAD_V2 (NDIS 6.1; Bools are its 11
// BOOLEANs IPv6 .. ExtendedSequence).
type IPsecV2Offload struct {
	Encap                        uint32
	Bools                        [11]uint8
	UDPESP, Auth, Crypto, SACaps uint32
}

// RSCOffload is NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD (two BOOLEANs).
type RSCOffload struct{ IPv4, IPv6 uint8 }

// EncapOffload is NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD (GRE).
type EncapOffload struct{ Flags, MaxHeaderSize uint32 }

// Offload is NDIS_OFFLOAD, the answer to OID_TCP_OFFLOAD_HARDWARE_
// CAPABILITIES and OID_TCP_OFFLOAD_CURRENT_CONFIG and the buffer of a
// TASK_OFFLOAD_CURRENT_CONFIG indication (W-PDB offsets, spec §4.5):
//
//	off 0    header {0xA7, rev, size}
//	off 4    Checksum: 8 × u32 (IPv4 tx encap/flags, rx encap/flags, IPv6 likewise)
//	off 36   LSOv1: encap, max size, min segments, options
//	off 52   IPsecV1: 7 × u32
//	off 80   LSOv2: IPv4 encap, max size, min segs; IPv6 encap, max size, min segs, options
//	off 108  u32 Flags                                     -- end of rev 1 (112)
//	off 112  IPsecV2: u32 encap, 11 × u8 @116, pad @127, u32 udp_esp @128, auth @132,
//	         crypto @136, sa_caps @140                    -- end of rev 2 (144)
//	off 144  RSC: u8 IPv4, u8 IPv6, 2 bytes pad
//	off 148  EncapGRE: u32 flags, u32 max header size      -- end of rev 3 (156)
//
// Windows 10 appends VXLAN fields up to 180 bytes; they are not decoded
// and encode as zeros. Only the bytes inside Header.Size are encoded or
// decoded.
type Offload struct {
	Header   ObjectHeader
	Checksum ChecksumOffload
	LSOv1    LSOv1Offload
	IPsecV1  IPsecV1Offload
	LSOv2    LSOv2Offload
	Flags    uint32
	IPsecV2  IPsecV2Offload
	RSC      RSCOffload
	EncapGRE EncapOffload
}

// OffloadHeader returns the header of an NDIS_OFFLOAD of revision rev
// (1..3; others give rev 3), the input a guest sends with its query.
func OffloadHeader(rev uint8) ObjectHeader {
	switch rev {
	case 1:
		return ObjectHeader{ObjectTypeOffload, 1, OffloadSizeRev1}
	case 2:
		return ObjectHeader{ObjectTypeOffload, 2, OffloadSizeRev2}
	}
	return ObjectHeader{ObjectTypeOffload, 3, OffloadSizeRev3}
}

// words lists the u32 fields from offset 4 to 112, in wire order.
func (o *Offload) words() [27]*uint32 {
	c, l1, i1, l2 := &o.Checksum, &o.LSOv1, &o.IPsecV1, &o.LSOv2
	return [27]*uint32{
		&c.IPv4TxEncap, &c.IPv4TxFlags, &c.IPv4RxEncap, &c.IPv4RxFlags,
		&c.IPv6TxEncap, &c.IPv6TxFlags, &c.IPv6RxEncap, &c.IPv6RxFlags,
		&l1.Encap, &l1.MaxSize, &l1.MinSegments, &l1.Options,
		&i1.Encap, &i1.AHESP, &i1.TransportTunnel, &i1.IPv4Options, &i1.Flags, &i1.IPv4AH, &i1.IPv4ESP,
		&l2.IPv4Encap, &l2.IPv4MaxSize, &l2.IPv4MinSegments, &l2.IPv6Encap, &l2.IPv6MaxSize, &l2.IPv6MinSegments,
		&l2.IPv6Options, &o.Flags,
	}
}

func (o *Offload) tail() [8]*uint32 {
	v := &o.IPsecV2
	return [8]*uint32{&v.Encap, &v.UDPESP, &v.Auth, &v.Crypto, &v.SACaps, &o.EncapGRE.Flags, &o.EncapGRE.MaxHeaderSize, nil}
}

var offloadTailOffsets = [7]int{112, 128, 132, 136, 140, 148, 152}

// EncodedLen returns Header.Size (at least the 4 header bytes).
func (o *Offload) EncodedLen() int { return max(int(o.Header.Size), ObjectHeaderSize) }

// AppendTo appends the object's Header.Size bytes.
func (o *Offload) AppendTo(b []byte) []byte {
	var s [OffloadSizeRev3]byte
	o.Header.put(s[:])
	for i, p := range o.words() {
		le.PutUint32(s[4+4*i:], *p)
	}
	t := o.tail()
	for i, off := range offloadTailOffsets {
		le.PutUint32(s[off:], *t[i])
	}
	copy(s[116:127], o.IPsecV2.Bools[:])
	s[144], s[145] = o.RSC.IPv4, o.RSC.IPv6
	return appendSized(b, s[:], o.EncodedLen())
}

// Encode returns AppendTo's bytes in a new slice.
func (o *Offload) Encode() []byte { return o.AppendTo(nil) }

// DecodeOffload decodes the object at the start of b with Linux's rules:
// type 0xA7, revision ≥ 1, 112 ≤ size ≤ len(b).
func DecodeOffload(b []byte) (*Offload, error) {
	h, obj, err := checkObject(b, "NDIS_OFFLOAD", ObjectTypeOffload, OffloadSizeRev1)
	if err != nil {
		return nil, err
	}
	var s [OffloadSizeRev3]byte
	copy(s[:], obj)
	o := &Offload{Header: h}
	for i, p := range o.words() {
		*p = u32(s[:], 4+4*i)
	}
	t := o.tail()
	for i, off := range offloadTailOffsets {
		*t[i] = u32(s[:], off)
	}
	copy(o.IPsecV2.Bools[:], s[116:127])
	o.RSC = RSCOffload{s[144], s[145]}
	return o, nil
}
