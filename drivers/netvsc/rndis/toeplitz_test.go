package rndis

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// Vectors of the Microsoft RSS verification suite ("Verifying the RSS
// Hash Calculation", NDIS docs), under DefaultHashKey.
var toeplitzV4 = []struct {
	dst, src        string
	dport, sport    uint16
	ipHash, tcpHash uint32
}{
	{"161.142.100.80", "66.9.149.187", 1766, 2794, 0x323e8fc2, 0x51ccc178},
	{"65.69.140.83", "199.92.111.2", 4739, 14230, 0xd718262a, 0xc626b0ea},
	{"12.22.207.184", "24.19.198.95", 38024, 12898, 0xd2d0a5de, 0x5c2b394a},
	{"209.142.163.6", "38.27.205.30", 2217, 48228, 0x82989176, 0xafc7327f},
	{"202.188.127.2", "153.39.163.191", 1303, 44251, 0x5d1809c5, 0x10e828a2},
}

var toeplitzV6 = []struct {
	dst, src        string
	dport, sport    uint16
	ipHash, tcpHash uint32
}{
	{"3ffe:2501:200:3::1", "3ffe:2501:200:1fff::7", 1766, 2794, 0x2cc18cd5, 0x40207d3d},
	{"ff02::1", "3ffe:501:8::260:97ff:fe40:efab", 4739, 14230, 0x0f0c461c, 0xdde51bbf},
	{"fe80::200:f8ff:fe21:67cf", "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 38024, 44251, 0x4b61e985, 0x02d1feef},
}

func hashInput(src, dst string, sport, dport uint16) []byte {
	b := netip.MustParseAddr(src).AsSlice()
	b = append(b, netip.MustParseAddr(dst).AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func TestToeplitzVerificationSuite(t *testing.T) {
	k := DefaultHashKey[:]
	for _, v := range toeplitzV4 {
		in := hashInput(v.src, v.dst, v.sport, v.dport)
		if h := Toeplitz(k, in[:8]); h != v.ipHash {
			t.Errorf("IPv4 %s->%s: %#08x, want %#08x", v.src, v.dst, h, v.ipHash)
		}
		if h := Toeplitz(k, in); h != v.tcpHash {
			t.Errorf("TCP/IPv4 %s->%s: %#08x, want %#08x", v.src, v.dst, h, v.tcpHash)
		}
	}
	for _, v := range toeplitzV6 {
		in := hashInput(v.src, v.dst, v.sport, v.dport)
		if h := Toeplitz(k, in[:32]); h != v.ipHash {
			t.Errorf("IPv6 %s->%s: %#08x, want %#08x", v.src, v.dst, h, v.ipHash)
		}
		if h := Toeplitz(k, in); h != v.tcpHash {
			t.Errorf("TCP/IPv6 %s->%s: %#08x, want %#08x", v.src, v.dst, h, v.tcpHash)
		}
	}
}

// frame builds an Ethernet/IP/L4 frame (headers only, ports first in L4).
func frame(src, dst string, proto byte, sport, dport uint16, vlan bool) []byte {
	b := make([]byte, 12)
	if vlan {
		b = append(b, 0x81, 0x00, 0, 5)
	}
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	if s.Is4() {
		b = append(b, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0)
	} else {
		b = append(b, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, proto, 64)
	}
	b = append(b, s.AsSlice()...)
	b = append(b, d.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, make([]byte, 16)...)
}

func TestHashFrame(t *testing.T) {
	k := DefaultHashKey[:]
	v := toeplitzV4[0]
	all := uint32(HashFunctionToeplitz | HashIPv4 | HashTCPIPv4 | HashUDPIPv4 | HashIPv6 | HashTCPIPv6 | HashUDPIPv6)
	for _, tc := range []struct {
		name string
		f    []byte
		info uint32
		hash uint32
		typ  uint32
		ok   bool
	}{
		{"tcp4", frame(v.src, v.dst, 6, v.sport, v.dport, false), all, v.tcpHash, HashTCPIPv4, true},
		{"tcp4 vlan", frame(v.src, v.dst, 6, v.sport, v.dport, true), all, v.tcpHash, HashTCPIPv4, true},
		{"udp4", frame(v.src, v.dst, 17, v.sport, v.dport, false), all, v.tcpHash, HashUDPIPv4, true},
		{"udp4 2-tuple (Linux types)", frame(v.src, v.dst, 17, v.sport, v.dport, false), HashInfoLinux, v.ipHash, HashIPv4, true},
		{"tcp6", frame(toeplitzV6[0].src, toeplitzV6[0].dst, 6, 2794, 1766, false), all, 0x40207d3d, HashTCPIPv6, true},
		{"icmp6", frame(toeplitzV6[0].src, toeplitzV6[0].dst, 58, 2794, 1766, false), all, 0x2cc18cd5, HashIPv6, true},
		{"no function", frame(v.src, v.dst, 6, v.sport, v.dport, false), HashTCPIPv4, 0, 0, false},
		{"ipv4 types off", frame(v.src, v.dst, 6, v.sport, v.dport, false), HashFunctionToeplitz | HashTCPIPv6, 0, 0, false},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1), all, 0, 0, false},
		{"short", []byte{1, 2, 3}, all, 0, 0, false},
	} {
		h, typ, ok := HashFrame(k, tc.info, tc.f)
		if ok != tc.ok || (ok && (h != tc.hash || typ != HashFunctionToeplitz|tc.typ)) {
			t.Errorf("%s: %#08x %#x %v, want %#08x %#x %v", tc.name, h, typ, ok, tc.hash, HashFunctionToeplitz|tc.typ, tc.ok)
		}
	}
	for n := range 80 { // truncated frames never panic
		HashFrame(k, all, frame(v.src, v.dst, 6, 1, 2, true)[:n])
	}
}
