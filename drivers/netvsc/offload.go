package netvsc

import (
	"context"
	"fmt"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
)

// offloads is what the driver turned on from the host's capabilities
// (Linux rndis_netdev_set_hwcaps; spec §4.4–4.5).
type offloads struct {
	tcp4, udp4, tcp6, udp6 bool // transmit checksum
	tso4, tso6             bool
	tsoMax, tsoMinSegs     int
}

// hwQueryHeader is the NDIS_OFFLOAD header a guest sends with its query:
// rev 3 from NVSP 5, rev 2 at NVSP 4, rev 1 below (Linux).
func hwQueryHeader(v nvsp.Version) rndis.ObjectHeader {
	switch {
	case v >= nvsp.Version5:
		return rndis.OffloadHeader(3)
	case v >= nvsp.Version4:
		return rndis.OffloadHeader(2)
	}
	return rndis.OffloadHeader(1)
}

// decideOffloads applies Linux's rules to the host's capabilities and
// returns the parameters to set.
func decideOffloads(hw *rndis.Offload, v nvsp.Version) (offloads, *rndis.OffloadParameters) {
	var o offloads
	p := rndis.NewOffloadParameters(3)
	if v <= nvsp.Version4 {
		p.Header.Size = rndis.OffloadParametersSizeRev2
	}
	p.IPv4Checksum = rndis.OffloadTxRxDisabled // Linux never offloads the IPv4 header checksum
	c, l := hw.Checksum, hw.LSOv2
	const tcp4 = rndis.CsumTCP | rndis.CsumTCPOptions
	if c.IPv4TxFlags&tcp4 == tcp4 {
		o.tcp4 = true
		p.TCPIPv4Checksum = rndis.OffloadTxRxEnabled
		if l.IPv4Encap&rndis.Encap8023 != 0 && l.IPv4MaxSize > 0 {
			o.tso4 = true
			p.LSOv2IPv4 = rndis.OffloadEnabled
			o.tsoMax, o.tsoMinSegs = int(l.IPv4MaxSize), int(l.IPv4MinSegments)
		}
	}
	if c.IPv4TxFlags&rndis.CsumUDP != 0 {
		o.udp4 = true
		p.UDPIPv4Checksum = rndis.OffloadTxRxEnabled
	}
	const tcp6 = rndis.CsumTCP | rndis.CsumTCPOptions | rndis.CsumIPv6ExtHdrs
	const lso6 = rndis.LSOv2IPv6ExtHdrs | rndis.LSOv2IPv6TCPOptions
	if c.IPv6TxFlags&tcp6 == tcp6 {
		o.tcp6 = true
		p.TCPIPv6Checksum = rndis.OffloadTxRxEnabled
		if l.IPv6Encap&rndis.Encap8023 != 0 && l.IPv6Options&lso6 == lso6 && l.IPv6MaxSize > 0 {
			o.tso6 = true
			p.LSOv2IPv6 = rndis.OffloadEnabled
			if o.tsoMax == 0 || int(l.IPv6MaxSize) < o.tsoMax {
				o.tsoMax = int(l.IPv6MaxSize)
			}
			o.tsoMinSegs = max(o.tsoMinSegs, int(l.IPv6MinSegments))
		}
	}
	if c.IPv6TxFlags&rndis.CsumUDP != 0 {
		o.udp6 = true
		p.UDPIPv6Checksum = rndis.OffloadTxRxEnabled
	}
	if v <= nvsp.Version4 { // Linux: no UDP checksum offload on old hosts
		o.udp4, o.udp6 = false, false
		p.UDPIPv4Checksum, p.UDPIPv6Checksum = rndis.OffloadNoChange, rndis.OffloadNoChange
	}
	return o, p
}

// setupOffloads queries the hardware capabilities and sets the offload
// parameters (rndis_filter_device_add → rndis_netdev_set_hwcaps).
func (s *synth) setupOffloads(ctx context.Context) error {
	b, err := s.query(ctx, rndis.OIDTCPOffloadHardwareCapabilities, hwQueryHeader(s.ver).AppendTo(nil))
	if err != nil {
		return err
	}
	hw, err := rndis.DecodeOffload(b)
	if err != nil {
		return fmt.Errorf("%w: offload capabilities: %w", ErrHost, err)
	}
	s.hw = hw
	o, params := decideOffloads(hw, s.ver)
	if err := s.set(ctx, rndis.OIDTCPOffloadParameters, params.Encode()); err != nil {
		return err
	}
	s.off = o
	return nil
}

// capState is what the interface advertises for these offloads.
func (o offloads) capState() ifnet.CapState {
	caps := ifnet.CapRxCsum | ifnet.CapRxCsumIPv6 | ifnet.CapVLANMTU | ifnet.CapVLANHWTagging |
		ifnet.CapLinkState | ifnet.CapJumboMTU
	var assist ifnet.HWAssist
	if o.tcp4 || o.udp4 {
		caps |= ifnet.CapTxCsum | ifnet.CapVLANHWCsum
		if o.tcp4 {
			assist |= ifnet.AssistTCP
		}
		if o.udp4 {
			assist |= ifnet.AssistUDP
		}
	}
	if o.tcp6 || o.udp6 {
		caps |= ifnet.CapTxCsumIPv6 | ifnet.CapVLANHWCsum
		if o.tcp6 {
			assist |= ifnet.AssistIP6TCP
		}
		if o.udp6 {
			assist |= ifnet.AssistIP6UDP
		}
	}
	if o.tso4 {
		caps |= ifnet.CapTSO4 | ifnet.CapVLANHWTSO
		assist |= ifnet.AssistIPTSO
	}
	if o.tso6 {
		caps |= ifnet.CapTSO6 | ifnet.CapVLANHWTSO
		assist |= ifnet.AssistIP6TSO
	}
	return ifnet.CapState{Capabilities: caps, Enabled: caps, HWAssist: assist}
}

// tsoLimits bounds TSO by the host's LSO maximum and what one bounce slot
// holds (frames are copied whole, so segments are not limited).
func (o offloads) tsoLimits(bounceSlots int) ifnet.TSOLimits {
	if !o.tso4 && !o.tso6 {
		return ifnet.TSOLimits{}
	}
	limit := o.tsoMax
	room := BounceSlotSize - rndis.PacketHeaderSize - 4*rndis.PPISize
	if bounceSlots == 0 {
		room = 0
	}
	return ifnet.TSOLimits{MaxBytes: min(limit, room)}
}
