package netstack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// l4Info locates the transport header of an Ethernet frame carrying IPv4 or
// IPv6 (without IPv6 extension headers).
type l4Info struct {
	v6    bool
	l3    int   // offset of the IP header
	ihl   int   // IP header length
	l4    int   // offset of the transport header
	l4len int   // transport header + payload length (from the IP header)
	proto uint8 // transport protocol
	frag  bool  // an IPv4 fragment (L4 checksum not computable per packet)
}

// parseL4 parses frame's IP header. ok is false for anything that is not a
// well-formed IPv4 or IPv6 packet that fits in frame.
func parseL4(frame []byte) (l l4Info, ok bool) {
	if len(frame) < ethHdrLen {
		return l, false
	}
	l.l3 = ethHdrLen
	ip := frame[ethHdrLen:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case uint16(header.IPv4ProtocolNumber):
		if len(ip) < header.IPv4MinimumSize || ip[0]>>4 != 4 {
			return l, false
		}
		l.ihl = int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if l.ihl < header.IPv4MinimumSize || total < l.ihl || total > len(ip) {
			return l, false
		}
		fragOff := binary.BigEndian.Uint16(ip[6:8])
		l.frag = fragOff&0x3fff != 0 // MF or a fragment offset
		l.proto = ip[9]
		l.l4len = total - l.ihl
	case uint16(header.IPv6ProtocolNumber):
		if len(ip) < header.IPv6MinimumSize || ip[0]>>4 != 6 {
			return l, false
		}
		l.v6 = true
		l.ihl = header.IPv6MinimumSize
		l.l4len = int(binary.BigEndian.Uint16(ip[4:6]))
		if l.ihl+l.l4len > len(ip) {
			return l, false
		}
		l.proto = ip[6]
	default:
		return l, false
	}
	l.l4 = l.l3 + l.ihl
	return l, true
}

// csumOffset returns the offset of the checksum field in the transport
// header, or -1 for protocols without offload.
func (l *l4Info) csumOffset() int {
	switch tcpip.TransportProtocolNumber(l.proto) {
	case header.TCPProtocolNumber:
		if l.l4len < header.TCPMinimumSize {
			return -1
		}
		return header.TCPChecksumOffset
	case header.UDPProtocolNumber:
		if l.l4len < header.UDPMinimumSize {
			return -1
		}
		return 6
	}
	return -1
}

// pseudoSum is the one's complement sum of the pseudo-header (addresses,
// protocol, L4 length), not complemented.
func pseudoSum(frame []byte, l *l4Info, l4len int) uint16 {
	var s uint16
	if l.v6 {
		s = checksum.Checksum(frame[l.l3+8:l.l3+40], 0)
	} else {
		s = checksum.Checksum(frame[l.l3+12:l.l3+20], 0)
	}
	s = checksum.Combine(s, uint16(l.proto))
	return checksum.Combine(s, uint16(l4len))
}

// assistFor returns the per-packet checksum request and the hardware-assist
// bit that allows it for l's family and protocol.
func assistFor(l *l4Info) (packet.Csum, ifnet.HWAssist) {
	tcp := tcpip.TransportProtocolNumber(l.proto) == header.TCPProtocolNumber
	switch {
	case !l.v6 && tcp:
		return packet.CsumTxTCPv4, ifnet.AssistTCP
	case !l.v6:
		return packet.CsumTxUDPv4, ifnet.AssistUDP
	case tcp:
		return packet.CsumTxTCPv6, ifnet.AssistIP6TCP
	default:
		return packet.CsumTxUDPv6, ifnet.AssistIP6UDP
	}
}

// fillL4Csum makes the frame's TCP/UDP checksum right: by asking the driver
// (Meta flag, pseudo-header sum in the field) when assist allows, else by
// computing it.
func fillL4Csum(p *packet.Packet, frame []byte, l *l4Info, assist ifnet.HWAssist) {
	off := l.csumOffset()
	if off < 0 || l.frag {
		return
	}
	seg := frame[l.l4 : l.l4+l.l4len]
	field := seg[off : off+2]
	flag, need := assistFor(l)
	if assist&need != 0 {
		p.Meta.Csum |= flag
		binary.BigEndian.PutUint16(field, pseudoSum(frame, l, l.l4len))
		return
	}
	field[0], field[1] = 0, 0
	c := ^checksum.Checksum(seg, pseudoSum(frame, l, l.l4len))
	if c == 0 && tcpip.TransportProtocolNumber(l.proto) == header.UDPProtocolNumber {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(field, c)
}

// txOffload sets the transmit offload metadata of a converted frame. needL4
// says the stack left the L4 checksum to the link (TX offload advertised or
// a GSO packet with NeedsCsum); tso says the hardware segments the frame.
func txOffload(p *packet.Packet, frame []byte, assist ifnet.HWAssist, needL4, tso bool, mss uint16) tcpip.Error {
	if !needL4 && !tso {
		return nil
	}
	l, ok := parseL4(frame)
	if !ok {
		if tso {
			return errMalformed
		}
		return nil // not IP: nothing to offload
	}
	if tso {
		if tcpip.TransportProtocolNumber(l.proto) != header.TCPProtocolNumber || l.csumOffset() < 0 {
			return errMalformed
		}
		if l.v6 {
			p.Meta.Csum |= packet.CsumTxTSOv6 | packet.CsumTxTCPv6
		} else {
			p.Meta.Csum |= packet.CsumTxTSOv4 | packet.CsumTxTCPv4
		}
		p.Meta.MSS = mss
		// gVisor wrote the pseudo-header sum over the whole length.
		return nil
	}
	fillL4Csum(p, frame, &l, assist)
	return nil
}

// segment splits a TCP GSO packet the hardware cannot segment into MSS-sized
// frames and adds them to the batch.
func (e *Endpoint) segment(tb *txBatch, i int, pkt *stack.PacketBuffer, assist ifnet.HWAssist) tcpip.Error {
	size := pkt.Size()
	if cap(tb.scratch) < size {
		tb.scratch = make([]byte, maxGSOSize+ethHdrLen) // once per txBatch
	}
	src := tb.scratch[:size]
	copyPacket(src, pkt)
	l, ok := parseL4(src)
	if !ok || tcpip.TransportProtocolNumber(l.proto) != header.TCPProtocolNumber || l.csumOffset() < 0 || l.frag {
		return errMalformed
	}
	tcpLen := int(src[l.l4+12]>>4) * 4
	if tcpLen < header.TCPMinimumSize || tcpLen > l.l4len {
		return errMalformed
	}
	hdrLen := l.l4 + tcpLen
	payload := src[hdrLen : l.l4+l.l4len]
	mss := int(pkt.GSOOptions.MSS)
	seq := binary.BigEndian.Uint32(src[l.l4+4:])
	flags := src[l.l4+13]
	var id uint16
	if !l.v6 {
		id = binary.BigEndian.Uint16(src[l.l3+4:])
	}
	pool := e.pool
	if hdrLen+mss > pool.Size() {
		pool = e.largePool()
	}
	for k, off := 0, 0; off < len(payload) || k == 0; k++ {
		n := min(mss, len(payload)-off)
		p := pool.Get()
		if p == nil {
			e.ifp.CountDrops(ifnet.DropNoBuffer, 1)
			return errNoBufferSpace
		}
		f, err := p.Append(hdrLen + n)
		if err != nil {
			p.Free()
			return errMessageTooLong
		}
		copy(f, src[:hdrLen])
		copy(f[hdrLen:], payload[off:off+n])
		last := off+n >= len(payload)
		// TCP: sequence number and flags (FIN and PSH on the last segment
		// only, CWR on the first only).
		binary.BigEndian.PutUint32(f[l.l4+4:], seq+uint32(off))
		fl := flags
		if !last {
			fl &^= uint8(header.TCPFlagFin | header.TCPFlagPsh)
		}
		if k > 0 {
			fl &^= 0x80 // CWR
		}
		f[l.l4+13] = fl
		sl := l
		sl.l4len = tcpLen + n
		if l.v6 {
			binary.BigEndian.PutUint16(f[l.l3+4:], uint16(sl.l4len))
		} else {
			ip := f[l.l3 : l.l3+l.ihl]
			binary.BigEndian.PutUint16(ip[2:], uint16(l.ihl+sl.l4len))
			binary.BigEndian.PutUint16(ip[4:], id+uint16(k))
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], ^checksum.Checksum(ip, 0))
		}
		fillL4Csum(p, f, &sl, assist)
		e.add(tb, i, p)
		off += n
		if tb.err != nil {
			return nil // a flush failed; WritePackets stops here
		}
	}
	return nil
}

// rxChecksumOK reports whether a received frame may be passed to a stack
// that was told checksums are verified: the driver verified them, or the
// endpoint does now. Frames the driver found bad fail.
func rxChecksumOK(p *packet.Packet, frame []byte) bool {
	m := p.Meta.Csum
	if m&(packet.CsumRxIPBad|packet.CsumRxL4Bad) != 0 {
		return false
	}
	l, ok := parseL4(frame)
	if !ok {
		// Not IP, or malformed IP that the stack rejects on its own
		// length checks; nothing to verify here.
		return true
	}
	if !l.v6 && m&packet.CsumRxIPOK == 0 {
		if checksum.Checksum(frame[l.l3:l.l3+l.ihl], 0) != 0xffff {
			return false
		}
	}
	off := l.csumOffset()
	if off < 0 || l.frag || m&packet.CsumRxL4OK != 0 {
		return true
	}
	seg := frame[l.l4 : l.l4+l.l4len]
	if tcpip.TransportProtocolNumber(l.proto) == header.UDPProtocolNumber && !l.v6 &&
		seg[off] == 0 && seg[off+1] == 0 {
		return true // IPv4 UDP without checksum
	}
	return checksum.Checksum(seg, pseudoSum(frame, &l, l.l4len)) == 0xffff
}
