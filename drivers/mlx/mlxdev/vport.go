package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Vport 0, link and the vport commands (spec §7.11, §4.4).

// vport is vport 0's context (mu held).
type vport struct {
	mac          [6]byte
	mtu          uint16
	promiscUC    bool
	promiscMC    bool
	promiscAll   bool
	uc, mc       [][6]byte
	arm          bool
	eventOn      uint8
	minInline    uint8
	regs         regState
	permanentSet bool
}

const defaultHWMTU = 1500 + mlxhw.MTUOverhead

func (v *vport) reset(mac [6]byte) {
	*v = vport{mac: mac, mtu: defaultHWMTU, regs: regState{pmtuAdmin: defaultHWMTU, paosAdmin: mlxhw.PAOSUp}}
}

// linkUpLocked is the effective vport state: admin UP, or AUTO following
// the link.
func (d *Device) linkUpLocked() bool {
	return d.admin == AdminUp || d.admin == AdminAuto && d.link
}

// SetLink sets the physical link (test and hypervisor hook).
func (d *Device) SetLink(up bool) {
	d.mu.Lock()
	was := d.linkUpLocked()
	d.link = up
	d.linkChangedLocked(was)
	d.unlock()
}

// SetAdmin sets the vport admin state the hypervisor forces.
func (d *Device) SetAdmin(s AdminState) {
	d.mu.Lock()
	was := d.linkUpLocked()
	if s <= AdminAuto {
		d.admin = s
	}
	d.linkChangedLocked(was)
	d.unlock()
}

// linkChangedLocked posts PORT_CHANGE events when the effective state
// changed (§7.11): to every EQ whose mask has bit 9.
func (d *Device) linkChangedLocked(was bool) {
	now := d.linkUpLocked()
	if now == was || d.phase != PhaseRunning {
		return
	}
	sub := uint8(mlxhw.PortChangeDown)
	if now {
		sub = mlxhw.PortChangeActive
	}
	e := mlxhw.EQEPortChange(sub, 1)
	d.postEventLocked(mlxhw.EventPortChange, &e)
}

// SetPermanentAddress is a host-initiated MAC change: the vport context
// changes and, if the driver armed change events with event_on_uc_address,
// a NIC_VPORT_CHANGE event is posted (one-shot).
func (d *Device) SetPermanentAddress(mac [6]byte) {
	d.mu.Lock()
	d.vport.mac = mac
	d.vportChangedLocked(mlxhw.EventOnUCAddress)
	d.unlock()
}

// SetHostMTU is a host-initiated hardware MTU change (event_on_mtu).
func (d *Device) SetHostMTU(hwMTU uint16) {
	d.mu.Lock()
	d.vport.mtu = hwMTU
	d.vportChangedLocked(mlxhw.EventOnMTU)
	d.unlock()
}

func (d *Device) vportChangedLocked(bit uint8) {
	if !d.vport.arm || d.vport.eventOn&bit == 0 || d.phase != PhaseRunning {
		return
	}
	d.vport.arm = false
	e := mlxhw.EQEVportChange(0)
	d.postEventLocked(mlxhw.EventNICVportChange, &e)
}

func (d *Device) queryVportState(in *mlxhw.QueryVportStateIn) result {
	op := in.Opcode()
	if in.OtherVport || in.VportNumber != 0 || in.OpMod != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	st := uint8(mlxhw.VportDown)
	if d.linkUpLocked() {
		st = mlxhw.VportUp
	}
	return ok(&mlxhw.QueryVportStateOut{AdminState: uint8(d.admin), State: st})
}

func (d *Device) vportContext(listType uint8) mlxhw.NICVportContext {
	v := &d.vport
	c := mlxhw.NICVportContext{MinWQEInlineMode: v.minInline, ArmChangeEvent: v.arm, EventOn: v.eventOn,
		MTU: v.mtu, PromiscUC: v.promiscUC, PromiscMC: v.promiscMC, PromiscAll: v.promiscAll,
		ListType: listType, PermanentAddress: v.mac}
	switch listType {
	case mlxhw.ListUC:
		c.Addresses = v.uc
	case mlxhw.ListMC:
		c.Addresses = v.mc
	}
	return c
}

func (d *Device) queryNICVportContext(in *mlxhw.QueryNICVportContextIn) result {
	op := in.Opcode()
	if in.OtherVport || in.VportNumber != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	if in.ListType > mlxhw.ListVLAN {
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	return ok(&mlxhw.QueryNICVportContextOut{Ctx: d.vportContext(in.ListType)})
}

// Vport list limits (§7.6 log_max_current_uc_list 4, mc 7, vlan 0).
const (
	maxUC = 1 << 4
	maxMC = 1 << 7
)

func (d *Device) modifyNICVportContext(in *mlxhw.ModifyNICVportContextIn) result {
	op := in.Opcode()
	if in.OtherVport || in.VportNumber != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	fs := in.FieldSelect
	if fs&^uint32(mlxhw.FieldSelectModel) != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	c := &in.Ctx
	v := &d.vport
	if fs&mlxhw.FieldSelectMTU != 0 && (c.MTU < 68+mlxhw.MTUOverhead || c.MTU > pmtuMax) {
		return fail(mlxhw.StatusBadParam, synd(op, chkSize))
	}
	if fs&mlxhw.FieldSelectAddressesList != 0 {
		switch {
		case c.ListType == mlxhw.ListUC && len(c.Addresses) <= maxUC:
		case c.ListType == mlxhw.ListMC && len(c.Addresses) <= maxMC:
		default:
			return fail(mlxhw.StatusBadParam, synd(op, chkLimit))
		}
	}
	if fs&mlxhw.FieldSelectMTU != 0 {
		v.mtu = c.MTU
	}
	if fs&mlxhw.FieldSelectAddressesList != 0 {
		l := append([][6]byte(nil), c.Addresses...)
		if c.ListType == mlxhw.ListUC {
			v.uc = l
		} else {
			v.mc = l
		}
	}
	if fs&mlxhw.FieldSelectPermanentAddress != 0 {
		v.mac = c.PermanentAddress
	}
	if fs&mlxhw.FieldSelectPromisc != 0 {
		v.promiscUC, v.promiscMC, v.promiscAll = c.PromiscUC, c.PromiscMC, c.PromiscAll
	}
	if fs&mlxhw.FieldSelectChangeEvent != 0 {
		v.arm, v.eventOn = c.ArmChangeEvent, c.EventOn
	}
	if fs&mlxhw.FieldSelectMinInline != 0 {
		v.minInline = c.MinWQEInlineMode
	}
	return ok(&mlxhw.EmptyOut{Op: op})
}

func (d *Device) queryVportCounter(in *mlxhw.QueryVportCounterIn) result {
	op := in.Opcode()
	if in.OtherVport || in.VportNumber != 0 {
		return fail(mlxhw.StatusBadParam, synd(op, chkParam))
	}
	s := &d.stats
	var out mlxhw.QueryVportCounterOut
	set := func(i int, t Traffic) { out.Counters[i] = mlxhw.TrafficCounter{Packets: t.Packets, Octets: t.Bytes} }
	set(mlxhw.CounterRxEthUnicast, s.RxUnicast)
	set(mlxhw.CounterRxEthMulticast, s.RxMulticast)
	set(mlxhw.CounterRxEthBroadcast, s.RxBroadcast)
	set(mlxhw.CounterTxEthUnicast, s.TxUnicast)
	set(mlxhw.CounterTxEthMulticast, s.TxMulticast)
	set(mlxhw.CounterTxEthBroadcast, s.TxBroadcast)
	out.Counters[mlxhw.CounterRxErrors].Packets = s.RxDrops[DropRxError] + s.RxDrops[DropMTU]
	out.Counters[mlxhw.CounterTxErrors].Packets = s.TxDrops[DropTxError]
	if in.Clear {
		s.RxUnicast, s.RxMulticast, s.RxBroadcast = Traffic{}, Traffic{}, Traffic{}
		s.TxUnicast, s.TxMulticast, s.TxBroadcast = Traffic{}, Traffic{}, Traffic{}
	}
	return ok(&out)
}

// accept is the RX acceptance filter of §7.11.
func (v *vport) accept(dst []byte) bool {
	if v.promiscAll {
		return true
	}
	if dst[0]&1 != 0 {
		if dst[0] == 0xff && dst[1] == 0xff && dst[2] == 0xff && dst[3] == 0xff && dst[4] == 0xff && dst[5] == 0xff {
			return true
		}
		return v.promiscMC || inList(v.mc, dst)
	}
	return v.promiscUC || [6]byte(dst[:6]) == v.mac || inList(v.uc, dst)
}

func inList(l [][6]byte, a []byte) bool {
	for i := range l {
		if l[i] == [6]byte(a[:6]) {
			return true
		}
	}
	return false
}

// ---- reduced flow steering, compat mode (§7.5 (B)) ----

func (d *Device) createFlowTable(in *mlxhw.CreateFlowTableIn) result {
	op := in.Opcode()
	if in.TableType != mlxhw.FlowTableNICRX {
		return fail(mlxhw.StatusBadParam, synd(op, chkType))
	}
	id, found := d.objs.alloc(kFT, func(n uint32) bool { return d.objs.fts[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	d.objs.fts[id] = &flowTable{typ: in.TableType, level: in.Level, entries: map[uint32]*fte{}}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

func (d *Device) flowTableCmd(in *mlxhw.FlowTableIn) result {
	op := in.Opcode()
	t := d.objs.fts[in.TableID]
	if t == nil || in.TableType != t.typ {
		return fail(lookupStatus(kFT, in.TableID), synd(op, chkRef))
	}
	if op == mlxhw.OpSetFlowTableRoot {
		if d.objs.root != nil {
			d.objs.root.refs--
		}
		t.refs++
		d.objs.root = t
		return ok(&mlxhw.EmptyOut{Op: op})
	}
	refs := t.refs
	if d.objs.root == t {
		refs-- // destroying the root table detaches it
	}
	if refs > 0 || len(t.entries) > 0 {
		return fail(mlxhw.StatusResBusy, synd(op, chkRef))
	}
	if d.objs.root == t {
		d.objs.root = nil
	}
	delete(d.objs.fts, in.TableID)
	return ok(&mlxhw.EmptyOut{Op: op})
}

func (d *Device) flowGroupCmd(in *mlxhw.FlowGroupIn) result {
	op := in.Opcode()
	t := d.objs.fts[in.TableID]
	if t == nil {
		return fail(lookupStatus(kFT, in.TableID), synd(op, chkRef))
	}
	if op == mlxhw.OpDestroyFlowGroup {
		g := d.objs.fgs[in.GroupID]
		if g == nil || g.table != t {
			return fail(lookupStatus(kFG, in.GroupID), synd(op, chkRef))
		}
		t.refs--
		delete(d.objs.fgs, in.GroupID)
		return ok(&mlxhw.EmptyOut{Op: op})
	}
	if in.End < in.Start {
		return fail(mlxhw.StatusBadParam, synd(op, chkSize))
	}
	id, found := d.objs.alloc(kFG, func(n uint32) bool { return d.objs.fgs[n] != nil })
	if !found {
		return fail(mlxhw.StatusLimErr, synd(op, chkLimit))
	}
	t.refs++
	d.objs.fgs[id] = &flowGroup{table: t}
	return ok(&mlxhw.ObjectOut{Op: op, ID: id})
}

func (d *Device) flowEntryCmd(in *mlxhw.FlowEntryIn) result {
	op := in.Opcode()
	t := d.objs.fts[in.TableID]
	if t == nil {
		return fail(lookupStatus(kFT, in.TableID), synd(op, chkRef))
	}
	old := t.entries[in.FlowIndex]
	if op == mlxhw.OpDeleteFlowTableEntry {
		if old == nil {
			return fail(mlxhw.StatusBadRes, synd(op, chkRef))
		}
		if old.tir != nil {
			old.tir.refs--
		}
		delete(t.entries, in.FlowIndex)
		return ok(&mlxhw.EmptyOut{Op: op})
	}
	e := &fte{}
	// Only forwards to a TIR are modelled; others are stored but ignored.
	if in.Action&mlxhw.FlowActionFwdDest != 0 && len(in.Dests) > 0 && in.Dests[0].Type == mlxhw.FlowDestTIR {
		if e.tir = d.objs.tirs[in.Dests[0].ID]; e.tir == nil {
			return fail(lookupStatus(kTIR, in.Dests[0].ID), synd(op, chkRef))
		}
		e.dmac = mlxhw.OuterDMAC(&in.Match)
		e.catchAll = in.Match == [mlxhw.FlowMatchParamSize]byte{}
	}
	if old != nil && old.tir != nil {
		old.tir.refs--
	}
	if e.tir != nil {
		e.tir.refs++
	}
	t.entries[in.FlowIndex] = e
	return ok(&mlxhw.EmptyOut{Op: op})
}

// steerLocked picks the TIR for a frame: the compat-mode root table's
// entries when a root is set (a dmac match wins over the catch-all), else
// the default TIR (§7.5 (A)).
func (d *Device) steerLocked(dst []byte) *tir {
	t := d.objs.root
	if t == nil {
		return d.objs.defTIR
	}
	var catchAll *tir
	for _, e := range t.entries {
		if e.tir == nil {
			continue
		}
		if e.catchAll {
			catchAll = e.tir
		} else if e.dmac == [6]byte(dst[:6]) {
			return e.tir
		}
	}
	return catchAll
}
