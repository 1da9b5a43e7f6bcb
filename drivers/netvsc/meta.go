package netvsc

import (
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/packet"
)

// Ethernet and IP facts the transmit path needs to place the L4 header
// offset in the checksum and LSO per-packet info (Linux takes it from
// skb_transport_offset; packet.Meta does not carry it, so it is parsed).
const (
	etherHdrLen   = 14
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeVLAN = 0x8100
)

// l4Offset returns the offset of the TCP/UDP header in an Ethernet frame
// and whether the frame is IPv6, or ok=false if the frame is not IPv4/IPv6
// (an inline 802.1Q tag is skipped; IPv6 extension headers are not).
func l4Offset(f []byte) (off int, v6, ok bool) {
	if len(f) < etherHdrLen {
		return 0, false, false
	}
	l3 := etherHdrLen
	et := int(f[12])<<8 | int(f[13])
	if et == etherTypeVLAN {
		if len(f) < etherHdrLen+4 {
			return 0, false, false
		}
		l3 += 4
		et = int(f[16])<<8 | int(f[17])
	}
	switch et {
	case etherTypeIPv4:
		if len(f) < l3+20 {
			return 0, false, false
		}
		ihl := int(f[l3]&0x0F) * 4
		if ihl < 20 || len(f) < l3+ihl {
			return 0, false, false
		}
		return l3 + ihl, false, true
	case etherTypeIPv6:
		if len(f) < l3+40 {
			return 0, false, false
		}
		return l3 + 40, true, true
	}
	return 0, false, false
}

// fillTxInfo turns a packet's transmit metadata into per-packet info:
// VLAN tag, then LSO (which implies the checksums) or checksum requests
// (Linux netvsc_xmit).
func fillTxInfo(info *rndis.PacketInfo, m *packet.Meta, frame []byte) {
	if m.HasVLAN {
		info.Present |= rndis.HasVLAN
		info.VLAN = rndis.VLANInfoFromTCI(m.VLAN)
	}
	if m.Csum&packet.CsumTxMask == 0 {
		return
	}
	off, v6, ok := l4Offset(frame)
	if !ok {
		return
	}
	if m.Csum&packet.CsumTxTSO != 0 && m.MSS > 0 {
		info.Present |= rndis.HasLSO
		info.LSO = rndis.NewLSOv2Info(int(m.MSS), off, v6)
		return
	}
	var f rndis.TxChecksumInfo
	switch {
	case m.Csum&packet.CsumTxTCPv4 != 0:
		f = rndis.TxChecksumIPv4 | rndis.TxChecksumTCP
	case m.Csum&packet.CsumTxUDPv4 != 0:
		f = rndis.TxChecksumIPv4 | rndis.TxChecksumUDP
	case m.Csum&packet.CsumTxTCPv6 != 0:
		f = rndis.TxChecksumIPv6 | rndis.TxChecksumTCP
	case m.Csum&packet.CsumTxUDPv6 != 0:
		f = rndis.TxChecksumIPv6 | rndis.TxChecksumUDP
	}
	if m.Csum&packet.CsumTxIPv4 != 0 && !v6 {
		f |= rndis.TxChecksumIPv4 | rndis.TxChecksumIPHeader
	}
	if f == 0 {
		return
	}
	info.Present |= rndis.HasChecksum
	info.Checksum = uint32(rndis.NewTxChecksumInfo(f, off))
}

// fillRxMeta turns received per-packet info into packet metadata: what the
// host verified, the stripped VLAN tag and the RSS hash (Linux
// netvsc_recv_callback, FreeBSD hn_rndis_rxinfo).
func fillRxMeta(m *packet.Meta, info *rndis.PacketInfo) {
	if info.Present&rndis.HasChecksum != 0 {
		c := rndis.RxChecksumInfo(info.Checksum)
		if c&(rndis.RxChecksumTCPFailed|rndis.RxChecksumUDPFailed) != 0 {
			m.Csum |= packet.CsumRxL4Bad
		} else if c&(rndis.RxChecksumTCPSucceeded|rndis.RxChecksumUDPSucceeded) != 0 {
			m.Csum |= packet.CsumRxL4OK
		}
		if c&rndis.RxChecksumIPFailed != 0 {
			m.Csum |= packet.CsumRxIPBad
		} else if c&rndis.RxChecksumIPSucceeded != 0 && c&rndis.RxChecksumIPValueInvalid == 0 {
			m.Csum |= packet.CsumRxIPOK
		}
	}
	if info.Present&rndis.HasVLAN != 0 {
		m.SetVLAN(info.VLAN.TCI())
	}
	if info.Present&rndis.HasHashValue != 0 {
		m.Hash = info.HashValue
		m.HashType = packet.HashOpaque
		if info.Present&rndis.HasHashInfo != 0 {
			m.HashType = hashType(info.HashInfo)
		}
	}
}

func hashType(hi uint32) packet.HashType {
	if hi&rndis.HashFunctionMask != rndis.HashFunctionToeplitz {
		return packet.HashOpaque
	}
	switch hi & rndis.HashTypeMask {
	case rndis.HashTCPIPv4:
		return packet.HashTCPv4
	case rndis.HashUDPIPv4:
		return packet.HashUDPv4
	case rndis.HashIPv4:
		return packet.HashIPv4
	case rndis.HashTCPIPv6:
		return packet.HashTCPv6
	case rndis.HashUDPIPv6:
		return packet.HashUDPv6
	case rndis.HashIPv6:
		return packet.HashIPv6
	case rndis.HashTCPIPv6Ex:
		return packet.HashTCPv6Ex
	case rndis.HashUDPIPv6Ex:
		return packet.HashUDPv6Ex
	case rndis.HashIPv6Ex:
		return packet.HashIPv6Ex
	}
	return packet.HashOpaque
}
