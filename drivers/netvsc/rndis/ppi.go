package rndis

import "fmt"

// PPIType is the type of a per-packet-info record: the NDIS 5
// per-packet-info enum in bits 0..30 and the Hyper-V "internal" flag in
// bit 31 (Linux enum ndis_per_pkt_info_type and struct
// rndis_per_packet_info; FreeBSD NDIS_PKTINFO_TYPE_*; spec §3.4).
type PPIType uint32

// Per-packet-info types.
const (
	PPIChecksum       PPIType = 0 // TCPIP_CHKSUM_PKTINFO: TxChecksumInfo / RxChecksumInfo
	PPIIPsec          PPIType = 1
	PPILSO            PPIType = 2 // TCP_LARGESEND_PKTINFO: LSOv2Info
	PPIClassification PPIType = 3
	PPISGList         PPIType = 5
	PPIVLAN           PPIType = 6 // IEEE_8021Q_INFO: VLANInfo
	PPIOriginal       PPIType = 7
	PPIHashValue      PPIType = 8  // PACKET_CANCEL_ID = NBL_HASH_VALUE: u32 Toeplitz hash
	PPIHashInfo       PPIType = 9  // ORIGINAL_NET_BUFLIST, FreeBSD HASHINF: u32 hash type | function
	PPICachedNetBuf   PPIType = 10 // CACHED_NET_BUFLIST
	PPIShortPacketPad PPIType = 11

	// PPIInternal is bit 31: a Hyper-V private record.
	PPIInternal PPIType = 0x80000000
	// PPIPacketID is RNDIS_PKTINFO_ID (internal type 1): the RSC
	// fragment id, PacketID.
	PPIPacketID PPIType = PPIInternal | 1
)

const (
	// PPIHeaderSize is the record header: u32 size @0 (whole record,
	// multiple of 4), u32 type @4, u32 ppi_offset @8 (from the record
	// start to its data; 12).
	PPIHeaderSize = 12
	// PPISize is the size of a record carrying one u32, which every
	// record used on Hyper-V does (Linux NDIS_*_PPI_SIZE).
	PPISize = PPIHeaderSize + 4
)

// PPI is one per-packet-info record; Data is a view of its payload.
type PPI struct {
	Type PPIType
	Data []byte
}

// U32 returns the record's leading u32 and whether it has one.
func (p PPI) U32() (uint32, bool) {
	if len(p.Data) < 4 {
		return 0, false
	}
	return u32(p.Data, 0), true
}

// PPIIter walks per-packet-info records without allocating. Every record
// is checked before it is returned, as FreeBSD hn_rndis_rxinfo and Linux
// rndis_get_ppi do: a whole header present, 12 ≤ size ≤ the bytes left,
// size a multiple of 4, 12 ≤ ppi_offset ≤ size.
//
//	it := rndis.NewPPIIter(b)
//	for p, ok := it.Next(); ok; p, ok = it.Next() { ... }
//	if err := it.Err(); err != nil { ... }
type PPIIter struct {
	b   []byte
	off int
	err error
}

// NewPPIIter returns an iterator over the records in b (a packet's
// per-packet-info area).
func NewPPIIter(b []byte) PPIIter { return PPIIter{b: b} }

// Next returns the next record, or false at the end or on an error.
func (it *PPIIter) Next() (PPI, bool) {
	if it.err != nil || it.off >= len(it.b) {
		return PPI{}, false
	}
	b := it.b[it.off:]
	if len(b) < PPIHeaderSize {
		it.err = fmt.Errorf("%w: %d bytes left at %d, no record header", ErrPPI, len(b), it.off)
		return PPI{}, false
	}
	size, off := u32(b, 0), u32(b, 8)
	switch {
	case size < PPIHeaderSize || uint64(size) > uint64(len(b)) || size%4 != 0:
		it.err = fmt.Errorf("%w: record at %d of size %d with %d bytes left", ErrPPI, it.off, size, len(b))
		return PPI{}, false
	case off < PPIHeaderSize || off > size:
		it.err = fmt.Errorf("%w: record at %d of size %d has data offset %d", ErrPPI, it.off, size, off)
		return PPI{}, false
	}
	it.off += int(size)
	return PPI{PPIType(u32(b, 4)), b[off:size:size]}, true
}

// Err returns the error that stopped the iteration, if any.
func (it *PPIIter) Err() error { return it.err }

// ValidatePPIs checks every record of b.
func ValidatePPIs(b []byte) error {
	it := NewPPIIter(b)
	for _, ok := it.Next(); ok; _, ok = it.Next() {
	}
	return it.Err()
}

// PutPPI writes a 16-byte record carrying v at b[0:16]; b must hold 16
// bytes.
func PutPPI(b []byte, t PPIType, v uint32) {
	_ = b[PPISize-1]
	le.PutUint32(b[0:], PPISize)
	le.PutUint32(b[4:], uint32(t))
	le.PutUint32(b[8:], PPIHeaderSize)
	le.PutUint32(b[12:], v)
}

// AppendPPI appends a 16-byte record carrying v.
func AppendPPI(b []byte, t PPIType, v uint32) []byte {
	return appendU32s(b, PPISize, uint32(t), PPIHeaderSize, v)
}

// AppendPPIData appends a record carrying data, zero-padded to a multiple
// of 4 bytes.
func AppendPPIData(b []byte, t PPIType, data []byte) []byte {
	pad := (4 - len(data)%4) % 4
	b = appendU32s(b, uint32(PPIHeaderSize+len(data)+pad), uint32(t), PPIHeaderSize)
	b = append(b, data...)
	return append(b, make([]byte, pad)...)
}

// TxChecksumInfo is the TCPIP_CHKSUM_PKTINFO value on transmit: what the
// host should compute (Linux ndis_tcp_ip_checksum_info.transmit; FreeBSD
// NDIS_TXCSUM_INFO_*).
//
//	bit 0      IPv4
//	bit 1      IPv6
//	bit 2      TCP checksum
//	bit 3      UDP checksum
//	bit 4      IP header checksum (Linux never asks)
//	bits 16-25 L4 header offset from the frame start (Ethernet header included)
type TxChecksumInfo uint32

const (
	TxChecksumIPv4     TxChecksumInfo = 0x00000001
	TxChecksumIPv6     TxChecksumInfo = 0x00000002
	TxChecksumTCP      TxChecksumInfo = 0x00000004
	TxChecksumUDP      TxChecksumInfo = 0x00000008
	TxChecksumIPHeader TxChecksumInfo = 0x00000010
	txChecksumOffShift                = 16
	txChecksumOffMask                 = 0x3FF
)

// NewTxChecksumInfo returns flags with the L4 header offset set (offsets
// above 1023 cannot be expressed and are masked).
func NewTxChecksumInfo(flags TxChecksumInfo, l4Offset int) TxChecksumInfo {
	return flags&^(txChecksumOffMask<<txChecksumOffShift) | TxChecksumInfo(l4Offset&txChecksumOffMask)<<txChecksumOffShift
}

// L4Offset returns the L4 header offset (0: the host assumes a minimal
// IP header).
func (c TxChecksumInfo) L4Offset() int { return int(c>>txChecksumOffShift) & txChecksumOffMask }

// RxChecksumInfo is the TCPIP_CHKSUM_PKTINFO value on receive: what the
// host verified (Linux ndis_tcp_ip_checksum_info.receive; FreeBSD
// NDIS_RXCSUM_INFO_*). Linux trusts a frame whose TCP or UDP checksum
// succeeded.
type RxChecksumInfo uint32

const (
	RxChecksumTCPFailed       RxChecksumInfo = 0x001
	RxChecksumUDPFailed       RxChecksumInfo = 0x002
	RxChecksumIPFailed        RxChecksumInfo = 0x004
	RxChecksumTCPSucceeded    RxChecksumInfo = 0x008
	RxChecksumUDPSucceeded    RxChecksumInfo = 0x010
	RxChecksumIPSucceeded     RxChecksumInfo = 0x020
	RxChecksumLoopback        RxChecksumInfo = 0x040
	RxChecksumTCPValueInvalid RxChecksumInfo = 0x080
	RxChecksumIPValueInvalid  RxChecksumInfo = 0x100 // Linux recomputes the IPv4 header checksum (RSC)
)

// VLANInfo is the IEEE_8021Q_INFO value (Linux struct
// ndis_pkt_8021q_info; FreeBSD NDIS_VLAN_INFO_*). The 802.1Q tag is not in
// the frame when this record is present.
//
//	bits 0-2   user priority
//	bit 3      CFI / DEI
//	bits 4-15  VLAN id
type VLANInfo uint32

// NewVLANInfo builds the value from a VLAN id and a priority.
func NewVLANInfo(id uint16, priority uint8) VLANInfo {
	return VLANInfo(uint32(id&0xFFF)<<4 | uint32(priority&7))
}

// VLANInfoFromTCI converts an 802.1Q tag control field (PCP:3, DEI:1,
// VID:12, most significant first).
func VLANInfoFromTCI(tci uint16) VLANInfo {
	return VLANInfo(uint32(tci&0xFFF)<<4 | uint32(tci>>12&1)<<3 | uint32(tci>>13))
}

func (v VLANInfo) ID() uint16      { return uint16(v>>4) & 0xFFF }
func (v VLANInfo) Priority() uint8 { return uint8(v) & 7 }
func (v VLANInfo) CFI() bool       { return v&8 != 0 }

// TCI returns the 802.1Q tag control field.
func (v VLANInfo) TCI() uint16 {
	t := uint16(v.Priority())<<13 | v.ID()
	if v.CFI() {
		t |= 1 << 12
	}
	return t
}

// LSOv2Info is the TCP_LARGESEND_PKTINFO value for LSO v2 transmit (Linux
// ndis_tcp_lso_info.lso_v2_transmit; FreeBSD NDIS_LSO2_INFO_*):
//
//	bits 0-19   MSS
//	bits 20-29  TCP header offset from the frame start
//	bit 30      type (1 = LSO v2)
//	bit 31      IP version (0 IPv4, 1 IPv6)
type LSOv2Info uint32

const lsoV2Type = 1 << 30

// NewLSOv2Info builds an LSO v2 value (fields masked to their widths).
func NewLSOv2Info(mss, tcpOffset int, ipv6 bool) LSOv2Info {
	v := LSOv2Info(mss&0xFFFFF) | LSOv2Info(tcpOffset&0x3FF)<<20 | lsoV2Type
	if ipv6 {
		v |= 1 << 31
	}
	return v
}

func (l LSOv2Info) MSS() int             { return int(l & 0xFFFFF) }
func (l LSOv2Info) TCPHeaderOffset() int { return int(l>>20) & 0x3FF }
func (l LSOv2Info) IsV2() bool           { return l&lsoV2Type != 0 }
func (l LSOv2Info) IPv6() bool           { return l>>31 != 0 }

// PacketID is the RNDIS_PKTINFO_ID value that marks RSC fragments (NVSP
// 6.1 with RSC; Linux struct rndis_pktinfo_id): u8 version @0 (1), u8
// flags @1, u16 id @2. Linux joins the ranges of one transfer-page packet
// from a FirstFragment to a LastFragment into one frame.
type PacketID struct {
	Version uint8
	Flags   uint8
	ID      uint16
}

const (
	PacketIDVersion1      = 1
	PacketIDSubAllocation = 0x01 // this range is one fragment of a packet
	PacketIDFirstFragment = 0x02
	PacketIDLastFragment  = 0x04
)

func (p PacketID) u32() uint32 { return uint32(p.Version) | uint32(p.Flags)<<8 | uint32(p.ID)<<16 }

func packetIDFrom(v uint32) PacketID { return PacketID{uint8(v), uint8(v >> 8), uint16(v >> 16)} }
