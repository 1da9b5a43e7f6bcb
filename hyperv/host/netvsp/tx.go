package netvsp

import (
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/net/packet"
)

// The two answers to SEND_RNDIS_PKT, shared read-only so that completing
// a data packet does not allocate one (a Message passed to complete
// escapes).
var (
	rndisSent   = &nvsp.SendRNDISPacketComplete{Status: nvsp.StatusSuccess}
	rndisFailed = &nvsp.SendRNDISPacketComplete{Status: nvsp.StatusFailure}
)

// fastRNDIS handles a SEND_RNDIS_PKT, the data path's message, without
// the generic decoder's allocation, once a version is negotiated; it
// reports false for anything else, which Packet then decodes as usual.
func (c *conn) fastRNDIS(p *ring.Packet, v nvsp.Version) bool {
	if v == 0 || nvsp.MsgSendRNDISPacket.MinVersion() > v {
		return false
	}
	var m nvsp.SendRNDISPacket
	if nvsp.DecodeSendRNDISPacketInto(p.Payload, &m) != nil {
		return false
	}
	c.onRNDIS(p, &m)
	return true
}

// onRNDIS handles SEND_RNDIS_PKT: the RNDIS bytes are the named
// send-buffer section's first, then the packet's GPA ranges (OpenVMM
// order, which Linux's partial copy relies on).
func (c *conn) onRNDIS(p *ring.Packet, m *nvsp.SendRNDISPacket) {
	data, ok := c.gatherRNDIS(p, m)
	if !ok {
		c.complete(p, rndisFailed)
		return
	}
	if m.ChannelType == nvsp.ChannelControl {
		// The NVSP packet completes at once; the RNDIS reply follows
		// through the receive buffer.
		c.complete(p, rndisSent)
		c.control(data)
		return
	}
	done := rndisSent
	if !c.transmit(data) {
		done = rndisFailed
	}
	c.complete(p, done)
}

// gatherRNDIS copies the RNDIS bytes of p into c.gather (a copy, so that
// the guest cannot change them while they are parsed).
func (c *conn) gatherRNDIS(p *ring.Packet, m *nvsp.SendRNDISPacket) ([]byte, bool) {
	c.gather = c.gather[:0]
	if m.SectionIndex != nvsp.NoSection {
		pc := c.prim() // subchannels share the primary's send buffer
		pc.mu.Lock()
		send, secSize, nsec := pc.send, pc.st.SendSectionSize, pc.st.SendSections
		pc.mu.Unlock()
		if send == nil || m.SectionIndex >= uint32(nsec) || m.SectionSize == 0 || m.SectionSize > uint32(secSize) {
			c.bad("SEND_RNDIS_PKT: bad send section", "index", m.SectionIndex, "size", m.SectionSize)
			return nil, false
		}
		n := int(m.SectionSize)
		c.gather = append(c.gather, make([]byte, n)...)[:n]
		if _, err := send.ReadAt(c.gather, int64(m.SectionIndex)*int64(secSize)); err != nil {
			c.bad("SEND_RNDIS_PKT: send buffer read failed", "err", err)
			return nil, false
		}
	} else if m.SectionSize != 0 {
		c.bad("SEND_RNDIS_PKT: section size without a section", "size", m.SectionSize)
	}
	if p.Type == ring.TypeGPADirect {
		it := p.GPARanges()
		for it.Next(&c.rg) {
			start := len(c.gather)
			n := int(c.rg.ByteCount)
			if start+n > MaxGather {
				c.bad("SEND_RNDIS_PKT: too many bytes", "bytes", start+n)
				return nil, false
			}
			c.gather = append(c.gather, make([]byte, n)...)[:start+n]
			if err := c.ch.ReadRange(&c.rg, c.gather[start:]); err != nil {
				c.bad("SEND_RNDIS_PKT: bad GPA range", "err", err)
				return nil, false
			}
		}
		if err := it.Err(); err != nil {
			c.bad("SEND_RNDIS_PKT: bad GPA ranges", "err", err)
			return nil, false
		}
	}
	if len(c.gather) == 0 {
		c.bad("SEND_RNDIS_PKT without RNDIS bytes")
		return nil, false
	}
	return c.gather, true
}

// transmit parses the PACKET messages in data and switches their frames;
// a malformed message fails the whole NVSP packet (nothing is sent).
func (c *conn) transmit(data []byte) bool {
	var info rndis.PacketInfo
	it := rndis.NewPacketIter(data)
	for _, ok := it.Next(&info); ok; _, ok = it.Next(&info) {
	}
	if err := it.Err(); err != nil {
		c.bad("malformed RNDIS data", "err", err)
		return false
	}
	pc := c.prim()
	pc.mu.Lock()
	ready := pc.st.RNDIS == RNDISInitialized
	pc.mu.Unlock()
	if !ready {
		c.bad("RNDIS data before INITIALIZE or after HALT")
		return false
	}
	d := c.d
	it = rndis.NewPacketIter(data)
	for frame, ok := it.Next(&info); ok; frame, ok = it.Next(&info) {
		pool := d.pool
		if len(frame) > pool.Size() {
			pool = d.large
		}
		pk := pool.Get()
		if pk == nil || pk.SetBytes(frame) != nil {
			if pk != nil {
				pk.Free()
			}
			d.stats.txDropped.Add(1)
			continue
		}
		txMeta(&info, &pk.Meta)
		d.txOffload(pk, c.txBatch)
	}
	d.transmit(c.txBatch)
	c.txBatch.Clear()
	return true
}

// txMeta converts transmit per-packet info into frame metadata.
func txMeta(info *rndis.PacketInfo, m *packet.Meta) {
	if info.Has(rndis.HasVLAN) {
		m.SetVLAN(info.VLAN.TCI())
	}
	if info.Has(rndis.HasChecksum) {
		cs := rndis.TxChecksumInfo(info.Checksum)
		v4, v6 := cs&rndis.TxChecksumIPv4 != 0, cs&rndis.TxChecksumIPv6 != 0
		if v4 && cs&rndis.TxChecksumIPHeader != 0 {
			m.Csum |= packet.CsumTxIPv4
		}
		switch {
		case v4 && cs&rndis.TxChecksumTCP != 0:
			m.Csum |= packet.CsumTxTCPv4
		case v4 && cs&rndis.TxChecksumUDP != 0:
			m.Csum |= packet.CsumTxUDPv4
		case v6 && cs&rndis.TxChecksumTCP != 0:
			m.Csum |= packet.CsumTxTCPv6
		case v6 && cs&rndis.TxChecksumUDP != 0:
			m.Csum |= packet.CsumTxUDPv6
		}
	}
	if info.Has(rndis.HasLSO) && info.LSO.MSS() > 0 {
		m.MSS = uint16(min(info.LSO.MSS(), 0xffff))
		if info.LSO.IsV2() && info.LSO.IPv6() {
			m.Csum |= packet.CsumTxTSOv6
		} else {
			m.Csum |= packet.CsumTxTSOv4
		}
	}
}
