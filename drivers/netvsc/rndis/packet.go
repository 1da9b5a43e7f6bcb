package rndis

import "fmt"

const (
	// PacketHeaderSize is the size of the PACKET_MSG header (RNDIS header
	// plus Linux struct rndis_packet).
	PacketHeaderSize = 44
	// PacketOffsetMin is the smallest data, OOB or per-packet-info
	// offset: offsets count from byte 8, so 36 is the end of the header
	// (FreeBSD RNDIS_PACKET_MSG_OFFSET_MIN).
	PacketOffsetMin  = PacketHeaderSize - packetOffsetBase
	packetOffsetBase = 8
)

// PPISet says which per-packet-info values a PacketInfo holds.
type PPISet uint8

const (
	HasChecksum  PPISet = 1 << iota // PPIChecksum
	HasVLAN                         // PPIVLAN
	HasLSO                          // PPILSO
	HasHashValue                    // PPIHashValue
	HasHashInfo                     // PPIHashInfo
	HasPacketID                     // PPIPacketID
)

// PacketInfo is the metadata of one data packet: the per-packet-info
// records Hyper-V uses, each a u32. Present says which fields are valid.
type PacketInfo struct {
	Present   PPISet
	Checksum  uint32 // TxChecksumInfo on transmit, RxChecksumInfo on receive
	VLAN      VLANInfo
	LSO       LSOv2Info
	HashValue uint32 // Toeplitz hash
	HashInfo  uint32 // HashType | HashFunction bits (FreeBSD ignores it without a hash value)
	PacketID  PacketID
}

// Has reports whether every value in s is present.
func (p *PacketInfo) Has(s PPISet) bool { return p.Present&s == s }

// ppiCount returns how many records PutPacket writes for p.
func (p *PacketInfo) ppiCount() int {
	n := 0
	for s := p.Present & (HasPacketID<<1 - 1); s != 0; s &= s - 1 {
		n++
	}
	return n
}

// PacketHeaderLen returns the bytes PutPacketHeader writes for info: the
// 44-byte header and 16 bytes per record (info may be nil).
func PacketHeaderLen(info *PacketInfo) int {
	if info == nil {
		return PacketHeaderSize
	}
	return PacketHeaderSize + PPISize*info.ppiCount()
}

// PutPacketHeader writes a PACKET_MSG header and info's per-packet info
// at the start of dst for a frame of frameLen bytes that the caller puts
// at dst[n:] or sends in separate pages (Linux's partial copy and
// GPA-direct sends). It returns n, the header length. It does not
// allocate.
//
// Layout (Linux netvsc_xmit): per_pkt_info_offset 36 (records right after
// the header; also when there are none), records in the order hash
// value, VLAN, checksum, LSO, hash info, packet id, data_offset = 36 +
// records, msg_len = n + frameLen.
func PutPacketHeader(dst []byte, info *PacketInfo, frameLen int) (int, error) {
	return putHeader(dst, info, frameLen, 0)
}

func putHeader(dst []byte, info *PacketInfo, frameLen, msgLen int) (int, error) {
	n := PacketHeaderLen(info)
	if len(dst) < n {
		return 0, fmt.Errorf("%w: %d bytes for a %d-byte packet header", ErrBuffer, len(dst), n)
	}
	if frameLen < 0 || uint64(frameLen)+uint64(n) > 0xFFFFFFFF {
		return 0, fmt.Errorf("%w: frame of %d bytes", ErrLength, frameLen)
	}
	if msgLen < n+frameLen {
		msgLen = n + frameLen
	}
	le.PutUint32(dst[0:], uint32(MsgPacket))
	le.PutUint32(dst[4:], uint32(msgLen))
	le.PutUint32(dst[8:], uint32(n-packetOffsetBase)) // data offset
	le.PutUint32(dst[12:], uint32(frameLen))
	clear(dst[16:28]) // OOB offset, length, elements
	le.PutUint32(dst[28:], PacketOffsetMin)
	le.PutUint32(dst[32:], uint32(n-PacketHeaderSize))
	clear(dst[36:44]) // vc handle, reserved
	if info == nil {
		return n, nil
	}
	p := dst[PacketHeaderSize:n]
	put := func(s PPISet, t PPIType, v uint32) {
		if info.Present&s != 0 {
			PutPPI(p, t, v)
			p = p[PPISize:]
		}
	}
	put(HasHashValue, PPIHashValue, info.HashValue)
	put(HasVLAN, PPIVLAN, uint32(info.VLAN))
	put(HasChecksum, PPIChecksum, info.Checksum)
	put(HasLSO, PPILSO, uint32(info.LSO))
	put(HasHashInfo, PPIHashInfo, info.HashInfo)
	put(HasPacketID, PPIPacketID, info.PacketID.u32())
	return n, nil
}

// PutPacket writes a whole PACKET_MSG (header, info's per-packet info,
// frame) at the start of dst and returns its length. With align > 1 (a
// power of two: the 1 << PacketAlignmentFactor of INITIALIZE_CMPLT) the
// message is zero-padded to a multiple of align and the padding counted
// in msg_len, so that the next message of a batched send-buffer section
// starts aligned. It does not allocate.
func PutPacket(dst []byte, info *PacketInfo, frame []byte, align int) (int, error) {
	n := PacketHeaderLen(info) + len(frame)
	total := n
	if align > 1 {
		if align&(align-1) != 0 {
			return 0, fmt.Errorf("%w: alignment %d is not a power of two", ErrLength, align)
		}
		total = (n + align - 1) &^ (align - 1)
	}
	if len(dst) < total {
		return 0, fmt.Errorf("%w: %d bytes for a %d-byte packet", ErrBuffer, len(dst), total)
	}
	h, err := putHeader(dst, info, len(frame), total)
	if err != nil {
		return 0, err
	}
	copy(dst[h:], frame)
	clear(dst[n:total])
	return total, nil
}

// packetLayout is a validated PACKET_MSG: the message and the bounds of
// its three areas.
type packetLayout struct {
	msg              []byte
	data, oob, ppi   [2]int
	numOOB, vcHandle uint32
}

// parseLayout checks the message at the start of b: a PACKET_MSG whose
// msg_len covers the header and fits b, and whose data, OOB and
// per-packet-info areas lie between byte 44 and msg_len (an empty area's
// offset is ignored). Areas may overlap; only their bounds are checked.
func parseLayout(b []byte) (packetLayout, error) {
	var l packetLayout
	if len(b) < HeaderSize {
		return l, fmt.Errorf("%w: %d bytes, no RNDIS header", ErrShort, len(b))
	}
	if t := MessageType(u32(b, 0)); t != MsgPacket {
		return l, fmt.Errorf("%w: %s", ErrNotPacket, t)
	}
	n := u32(b, 4)
	if n < PacketHeaderSize || uint64(n) > uint64(len(b)) {
		return l, fmt.Errorf("%w: PACKET_MSG msg_len %d with %d bytes", ErrLength, n, len(b))
	}
	l.msg = b[:n:n]
	area := func(what string, off, length uint32) ([2]int, error) {
		if length == 0 {
			return [2]int{}, nil
		}
		start := uint64(off) + packetOffsetBase
		if off < PacketOffsetMin || start+uint64(length) > uint64(n) {
			return [2]int{}, fmt.Errorf("%w: %s of %d bytes at offset %d in a %d-byte PACKET_MSG", ErrOffset, what, length, off, n)
		}
		return [2]int{int(start), int(start) + int(length)}, nil
	}
	var err error
	if l.data, err = area("data", u32(b, 8), u32(b, 12)); err != nil {
		return l, err
	}
	if l.oob, err = area("OOB data", u32(b, 16), u32(b, 20)); err != nil {
		return l, err
	}
	if l.ppi, err = area("per-packet info", u32(b, 28), u32(b, 32)); err != nil {
		return l, err
	}
	l.numOOB, l.vcHandle = u32(b, 24), u32(b, 36)
	return l, nil
}

// ParsePacket parses the PACKET_MSG at the start of b (which may hold
// more bytes after it) into info and returns the frame, a view of b, and
// the message length msg_len, where the next message starts. Records of
// types outside PacketInfo are skipped after validation; of two records
// of one type the first counts, as in Linux rndis_get_ppi; a known record
// with less than 4 bytes of data is an error, as in FreeBSD. It does not
// allocate.
func ParsePacket(b []byte, info *PacketInfo) (frame []byte, n int, err error) {
	l, err := parseLayout(b)
	if err != nil {
		return nil, 0, err
	}
	if err := parseInfo(l.msg[l.ppi[0]:l.ppi[1]], info); err != nil {
		return nil, 0, err
	}
	return l.msg[l.data[0]:l.data[1]:l.data[1]], len(l.msg), nil
}

func parseInfo(b []byte, info *PacketInfo) error {
	*info = PacketInfo{}
	it := NewPPIIter(b)
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		var s PPISet
		switch p.Type {
		case PPIChecksum:
			s = HasChecksum
		case PPIVLAN:
			s = HasVLAN
		case PPILSO:
			s = HasLSO
		case PPIHashValue:
			s = HasHashValue
		case PPIHashInfo:
			s = HasHashInfo
		case PPIPacketID:
			s = HasPacketID
		default:
			continue
		}
		v, ok := p.U32()
		if !ok {
			return fmt.Errorf("%w: type %#x record with %d data bytes", ErrPPI, uint32(p.Type), len(p.Data))
		}
		if info.Present&s != 0 {
			continue
		}
		info.Present |= s
		switch s {
		case HasChecksum:
			info.Checksum = v
		case HasVLAN:
			info.VLAN = VLANInfo(v)
		case HasLSO:
			info.LSO = LSOv2Info(v)
		case HasHashValue:
			info.HashValue = v
		case HasHashInfo:
			info.HashInfo = v
		case HasPacketID:
			info.PacketID = packetIDFrom(v)
		}
	}
	return it.Err()
}

// PacketIter walks the PACKET_MSG messages lying back to back in one
// buffer: a receive-buffer range, or the used part of a send-buffer
// section holding up to max_pkt_per_msg messages. Each message must be
// valid and the last one must end exactly at the end of the buffer; the
// first error stops the walk. It does not allocate.
//
//	it := rndis.NewPacketIter(b)
//	var info rndis.PacketInfo
//	for frame, ok := it.Next(&info); ok; frame, ok = it.Next(&info) { ... }
//	if err := it.Err(); err != nil { ... }
type PacketIter struct {
	b   []byte
	off int
	err error
}

// NewPacketIter returns an iterator over the messages in b.
func NewPacketIter(b []byte) PacketIter { return PacketIter{b: b} }

// Next parses the next message into info and returns its frame, or false
// at the end or on an error.
func (it *PacketIter) Next(info *PacketInfo) ([]byte, bool) {
	if it.err != nil || it.off >= len(it.b) {
		return nil, false
	}
	frame, n, err := ParsePacket(it.b[it.off:], info)
	if err != nil {
		it.err = fmt.Errorf("message at %d: %w", it.off, err)
		return nil, false
	}
	it.off += n
	return frame, true
}

// Offset returns where the next message starts.
func (it *PacketIter) Offset() int { return it.off }

// Err returns the error that stopped the walk, if any.
func (it *PacketIter) Err() error { return it.err }

// Packet is PACKET_MSG as a Message, for control-plane tools and tests
// that want every field (DecodeMessage returns it); the data path uses
// PutPacket and ParsePacket. Decoding copies the three areas and checks
// the per-packet info records. Layout (Linux struct rndis_packet; offsets
// from DataOffset, byte 8):
//
//	off 8   u32 data_offset (≥ 36)
//	off 12  u32 data_len
//	off 16  u32 oob_data_offset
//	off 20  u32 oob_data_len
//	off 24  u32 NumOOBElements
//	off 28  u32 per_pkt_info_offset (≥ 36 when per_pkt_info_len > 0)
//	off 32  u32 per_pkt_info_len
//	off 36  u32 VCHandle (0)
//	off 40  u32 reserved
//
// Encoding puts the records at offset 36, then the OOB data, then the
// frame.
type Packet struct {
	PPI            []byte
	OOB            []byte
	NumOOBElements uint32
	VCHandle       uint32
	Data           []byte
}

func (m *Packet) Type() MessageType { return MsgPacket }
func (m *Packet) EncodedLen() int   { return PacketHeaderSize + len(m.PPI) + len(m.OOB) + len(m.Data) }
func (m *Packet) Encode() []byte    { return encode(m) }
func (m *Packet) AppendTo(b []byte) []byte {
	ppiOff := uint32(PacketOffsetMin)
	oobOff := ppiOff + uint32(len(m.PPI))
	dataOff := oobOff + uint32(len(m.OOB))
	if len(m.OOB) == 0 {
		oobOff = 0
	}
	b = appendU32s(appendHeader(b, MsgPacket, m.EncodedLen()), dataOff, uint32(len(m.Data)), oobOff,
		uint32(len(m.OOB)), m.NumOOBElements, ppiOff, uint32(len(m.PPI)), m.VCHandle, 0)
	b = append(b, m.PPI...)
	b = append(b, m.OOB...)
	return append(b, m.Data...)
}

func (m *Packet) decode(b []byte) error {
	l, err := parseLayout(b)
	if err != nil {
		return err
	}
	cp := func(a [2]int) []byte {
		if a[1] == a[0] {
			return nil
		}
		return append([]byte(nil), l.msg[a[0]:a[1]]...)
	}
	*m = Packet{cp(l.ppi), cp(l.oob), l.numOOB, l.vcHandle, cp(l.data)}
	return ValidatePPIs(m.PPI)
}
