package ifnet

import (
	"strconv"
	"strings"
)

// Flags are an interface's administrative and operational flags (IFF_*).
type Flags uint32

const (
	FlagUp        Flags = 1 << iota // administratively up (user-settable)
	FlagBroadcast                   // supports broadcast (driver-owned)
	FlagMulticast                   // supports multicast (driver-owned)
	FlagRunning                     // driver resources allocated, ready to move packets (driver-owned)
	FlagPromisc                     // receive all packets (user-settable)
	FlagAllMulti                    // receive all multicast packets (user-settable)
	FlagLoopback                    // a loopback interface (driver-owned)
)

// UserFlags are the flags a SetFlags request can change; the others belong
// to the driver and are preserved (as FreeBSD's IFF_CANTCHANGE).
const UserFlags = FlagUp | FlagPromisc | FlagAllMulti

var flagNames = []string{"UP", "BROADCAST", "MULTICAST", "RUNNING", "PROMISC", "ALLMULTI", "LOOPBACK"}

func (f Flags) String() string { return bitString(uint64(f), flagNames) }

// Cap is a set of interface capabilities (IFCAP_*). An interface has a set it
// supports (Capabilities) and a subset currently enabled (CapEnabled).
type Cap uint32

const (
	CapRxCsum        Cap = 1 << iota // verify IPv4/TCP/UDP checksums on receive
	CapTxCsum                        // compute IPv4/TCP/UDP checksums on transmit
	CapRxCsumIPv6                    // verify TCP/UDP over IPv6 checksums on receive
	CapTxCsumIPv6                    // compute TCP/UDP over IPv6 checksums on transmit
	CapTSO4                          // TCP segmentation offload over IPv4 (needs CapTxCsum)
	CapTSO6                          // TCP segmentation offload over IPv6 (needs CapTxCsumIPv6)
	CapLRO                           // large receive offload
	CapVLANMTU                       // full-size frames with an 802.1Q header
	CapVLANHWTagging                 // insert/strip VLAN tags in hardware
	CapVLANHWCsum                    // checksum offload on VLAN-tagged frames (needs CapVLANHWTagging)
	CapVLANHWTSO                     // TSO on VLAN-tagged frames (needs CapVLANHWTagging)
	CapVLANHWFilter                  // hardware VLAN filter
	CapJumboMTU                      // MTU above 1500
	CapLinkState                     // the driver reports link state changes
	CapHWStats                       // the driver counts its own statistics
)

// Capability groups, as FreeBSD's IFCAP_HWCSUM, IFCAP_HWCSUM_IPV6, IFCAP_TSO.
const (
	CapHWCsum     = CapRxCsum | CapTxCsum
	CapHWCsumIPv6 = CapRxCsumIPv6 | CapTxCsumIPv6
	CapTSO        = CapTSO4 | CapTSO6
)

var capNames = []string{"RXCSUM", "TXCSUM", "RXCSUM_IPV6", "TXCSUM_IPV6", "TSO4", "TSO6", "LRO",
	"VLAN_MTU", "VLAN_HWTAGGING", "VLAN_HWCSUM", "VLAN_HWTSO", "VLAN_HWFILTER", "JUMBO_MTU",
	"LINKSTATE", "HWSTATS"}

func (c Cap) String() string { return bitString(uint64(c), capNames) }

// HWAssist are the offloads the stack may request per packet (FreeBSD's
// if_hwassist, CSUM_*). By default they follow the enabled capabilities
// (DeriveHWAssist); a driver may publish a narrower set.
type HWAssist uint32

const (
	AssistIP     HWAssist = 1 << iota // IPv4 header checksum (CSUM_IP)
	AssistTCP                         // TCP over IPv4 checksum (CSUM_TCP)
	AssistUDP                         // UDP over IPv4 checksum (CSUM_UDP)
	AssistIP6TCP                      // TCP over IPv6 checksum (CSUM_IP6_TCP)
	AssistIP6UDP                      // UDP over IPv6 checksum (CSUM_IP6_UDP)
	AssistIPTSO                       // TSO over IPv4 (CSUM_IP_TSO)
	AssistIP6TSO                      // TSO over IPv6 (CSUM_IP6_TSO)
)

// Hardware-assist groups (FreeBSD's CSUM_IP_CSUM-style classes and CSUM_TSO).
const (
	AssistCsumIPv4 = AssistIP | AssistTCP | AssistUDP
	AssistCsumIPv6 = AssistIP6TCP | AssistIP6UDP
	AssistTSO      = AssistIPTSO | AssistIP6TSO
)

var assistNames = []string{"CSUM_IP", "CSUM_TCP", "CSUM_UDP", "CSUM_IP6_TCP", "CSUM_IP6_UDP", "CSUM_IP_TSO", "CSUM_IP6_TSO"}

func (a HWAssist) String() string { return bitString(uint64(a), assistNames) }

// DeriveHWAssist returns the hardware-assist flags implied by an enabled
// capability set: TXCSUM gives the IPv4 checksum class, TXCSUM_IPV6 the IPv6
// class, TSO4 and TSO6 the TSO bits.
func DeriveHWAssist(enabled Cap) HWAssist {
	var a HWAssist
	if enabled&CapTxCsum != 0 {
		a |= AssistCsumIPv4
	}
	if enabled&CapTxCsumIPv6 != 0 {
		a |= AssistCsumIPv6
	}
	if enabled&CapTSO4 != 0 {
		a |= AssistIPTSO
	}
	if enabled&CapTSO6 != 0 {
		a |= AssistIP6TSO
	}
	return a
}

// TSOLimits bound what the stack may hand to TSO (if_hw_tsomax,
// if_hw_tsomaxsegcount, if_hw_tsomaxsegsize). Zero means "no limit stated".
type TSOLimits struct {
	MaxBytes       int // largest TSO packet, headers included
	MaxSegments    int // most buffer segments (scatter-gather entries) per packet
	MaxSegmentSize int // largest buffer segment
}

// Intersect returns limits that satisfy both t and o: each field is the
// smaller stated value (what hn does when it adopts a VF).
func (t TSOLimits) Intersect(o TSOLimits) TSOLimits {
	m := func(a, b int) int {
		switch {
		case a == 0:
			return b
		case b == 0:
			return a
		}
		return min(a, b)
	}
	return TSOLimits{m(t.MaxBytes, o.MaxBytes), m(t.MaxSegments, o.MaxSegments), m(t.MaxSegmentSize, o.MaxSegmentSize)}
}

// LinkState is the physical link state (LINK_STATE_*).
type LinkState uint8

const (
	LinkUnknown LinkState = iota
	LinkDown
	LinkUp
)

func (l LinkState) String() string {
	switch l {
	case LinkUnknown:
		return "unknown"
	case LinkDown:
		return "down"
	case LinkUp:
		return "up"
	}
	return "link(" + strconv.Itoa(int(l)) + ")"
}

// MediaType is the kind of medium.
type MediaType uint8

const (
	MediaNone     MediaType = iota // no medium selected
	MediaEthernet                  // Ethernet
)

func (m MediaType) String() string {
	switch m {
	case MediaNone:
		return "none"
	case MediaEthernet:
		return "ethernet"
	}
	return "media(" + strconv.Itoa(int(m)) + ")"
}

// Media describes one medium setting (an ifmedia word).
type Media struct {
	Type       MediaType
	Auto       bool   // autoselect (Speed/FullDuplex are what was negotiated, if known)
	Speed      uint64 // bits per second (0: unknown)
	FullDuplex bool
}

func (m Media) String() string {
	var sb strings.Builder
	sb.WriteString(m.Type.String())
	if m.Auto {
		sb.WriteString(" autoselect")
	}
	if m.Speed != 0 {
		sb.WriteString(" ")
		sb.WriteString(strconv.FormatUint(m.Speed, 10))
		sb.WriteString("bps")
	}
	if m.FullDuplex {
		sb.WriteString(" full-duplex")
	}
	return sb.String()
}

// MediaStatus are the ifmedia status bits.
type MediaStatus uint8

const (
	MediaValid  MediaStatus = 1 << iota // the status word is meaningful (IFM_AVALID)
	MediaActive                         // the medium is active: carrier present (IFM_ACTIVE)
)

func (s MediaStatus) String() string { return bitString(uint64(s), []string{"VALID", "ACTIVE"}) }

// MediaState is the answer to GetMedia: the selected medium, the one in
// use, and the status (FreeBSD's ifmediareq ifm_current, ifm_active,
// ifm_status).
type MediaState struct {
	Current Media
	Active  Media
	Status  MediaStatus
}

// RSSFunc is an RSS hash function (RSS_FUNC_*).
type RSSFunc uint8

const (
	RSSFuncNone     RSSFunc = iota // no RSS (one queue, or the driver does not say)
	RSSFuncToeplitz                // Toeplitz
	RSSFuncPrivate                 // a driver-private function
)

func (f RSSFunc) String() string {
	switch f {
	case RSSFuncNone:
		return "none"
	case RSSFuncToeplitz:
		return "toeplitz"
	case RSSFuncPrivate:
		return "private"
	}
	return "rssfunc(" + strconv.Itoa(int(f)) + ")"
}

// RSSTypes are the packet types an RSS hash covers (RSS_TYPE_*).
type RSSTypes uint16

const (
	RSSIPv4 RSSTypes = 1 << iota
	RSSTCPv4
	RSSIPv6
	RSSIPv6Ex
	RSSTCPv6
	RSSTCPv6Ex
	RSSUDPv4
	RSSUDPv6
	RSSUDPv6Ex
)

func (t RSSTypes) String() string {
	return bitString(uint64(t), []string{"IPV4", "TCP_IPV4", "IPV6", "IPV6_EX", "TCP_IPV6", "TCP_IPV6_EX", "UDP_IPV4", "UDP_IPV6", "UDP_IPV6_EX"})
}

// MaxRSSKeyLen is the longest RSS key a request can carry (RSS_KEYLEN_MAX).
const MaxRSSKeyLen = 128

// RSSConfig is an interface's receive-side scaling configuration as the
// driver publishes it.
type RSSConfig struct {
	Func  RSSFunc
	Key   []byte // at most MaxRSSKeyLen bytes
	Types RSSTypes
}

func bitString(v uint64, names []string) string {
	if v == 0 {
		return "0"
	}
	var sb strings.Builder
	for i := range 64 {
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
			sb.WriteString("0x" + strconv.FormatUint(bit, 16))
		}
	}
	return sb.String()
}
