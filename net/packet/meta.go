package packet

import "strings"

// Csum holds checksum and segmentation offload flags.
//
// The Tx flags are requests from the stack to the transmitting driver (the
// stack only sets those the interface's hardware-assist flags allow). The Rx
// flags are results reported by the receiving driver: a flag is only set when
// the hardware actually checked the field.
type Csum uint16

const (
	CsumTxIPv4  Csum = 1 << iota // compute the IPv4 header checksum
	CsumTxTCPv4                  // compute the TCP checksum over IPv4
	CsumTxUDPv4                  // compute the UDP checksum over IPv4
	CsumTxTCPv6                  // compute the TCP checksum over IPv6
	CsumTxUDPv6                  // compute the UDP checksum over IPv6
	CsumTxTSOv4                  // segment TCP/IPv4 into Meta.MSS-sized segments
	CsumTxTSOv6                  // segment TCP/IPv6 into Meta.MSS-sized segments
	CsumRxIPOK                   // IPv4 header checksum verified good
	CsumRxIPBad                  // IPv4 header checksum verified bad
	CsumRxL4OK                   // TCP/UDP checksum verified good
	CsumRxL4Bad                  // TCP/UDP checksum verified bad
)

const (
	// CsumTxMask covers every transmit request flag.
	CsumTxMask = CsumTxIPv4 | CsumTxTCPv4 | CsumTxUDPv4 | CsumTxTCPv6 | CsumTxUDPv6 | CsumTxTSOv4 | CsumTxTSOv6
	// CsumTxTSO covers both TSO requests.
	CsumTxTSO = CsumTxTSOv4 | CsumTxTSOv6
	// CsumRxMask covers every receive result flag.
	CsumRxMask = CsumRxIPOK | CsumRxIPBad | CsumRxL4OK | CsumRxL4Bad
)

var csumNames = [...]string{"TX_IPV4", "TX_TCPV4", "TX_UDPV4", "TX_TCPV6", "TX_UDPV6",
	"TX_TSOV4", "TX_TSOV6", "RX_IP_OK", "RX_IP_BAD", "RX_L4_OK", "RX_L4_BAD"}

func (c Csum) String() string { return bitString(uint64(c), csumNames[:]) }

// HashType says what an RSS hash value (Meta.Hash) was computed over, as
// FreeBSD's M_HASHTYPE_*.
type HashType uint8

const (
	HashNone    HashType = iota // no hash
	HashOpaque                  // a hash of unknown inputs (usable for queue selection only)
	HashIPv4                    // Toeplitz over IPv4 addresses
	HashTCPv4                   // Toeplitz over IPv4 addresses and TCP ports
	HashUDPv4                   // Toeplitz over IPv4 addresses and UDP ports
	HashIPv6                    // Toeplitz over IPv6 addresses
	HashTCPv6                   // Toeplitz over IPv6 addresses and TCP ports
	HashUDPv6                   // Toeplitz over IPv6 addresses and UDP ports
	HashIPv6Ex                  // IPv6 with extension headers
	HashTCPv6Ex                 // TCP/IPv6 with extension headers
	HashUDPv6Ex                 // UDP/IPv6 with extension headers
	numHashTypes
)

var hashNames = [...]string{"none", "opaque", "ipv4", "tcp4", "udp4", "ipv6", "tcp6", "udp6", "ipv6ex", "tcp6ex", "udp6ex"}

func (h HashType) String() string {
	if h < numHashTypes {
		return hashNames[h]
	}
	return "hash(" + itoa(uint64(h)) + ")"
}

// Meta is a packet's metadata. It is plain data owned by the packet's owner.
type Meta struct {
	// RcvIf is the index of the interface that received the packet (0: none).
	// ifnet.Interface.Input sets it, so a packet relabelled by an input
	// override (hn's transparent VF mode) names the interface it is
	// delivered through.
	RcvIf uint32
	// Hash is the RSS hash value; HashType says how it was computed.
	Hash     uint32
	HashType HashType
	// HasVLAN says whether VLAN holds an 802.1Q tag (TCI: PCP, DEI, VID) that
	// was stripped on receive or is to be inserted on transmit.
	HasVLAN bool
	VLAN    uint16
	// Csum holds checksum/TSO requests (transmit) or results (receive).
	Csum Csum
	// MSS is the TCP segment size for TSO (with CsumTxTSOv4/v6), or the
	// segment size the hardware used when it coalesced segments (LRO).
	MSS uint16
	// Queue is the hardware queue the packet was received on or should be
	// sent on.
	Queue uint16
}

// SetVLAN records an 802.1Q tag.
func (m *Meta) SetVLAN(tci uint16) { m.VLAN, m.HasVLAN = tci, true }

// ClearVLAN removes the VLAN tag.
func (m *Meta) ClearVLAN() { m.VLAN, m.HasVLAN = 0, false }

// VLANID returns the 12-bit VLAN ID of the tag (0 if none).
func (m *Meta) VLANID() uint16 {
	if !m.HasVLAN {
		return 0
	}
	return m.VLAN & 0x0fff
}

// bitString renders set bits by name, joined with '|'; unnamed bits as hex.
func bitString(v uint64, names []string) string {
	if v == 0 {
		return "0"
	}
	var sb strings.Builder
	for i := 0; i < 64; i++ {
		bit := uint64(1) << i
		if v&bit == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		if i < len(names) {
			sb.WriteString(names[i])
		} else {
			sb.WriteString("0x")
			sb.WriteString(hex(bit))
		}
	}
	return sb.String()
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			return string(b[i:])
		}
	}
}
