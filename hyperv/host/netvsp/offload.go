package netvsp

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"

	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/packet"
)

// Offload emulation: what Hyper-V's vmswitch does with the guest's offload
// requests before a frame reaches the wire, and with frames going to the
// guest (spec/nvsp-rndis.md §3.4, §4.4).
//
// Transmit: an inline 802.1Q tag moves into packet.Meta (the switch's
// form); an LSOv2 frame is cut into MSS-sized TCP segments (IPv4 ids
// counting up from the guest's, lengths and sequence numbers per segment,
// CWR only on the first segment and FIN/PSH only on the last, as Linux
// GSO and Windows LSO do) with every checksum filled; a checksum request
// fills the IPv4 header checksum and the TCP or UDP checksum. The frames
// that leave carry no transmit requests. LSO implies the TCP checksum and,
// for IPv4, the header checksum (OpenVMM). The header offsets in the
// per-packet info are not trusted: the headers are parsed. A frame whose
// headers do not hold what was asked is dropped and counted.
//
// Receive: with the guest's receive checksum offload on (OID_TCP_OFFLOAD_
// PARAMETERS, RX_ENABLED or TX_RX_ENABLED per protocol) the IPv4 header
// and TCP/UDP checksums are verified and reported as per-packet info;
// otherwise no checksum result reaches the guest.
//
// Config.PassOffload turns both off: requests travel to the switch in
// Meta and receive results come from Meta, for a backend that does the
// work itself.

// OffloadStats count the offload emulation's work.
type OffloadStats struct {
	TxChecksummed uint64 // frames whose checksums were filled (segments included)
	TxLSO         uint64 // LSO frames segmented
	TxSegments    uint64 // segments they became
	TxMalformed   uint64 // frames dropped: headers unfit for the request
	TxNoBuffer    uint64 // segments dropped: segment pool exhausted
	RxVerified    uint64 // frames to the guest whose checksums were verified
	RxBad         uint64 // of those, with a bad IPv4 or L4 checksum
}

type offloadCounters struct {
	txCsum, txLSO, txSegs, txMalformed, txNoBuf, rxVerified, rxBad atomic.Uint64
}

// OffloadStats returns a snapshot of the offload counters.
func (d *Device) OffloadStats() OffloadStats {
	o := &d.off
	return OffloadStats{
		TxChecksummed: o.txCsum.Load(), TxLSO: o.txLSO.Load(), TxSegments: o.txSegs.Load(),
		TxMalformed: o.txMalformed.Load(), TxNoBuffer: o.txNoBuf.Load(),
		RxVerified: o.rxVerified.Load(), RxBad: o.rxBad.Load(),
	}
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	protoTCP      = 6
	protoUDP      = 17
	tcpFlagFIN    = 0x01
	tcpFlagPSH    = 0x08
	tcpFlagCWR    = 0x80
	// maxExtHeaders bounds the IPv6 extension headers walked.
	maxExtHeaders = 8
	// maxSegments bounds the segments of one LSO frame (a 62780-byte
	// send at the IPv6 minimum MSS of 1220 is 52); more is an absurd MSS.
	maxSegments = 1024
)

// headers locates the IP and L4 headers of an Ethernet frame.
type headers struct {
	l3, l4, end int // offsets of the IP header, the L4 header, the datagram's end
	v6          bool
	proto       uint8
	frag        bool // an IPv4 fragment or an IPv6 fragment header
}

// parseHeaders parses frame's Ethernet (with at most one 802.1Q tag), IP
// and (minimally) L4 header. lso says the IP length may be 0 (the guest
// leaves it to the segmenter). It reports false for anything that is not
// a well-formed IPv4/IPv6 datagram.
func parseHeaders(frame []byte, lso bool) (h headers, ok bool) {
	if len(frame) < 14 {
		return h, false
	}
	et, l3 := binary.BigEndian.Uint16(frame[12:]), 14
	if et == etherTypeVLAN {
		if len(frame) < 18 {
			return h, false
		}
		et, l3 = binary.BigEndian.Uint16(frame[16:]), 18
	}
	h.l3 = l3
	switch et {
	case etherTypeIPv4:
		if len(frame) < l3+20 || frame[l3]>>4 != 4 {
			return h, false
		}
		ihl := int(frame[l3]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(frame[l3+2:]))
		if ihl < 20 || len(frame) < l3+ihl {
			return h, false
		}
		switch {
		case tot == 0 && lso:
			tot = len(frame) - l3
		case tot < ihl || l3+tot > len(frame):
			return h, false
		}
		h.l4, h.end, h.proto = l3+ihl, l3+tot, frame[l3+9]
		h.frag = binary.BigEndian.Uint16(frame[l3+6:])&0x3fff != 0
	case etherTypeIPv6:
		if len(frame) < l3+40 || frame[l3]>>4 != 6 {
			return h, false
		}
		h.v6 = true
		plen := int(binary.BigEndian.Uint16(frame[l3+4:]))
		switch {
		case plen == 0 && lso:
			h.end = len(frame)
		case l3+40+plen > len(frame):
			return h, false
		default:
			h.end = l3 + 40 + plen
		}
		next, off := frame[l3+6], l3+40
	walk:
		for range maxExtHeaders {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > h.end {
					return h, false
				}
				next, off = frame[off], off+(int(frame[off+1])+1)*8
			case 44:
				h.frag = true
				break walk
			default:
				break walk
			}
		}
		if off > h.end {
			return h, false
		}
		h.l4, h.proto = off, next
	default:
		return h, false
	}
	return h, true
}

// l4Len reports whether the L4 header of proto fits in the datagram and
// returns its length (TCP data offset; 8 for UDP).
func (h *headers) l4Len(frame []byte) (int, bool) {
	n := h.end - h.l4
	switch h.proto {
	case protoTCP:
		if n < 20 {
			return 0, false
		}
		doff := int(frame[h.l4+12]>>4) * 4
		if doff < 20 || doff > n {
			return 0, false
		}
		return doff, true
	case protoUDP:
		return 8, n >= 8
	}
	return 0, false
}

// sum adds b to a ones'-complement running sum (RFC 1071), eight bytes
// at a time; s holds a 64-bit accumulator folded by fold.
func sum(s uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	s, c = bits.Add64(s, c, 0)
	s += c
	var t uint64
	for len(b) >= 2 {
		t += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		t += uint64(b[0]) << 8
	}
	s, c = bits.Add64(s, t, 0)
	return s + c
}

// fold folds a running sum to 16 bits (not complemented).
func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// ipv4HeaderSum returns the checksum field value of the IPv4 header at
// frame[l3:l4] (its checksum field taken as zero).
func ipv4HeaderSum(frame []byte, l3, l4 int) uint16 {
	s := sum(0, frame[l3:l3+10])
	s = sum(s, frame[l3+12:l4])
	return ^fold(s)
}

// pseudoSum is the pseudo-header sum for an L4 length of n.
func pseudoSum(frame []byte, h *headers, n int) uint64 {
	var s uint64
	if h.v6 {
		s = sum(0, frame[h.l3+8:h.l3+40])
	} else {
		s = sum(0, frame[h.l3+12:h.l3+20])
	}
	return uint64(fold(s)) + uint64(h.proto) + uint64(n)
}

// csumOffset is where proto's checksum lives within its header.
func csumOffset(proto uint8) int {
	if proto == protoTCP {
		return 16
	}
	return 6
}

// fillL4 writes the TCP or UDP checksum of the datagram in frame.
func fillL4(frame []byte, h *headers) {
	at := h.l4 + csumOffset(h.proto)
	frame[at], frame[at+1] = 0, 0
	c := ^fold(sum(pseudoSum(frame, h, h.end-h.l4), frame[h.l4:h.end]))
	if c == 0 && h.proto == protoUDP {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(frame[at:], c)
}

// verifyL4 reports whether the TCP or UDP checksum of the datagram holds
// (a UDP/IPv4 checksum of zero means none was sent).
func verifyL4(frame []byte, h *headers) bool {
	if h.proto == protoUDP && !h.v6 && binary.BigEndian.Uint16(frame[h.l4+6:]) == 0 {
		return true
	}
	return fold(sum(pseudoSum(frame, h, h.end-h.l4), frame[h.l4:h.end])) == 0xffff
}

// offloader runs the transmit half for one device.
type offloader struct {
	seg *packet.Pool // segment buffers
	st  *offloadCounters
}

// tx applies pk's offload requests and adds the resulting frames to b,
// handing full batches to flush. It takes pk. A malformed frame is freed
// and counted; the return value is the number of frames dropped.
func (o *offloader) tx(pk *packet.Packet, b *packet.Batch, flush func(*packet.Batch)) int {
	m := &pk.Meta
	frame := pk.Bytes()
	if !m.HasVLAN && len(frame) >= 18 && binary.BigEndian.Uint16(frame[12:]) == etherTypeVLAN {
		tci := binary.BigEndian.Uint16(frame[14:])
		copy(frame[4:16], frame[0:12])
		_ = pk.TrimFront(4)
		m.SetVLAN(tci)
		frame = pk.Bytes()
	}
	req := m.Csum & packet.CsumTxMask
	m.Csum &^= packet.CsumTxMask
	if req == 0 {
		add(b, pk, flush)
		return 0
	}
	tso := req&packet.CsumTxTSO != 0 && m.MSS > 0
	h, ok := parseHeaders(frame, tso)
	l4n := 0
	if ok {
		l4n, ok = h.l4Len(frame)
	}
	if tso && ok && (h.proto != protoTCP || h.frag || h.v6 != (req&packet.CsumTxTSOv6 != 0)) {
		ok = false
	}
	if !tso && ok && h.frag && req&(packet.CsumTxTCPv4|packet.CsumTxUDPv4|packet.CsumTxTCPv6|packet.CsumTxUDPv6) != 0 {
		ok = false // an L4 checksum over one fragment is meaningless
	}
	if !ok {
		o.st.txMalformed.Add(1)
		pk.Free()
		return 1
	}
	if tso {
		return o.segment(pk, &h, l4n, b, flush)
	}
	if !h.v6 && req&(packet.CsumTxIPv4) != 0 {
		binary.BigEndian.PutUint16(frame[h.l3+10:], ipv4HeaderSum(frame, h.l3, h.l4))
	}
	if req&(packet.CsumTxTCPv4|packet.CsumTxUDPv4|packet.CsumTxTCPv6|packet.CsumTxUDPv6) != 0 {
		fillL4(frame, &h)
	}
	o.st.txCsum.Add(1)
	add(b, pk, flush)
	return 0
}

func add(b *packet.Batch, pk *packet.Packet, flush func(*packet.Batch)) {
	b.Add(pk)
	if b.Full() {
		flush(b)
		b.Clear()
	}
}

// segment cuts the LSO frame pk (headers h, TCP header l4n bytes) into
// segments of at most Meta.MSS payload bytes taken from o.seg. It takes pk.
func (o *offloader) segment(pk *packet.Packet, h *headers, l4n int, b *packet.Batch, flush func(*packet.Batch)) int {
	src := pk.Bytes()
	hdr := h.l4 + l4n
	mss := int(pk.Meta.MSS)
	payload := src[hdr:h.end]
	if hdr+min(mss, len(payload)) > o.seg.Size() {
		o.st.txMalformed.Add(1)
		pk.Free()
		return 1
	}
	meta := pk.Meta
	meta.MSS = 0
	seq := binary.BigEndian.Uint32(src[h.l4+4:])
	flags := src[h.l4+13]
	var id uint16
	if !h.v6 {
		id = binary.BigEndian.Uint16(src[h.l3+4:])
	}
	n := max(1, (len(payload)+mss-1)/mss)
	if n > maxSegments {
		o.st.txMalformed.Add(1)
		pk.Free()
		return 1
	}
	o.st.txLSO.Add(1)
	dropped := 0
	for i := range n {
		chunk := payload[min(i*mss, len(payload)):min((i+1)*mss, len(payload))]
		sp := o.seg.Get()
		if sp == nil || sp.SetBytes(src[:hdr]) != nil || sp.AppendBytes(chunk) != nil {
			if sp != nil {
				sp.Free()
			}
			o.st.txNoBuf.Add(1)
			dropped++
			continue
		}
		f := sp.Bytes()
		sh := *h
		sh.end = len(f)
		if h.v6 {
			binary.BigEndian.PutUint16(f[h.l3+4:], uint16(len(f)-h.l3-40))
		} else {
			binary.BigEndian.PutUint16(f[h.l3+2:], uint16(len(f)-h.l3))
			binary.BigEndian.PutUint16(f[h.l3+4:], id+uint16(i))
			binary.BigEndian.PutUint16(f[h.l3+10:], ipv4HeaderSum(f, h.l3, h.l4))
		}
		binary.BigEndian.PutUint32(f[h.l4+4:], seq+uint32(i*mss))
		fl := flags
		if i > 0 {
			fl &^= tcpFlagCWR
		}
		if i < n-1 {
			fl &^= tcpFlagFIN | tcpFlagPSH
		}
		f[h.l4+13] = fl
		fillL4(f, &sh)
		sp.Meta = meta
		o.st.txSegs.Add(1)
		o.st.txCsum.Add(1)
		add(b, sp, flush)
	}
	pk.Free()
	return dropped
}

// rxOn reports whether a checksum offload setting includes receive.
func rxOn(v uint8) bool {
	return v == rndis.OffloadRxEnabledTxDisabled || v == rndis.OffloadTxRxEnabled
}

// rxChecksum sets m's receive checksum results for frame as the guest's
// offload parameters p ask (none when receive checksum offload is off).
func (o *offloader) rxChecksum(p *rndis.OffloadParameters, frame []byte, m *packet.Meta) {
	m.Csum &^= packet.CsumRxMask | packet.CsumTxMask
	ip4 := rxOn(p.IPv4Checksum)
	var l4 bool
	h, ok := parseHeaders(frame, false)
	if !ok {
		return
	}
	switch {
	case !h.v6 && h.proto == protoTCP:
		l4 = rxOn(p.TCPIPv4Checksum)
	case !h.v6 && h.proto == protoUDP:
		l4 = rxOn(p.UDPIPv4Checksum)
	case h.v6 && h.proto == protoTCP:
		l4 = rxOn(p.TCPIPv6Checksum)
	case h.v6 && h.proto == protoUDP:
		l4 = rxOn(p.UDPIPv6Checksum)
	}
	if h.v6 {
		ip4 = false
	}
	if !ip4 && !l4 {
		return
	}
	o.st.rxVerified.Add(1)
	bad := false
	if ip4 {
		if fold(sum(0, frame[h.l3:h.l4])) == 0xffff {
			m.Csum |= packet.CsumRxIPOK
		} else {
			m.Csum |= packet.CsumRxIPBad
			bad = true
		}
	}
	if _, fits := h.l4Len(frame); l4 && fits && !h.frag {
		if verifyL4(frame, &h) {
			m.Csum |= packet.CsumRxL4OK
		} else {
			m.Csum |= packet.CsumRxL4Bad
			bad = true
		}
	}
	if bad {
		o.st.rxBad.Add(1)
	}
}

// txOffload applies pk's offload requests (unless Config.PassOffload) and
// adds the frames to b, switching full batches. It takes pk.
func (d *Device) txOffload(pk *packet.Packet, b *packet.Batch) {
	if d.cfg.PassOffload {
		add(b, pk, d.transmit)
		return
	}
	o := offloader{seg: d.pool, st: &d.off}
	if n := o.tx(pk, b, d.transmit); n > 0 {
		d.stats.txDropped.Add(uint64(n))
	}
}

// rxOffload sets the receive checksum results of a frame for the guest
// whose offload parameters are p (unless Config.PassOffload). Runs with
// the connection's mu held.
func (d *Device) rxOffload(p *rndis.OffloadParameters, frame []byte, m *packet.Meta) {
	if d.cfg.PassOffload {
		return
	}
	o := offloader{seg: d.pool, st: &d.off}
	o.rxChecksum(p, frame, m)
}
