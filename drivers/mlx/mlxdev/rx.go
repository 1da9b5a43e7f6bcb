package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/packet"
)

// The receive path (spec §7.9 RQ, §7.10 RX offloads, §7.11 filter). Deliver
// runs on its caller's goroutine and holds mu for the whole batch.

// RSS hash types in the CQE (CQE_RSS_HTYPE_IP / _L4 values).
const (
	rssIPv4   = 1 << 6
	rssIPv6   = 2 << 6
	rssL4TCP  = 1 << 2
	rssL4UDP  = 2 << 2
	vlanTagSz = 4
)

// Deliver takes frames from the virtual switch (vswitch.Port): vport
// filter, MTU check, steering, RQ DMA, CQE, EQE, interrupt. The device owns
// the packets of b and frees them; b itself is left empty.
func (d *Device) Deliver(b *packet.Batch) {
	d.mu.Lock()
	for i := range b.Len() {
		p := b.At(i)
		d.receiveLocked(p.Bytes(), p.Meta.HasVLAN, p.Meta.VLAN)
	}
	d.unlock()
	b.Free()
}

func (d *Device) rxDrop(r DropReason) { d.stats.RxDrops[r]++ }

// receiveLocked handles one frame; metaTag says the switch carries its
// 802.1Q tag (tci) beside the bytes rather than in them.
func (d *Device) receiveLocked(f []byte, metaTag bool, tci uint16) {
	// The hardware MTU is the software MTU + 22 (Ethernet header, one VLAN
	// tag and the FCS, §4.3): compare the L3 length with MTU - 22.
	l3 := len(f) - ethHeaderLen
	if !metaTag && len(f) >= ethHeaderLen+vlanTagSz && be.Uint16(f[12:]) == etherVLAN {
		l3 -= vlanTagSz
	}
	switch {
	case d.removed:
		d.rxDrop(DropRemoved)
		return
	case len(f) < ethHeaderLen:
		d.rxDrop(DropMalformed)
		return
	case d.closed || d.phase != PhaseRunning:
		d.rxDrop(DropNotReady)
		return
	case !d.linkUpLocked():
		d.rxDrop(DropLinkDown)
		return
	case !d.vport.accept(f):
		d.rxDrop(DropFilter)
		return
	case l3+mlxhw.MTUOverhead > int(d.vport.mtu):
		d.rxDrop(DropMTU)
		return
	}
	t := d.steerLocked(f)
	if t == nil {
		if d.objs.root != nil {
			d.rxDrop(DropNoSteering)
		} else {
			d.rxDrop(DropNotReady)
		}
		return
	}
	r := t.inline
	var hash uint32
	var htype uint8
	if t.disp == mlxhw.TIRIndirect {
		if t.hashFn == mlxhw.RxHashToeplitz {
			hash, htype = d.rssHashLocked(t, f)
		}
		r = t.table.rqs[hash%uint32(len(t.table.rqs))]
	}
	if r.state != mlxhw.QueueRDY {
		d.rxDrop(DropNotReady)
		return
	}
	if r.cq.failed {
		d.rxDrop(DropCQError)
		return
	}
	d.rqReceiveLocked(r, f, metaTag, tci, hash, htype)
}

// rssHashLocked computes the Toeplitz hash over the fields the TIR selects
// (src IP, dst IP, src port, dst port, in that order) for frames of the
// selected L3 (and, for the ports, L4) type.
func (d *Device) rssHashLocked(t *tir, f []byte) (uint32, uint8) {
	sel := t.selector
	h, good := parse(f)
	if !good || h.v6 != (sel&mlxhw.HashSelL3IPv6 != 0) {
		return 0, 0
	}
	in := d.scratch.hashIn[:0]
	alen, src := 4, h.l3+12
	if h.v6 {
		alen, src = 16, h.l3+8
	}
	var ht uint8
	if sel&mlxhw.HashSelSrcIP != 0 {
		in = append(in, f[src:src+alen]...)
	}
	if sel&mlxhw.HashSelDstIP != 0 {
		in = append(in, f[src+alen:src+2*alen]...)
	}
	if len(in) > 0 {
		ht = rssIPv4
		if h.v6 {
			ht = rssIPv6
		}
	}
	wantProto := uint8(protoTCP)
	if sel&mlxhw.HashSelL4UDP != 0 {
		wantProto = protoUDP
	}
	if sel&(mlxhw.HashSelL4SPort|mlxhw.HashSelL4DPort) != 0 && h.l4 > 0 && h.proto == wantProto {
		if sel&mlxhw.HashSelL4SPort != 0 {
			in = append(in, f[h.l4:h.l4+2]...)
		}
		if sel&mlxhw.HashSelL4DPort != 0 {
			in = append(in, f[h.l4+2:h.l4+4]...)
		}
		if wantProto == protoTCP {
			ht |= rssL4TCP
		} else {
			ht |= rssL4UDP
		}
	}
	if len(in) == 0 {
		return 0, 0
	}
	return rndis.Toeplitz(t.key[:], in), ht
}

// rqReceiveLocked places f in the RQ's next WQE and completes it.
func (d *Device) rqReceiveLocked(r *rq, f []byte, metaTag bool, metaTCI uint16, hash uint32, htype uint8) {
	pc, good := d.load32(r.dbr + mlxhw.DBRRecvOff)
	if !good {
		d.rxDrop(DropRxError)
		return
	}
	avail := uint16(pc) - uint16(r.cons)
	if avail == 0 {
		d.rxDrop(DropOutOfBuffer)
		return
	}
	if uint32(avail) > r.r.size() {
		d.violate(VioDoorbell, "RQ %#x DBR producer %d is %d WQEs ahead of consumer %d (ring %d)", r.n, uint16(pc), avail, uint16(r.cons), r.r.size())
		d.rxDrop(DropOutOfBuffer)
		return
	}
	idx := uint32(r.cons) & (r.r.size() - 1)
	counter := uint16(r.cons)
	if r.linked {
		idx = uint32(r.head) & (r.r.size() - 1)
		counter = uint16(idx)
	}
	var next uint16
	var nseg int
	wqe := d.scratch.rwqe[:r.r.esz]
	synd := uint8(0)
	if !d.ringRead(&r.r, uint64(idx)*r.r.esz, wqe) {
		synd = mlxhw.SyndLocalProt
	} else {
		var err error
		if next, nseg, err = mlxhw.ParseRecvWQE(wqe, r.linked, d.scratch.rsegs[:]); err != nil {
			synd = mlxhw.SyndLocalQPOp
		}
	}
	// VLAN strip (vsd = 0): the tag leaves the data and goes to the CQE.
	var tci uint16
	var l4l3 uint8
	frame := f
	switch {
	case metaTag && !r.vsd:
		tci, l4l3 = metaTCI, mlxhw.CQEVLANPresent
	case metaTag:
		buf := d.scratch.rxFrame[:len(f)+vlanTagSz]
		copy(buf, f[:12])
		be.PutUint16(buf[12:], etherVLAN)
		be.PutUint16(buf[14:], metaTCI)
		copy(buf[16:], f[12:])
		frame = buf
	case !r.vsd && len(f) >= ethHeaderLen+vlanTagSz && be.Uint16(f[12:]) == etherVLAN:
		tci = be.Uint16(f[14:])
		l4l3 = mlxhw.CQEVLANPresent
		buf := d.scratch.rxFrame[:len(f)-vlanTagSz]
		copy(buf, f[:12])
		copy(buf[12:], f[16:])
		frame = buf
	}
	if synd == 0 && r.errAt > 0 {
		if r.errAt--; r.errAt == 0 {
			synd = mlxhw.SyndLocalQPOp
		}
	}
	if synd == 0 {
		synd = d.scatterLocked(frame, d.scratch.rsegs[:nseg])
	}
	r.cons++
	r.head = next
	if synd != 0 {
		cqe := mlxhw.CQE{Opcode: mlxhw.CQERespErr, Syndrome: synd, WQECounter: counter, SopDropQPN: r.n}
		d.cqPostLocked(r.cq, &cqe)
		d.rxDrop(DropRxError)
		return
	}
	v := verify(frame)
	cqe := mlxhw.CQE{Opcode: mlxhw.CQERespSend, ByteCnt: uint32(len(frame)), WQECounter: counter, SopDropQPN: r.n,
		HdsIPExt: v.hdsIPExt, L4L3HdrType: v.l4l3 | l4l3, VLANInfo: tci, Checksum: v.checksum,
		RSSHash: hash, RSSHashType: htype, Timestamp: uint64(d.now().Sub(d.epoch))}
	if !d.cqPostLocked(r.cq, &cqe) {
		d.rxDrop(DropCQError)
		return
	}
	d.stats.RxPackets++
	d.stats.RxBytes += uint64(len(frame))
	switch {
	case f[0] == 0xff && f[1] == 0xff && f[2] == 0xff && f[3] == 0xff && f[4] == 0xff && f[5] == 0xff:
		d.stats.RxBroadcast.add(len(frame))
	case f[0]&1 != 0:
		d.stats.RxMulticast.add(len(frame))
	default:
		d.stats.RxUnicast.add(len(frame))
	}
}

// scatterLocked writes frame into the WQE's data segments in order; it
// returns an error CQE syndrome (0 on success).
func (d *Device) scatterLocked(frame []byte, segs []mlxhw.DataSeg) uint8 {
	rest := frame
	for i := range segs {
		if len(rest) == 0 {
			break
		}
		s := &segs[i]
		if !d.lkeyOK(s.LKey) {
			return mlxhw.SyndLocalProt
		}
		n := min(len(rest), int(s.ByteCount))
		if !d.dmaWrite(s.Addr, rest[:n]) {
			return mlxhw.SyndLocalProt
		}
		rest = rest[n:]
	}
	if len(rest) > 0 {
		return mlxhw.SyndLocalLength
	}
	return 0
}
