package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/packet"
)

// The send queue engine (spec §7.9 SQ, §7.10 TX offloads). mu held.

// sqDoorbellLocked handles an SQ doorbell on UAR uar (§7.8).
func (d *Device) sqDoorbellLocked(uar uint32, db mlxhw.SQDoorbell) {
	s := d.objs.sqs[db.SQN]
	if s == nil {
		d.violate(VioDoorbell, "SQ doorbell for SQ %#x, which does not exist", db.SQN)
		return
	}
	if s.uarN != uar {
		d.violate(VioUAR, "SQ %#x doorbell on UAR %d, its queue is on UAR %d", db.SQN, uar, s.uarN)
		return
	}
	switch s.state {
	case mlxhw.QueueRST:
		d.violate(VioDoorbell, "SQ %#x doorbell in state RST", db.SQN)
		return
	case mlxhw.QueueERR:
		return
	}
	pc, good := d.load32(s.dbr + mlxhw.DBRSendOff)
	if !good {
		return
	}
	p := uint16(pc)
	posted := p - uint16(s.cons)
	if uint32(posted) > s.r.size() {
		d.violate(VioDoorbell, "SQ %#x DBR producer %d is %d WQEBBs ahead of consumer %d (ring %d)", s.n, p, posted, uint16(s.cons), s.r.size())
		return
	}
	switch behind := uint16(s.cons) - db.WQEIndex; {
	case db.WQEIndex-uint16(s.cons) < posted:
		// Names a WQE the DBR publishes and the engine has yet to run.
	case behind != 0 && uint32(behind) <= s.r.size():
		// Names a WQE already run: a doorbell the bus delivered after a
		// later one did its work (doorbells are posted writes; across
		// processes or a VM boundary they arrive late). Not the driver's
		// fault; counted.
		d.stats.LateDoorbells++
	default:
		d.violate(VioDoorbell, "SQ %#x doorbell for WQE %d not published in the DBR (producer %d, consumer %d)", s.n, db.WQEIndex, p, uint16(s.cons))
	}
	for uint16(s.cons) != p && s.state == mlxhw.QueueRDY {
		d.sendWQELocked(s, p)
	}
}

// wqeDSLocked reads the control segment of the WQE at the SQ's consumer and
// returns its DS count (0 when it cannot be read).
func (d *Device) wqeDSLocked(s *sq, cons uint16) int {
	b := d.scratch.wqe[:mlxhw.DSSize]
	if !d.ringRead(&s.r, uint64(uint32(cons)&(s.r.size()-1))*mlxhw.WQEBBSize, b) {
		return 0
	}
	return int(b[7] & 0x3f)
}

// sendWQELocked processes the WQE at s.cons (§7.9 SQ steps 1–5); pc is
// the DBR's producer counter.
func (d *Device) sendWQELocked(s *sq, pc uint16) {
	cons := uint16(s.cons)
	ds := d.wqeDSLocked(s, cons)
	off := uint64(uint32(cons)&(s.r.size()-1)) * mlxhw.WQEBBSize
	w := &d.scratch.sw
	*w = mlxhw.SendWQE{}
	// The WQE must be whole: not wrapping the ring edge (the driver pads
	// with NOPs) and not extending past the published producer counter.
	if ds == 0 || off+uint64(ds)*mlxhw.DSSize > uint64(s.r.size())*mlxhw.WQEBBSize ||
		mlxhw.WQEBBs(ds) > int(pc-cons) {
		d.sqErrorLocked(s, 0, max(ds, 1), mlxhw.SyndLocalQPOp)
		return
	}
	buf := d.scratch.wqe[:ds*mlxhw.DSSize]
	if !d.ringRead(&s.r, off, buf) {
		d.sqErrorLocked(s, 0, ds, mlxhw.SyndLocalProt)
		return
	}
	nseg, err := mlxhw.ParseSendWQE(buf, w, d.scratch.segs[:])
	switch {
	case err != nil, w.WQEIndex != cons, w.SQN != s.n,
		w.Opcode != mlxhw.WQEOpNOP && w.Opcode != mlxhw.WQEOpSend && w.Opcode != mlxhw.WQEOpLSO:
		d.sqErrorLocked(s, w.Opcode, ds, mlxhw.SyndLocalQPOp)
		return
	}
	if s.errAt > 0 {
		if s.errAt--; s.errAt == 0 {
			d.sqErrorLocked(s, w.Opcode, ds, mlxhw.SyndLocalQPOp)
			return
		}
	}
	var sent int
	if w.Opcode != mlxhw.WQEOpNOP {
		var synd uint8
		sent, synd = d.transmitWQELocked(w, d.scratch.segs[:nseg])
		if synd != 0 {
			d.sqErrorLocked(s, w.Opcode, ds, synd)
			return
		}
	}
	if ce := w.FmCeSe & mlxhw.CEMask; ce == mlxhw.CECQEAlways || ce == mlxhw.CECQEAndEQE {
		cqe := mlxhw.CQE{Opcode: mlxhw.CQEReq, WQECounter: cons, SopDropQPN: s.n, ByteCnt: uint32(sent),
			SE: w.FmCeSe&mlxhw.SESolicited != 0, Timestamp: uint64(d.now().Sub(d.epoch))}
		d.cqPostLocked(s.cq, &cqe)
	}
	s.cons += uint32(mlxhw.WQEBBs(ds))
	d.stats.TxWQEs++
}

// sqErrorLocked completes the WQE at s.cons (ds segments) with an error CQE,
// moves the SQ to ERR and flushes the rest (§7.9 step 1).
func (d *Device) sqErrorLocked(s *sq, opcode uint8, ds int, synd uint8) {
	cqe := mlxhw.CQE{Opcode: mlxhw.CQEReqErr, Syndrome: synd, WQECounter: uint16(s.cons),
		SopDropQPN: uint32(opcode)<<24 | s.n}
	d.cqPostLocked(s.cq, &cqe)
	d.stats.TxDrops[DropTxError]++
	step := uint32(mlxhw.WQEBBs(max(ds, 1)))
	if pc, good := d.load32(s.dbr + mlxhw.DBRSendOff); good {
		step = min(step, uint32(uint16(pc)-uint16(s.cons)))
	}
	s.cons += step
	d.flushSQLocked(s)
	s.state = mlxhw.QueueERR
}

// flushSQLocked completes every WQE posted in the DBR beyond the consumer
// with WR_FLUSH (if flush_in_error_en) and consumes them.
func (d *Device) flushSQLocked(s *sq) {
	pc, good := d.load32(s.dbr + mlxhw.DBRSendOff)
	if !good {
		return
	}
	p := uint16(pc)
	if uint32(p-uint16(s.cons)) > s.r.size() {
		return
	}
	for uint16(s.cons) != p {
		cons := uint16(s.cons)
		ds := d.wqeDSLocked(s, cons)
		if s.flushErr {
			cqe := mlxhw.CQE{Opcode: mlxhw.CQEReqErr, Syndrome: mlxhw.SyndWRFlush, WQECounter: cons, SopDropQPN: s.n}
			d.cqPostLocked(s.cq, &cqe)
		}
		step := uint16(mlxhw.WQEBBs(max(ds, 1)))
		if p-cons < step {
			step = p - cons
		}
		s.cons += uint32(step)
	}
}

// setRQStateLocked moves an RQ; leaving RDY flushes its posted WQEs.
func (d *Device) setRQStateLocked(r *rq, next uint8) {
	if r.state == mlxhw.QueueRDY && next != mlxhw.QueueRDY && r.flushErr {
		pc, good := d.load32(r.dbr + mlxhw.DBRRecvOff)
		for n := uint16(pc) - uint16(r.cons); good && n > 0 && uint32(n) <= r.r.size(); n-- {
			cqe := mlxhw.CQE{Opcode: mlxhw.CQERespErr, Syndrome: mlxhw.SyndWRFlush, WQECounter: uint16(r.cons), SopDropQPN: r.n}
			d.cqPostLocked(r.cq, &cqe)
			r.cons++
		}
	}
	r.state = next
	if next == mlxhw.QueueRST {
		r.cons, r.head = 0, 0
	}
}

// transmitWQELocked gathers a SEND or LSO WQE's frame, applies the
// offloads and emits the result. It returns the bytes sent, or an error
// CQE syndrome. A SEND that will reach the wire is gathered straight into
// its packet; LSO, oversize and link-down frames go through scratch.
func (d *Device) transmitWQELocked(w *mlxhw.SendWQE, segs []mlxhw.DataSeg) (int, uint8) {
	if d.cfg.RequireL2Inline && len(w.Inline) < ethHeaderLen {
		return 0, mlxhw.SyndLocalQPOp
	}
	total := len(w.Inline)
	for i := range segs {
		if segs[i].Inline != nil {
			total += len(segs[i].Inline)
		} else {
			total += int(segs[i].ByteCount)
		}
	}
	if w.VLAN {
		total += vlanTagSz
	}
	buf := d.scratch.frame[:]
	var p *packet.Packet
	if w.Opcode == mlxhw.WQEOpSend && total <= d.cfg.TxFrameSize && total >= ethHeaderLen &&
		d.tx != nil && d.cfg.Wire != nil && d.linkUpLocked() {
		p = d.txPacket(total)
		if p != nil {
			b, err := p.Append(total)
			if err != nil {
				p.Free()
				p = nil
			} else {
				buf = b
			}
		}
	}
	n, synd := d.gatherLocked(w, segs, buf)
	if synd != 0 {
		if p != nil {
			p.Free()
		}
		return 0, synd
	}
	frame := buf[:n]
	if w.Opcode == mlxhw.WQEOpLSO {
		if !d.lsoLocked(frame, len(w.Inline), w.MSS) {
			return 0, mlxhw.SyndLocalQPOp
		}
		return n, 0
	}
	if w.CSFlags&(mlxhw.CSL3|mlxhw.CSL4) != 0 && !fillChecksums(frame, w.CSFlags) {
		d.stats.TxCsumUnsupported++
	}
	if p != nil {
		d.countTx(frame)
		d.stats.TxPackets++
		d.stats.TxBytes += uint64(n)
		d.emit(p)
		return n, 0
	}
	d.sendFrameLocked(frame)
	return n, 0
}

// gatherLocked copies a WQE's inline headers and data segments into buf,
// inserting the VLAN tag when asked, and returns the frame length or an
// error CQE syndrome.
func (d *Device) gatherLocked(w *mlxhw.SendWQE, segs []mlxhw.DataSeg, buf []byte) (int, uint8) {
	if len(w.Inline) > len(buf) {
		return 0, mlxhw.SyndLocalLength
	}
	n := copy(buf, w.Inline)
	for i := range segs {
		sg := &segs[i]
		if sg.Inline != nil {
			if n+len(sg.Inline) > len(buf) {
				return 0, mlxhw.SyndLocalLength
			}
			n += copy(buf[n:], sg.Inline)
			continue
		}
		bc := int(sg.ByteCount)
		if bc == 0 || n+bc > len(buf) {
			return 0, mlxhw.SyndLocalLength
		}
		if !d.lkeyOK(sg.LKey) || !d.dmaRead(sg.Addr, buf[n:n+bc]) {
			return 0, mlxhw.SyndLocalProt
		}
		n += bc
	}
	if w.VLAN {
		if n < ethHeaderLen || n+vlanTagSz > len(buf) {
			return 0, mlxhw.SyndLocalLength
		}
		copy(buf[16:n+4], buf[12:n])
		buf[12], buf[13] = 0x81, 0x00
		buf[14], buf[15] = byte(w.VLANTCI>>8), byte(w.VLANTCI)
		n += vlanTagSz
	}
	if n < ethHeaderLen {
		return 0, mlxhw.SyndLocalLength // not even an Ethernet header
	}
	return n, 0
}

// txPacket returns an empty packet for an n-byte frame (nil when the pool
// cannot give one).
func (d *Device) txPacket(n int) *packet.Packet {
	if n <= txSmallSize {
		return d.txSmall.Get()
	}
	return d.txPool.Get()
}

// countTx counts a frame by destination kind (vport counters).
func (d *Device) countTx(frame []byte) {
	switch {
	case frame[0] == 0xff && frame[1] == 0xff && frame[2] == 0xff && frame[3] == 0xff && frame[4] == 0xff && frame[5] == 0xff:
		d.stats.TxBroadcast.add(len(frame))
	case frame[0]&1 != 0:
		d.stats.TxMulticast.add(len(frame))
	default:
		d.stats.TxUnicast.add(len(frame))
	}
}

// sendFrameLocked copies one finished frame into a packet for the wire.
func (d *Device) sendFrameLocked(frame []byte) {
	if len(frame) > d.cfg.TxFrameSize {
		d.stats.TxDrops[DropTxOversize]++
		return
	}
	d.countTx(frame)
	if !d.linkUpLocked() {
		d.stats.TxDrops[DropLinkDown]++
		return
	}
	p := d.txPacket(len(frame))
	if p == nil || p.AppendBytes(frame) != nil {
		if p != nil {
			p.Free()
		}
		d.stats.TxDrops[DropTxOversize]++
		return
	}
	d.stats.TxPackets++
	d.stats.TxBytes += uint64(len(frame))
	d.emit(p)
}
