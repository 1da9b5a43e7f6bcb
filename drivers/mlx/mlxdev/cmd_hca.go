package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Lifecycle commands (spec §7.5 "Lifecycle", §7.6 capabilities).

// pages is the firmware page account (§7.5 MANAGE_PAGES): a count plus a
// list of addresses the model never touches. Given pages fill the boot
// quota, then the init quota; beyond them they answer page requests.
type pages struct {
	list  []uint64
	set   map[uint64]bool
	extra int // pages PAGE_REQUEST events asked for beyond boot + init (>= 0)
}

// quotas returns how many of the given pages count as boot and init pages.
func (p *pages) quotas(d *Device) (boot, init int) {
	t := len(p.list)
	boot = min(t, d.cfg.BootPages)
	init = min(t-boot, d.cfg.InitPages)
	return boot, init
}

// regular is QUERY_PAGES op_mod 3: what the device still wants (negative:
// what it asks back) once boot and init pages are in.
func (p *pages) regular(d *Device) int {
	base := d.cfg.BootPages + d.cfg.InitPages
	if len(p.list) < base {
		return 0
	}
	return base + p.extra - len(p.list)
}

// capState holds the current (SET_HCA_CAP-modified) capabilities.
type capState struct {
	general [mlxhw.CapSize]byte
	eth     [mlxhw.CapSize]byte
	flow    [mlxhw.CapSize]byte
}

func (c *capState) reset() {
	g := mlxhw.ModelGeneralCaps()
	g.Put(c.general[:])
	e := mlxhw.ModelEthCaps()
	e.Put(c.eth[:])
	clear(c.flow[:])
	mlxhw.FlowTableMaxFTLevel.Put(c.flow[:], 3)
}

func (d *Device) maxCaps(t uint8) *[mlxhw.CapSize]byte {
	var c capState
	c.reset()
	d.applyKnobs(&c)
	switch t {
	case mlxhw.CapGeneral:
		return &c.general
	case mlxhw.CapEthernetOffloads:
		return &c.eth
	}
	return &c.flow
}

// applyKnobs adjusts the served capabilities to the configuration.
func (d *Device) applyKnobs(c *capState) {
	if d.cfg.RequireL2Inline {
		var e mlxhw.EthCaps
		_ = e.Parse(c.eth[:])
		e.WQEInlineMode = mlxhw.InlineModeL2
		e.Put(c.eth[:])
	}
}

func (d *Device) simpleCmd(in *mlxhw.SimpleIn) result {
	switch in.Op {
	case mlxhw.OpQueryISSI:
		return ok(&mlxhw.QueryISSIOut{CurrentISSI: d.issi, SupportedISSI: 0b11})
	case mlxhw.OpNOP:
		return ok(&mlxhw.EmptyOut{Op: in.Op})
	case mlxhw.OpInitHCA:
		if boot, init := d.pg.quotas(d); boot < d.cfg.BootPages || init < d.cfg.InitPages {
			return fail(mlxhw.StatusBadSysState, synd(in.Op, 1))
		}
		d.phase = PhaseRunning
		return ok(&mlxhw.EmptyOut{Op: in.Op})
	case mlxhw.OpQueryHCACap:
		t, cur := uint8(in.OpMod>>1), in.OpMod&1
		var src *[mlxhw.CapSize]byte
		switch t {
		case mlxhw.CapGeneral:
			src = &d.caps.general
		case mlxhw.CapEthernetOffloads:
			src = &d.caps.eth
		case mlxhw.CapFlowTable:
			src = &d.caps.flow
		default:
			return fail(mlxhw.StatusBadParam, synd(in.Op, uint16(t)))
		}
		if cur == mlxhw.CapMax {
			src = d.maxCaps(t)
		}
		return ok(&mlxhw.QueryHCACapOut{Cap: *src})
	case mlxhw.OpAllocUAR:
		id, found := d.objs.alloc(kUAR, func(n uint32) bool { return d.objs.uars[n] != nil })
		if !found {
			return fail(mlxhw.StatusLimErr, synd(in.Op, 0))
		}
		d.objs.uars[id] = &uarObj{}
		return ok(&mlxhw.ObjectOut{Op: in.Op, ID: id})
	case mlxhw.OpAllocPD, mlxhw.OpAllocTransportDomain:
		k, m := kPD, d.objs.pds
		if in.Op == mlxhw.OpAllocTransportDomain {
			k, m = kTD, d.objs.tds
		}
		id, found := d.objs.alloc(k, func(n uint32) bool { return m[n] != nil })
		if !found {
			return fail(mlxhw.StatusLimErr, synd(in.Op, 0))
		}
		m[id] = &ref{}
		return ok(&mlxhw.ObjectOut{Op: in.Op, ID: id})
	case mlxhw.OpAllocQCounter:
		id, found := d.objs.alloc(kQC, func(n uint32) bool { return d.objs.qcounters[n] })
		if !found {
			return fail(mlxhw.StatusLimErr, synd(in.Op, 0))
		}
		d.objs.qcounters[id] = true
		return ok(&mlxhw.AllocQCounterOut{CounterSetID: uint8(id)})
	}
	return fail(mlxhw.StatusBadOp, uint32(in.Op))
}

func (d *Device) objectCmd(in *mlxhw.ObjectIn) result {
	op := in.Op
	empty := ok(&mlxhw.EmptyOut{Op: op})
	switch op {
	case mlxhw.OpEnableHCA, mlxhw.OpDisableHCA:
		if in.ID != 0 {
			return fail(mlxhw.StatusBadParam, synd(op, 1))
		}
		if op == mlxhw.OpEnableHCA {
			d.phase = PhaseEnabled
		} else {
			d.destroyAllLocked()
			d.phase = PhaseCmdqReady
		}
		return empty
	case mlxhw.OpSetISSI:
		if in.ID > 1 {
			return fail(mlxhw.StatusBadParam, synd(op, uint16(in.ID)))
		}
		d.issi = uint16(in.ID)
		return empty
	case mlxhw.OpTeardownHCA:
		if in.ID != mlxhw.TeardownGraceful && in.ID != mlxhw.TeardownForceClose {
			return fail(mlxhw.StatusBadParam, synd(op, uint16(in.ID)))
		}
		d.destroyAllLocked()
		d.phase = PhaseEnabled
		return ok(&mlxhw.TeardownHCAOut{State: 0})
	case mlxhw.OpQueryPages:
		if in.ID != 0 {
			return fail(mlxhw.StatusBadParam, synd(op, 1))
		}
		var n int
		boot, init := d.pg.quotas(d)
		switch in.OpMod {
		case mlxhw.PagesBoot:
			n = d.cfg.BootPages - boot
		case mlxhw.PagesInit:
			n = d.cfg.InitPages - init
		case mlxhw.PagesRegular:
			n = d.pg.regular(d)
		default:
			return fail(mlxhw.StatusBadParam, synd(op, in.OpMod))
		}
		return ok(&mlxhw.QueryPagesOut{FunctionID: 0, NumPages: int32(n)})
	}
	return d.destroyCmd(in)
}

// managePages is MANAGE_PAGES (§7.5). room is the output buffer size.
func (d *Device) managePages(in *mlxhw.ManagePagesIn, room int) result {
	op := in.Opcode()
	if in.FunctionID != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, 1))
	}
	p := &d.pg
	switch in.OpMod {
	case mlxhw.ManagePagesCantGive:
		return ok(&mlxhw.ManagePagesOut{})
	case mlxhw.ManagePagesGive:
		seen := make(map[uint64]bool, len(in.PAS))
		for _, a := range in.PAS {
			if a%4096 != 0 || a == 0 || p.set[a] || seen[a] {
				return fail(mlxhw.StatusBadParam, synd(op, 2))
			}
			if _, err := d.cfg.Mem.Page(a >> 12); err != nil {
				d.violate(VioDMA, "MANAGE_PAGES gives page %#x outside guest memory", a)
				return fail(mlxhw.StatusBadParam, synd(op, 3))
			}
			seen[a] = true
		}
		if p.set == nil {
			p.set = map[uint64]bool{}
		}
		for _, a := range in.PAS {
			p.set[a] = true
			p.list = append(p.list, a)
		}
		return ok(&mlxhw.ManagePagesOut{})
	case mlxhw.ManagePagesTake:
		n := min(int(in.NumEntries), len(p.list), (room-mlxhw.HeaderSize)/8)
		if d.phase == PhaseRunning && len(p.list)-n < d.cfg.BootPages+d.cfg.InitPages+p.extra {
			return fail(mlxhw.StatusBadSysState, synd(op, 4))
		}
		out := &mlxhw.ManagePagesOut{PAS: make([]uint64, n)}
		for i := range n {
			a := p.list[len(p.list)-1-i]
			out.PAS[i] = a
			delete(p.set, a)
		}
		p.list = p.list[:len(p.list)-n]
		return ok(out)
	}
	return fail(mlxhw.StatusBadParam, synd(op, in.OpMod))
}

// setHCACap accepts a capability write only in the fields the model
// tolerates (those Linux changes: log_max_qp, pkey_table_size,
// cache_line_128byte, uar_4k; cmdif_checksum and log_uar_page_sz must stay 0);
// every other bit must equal the current value (§7.5).
func (d *Device) setHCACap(in *mlxhw.SetHCACapIn) result {
	op := in.Opcode()
	t := uint8(in.OpMod >> 1)
	var cur *[mlxhw.CapSize]byte
	switch t {
	case mlxhw.CapGeneral:
		cur = &d.caps.general
	case mlxhw.CapEthernetOffloads:
		cur = &d.caps.eth
	case mlxhw.CapFlowTable:
		cur = &d.caps.flow
	default:
		return fail(mlxhw.StatusBadParam, synd(op, uint16(t)))
	}
	if in.OpMod&1 != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, in.OpMod))
	}
	newCap := in.Cap
	if t == mlxhw.CapGeneral {
		tolerated := []mlxhw.Field{mlxhw.F(0x13, 4, 0), mlxhw.B16(0x32), mlxhw.Flag(0x2c, 27), mlxhw.Flag(0x48, 31)}
		mustZero := []mlxhw.Field{mlxhw.F(0x40, 15, 14), mlxhw.B16(0x92)}
		for _, f := range mustZero {
			if f.Get(newCap[:]) != 0 {
				return fail(mlxhw.StatusBadParam, synd(op, f.Bit))
			}
		}
		cmpA, cmpB := newCap, *cur
		for _, f := range tolerated {
			f.Put(cmpA[:], 0)
			f.Put(cmpB[:], 0)
		}
		if cmpA != cmpB {
			return fail(mlxhw.StatusBadParam, synd(op, firstDiff(cmpA[:], cmpB[:])))
		}
	} else if newCap != *cur {
		return fail(mlxhw.StatusBadParam, synd(op, firstDiff(newCap[:], cur[:])))
	}
	*cur = newCap
	return ok(&mlxhw.EmptyOut{Op: op})
}

func firstDiff(a, b []byte) uint16 {
	for i := range a {
		if a[i] != b[i] {
			return uint16(i)
		}
	}
	return 0
}
