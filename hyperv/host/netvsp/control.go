package netvsp

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"unicode/utf16"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
)

// Host INITIALIZE_CMPLT values (OpenVMM).
const (
	maxPacketsPerMessage  = 8
	maxTransferSize       = 0xEFFFFFFF
	packetAlignmentFactor = 3
	// LSO limits Hyper-V reports.
	lsoMaxSize     = 0xF53C
	lsoMinSegments = 2
)

// control handles one RNDIS control message from the guest.
func (c *conn) control(data []byte) {
	c.d.stats.control.Add(1)
	m, err := rndis.DecodeFromGuest(data)
	if err != nil {
		c.bad("undecodable RNDIS control message", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m := m.(type) {
	case *rndis.Initialize:
		st := rndis.StatusSuccess
		if m.MajorVersion != rndis.MajorVersion {
			st = rndis.StatusBadVersion
		}
		c.sendControl(&rndis.InitializeComplete{
			RequestID: m.RequestID, Status: st, MajorVersion: rndis.MajorVersion, MinorVersion: rndis.MinorVersion,
			DeviceFlags: rndis.DeviceFlagConnectionless, Medium: rndis.Medium8023,
			MaxPacketsPerMessage: maxPacketsPerMessage, MaxTransferSize: maxTransferSize,
			PacketAlignmentFactor: packetAlignmentFactor,
		})
		if st == rndis.StatusSuccess {
			c.st.RNDIS = RNDISInitialized
			// OpenVMM: the VF association follows INITIALIZE_CMPLT.
			c.advertiseVF(c.d.vfConfig())
		}
	case *rndis.Query:
		// Hyper-V fails a query whose info_buf_offset is 0 (FreeBSD
		// hn_rndis.c), even without input.
		if len(data) >= 24 && binary.LittleEndian.Uint32(data[20:]) == 0 {
			c.sendControl(&rndis.QueryComplete{RequestID: m.RequestID, Status: rndis.StatusInvalidData})
			return
		}
		st, info := c.query(m.OID, m.Info)
		c.sendControl(&rndis.QueryComplete{RequestID: m.RequestID, Status: st, Info: info})
	case *rndis.Set:
		st := c.set(m.OID, m.Info)
		var sc rndis.SetComplete
		sc.RequestID, sc.Status = m.RequestID, st
		c.sendControl(&sc)
		if st == rndis.StatusSuccess && m.OID == rndis.OIDTCPOffloadParameters {
			// OpenVMM announces the new configuration.
			c.sendControl(&rndis.IndicateStatus{Status: rndis.StatusTaskOffloadCurrentConfig, Buffer: c.offload(3, true).Encode()})
		}
	case *rndis.KeepAlive:
		var kc rndis.KeepAliveComplete
		kc.RequestID, kc.Status = m.RequestID, rndis.StatusSuccess
		c.sendControl(&kc)
	case *rndis.Reset:
		// OpenVMM does not implement RESET.
		c.sendControl(&rndis.ResetComplete{Status: rndis.StatusNotSupported})
	case *rndis.Halt:
		c.st.RNDIS = RNDISHalted
	case *rndis.Packet:
		c.bad("RNDIS PACKET on the control channel")
	default:
		c.bad("unexpected RNDIS message", "type", m.Type())
	}
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// query answers an OID query. Runs with mu held.
func (c *conn) query(oid rndis.OID, in []byte) (rndis.Status, []byte) {
	mtu := c.st.MTU
	switch oid {
	case rndis.OIDGenMaximumFrameSize:
		return rndis.StatusSuccess, u32(mtu - nvsp.EthernetHeaderSz)
	case rndis.OIDGenMaximumTotalSize:
		return rndis.StatusSuccess, u32(mtu)
	case rndis.OIDGenLinkSpeed:
		return rndis.StatusSuccess, u32(uint32(min(c.d.cfg.LinkSpeed/rndis.LinkSpeedUnit, 0xffffffff)))
	case rndis.OIDGenMediaConnectStatus:
		st := rndis.MediaConnected
		if !c.d.linkUp.Load() {
			st = rndis.MediaDisconnected
		}
		return rndis.StatusSuccess, u32(uint32(st))
	case rndis.OID8023PermanentAddress:
		return rndis.StatusSuccess, append([]byte(nil), c.d.cfg.MAC[:]...)
	case rndis.OID8023CurrentAddress:
		return rndis.StatusSuccess, append([]byte(nil), c.st.CurrentMAC[:]...)
	case rndis.OID8023MaximumListSize:
		return rndis.StatusSuccess, u32(0) // OpenVMM
	case rndis.OIDGenVendorID:
		return rndis.StatusSuccess, u32(rndis.VendorIDMicrosoft)
	case rndis.OIDGenCurrentPacketFilter:
		return rndis.StatusSuccess, u32(uint32(c.st.PacketFilter))
	case rndis.OIDGenFriendlyName:
		var b []byte
		for _, r := range utf16.Encode([]rune(c.d.cfg.FriendlyName + "\x00")) {
			b = binary.LittleEndian.AppendUint16(b, r)
		}
		return rndis.StatusSuccess, b
	case rndis.OIDTCPOffloadHardwareCapabilities, rndis.OIDTCPOffloadCurrentConfig:
		rev := uint8(3)
		if c.st.NDIS != 0 && c.st.NDIS < nvsp.NDIS630 {
			rev = 2
		}
		if len(in) > 0 {
			h, err := rndis.DecodeObjectHeader(in)
			if err != nil || h.Type != rndis.ObjectTypeOffload || h.Revision < 1 {
				return rndis.StatusInvalidData, nil
			}
			rev = min(rev, h.Revision)
		}
		return rndis.StatusSuccess, c.offload(rev, oid == rndis.OIDTCPOffloadCurrentConfig).Encode()
	case rndis.OIDGenReceiveScaleCapabilities:
		caps := rndis.RSSCapabilities{
			Header:                rndis.RSSCapabilitiesHeader,
			Flags:                 rndis.RSSCapHashToeplitz | rndis.RSSCapHashTCPIPv4 | rndis.RSSCapHashTCPIPv6 | rndis.RSSCapHashUDPIPv4 | rndis.RSSCapHashUDPIPv6 | rndis.RSSCapMSI | rndis.RSSCapClassifyAtISR,
			NumInterruptMessages:  1,
			NumReceiveQueues:      uint32(c.d.cfg.MaxQueues),
			NumIndirectionEntries: rndis.RSSIndirectionEntries,
		}
		return rndis.StatusSuccess, caps.Encode()
	}
	return rndis.StatusNotSupported, nil
}

// offload builds the NDIS_OFFLOAD the host reports: capabilities, or the
// current configuration when current is set. Runs with mu held.
func (c *conn) offload(rev uint8, current bool) *rndis.Offload {
	o := &rndis.Offload{Header: rndis.OffloadHeader(rev)}
	const v4 = rndis.CsumIPv4Options | rndis.CsumTCPOptions | rndis.CsumTCP | rndis.CsumUDP | rndis.CsumIPv4Header
	const v6 = rndis.CsumIPv6ExtHdrs | rndis.CsumTCPOptions | rndis.CsumTCP | rndis.CsumUDP
	o.Checksum = rndis.ChecksumOffload{
		IPv4TxEncap: rndis.Encap8023, IPv4TxFlags: v4, IPv4RxEncap: rndis.Encap8023, IPv4RxFlags: v4,
		IPv6TxEncap: rndis.Encap8023, IPv6TxFlags: v6, IPv6RxEncap: rndis.Encap8023, IPv6RxFlags: v6,
	}
	o.LSOv2 = rndis.LSOv2Offload{
		IPv4Encap: rndis.Encap8023, IPv4MaxSize: lsoMaxSize, IPv4MinSegments: lsoMinSegments,
		IPv6Encap: rndis.Encap8023, IPv6MaxSize: lsoMaxSize, IPv6MinSegments: lsoMinSegments,
		IPv6Options: rndis.LSOv2IPv6ExtHdrs | rndis.LSOv2IPv6TCPOptions,
	}
	if current {
		p := &c.st.Offload
		if !txOn(p.TCPIPv4Checksum) && !txOn(p.UDPIPv4Checksum) && !txOn(p.IPv4Checksum) {
			o.Checksum.IPv4TxFlags = 0
		}
		if !txOn(p.TCPIPv6Checksum) && !txOn(p.UDPIPv6Checksum) {
			o.Checksum.IPv6TxFlags = 0
		}
		if p.LSOv2IPv4 != rndis.OffloadEnabled {
			o.LSOv2.IPv4MaxSize, o.LSOv2.IPv4MinSegments = 0, 0
		}
		if p.LSOv2IPv6 != rndis.OffloadEnabled {
			o.LSOv2.IPv6MaxSize, o.LSOv2.IPv6MinSegments = 0, 0
		}
	}
	return o
}

func txOn(v uint8) bool {
	return v == rndis.OffloadTxEnabledRxDisabled || v == rndis.OffloadTxRxEnabled
}

// set applies an OID set. Runs with mu held.
func (c *conn) set(oid rndis.OID, in []byte) rndis.Status {
	switch oid {
	case rndis.OIDGenCurrentPacketFilter:
		if len(in) < 4 {
			return rndis.StatusInvalidLength
		}
		c.st.PacketFilter = rndis.PacketFilter(binary.LittleEndian.Uint32(in))
		return rndis.StatusSuccess
	case rndis.OIDTCPOffloadParameters:
		p, err := rndis.DecodeOffloadParameters(in)
		if err != nil {
			return rndis.StatusInvalidData
		}
		mergeOffload(&c.st.Offload, p)
		return rndis.StatusSuccess
	case rndis.OID8023MulticastList:
		if len(in)%6 != 0 {
			return rndis.StatusInvalidLength
		}
		c.st.Multicast = c.st.Multicast[:0]
		for i := 0; i+6 <= len(in); i += 6 {
			c.st.Multicast = append(c.st.Multicast, [6]byte(in[i:i+6]))
		}
		return rndis.StatusSuccess
	case rndis.OIDGenReceiveScaleParameters:
		p, err := rndis.DecodeRSSParameters(in)
		if err != nil {
			return rndis.StatusInvalidData
		}
		for _, q := range p.IndirectionTable {
			if q >= uint32(c.d.cfg.MaxQueues) && !p.Disabled() {
				return rndis.StatusInvalidData
			}
		}
		c.st.RSS = p
		c.setRSS(p)
		return rndis.StatusSuccess
	case rndis.OIDGenRNDISConfigParameter:
		p, err := rndis.DecodeConfigParameter(in)
		if err != nil {
			return rndis.StatusInvalidData
		}
		if strings.EqualFold(p.NameString(), "NetworkAddress") {
			mac, err := hex.DecodeString(strings.ReplaceAll(p.ValueString(), "-", ""))
			if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
				return rndis.StatusInvalidData
			}
			c.st.CurrentMAC = [6]byte(mac)
		}
		return rndis.StatusSuccess
	}
	return rndis.StatusNotSupported
}

// mergeOffload applies the fields of p that ask for a change.
func mergeOffload(cur, p *rndis.OffloadParameters) {
	set := func(dst *uint8, v uint8) {
		if v != rndis.OffloadNoChange {
			*dst = v
		}
	}
	set(&cur.IPv4Checksum, p.IPv4Checksum)
	set(&cur.TCPIPv4Checksum, p.TCPIPv4Checksum)
	set(&cur.UDPIPv4Checksum, p.UDPIPv4Checksum)
	set(&cur.TCPIPv6Checksum, p.TCPIPv6Checksum)
	set(&cur.UDPIPv6Checksum, p.UDPIPv6Checksum)
	set(&cur.LSOv1, p.LSOv1)
	set(&cur.LSOv2IPv4, p.LSOv2IPv4)
	set(&cur.LSOv2IPv6, p.LSOv2IPv6)
	set(&cur.RSCIPv4, p.RSCIPv4)
	set(&cur.RSCIPv6, p.RSCIPv6)
	cur.Header = p.Header
}
