package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Resource commands (spec §7.5 "Resources"), the destroy side of every
// object (§7.7: RES_BUSY while referenced) and ACCESS_REG (§7.11).

func (d *Device) createMkey(in *mlxhw.CreateMkeyIn) result {
	op := in.Opcode()
	c := &in.Ctx
	if c.AccessMode != mlxhw.MkeyAccessPA || !c.Length64 {
		return fail(mlxhw.StatusBadParam, synd(op, 1))
	}
	pd := d.objs.pds[c.PD]
	if pd == nil {
		return fail(lookupStatus(kPD, c.PD), synd(op, 2))
	}
	id, found := d.objs.alloc(kMkey, func(n uint32) bool { return d.objs.mkeys[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, 0))
	}
	pd.refs++
	d.objs.mkeys[id] = &mkey{key: c.Key, pd: pd}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

// lkeyOK reports whether lkey names a live mkey (§7.5).
func (d *Device) lkeyOK(lkey uint32) bool {
	m := d.objs.mkeys[lkey>>8]
	return m != nil && m.key == uint8(lkey)
}

// destroyCmd handles every DESTROY_* and DEALLOC_* command.
func (d *Device) destroyCmd(in *mlxhw.ObjectIn) result {
	op, id := in.Op, in.ID
	o := &d.objs
	busy := func(r *ref) bool { return r.refs > 0 }
	var k kind
	var found, isBusy bool
	var drop func()
	switch op {
	case mlxhw.OpDeallocUAR:
		k = kUAR
		if u := o.uars[id]; u != nil {
			found, isBusy, drop = true, busy(&u.ref), func() { delete(o.uars, id) }
		}
	case mlxhw.OpDeallocPD, mlxhw.OpDeallocTransportDomain:
		k, m := kPD, o.pds
		if op == mlxhw.OpDeallocTransportDomain {
			k, m = kTD, o.tds
		}
		return d.dropSimple(op, k, m, id)
	case mlxhw.OpDestroyMkey:
		k = kMkey
		if mk := o.mkeys[id]; mk != nil {
			found, drop = true, func() { mk.pd.refs--; delete(o.mkeys, id) }
		}
	case mlxhw.OpDestroyEQ:
		k = kEQ
		if id < uint32(len(o.eqs)) && o.eqs[id] != nil {
			e := o.eqs[id]
			found, isBusy, drop = true, busy(&e.ref), func() { e.uar.refs--; o.eqs[id] = nil }
		}
	case mlxhw.OpDestroyCQ:
		k = kCQ
		if c := o.cqs[id]; c != nil {
			found, isBusy, drop = true, busy(&c.ref), func() {
				c.uar.refs--
				c.eq.refs--
				delete(o.cqs, id)
			}
		}
	case mlxhw.OpDestroyTIS:
		k = kTIS
		if t := o.tiss[id]; t != nil {
			found, isBusy, drop = true, busy(&t.ref), func() { t.td.refs--; delete(o.tiss, id) }
		}
	case mlxhw.OpDestroySQ:
		k = kSQ
		if s := o.sqs[id]; s != nil {
			found, drop = true, func() {
				s.cq.refs--
				s.cq.sqs = removeID(s.cq.sqs, id)
				s.pd.refs--
				s.uar.refs--
				s.tis.refs--
				delete(o.sqs, id)
			}
		}
	case mlxhw.OpDestroyRQ:
		k = kRQ
		if r := o.rqs[id]; r != nil {
			found, isBusy, drop = true, busy(&r.ref), func() {
				r.cq.refs--
				r.cq.rqs = removeID(r.cq.rqs, id)
				r.pd.refs--
				delete(o.rqs, id)
			}
		}
	case mlxhw.OpDestroyRQT:
		k = kRQT
		if t := o.rqts[id]; t != nil {
			found, isBusy, drop = true, busy(&t.ref), func() {
				for _, r := range t.rqs {
					r.refs--
				}
				delete(o.rqts, id)
			}
		}
	case mlxhw.OpDestroyTIR:
		k = kTIR
		if t := o.tirs[id]; t != nil {
			found, isBusy, drop = true, busy(&t.ref), func() {
				t.unref()
				delete(o.tirs, id)
				o.updateDefaultTIR()
			}
		}
	case mlxhw.OpDeallocQCounter:
		k = kQC
		if o.qcounters[id] {
			found, drop = true, func() { delete(o.qcounters, id) }
		}
	default:
		return fail(mlxhw.StatusBadOp, uint32(op))
	}
	if !found {
		return fail(lookupStatus(k, id), synd(op, 0))
	}
	if isBusy {
		return fail(mlxhw.StatusResBusy, synd(op, 0))
	}
	drop()
	return ok(&mlxhw.EmptyOut{Op: op})
}

func (d *Device) dropSimple(op mlxhw.Opcode, k kind, m map[uint32]*ref, id uint32) result {
	r := m[id]
	if r == nil {
		return fail(lookupStatus(k, id), synd(op, 0))
	}
	if r.refs > 0 {
		return fail(mlxhw.StatusResBusy, synd(op, 0))
	}
	delete(m, id)
	return ok(&mlxhw.EmptyOut{Op: op})
}

func (t *tir) unref() {
	if t.inline != nil {
		t.inline.refs--
	}
	if t.table != nil {
		t.table.refs--
	}
	t.td.refs--
}

func removeID(s []uint32, id uint32) []uint32 {
	for i, v := range s {
		if v == id {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// Registers served by ACCESS_REG (§7.11).
const (
	ptysCapability = 1<<27 | 1<<28 | 1<<29 // 25GBASE-CR/KR/SR
	ptysOper       = 1 << 27
	pmtuMax        = 9022
)

// regState is the register state ACCESS_REG writes record.
type regState struct {
	ptysAdmin uint32
	pmtuAdmin uint16
	paosAdmin uint8
}

func (d *Device) accessReg(in *mlxhw.AccessRegIn) result {
	op := in.Opcode()
	if in.OpMod != mlxhw.AccessRegWrite && in.OpMod != mlxhw.AccessRegRead {
		return fail(mlxhw.StatusBadParam, synd(op, 1))
	}
	write := in.OpMod == mlxhw.AccessRegWrite
	up := d.linkUpLocked()
	v := &d.vport
	out := &mlxhw.AccessRegOut{Data: make([]byte, len(in.Data))}
	switch in.RegisterID {
	case mlxhw.RegIDHostEndianness:
		if len(in.Data) < mlxhw.HostEndiannessSize {
			return fail(mlxhw.StatusBadInpLen, synd(op, 2))
		}
		copy(out.Data, in.Data)
	case mlxhw.RegIDPTYS:
		var r mlxhw.PTYS
		if err := r.Parse(in.Data); err != nil {
			return fail(mlxhw.StatusBadInpLen, synd(op, 2))
		}
		if r.ProtoMask&mlxhw.PTYSProtoEth == 0 {
			return fail(mlxhw.StatusBadParam, synd(op, 3))
		}
		if write {
			v.regs.ptysAdmin = r.Admin
		}
		o := mlxhw.PTYS{LocalPort: r.LocalPort, ProtoMask: r.ProtoMask, ANStatus: 1,
			Capability: ptysCapability, Admin: v.regs.ptysAdmin}
		if up {
			o.Oper = ptysOper
		}
		o.Put(out.Data)
	case mlxhw.RegIDPMTU:
		var r mlxhw.PMTU
		if err := r.Parse(in.Data); err != nil {
			return fail(mlxhw.StatusBadInpLen, synd(op, 2))
		}
		if write {
			if r.AdminMTU == 0 || r.AdminMTU > pmtuMax {
				return fail(mlxhw.StatusBadParam, synd(op, 4))
			}
			v.regs.pmtuAdmin = r.AdminMTU
		}
		o := mlxhw.PMTU{LocalPort: r.LocalPort, MaxMTU: pmtuMax, AdminMTU: v.regs.pmtuAdmin,
			OperMTU: min(v.regs.pmtuAdmin, pmtuMax)}
		o.Put(out.Data)
	case mlxhw.RegIDPAOS:
		var r mlxhw.PAOS
		if err := r.Parse(in.Data); err != nil {
			return fail(mlxhw.StatusBadInpLen, synd(op, 2))
		}
		if write && r.ASE {
			v.regs.paosAdmin = r.AdminStatus
		}
		o := mlxhw.PAOS{SWID: r.SWID, LocalPort: r.LocalPort, AdminStatus: mlxhw.PAOSDown, OperStatus: mlxhw.PAOSDown}
		if up {
			o.AdminStatus, o.OperStatus = mlxhw.PAOSUp, mlxhw.PAOSUp
		}
		o.Put(out.Data)
	default:
		return fail(mlxhw.StatusBadParam, synd(op, in.RegisterID))
	}
	return ok(out)
}
