package rndis

import "encoding/binary"

// Toeplitz returns the Toeplitz hash of data under key (the NDIS RSS hash
// function, HashFunctionToeplitz): for every set bit of data, counted from
// the most significant bit of data[0], the 32 key bits starting at the
// same bit position are XORed into the result. Key bits past the end of
// key count as zero, so a 40-byte key covers 36 bytes of input (an IPv6
// 4-tuple).
func Toeplitz(key, data []byte) uint32 {
	var h uint32
	// window holds key bits [i, i+32) for the current input bit i.
	var window uint32
	for j := range 4 {
		window <<= 8
		if j < len(key) {
			window |= uint32(key[j])
		}
	}
	for i, b := range data {
		var next byte
		if i+4 < len(key) {
			next = key[i+4]
		}
		for bit := 7; bit >= 0; bit-- {
			if b&(1<<bit) != 0 {
				h ^= window
			}
			window = window<<1 | uint32(next>>bit)&1
		}
	}
	return h
}

// Hash input sizes: addresses then ports, as NDIS defines them.
const (
	hashInputIPv4 = 8
	hashInputTCP4 = 12
	hashInputIPv6 = 32
	hashInputTCP6 = 36
)

// HashFrame computes the RSS hash of an Ethernet frame as a Hyper-V host
// does for receive: it parses the Ethernet header (one 802.1Q tag is
// skipped), then IPv4 or IPv6, and hashes, by the types enabled in
// hashInfo (a HashInfo value: HashTCPIPv4, HashIPv4, ...), the 4-tuple
// source address, destination address, source port, destination port of
// TCP or UDP, or else the address pair. Fragments of IPv4 and IPv6
// packets with extension headers hash their addresses only. It returns the
// hash, the hash info to report (the type used | HashFunctionToeplitz),
// and false when the frame is not hashable under hashInfo (not IP, type
// not enabled, truncated, or a hash function other than Toeplitz). It
// does not allocate.
func HashFrame(key []byte, hashInfo uint32, frame []byte) (uint32, uint32, bool) {
	if hashInfo&HashFunctionMask != HashFunctionToeplitz || len(frame) < 14 {
		return 0, 0, false
	}
	et := binary.BigEndian.Uint16(frame[12:])
	l3 := frame[14:]
	if et == 0x8100 {
		if len(frame) < 18 {
			return 0, 0, false
		}
		et, l3 = binary.BigEndian.Uint16(frame[16:]), frame[18:]
	}
	var in [hashInputTCP6]byte
	switch et {
	case 0x0800:
		if len(l3) < 20 || l3[0]>>4 != 4 {
			return 0, 0, false
		}
		ihl := int(l3[0]&0xf) * 4
		copy(in[:8], l3[12:20])
		frag := binary.BigEndian.Uint16(l3[6:])&0x3fff != 0
		proto := l3[9]
		if !frag && ihl >= 20 && len(l3) >= ihl+4 {
			if proto == 6 && hashInfo&HashTCPIPv4 != 0 {
				copy(in[8:12], l3[ihl:ihl+4])
				return Toeplitz(key, in[:hashInputTCP4]), HashFunctionToeplitz | HashTCPIPv4, true
			}
			if proto == 17 && hashInfo&HashUDPIPv4 != 0 {
				copy(in[8:12], l3[ihl:ihl+4])
				return Toeplitz(key, in[:hashInputTCP4]), HashFunctionToeplitz | HashUDPIPv4, true
			}
		}
		if hashInfo&HashIPv4 != 0 {
			return Toeplitz(key, in[:hashInputIPv4]), HashFunctionToeplitz | HashIPv4, true
		}
	case 0x86dd:
		if len(l3) < 40 || l3[0]>>4 != 6 {
			return 0, 0, false
		}
		copy(in[:32], l3[8:40])
		proto := l3[6]
		if len(l3) >= 44 {
			if proto == 6 && hashInfo&HashTCPIPv6 != 0 {
				copy(in[32:36], l3[40:44])
				return Toeplitz(key, in[:]), HashFunctionToeplitz | HashTCPIPv6, true
			}
			if proto == 17 && hashInfo&HashUDPIPv6 != 0 {
				copy(in[32:36], l3[40:44])
				return Toeplitz(key, in[:]), HashFunctionToeplitz | HashUDPIPv6, true
			}
		}
		if hashInfo&HashIPv6 != 0 {
			return Toeplitz(key, in[:hashInputIPv6]), HashFunctionToeplitz | HashIPv6, true
		}
	}
	return 0, 0, false
}
