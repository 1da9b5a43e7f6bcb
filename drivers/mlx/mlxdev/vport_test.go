package mlxdev

import (
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/pci"
)

func (e *env) vportState() (admin, state uint8) {
	o := e.must(&mlxhw.QueryVportStateIn{}).(*mlxhw.QueryVportStateOut)
	return o.AdminState, o.State
}

func (e *env) reg(id uint16, data []byte, write bool) []byte {
	op := uint16(mlxhw.AccessRegRead)
	if write {
		op = mlxhw.AccessRegWrite
	}
	return e.must(&mlxhw.AccessRegIn{OpMod: op, RegisterID: id, Data: data}).(*mlxhw.AccessRegOut).Data
}

// TestLinkAndRegisters: PORT_CHANGE on every effective change, the vport
// state and PTYS/PMTU/PAOS following it (§7.11).
func TestLinkAndRegisters(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	async := e.createEQ(7, mlxhw.EventPortChange.Bit()|mlxhw.EventNICVportChange.Bit()|mlxhw.EventPageRequest.Bit(), 5)
	if a, s := e.vportState(); a != mlxhw.VportAuto || s != mlxhw.VportUp {
		t.Fatalf("admin %d state %d", a, s)
	}
	ptys := func() mlxhw.PTYS {
		in := mlxhw.PTYS{LocalPort: 1, ProtoMask: mlxhw.PTYSProtoEth}
		b := make([]byte, mlxhw.PTYSSize)
		in.Put(b)
		var r mlxhw.PTYS
		_ = r.Parse(e.reg(mlxhw.RegIDPTYS, b, false))
		return r
	}
	paos := func() mlxhw.PAOS {
		var r mlxhw.PAOS
		_ = r.Parse(e.reg(mlxhw.RegIDPAOS, make([]byte, mlxhw.PAOSSize), false))
		return r
	}
	if p := ptys(); p.Capability != 1<<27|1<<28|1<<29 || p.Oper != 1<<27 || p.ANStatus != 1 || mlxhw.EthProtoSpeed(p.Oper) != 25000 {
		t.Fatalf("PTYS up %+v", p)
	}
	if p := paos(); p.OperStatus != mlxhw.PAOSUp || p.AdminStatus != mlxhw.PAOSUp {
		t.Fatalf("PAOS %+v", p)
	}
	e.dev.SetLink(false)
	evs := async.poll(true)
	if len(evs) != 1 || evs[0].Type != mlxhw.EventPortChange || evs[0].SubType != mlxhw.PortChangeDown || evs[0].Port() != 1 {
		t.Fatalf("EQEs %+v", evs)
	}
	if _, s := e.vportState(); s != mlxhw.VportDown {
		t.Fatal("vport still up")
	}
	if p := ptys(); p.Oper != 0 {
		t.Fatal("PTYS oper while down")
	}
	if p := paos(); p.OperStatus != mlxhw.PAOSDown {
		t.Fatal("PAOS up while down")
	}
	e.dev.SetLink(false) // no change, no event
	e.dev.SetAdmin(AdminUp)
	e.dev.SetLink(true) // admin UP: still up, no event
	e.dev.SetAdmin(AdminDown)
	e.dev.SetAdmin(AdminAuto)
	evs = async.poll(true)
	if len(evs) != 3 || evs[0].SubType != mlxhw.PortChangeActive || evs[1].SubType != mlxhw.PortChangeDown || evs[2].SubType != mlxhw.PortChangeActive {
		t.Fatalf("flap EQEs %+v", evs)
	}
	if n := e.irqs[5].Load(); n < 2 {
		t.Fatalf("%d interrupts", n)
	}
	// PMTU: admin as written, oper = min(admin, max).
	pm := mlxhw.PMTU{LocalPort: 1, AdminMTU: 9000}
	b := make([]byte, mlxhw.PMTUSize)
	pm.Put(b)
	e.reg(mlxhw.RegIDPMTU, b, true)
	var r mlxhw.PMTU
	_ = r.Parse(e.reg(mlxhw.RegIDPMTU, make([]byte, mlxhw.PMTUSize), false))
	if r.MaxMTU != 9022 || r.AdminMTU != 9000 || r.OperMTU != 9000 {
		t.Fatalf("PMTU %+v", r)
	}
	// NIC_VPORT_CHANGE: one-shot, only for the armed event_on bits.
	e.must(&mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectChangeEvent,
		Ctx: mlxhw.NICVportContext{ArmChangeEvent: true, EventOn: mlxhw.EventOnUCAddress}})
	e.dev.SetHostMTU(2000)
	if evs := async.poll(true); len(evs) != 0 {
		t.Fatal("event for an unarmed bit")
	}
	newMAC := [6]byte{0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc}
	e.dev.SetPermanentAddress(newMAC)
	e.dev.SetPermanentAddress(testMAC)
	evs = async.poll(true)
	if len(evs) != 1 || evs[0].Type != mlxhw.EventNICVportChange || evs[0].VportNum() != 0 {
		t.Fatalf("vport change EQEs %+v", evs)
	}
	q := e.must(&mlxhw.QueryNICVportContextIn{}).(*mlxhw.QueryNICVportContextOut)
	if q.Ctx.ArmChangeEvent || q.Ctx.PermanentAddress != testMAC || q.Ctx.MTU != 2000 {
		t.Fatalf("context %+v", q.Ctx)
	}
	// PAGE_REQUEST: +2 then QUERY_PAGES regular reports 2.
	if !e.dev.Faults().PageRequest(2) {
		t.Fatal("page request refused")
	}
	evs = async.poll(true)
	if len(evs) != 1 || evs[0].Type != mlxhw.EventPageRequest {
		t.Fatalf("page request EQEs %+v", evs)
	}
	if f, n := evs[0].PageRequest(); f != 0 || n != 2 {
		t.Fatalf("page request %d %d", f, n)
	}
	if e.givePages(mlxhw.PagesRegular); e.dev.State().PagesGiven != 14 {
		t.Fatalf("pages %d", e.dev.State().PagesGiven)
	}
	e.dev.Faults().PageRequest(-2)
	async.poll(true)
	q2 := e.must(&mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: mlxhw.PagesRegular}).(*mlxhw.QueryPagesOut)
	if q2.NumPages != -2 {
		t.Fatalf("regular pages %d", q2.NumPages)
	}
	out := e.must(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: 2}).(*mlxhw.ManagePagesOut)
	if len(out.PAS) != 2 {
		t.Fatalf("took %d", len(out.PAS))
	}
	e.expect(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: 1}, mlxhw.StatusBadSysState)
	e.noViolations()
}

// TestTeardownToZero: destroying everything in reverse, TEARDOWN_HCA and
// reclaiming every page brings every count back to 0.
func TestTeardownToZero(t *testing.T) {
	x := newTxEnv(t, nil)
	rq := x.createRQ(x.cq, 4, false)
	rqt := x.id(&mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: 1, RQs: []uint32{rq.n}}})
	tir := x.id(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: mlxhw.TIRContext{DispType: mlxhw.TIRIndirect, IndirectTable: rqt,
		HashFn: mlxhw.RxHashToeplitz, TransportDomain: x.td}})
	ft := x.id(&mlxhw.CreateFlowTableIn{Level: 0, LogSize: 4})
	fg := x.id(&mlxhw.FlowGroupIn{Op: mlxhw.OpCreateFlowGroup, TableID: ft, Start: 0, End: 15})
	x.must(&mlxhw.FlowEntryIn{Op: mlxhw.OpSetFlowTableEntry, TableID: ft, GroupID: fg, Action: mlxhw.FlowActionFwdDest,
		Dests: []mlxhw.FlowDest{{Type: mlxhw.FlowDestTIR, ID: tir}}})
	x.must(&mlxhw.FlowTableIn{Op: mlxhw.OpSetFlowTableRoot, TableID: ft})
	qc := x.must(simple(mlxhw.OpAllocQCounter)).(*mlxhw.AllocQCounterOut).CounterSetID
	// Compat-mode steering: the catch-all entry reaches the TIR.
	rq.fill(2)
	deliver(x.dev, tcpFrame(t, mac(testMAC[:]...), 1, 2, []byte("ft"), true))
	if c := x.cq.poll(); len(c) != 1 || c[0].QPN() != rq.n {
		t.Fatalf("steered %+v", c)
	}
	s := x.dev.State()
	if s.Objects() != 15 {
		t.Fatalf("objects %+v (%d)", s, s.Objects())
	}
	x.expect(obj(mlxhw.OpDestroyTIR, tir), mlxhw.StatusResBusy) // in a flow entry
	steps := []mlxhw.Input{
		&mlxhw.FlowEntryIn{Op: mlxhw.OpDeleteFlowTableEntry, TableID: ft},
		&mlxhw.FlowGroupIn{Op: mlxhw.OpDestroyFlowGroup, TableID: ft, GroupID: fg},
		&mlxhw.FlowTableIn{Op: mlxhw.OpDestroyFlowTable, TableID: ft},
		obj(mlxhw.OpDestroyTIR, tir), obj(mlxhw.OpDestroyRQT, rqt), obj(mlxhw.OpDestroyRQ, rq.n),
		obj(mlxhw.OpDestroySQ, x.sq.n), obj(mlxhw.OpDestroyTIS, x.tis), obj(mlxhw.OpDestroyCQ, x.cq.n),
		obj(mlxhw.OpDestroyEQ, uint32(x.eq.n)), obj(mlxhw.OpDestroyMkey, x.lkey>>8),
		obj(mlxhw.OpDeallocTransportDomain, x.td), obj(mlxhw.OpDeallocPD, x.pd), obj(mlxhw.OpDeallocUAR, x.uar),
		obj(mlxhw.OpDeallocQCounter, uint32(qc)),
	}
	for _, in := range steps {
		x.must(in)
	}
	if s := x.dev.State(); s.Objects() != 0 {
		t.Fatalf("objects left %+v", s)
	}
	x.must(obj(mlxhw.OpTeardownHCA, mlxhw.TeardownGraceful))
	for x.dev.State().PagesGiven > 0 {
		if out := x.must(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: 5}).(*mlxhw.ManagePagesOut); len(out.PAS) == 0 {
			t.Fatal("TAKE returned nothing")
		}
	}
	x.must(obj(mlxhw.OpDisableHCA, 0))
	s = x.dev.State()
	if s.Phase != PhaseCmdqReady || s.Objects() != 0 || s.PagesGiven != 0 || s.DestroyedByReset != 0 {
		t.Fatalf("final state %+v", s)
	}
	x.noViolations()
}

// TestSurpriseRemoval: all-ones MMIO, writes dropped, DMA stopped, frames
// dropped with reason "removed".
func TestSurpriseRemoval(t *testing.T) {
	x := newTxEnv(t, nil)
	rq := x.createRQ(x.cq, 4, false)
	rq.fill(8)
	x.directTIR(rq.n)
	x.dev.SurpriseRemove()
	for _, off := range []uint64{mlxhw.RegFWRev, mlxhw.RegHealthFWVer, mlxhw.RegInitializing, mlxhw.RegHealthCounter, 0x4000, 0x8020} {
		if v := x.bar.Read32(off); !mlxhw.DeviceGone(v) {
			t.Fatalf("read %#x = %#x", off, v)
		}
	}
	if x.bar.Read64(0) != ^uint64(0) {
		t.Fatal("Read64")
	}
	if x.cfg.Read16(pci.VendorID) != 0xffff || x.cfg.Read32(pci.Command) != 0xffffffff {
		t.Fatal("config space still answers")
	}
	x.cfg.Write16(pci.Command, 0)
	r := x.exec(simple(mlxhw.OpNOP))
	if !r.owned {
		t.Fatal("command completed after removal")
	}
	deliver(x.dev, tcpFrame(t, mac(testMAC[:]...), 1, 2, []byte("gone"), true))
	if c := x.cq.poll(); len(c) != 0 {
		t.Fatal("DMA after removal")
	}
	if s := x.dev.Stats(); s.RxDrops[DropRemoved] != 1 {
		t.Fatalf("drops %+v", s.RxDrops)
	}
	x.noViolations()
}

// TestFLR: a function-level reset through the PCIe DevCtl bit clears
// every object and page and returns the device to RESET with its init
// delay; the driver can bring it up again.
func TestFLR(t *testing.T) {
	x := newTxEnv(t, nil)
	exp, _ := pci.FindCapability(x.cfg, pci.CapExpress)
	devcap := x.cfg.Read32(exp + 4)
	if devcap&(1<<28) == 0 {
		t.Fatal("DevCap FLR not set")
	}
	x.cfg.Write16(exp+8, 1<<15)
	s := x.dev.State()
	if s.Phase != PhaseReset || s.Objects() != 0 || s.PagesGiven != 0 || s.DestroyedByReset == 0 {
		t.Fatalf("after FLR %+v", s)
	}
	if x.cfg.Read16(exp+8)&(1<<15) != 0 || x.cfg.Read16(pci.Command)&pci.CommandMaster != 0 {
		t.Fatal("FLR bit or bus master left set")
	}
	if x.bar.Read32(mlxhw.RegInitializing)&mlxhw.InitializingBit == 0 {
		t.Fatal("not initializing after FLR")
	}
	x.clk.Advance(time.Millisecond)
	x.harness.token = 0
	x.bringUp()
	x.noViolations()
}

// TestViolationLog: each driver protocol violation is recorded.
func TestViolationLog(t *testing.T) {
	x := newTxEnv(t, nil)
	uar := mlxhw.UAROffset(x.uar)
	cases := []struct {
		name string
		do   func()
		kind ViolationKind
	}{
		{"write to a read-only register", func() { x.bar.Write32(mlxhw.RegFWRev, 1) }, VioBadRegisterWrite},
		{"unknown UAR offset", func() { x.bar.Write32(uar+0x100, 1) }, VioUAR},
		{"unallocated UAR", func() { x.bar.Write32(mlxhw.UAROffset(200)+0x40, 1) }, VioUAR},
		{"EQ doorbell for no EQ", func() { x.bar.Write32(uar+0x40, mlxhw.EQDoorbell(7, 0)) }, VioDoorbell},
		{"CQ arm for no CQ", func() { x.bar.Write64(uar+0x20, mlxhw.CQArm{CQN: 0x4ff}.Value()) }, VioDoorbell},
		{"SQ doorbell for no SQ", func() { x.bar.Write64(uar+0x800, uint64(0x7ff00)) }, VioDoorbell},
		{"SQ doorbell on the wrong UAR", func() {
			u2 := x.id(simple(mlxhw.OpAllocUAR))
			x.bar.Write64(mlxhw.UAROffset(u2)+0x800, uint64(x.sq.n<<8))
		}, VioUAR},
		{"SQ doorbell before the DBR", func() {
			i := x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpNOP}, nil, false)
			storeBE32(x.sq.dbr[4:], uint32(i)) // producer not advanced
			x.sq.ring(i)
			storeBE32(x.sq.dbr[4:], uint32(x.sq.pc))
		}, VioDoorbell},
		{"SQ doorbell for a WQE past the DBR", func() {
			i := x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpNOP}, nil, true)
			x.sq.ring(i + 5) // five WQEs ahead of anything published
		}, VioDoorbell},
		{"DMA outside guest memory", func() {
			x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend}, []mlxhw.DataSeg{{ByteCount: 64, LKey: x.lkey, Addr: 1 << 44}}, true)
		}, VioDMA},
		{"DMA with bus mastering off", func() {
			pci.SetCommand(x.cfg, 0, pci.CommandMaster)
			x.bar.Write32(mlxhw.RegCmdDoorbell, 1)
			pci.SetCommand(x.cfg, pci.CommandMaster, 0)
		}, VioDMA},
	}
	for _, tc := range cases {
		x.dev.ClearViolations()
		tc.do()
		v := x.dev.Violations()
		if len(v) != 1 || v[0].Kind != tc.kind {
			t.Errorf("%s: %v", tc.name, v)
		}
	}
	// A second 32-bit CQ arm half without the first.
	x.dev.ClearViolations()
	x.bar.Write32(uar+0x24, x.cq.n)
	if v := x.dev.Violations(); len(v) != 1 || v[0].Kind != VioUAR {
		t.Errorf("lone second half: %v", v)
	}
	// Split 2x32 CQ arm is latched and works (on a recovered SQ: the DMA
	// case above failed its WQE).
	x.sq.modify(mlxhw.QueueERR, mlxhw.QueueRST)
	x.sq.modify(mlxhw.QueueRST, mlxhw.QueueRDY)
	x.dev.ClearViolations()
	x.cq.poll()
	a := mlxhw.CQArm{CI: x.cq.cc, CQN: x.cq.n}
	x.bar.Write32(uar+0x20, a.Dword0())
	x.bar.Write32(uar+0x24, a.CQN)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("x"), true)
	x.send(frame, 14, mlxhw.SendWQE{})
	if evs := x.eq.poll(true); len(evs) != 1 {
		t.Errorf("split arm: %d events", len(evs))
	}
	// A doorbell delivered late, for a WQE a later doorbell already ran
	// (posted writes across a process or VM boundary): counted, no
	// violation.
	late := x.dev.Stats().LateDoorbells
	first := x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpNOP}, nil, true)
	x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpNOP}, nil, true)
	x.sq.ring(first)
	if v := x.dev.Violations(); len(v) != 0 || x.dev.Stats().LateDoorbells != late+1 {
		t.Errorf("late doorbell: violations %v, late %d (was %d)", v, x.dev.Stats().LateDoorbells, late)
	}
	if s := x.dev.Stats(); s.Violations != len(x.dev.Violations()) {
		t.Error("violation count")
	}
	x.noViolations()
}

// TestCommandLatency: with CommandLatency the entry completes only after
// that much device time.
func TestCommandLatency(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CommandLatency = 5 * time.Millisecond })
	h.pciUp()
	h.cmdqUp()
	r := h.exec(simple(mlxhw.OpQueryISSI))
	if !r.owned {
		t.Fatal("completed before the latency")
	}
	h.clk.WaitForTimers(1)
	h.clk.Advance(5 * time.Millisecond)
	deadline := time.Now().Add(2 * time.Second)
	for loadBE32(h.cmdq.Bytes[0x3c:])&1 != 0 {
		if time.Now().After(deadline) {
			t.Fatal("never completed")
		}
		time.Sleep(time.Millisecond)
	}
	if loadBE32(h.cmdq.Bytes[0x3c:])&0xff != 0 || h.dev.Stats().Commands != 1 {
		t.Fatalf("status_own %#x", h.cmdq.Bytes[0x3f])
	}
}
