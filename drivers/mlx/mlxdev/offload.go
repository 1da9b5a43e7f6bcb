package mlxdev

import (
	"encoding/binary"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Frame parsing and the checksum and segmentation offloads (spec §7.10).

const (
	ethHeaderLen = 14
	etherIPv4    = 0x0800
	etherIPv6    = 0x86dd
	etherVLAN    = 0x8100
	protoTCP     = 6
	protoUDP     = 17
	maxLSO       = 1 << 16 // max_lso_cap 16
	// minMSS bounds the segments of one LSO WQE (sim; Linux's TCP_MIN_MSS).
	minMSS = 88
)

var be = binary.BigEndian

// hdrs locates a frame's headers.
type hdrs struct {
	l3, l4   int   // offsets of the IP and TCP/UDP headers (l4 = 0: none)
	v4, v6   bool  // IP version
	proto    uint8 // L4 protocol (TCP, UDP) when l4 > 0
	l4End    int   // end of the TCP/UDP header
	fragment bool  // IPv4 fragment: no L4 processing
}

// parse finds the headers of an Ethernet frame with at most one 802.1Q tag;
// ok is false for frames that are not IPv4/IPv6 or are truncated.
func parse(f []byte) (hdrs, bool) { return parseHdrs(f, true) }

// parseHdrs is parse; with checkLen false it ignores the IP length fields
// (an LSO frame's headers describe the whole send, whatever they say).
func parseHdrs(f []byte, checkLen bool) (h hdrs, ok bool) {
	if len(f) < ethHeaderLen {
		return h, false
	}
	et, off := be.Uint16(f[12:]), ethHeaderLen
	if et == etherVLAN {
		if len(f) < ethHeaderLen+4 {
			return h, false
		}
		et, off = be.Uint16(f[16:]), ethHeaderLen+4
	}
	h.l3 = off
	switch et {
	case etherIPv4:
		if len(f) < off+20 || f[off]>>4 != 4 {
			return h, false
		}
		ihl := int(f[off]&0xf) * 4
		tot := int(be.Uint16(f[off+2:]))
		if ihl < 20 || len(f) < off+ihl || checkLen && (tot < ihl || len(f) < off+tot) {
			return h, false
		}
		h.v4, h.proto = true, f[off+9]
		h.fragment = be.Uint16(f[off+6:])&0x3fff != 0
		off += ihl
	case etherIPv6:
		if len(f) < off+40 || f[off]>>4 != 6 {
			return h, false
		}
		h.v6, h.proto = true, f[off+6]
		off += 40
	default:
		return h, false
	}
	if h.fragment {
		return h, true
	}
	switch h.proto {
	case protoTCP:
		if len(f) >= off+20 {
			if doff := int(f[off+12]>>4) * 4; doff >= 20 && len(f) >= off+doff {
				h.l4, h.l4End = off, off+doff
			}
		}
	case protoUDP:
		if len(f) >= off+8 {
			h.l4, h.l4End = off, off+8
		}
	}
	return h, true
}

// sum adds the big-endian 16-bit words of b to a one's-complement
// accumulator and returns it folded below 1<<17 (so callers may add a few
// more terms). It works 8 bytes at a time: a one's-complement sum of
// 32-bit words folds to the same 16-bit sum.
func sum(acc uint32, b []byte) uint32 {
	s := uint64(acc)
	for len(b) >= 8 {
		v := be.Uint64(b)
		s += v>>32 + v&0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint32(s)
}

func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// pseudo returns the pseudo-header sum for an L4 segment of length n.
func pseudo(f []byte, h *hdrs, n int) uint32 {
	var acc uint32
	if h.v4 {
		acc = sum(0, f[h.l3+12:h.l3+20])
	} else {
		acc = sum(0, f[h.l3+8:h.l3+40])
	}
	return acc + uint32(h.proto) + uint32(n)
}

// l4Len returns the L4 length (header + payload) from the IP header.
func l4Len(f []byte, h *hdrs) int {
	if h.v4 {
		return h.l3 + int(be.Uint16(f[h.l3+2:])) - h.l4
	}
	return h.l3 + 40 + int(be.Uint16(f[h.l3+4:])) - h.l4
}

func csumOff(h *hdrs) int {
	if h.proto == protoTCP {
		return h.l4 + 16
	}
	return h.l4 + 6
}

func setIPv4Csum(f []byte, h *hdrs) {
	ihl := int(f[h.l3]&0xf) * 4
	f[h.l3+10], f[h.l3+11] = 0, 0
	be.PutUint16(f[h.l3+10:], ^fold(sum(0, f[h.l3:h.l3+ihl])))
}

func setL4Csum(f []byte, h *hdrs) {
	n := l4Len(f, h)
	co := csumOff(h)
	f[co], f[co+1] = 0, 0
	c := ^fold(sum(pseudo(f, h, n), f[h.l4:h.l4+n]))
	if c == 0 && h.proto == protoUDP {
		c = 0xffff
	}
	be.PutUint16(f[co:], c)
}

// fillChecksums applies cs_flags (§7.10): 0x40 recomputes the IPv4 header
// checksum, 0x80 the TCP/UDP checksum with the pseudo-header. It reports
// false for a frame it cannot process (sent unmodified, counted).
func fillChecksums(f []byte, flags uint8) bool {
	h, ok := parse(f)
	if !ok {
		return false
	}
	done := true
	if flags&mlxhw.CSL3 != 0 && h.v4 {
		setIPv4Csum(f, &h)
	}
	if flags&mlxhw.CSL4 != 0 {
		if h.l4 == 0 {
			done = false
		} else {
			setL4Csum(f, &h)
		}
	}
	return done
}

// lsoLocked cuts an LSO frame into MSS-sized TCP segments (§7.10) and
// sends them. inline is the inline header length, which must cover the
// headers through TCP.
func (d *Device) lsoLocked(f []byte, inline int, mss uint16) bool {
	h, ok := parseHdrs(f, false)
	if !ok || h.l4 == 0 || h.proto != protoTCP || h.fragment || inline < h.l4End || mss < minMSS {
		return false
	}
	hl := h.l4End
	payload := f[hl:]
	if len(payload) > maxLSO {
		return false
	}
	seq := be.Uint32(f[h.l4+4:])
	flags := f[h.l4+13]
	var id uint16
	if h.v4 {
		id = be.Uint16(f[h.l3+4:])
	}
	seg := d.scratch.seg[:]
	for i, off := 0, 0; off < len(payload) || off == 0; i++ {
		n := min(int(mss), len(payload)-off)
		last := off+n >= len(payload)
		s := seg[:hl+n]
		copy(s, f[:hl])
		copy(s[hl:], payload[off:off+n])
		if h.v4 {
			be.PutUint16(s[h.l3+2:], uint16(hl-h.l3+n))
			be.PutUint16(s[h.l3+4:], id+uint16(i))
			setIPv4Csum(s, &h)
		} else {
			be.PutUint16(s[h.l3+4:], uint16(hl-h.l3-40+n))
		}
		be.PutUint32(s[h.l4+4:], seq+uint32(off))
		fl := flags
		if !last {
			fl &^= 0x09 // FIN and PSH only on the last segment
		}
		s[h.l4+13] = fl
		setL4Csum(s, &h)
		d.stats.TxLSOSegments++
		d.sendFrameLocked(s)
		off += n
		if n == 0 {
			break
		}
	}
	return true
}

// rxVerdict is what the model reports for a received frame (§7.10 RX).
type rxVerdict struct {
	hdsIPExt, l4l3 uint8
	checksum       uint16
}

// verify checks the IPv4 header and TCP/UDP checksums of f (no VLAN tag
// left in it when stripped) and returns the CQE fields.
func verify(f []byte) rxVerdict {
	v := rxVerdict{hdsIPExt: mlxhw.CQEL2OK}
	h, ok := parse(f)
	if !ok || h.l4 == 0 {
		l2 := ethHeaderLen
		if len(f) >= ethHeaderLen+4 && be.Uint16(f[12:]) == etherVLAN {
			l2 += 4
		}
		if len(f) > l2 {
			v.checksum = fold(sum(0, f[l2:]))
		}
	}
	if !ok {
		return v
	}
	if h.v4 {
		v.l4l3 |= mlxhw.CQEL3IPv4 << 2
		ihl := int(f[h.l3]&0xf) * 4
		if fold(sum(0, f[h.l3:h.l3+ihl])) == 0xffff {
			v.hdsIPExt |= mlxhw.CQEL3OK
		}
	} else {
		v.l4l3 |= mlxhw.CQEL3IPv6 << 2
		v.hdsIPExt |= mlxhw.CQEL3OK
	}
	if h.l4 == 0 {
		return v
	}
	n := l4Len(f, &h)
	// check_sum: the L3 header and L4 sums (one pass over the payload).
	l4sum := sum(0, f[h.l4:min(len(f), h.l4+max(n, 0))])
	v.checksum = fold(sum(l4sum, f[h.l3:h.l4]))
	if n < h.l4End-h.l4 || h.l4+n > len(f) {
		return v
	}
	if h.proto == protoTCP {
		v.l4l3 |= mlxhw.CQEL4TCP << 4
		if f[h.l4+13]&0x10 != 0 { // ACK
			if n > h.l4End-h.l4 {
				v.l4l3 = v.l4l3&^(7<<4) | mlxhw.CQEL4TCPAckDat<<4
			} else {
				v.l4l3 = v.l4l3&^(7<<4) | mlxhw.CQEL4TCPAck<<4
			}
		}
	} else {
		v.l4l3 |= mlxhw.CQEL4UDP << 4
		if be.Uint16(f[h.l4+6:]) == 0 && h.v4 { // no checksum
			v.hdsIPExt |= mlxhw.CQEL4OK
			return v
		}
	}
	if fold(pseudo(f, &h, n)+l4sum) == 0xffff {
		v.hdsIPExt |= mlxhw.CQEL4OK
	}
	return v
}
