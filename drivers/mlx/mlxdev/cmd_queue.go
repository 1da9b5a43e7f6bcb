package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Queue commands (spec §7.5 "Queues"): EQ, CQ, TIS, SQ, RQ, RQT, TIR.

// Check numbers in syndromes, shared by the queue commands.
const (
	chkSize = iota + 1
	chkPAS
	chkUAR
	chkDBR
	chkType
	chkState
	chkRef
	chkLimit
	chkParam
)

// makeRing validates a PAS list for 1<<logSize entries of esz bytes in
// pages of 4 KiB << logPage and returns the ring (§7.5: 4 KiB aligned
// pages inside guest memory).
func (d *Device) makeRing(pas []uint64, logPage, logSize uint8, esz uint64) (ring, bool) {
	if logPage > 8 {
		return ring{}, false
	}
	r := ring{pas: append([]uint64(nil), pas...), pageSize: 4096 << logPage, pageShift: 12 + logPage, logSize: logSize, esz: esz}
	need := uint64(1)<<logSize*esz + r.pageSize - 1
	if uint64(len(pas)) < need/r.pageSize {
		return ring{}, false
	}
	for _, a := range pas {
		if a%4096 != 0 {
			return ring{}, false
		}
		for off := uint64(0); off < r.pageSize; off += 4096 {
			if _, err := d.cfg.Mem.Page((a + off) >> 12); err != nil {
				d.violate(VioDMA, "queue page %#x outside guest memory", a+off)
				return ring{}, false
			}
		}
	}
	return r, true
}

func (d *Device) dbrOK(addr uint64) bool {
	if addr%mlxhw.DBRAlignment != 0 {
		return false
	}
	_, err := d.cfg.Mem.Page(addr >> 12)
	if err != nil {
		d.violate(VioDMA, "doorbell record %#x outside guest memory", addr)
	}
	return err == nil
}

func (d *Device) createEQ(in *mlxhw.CreateEQIn) result {
	op := in.Opcode()
	c := &in.Ctx
	if c.LogSize < 1 || c.LogSize > mlxhw.MaxLogEQSize {
		return fail(mlxhw.StatusBadParam, synd(op, chkSize))
	}
	if int(c.Intr) >= mlxhw.MSIXVectors {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	u := d.objs.uars[c.UARPage]
	if u == nil {
		return fail(lookupStatus(kUAR, c.UARPage), synd(op, chkUAR))
	}
	r, good := d.makeRing(in.PAS, c.LogPageSize, c.LogSize, mlxhw.EQESize)
	if !good {
		return fail(mlxhw.StatusBadParam, synd(op, chkPAS))
	}
	id, found := d.objs.alloc(kEQ, func(n uint32) bool { return d.objs.eqs[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	u.refs++
	d.objs.eqs[id] = &eq{n: uint8(id), r: r, uar: u, intr: c.Intr, mask: in.EventBitmask,
		prod: c.Producer & 0xffffff, ci: c.Consumer & 0xffffff}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

func (d *Device) createCQ(in *mlxhw.CreateCQIn) result {
	op := in.Opcode()
	c := &in.Ctx
	switch {
	case c.CQESize != 0, c.CompEn:
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	case c.LogSize > 16:
		return fail(mlxhw.StatusBadParam, synd(op, chkSize))
	case !d.dbrOK(c.DBRAddr):
		return fail(mlxhw.StatusBadParam, synd(op, chkDBR))
	}
	var e *eq
	if uint32(c.EQN) < uint32(len(d.objs.eqs)) {
		e = d.objs.eqs[c.EQN]
	}
	if e == nil {
		return fail(lookupStatus(kEQ, uint32(c.EQN)), synd(op, chkRef))
	}
	u := d.objs.uars[c.UARPage]
	if u == nil {
		return fail(lookupStatus(kUAR, c.UARPage), synd(op, chkUAR))
	}
	r, good := d.makeRing(in.PAS, c.LogPageSize, c.LogSize, mlxhw.CQESize)
	if !good {
		return fail(mlxhw.StatusBadParam, synd(op, chkPAS))
	}
	id, found := d.objs.alloc(kCQ, func(n uint32) bool { return d.objs.cqs[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	e.refs++
	u.refs++
	d.objs.cqs[id] = &cq{n: id, r: r, uar: u, eq: e, dbr: c.DBRAddr, prod: c.Producer & 0xffffff,
		period: c.Period, maxCount: c.MaxCount}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

func (d *Device) modifyCQ(in *mlxhw.ModifyCQIn) result {
	op := in.Opcode()
	c := d.objs.cqs[in.CQN]
	if c == nil {
		return fail(lookupStatus(kCQ, in.CQN), synd(op, chkRef))
	}
	if in.FieldSelect&^(mlxhw.ModifyCQPeriod|mlxhw.ModifyCQMaxCount) != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	if in.FieldSelect&mlxhw.ModifyCQPeriod != 0 {
		c.period = in.Ctx.Period
	}
	if in.FieldSelect&mlxhw.ModifyCQMaxCount != 0 {
		c.maxCount = in.Ctx.MaxCount
	}
	return ok(&mlxhw.EmptyOut{Op: op})
}

func (d *Device) createTIS(in *mlxhw.CreateTISIn) result {
	op := in.Opcode()
	td := d.objs.tds[in.Ctx.TransportDomain]
	if td == nil {
		return fail(lookupStatus(kTD, in.Ctx.TransportDomain), synd(op, chkRef))
	}
	id, found := d.objs.alloc(kTIS, func(n uint32) bool { return d.objs.tiss[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	td.refs++
	d.objs.tiss[id] = &tis{prio: in.Ctx.Prio, td: td}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

// makeWQ validates the work queue part shared by SQ and RQ creation.
func (d *Device) makeWQ(op mlxhw.Opcode, w *mlxhw.WQ, pas []uint64, cqn uint32, state uint8) (wq, result, bool) {
	if state != mlxhw.QueueRST {
		return wq{}, fail(mlxhw.StatusBadParam, synd(op, chkState)), false
	}
	if w.LogSize > 15 || w.LogStride < 4 || w.LogStride > 10 {
		return wq{}, fail(mlxhw.StatusBadParam, synd(op, chkSize)), false
	}
	if !d.dbrOK(w.DBRAddr) {
		return wq{}, fail(mlxhw.StatusBadParam, synd(op, chkDBR)), false
	}
	c := d.objs.cqs[cqn]
	if c == nil {
		return wq{}, fail(lookupStatus(kCQ, cqn), synd(op, chkRef)), false
	}
	pd := d.objs.pds[w.PD]
	if pd == nil {
		return wq{}, fail(lookupStatus(kPD, w.PD), synd(op, chkRef)), false
	}
	r, good := d.makeRing(pas, w.LogPageSize, w.LogSize, 1<<w.LogStride)
	if !good {
		return wq{}, fail(mlxhw.StatusBadParam, synd(op, chkPAS)), false
	}
	return wq{r: r, cq: c, pd: pd, dbr: w.DBRAddr, state: mlxhw.QueueRST}, result{}, true
}

func (d *Device) createSQ(in *mlxhw.CreateSQIn) result {
	op := in.Opcode()
	c := &in.Ctx
	if c.WQ.Type != mlxhw.WQCyclic || c.WQ.LogStride != 6 {
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	if c.TISListSize != 1 {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	t := d.objs.tiss[c.TISNum0]
	if t == nil {
		return fail(lookupStatus(kTIS, c.TISNum0), synd(op, chkRef))
	}
	u := d.objs.uars[c.WQ.UARPage]
	if u == nil {
		return fail(lookupStatus(kUAR, c.WQ.UARPage), synd(op, chkUAR))
	}
	w, r, good := d.makeWQ(op, &c.WQ, in.PAS, c.CQN, c.State)
	if !good {
		return r
	}
	id, found := d.objs.alloc(kSQ, func(n uint32) bool { return d.objs.sqs[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	w.n, w.flushErr = id, c.FlushInError
	s := &sq{wq: w, uarN: c.WQ.UARPage, uar: u, tis: t, minInline: c.MinInline}
	w.cq.refs++
	w.cq.sqs = append(w.cq.sqs, id)
	w.pd.refs++
	u.refs++
	t.refs++
	d.objs.sqs[id] = s
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

func (d *Device) createRQ(in *mlxhw.CreateRQIn) result {
	op := in.Opcode()
	c := &in.Ctx
	linked := c.WQ.Type == mlxhw.WQLinkedList
	if !(c.WQ.Type == mlxhw.WQCyclic || linked && d.cfg.LinkedListRQ) || c.MemRQType != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	w, r, good := d.makeWQ(op, &c.WQ, in.PAS, c.CQN, c.State)
	if !good {
		return r
	}
	if w.r.esz > 512 {
		return fail(mlxhw.StatusBadParam, synd(op, chkSize)) // max_wqe_sz_rq
	}
	id, found := d.objs.alloc(kRQ, func(n uint32) bool { return d.objs.rqs[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	w.n, w.flushErr = id, c.FlushInError
	w.cq.refs++
	w.cq.rqs = append(w.cq.rqs, id)
	w.pd.refs++
	d.objs.rqs[id] = &rq{wq: w, vsd: c.VSD, linked: linked}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

// transition applies a MODIFY_SQ/RQ state change (§7.5): the current state
// must match, and only RST→RDY, RDY→ERR, ERR→RST and RDY→RST exist.
func transition(op mlxhw.Opcode, w *wq, cur, next uint8) (result, bool) {
	if cur != w.state {
		return fail(mlxhw.StatusBadResState, synd(op, uint16(w.state))), false
	}
	switch {
	case cur == mlxhw.QueueRST && next == mlxhw.QueueRDY,
		cur == mlxhw.QueueRDY && next == mlxhw.QueueERR,
		cur == mlxhw.QueueERR && next == mlxhw.QueueRST,
		cur == mlxhw.QueueRDY && next == mlxhw.QueueRST:
		return result{}, true
	}
	return fail(mlxhw.StatusBadParam, synd(op, chkState)), false
}

func (d *Device) modifySQ(in *mlxhw.ModifySQIn) result {
	op := in.Opcode()
	s := d.objs.sqs[in.SQN]
	if s == nil {
		return fail(lookupStatus(kSQ, in.SQN), synd(op, chkRef))
	}
	if r, good := transition(op, &s.wq, in.CurState, in.Ctx.State); !good {
		return r
	}
	d.setSQStateLocked(s, in.Ctx.State)
	return ok(&mlxhw.EmptyOut{Op: op})
}

// setSQStateLocked moves an SQ: to ERR flushes what is posted, to RST
// flushes and resets the consumer counter.
func (d *Device) setSQStateLocked(s *sq, next uint8) {
	if s.state == mlxhw.QueueRDY && next != mlxhw.QueueRDY {
		d.flushSQLocked(s)
	}
	s.state = next
	if next == mlxhw.QueueRST {
		s.cons = 0
	}
}

func (d *Device) modifyRQ(in *mlxhw.ModifyRQIn) result {
	op := in.Opcode()
	r := d.objs.rqs[in.RQN]
	if r == nil {
		return fail(lookupStatus(kRQ, in.RQN), synd(op, chkRef))
	}
	if in.CurState != r.state {
		return fail(mlxhw.StatusBadResState, synd(op, uint16(r.state)))
	}
	if in.Ctx.State != in.CurState {
		if res, good := transition(op, &r.wq, in.CurState, in.Ctx.State); !good {
			return res
		}
		d.setRQStateLocked(r, in.Ctx.State)
	}
	if in.Bitmask&(1<<1) != 0 { // MLX5_RQ_BITMASK_VSD
		r.vsd = in.Ctx.VSD
	}
	return ok(&mlxhw.EmptyOut{Op: op})
}

func (d *Device) rqtCmd(in *mlxhw.RQTIn) result {
	op := in.Opcode()
	c := &in.Ctx
	if len(c.RQs) == 0 || len(c.RQs) > mlxhw.MaxRQTSize || (op == mlxhw.OpCreateRQT && int(c.MaxSize) < len(c.RQs)) {
		return fail(mlxhw.StatusBadParam, synd(op, chkSize))
	}
	rqs := make([]*rq, len(c.RQs))
	for i, n := range c.RQs {
		if rqs[i] = d.objs.rqs[n]; rqs[i] == nil {
			return fail(lookupStatus(kRQ, n), synd(op, chkRef))
		}
	}
	if op == mlxhw.OpModifyRQT {
		t := d.objs.rqts[in.RQTN]
		if t == nil {
			return fail(lookupStatus(kRQT, in.RQTN), synd(op, chkRef))
		}
		if in.Bitmask&1 == 0 {
			return fail(mlxhw.StatusBadParam, synd(op, chkParam))
		}
		if len(rqs) > int(t.maxSize) {
			return fail(mlxhw.StatusBadParam, synd(op, chkSize))
		}
		for _, r := range t.rqs {
			r.refs--
		}
		for _, r := range rqs {
			r.refs++
		}
		t.rqs, t.ids = rqs, append([]uint32(nil), c.RQs...)
		return ok(&mlxhw.EmptyOut{Op: op})
	}
	id, found := d.objs.alloc(kRQT, func(n uint32) bool { return d.objs.rqts[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	for _, r := range rqs {
		r.refs++
	}
	d.objs.rqts[id] = &rqt{maxSize: c.MaxSize, rqs: rqs, ids: append([]uint32(nil), c.RQs...)}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

// MODIFY_TIR bitmask bits (mlx5_ifc.h modify_tir_bitmask).
const (
	tirBitmaskIndirectTable = 1 << 1
	tirBitmaskHash          = 1 << 2
)

func (d *Device) tirCmd(in *mlxhw.TIRIn) result {
	op := in.Opcode()
	c := &in.Ctx
	if c.TunneledOffload || c.SelectorInner != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	var t tir
	if op == mlxhw.OpModifyTIR {
		old := d.objs.tirs[in.TIRN]
		if old == nil {
			return fail(lookupStatus(kTIR, in.TIRN), synd(op, chkRef))
		}
		if in.Bitmask&^uint64(tirBitmaskIndirectTable|tirBitmaskHash) != 0 {
			return fail(mlxhw.StatusBadParam, synd(op, chkParam))
		}
		t = *old
		if in.Bitmask&tirBitmaskIndirectTable != 0 {
			if old.disp != mlxhw.TIRIndirect {
				return fail(mlxhw.StatusBadParam, synd(op, chkType))
			}
			n := d.objs.rqts[c.IndirectTable]
			if n == nil {
				return fail(lookupStatus(kRQT, c.IndirectTable), synd(op, chkRef))
			}
			old.table.refs--
			n.refs++
			old.table = n
		}
		if in.Bitmask&tirBitmaskHash != 0 {
			if c.HashFn != mlxhw.RxHashToeplitz && c.HashFn != mlxhw.RxHashNone {
				return fail(mlxhw.StatusBadParam, synd(op, chkParam))
			}
			old.hashFn, old.key, old.selector = c.HashFn, c.ToeplitzKey, c.SelectorOuter
		}
		return ok(&mlxhw.EmptyOut{Op: op})
	}
	td := d.objs.tds[c.TransportDomain]
	if td == nil {
		return fail(lookupStatus(kTD, c.TransportDomain), synd(op, chkRef))
	}
	t = tir{disp: c.DispType, hashFn: c.HashFn, key: c.ToeplitzKey, selector: c.SelectorOuter, td: td}
	switch c.DispType {
	case mlxhw.TIRDirect:
		if t.inline = d.objs.rqs[c.InlineRQN]; t.inline == nil {
			return fail(lookupStatus(kRQ, c.InlineRQN), synd(op, chkRef))
		}
	case mlxhw.TIRIndirect:
		if t.table = d.objs.rqts[c.IndirectTable]; t.table == nil {
			return fail(lookupStatus(kRQT, c.IndirectTable), synd(op, chkRef))
		}
		if c.HashFn != mlxhw.RxHashToeplitz && c.HashFn != mlxhw.RxHashNone {
			return fail(mlxhw.StatusBadParam, synd(op, chkParam))
		}
	default:
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	id, found := d.objs.alloc(kTIR, func(n uint32) bool { return d.objs.tirs[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	t.n = id
	if t.inline != nil {
		t.inline.refs++
	}
	if t.table != nil {
		t.table.refs++
	}
	td.refs++
	d.objs.tirs[id] = &t
	d.objs.updateDefaultTIR()
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}
