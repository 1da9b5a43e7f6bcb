package mlxdev

import (
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// TestDeliveryStatuses covers every delivery check of §7.4 steps 1–4 and
// strict mode's reserved-field check (§7.1 P1).
func TestDeliveryStatuses(t *testing.T) {
	h := newHarness(t, nil)
	h.bringUp()
	nop := simple(mlxhw.OpNOP).AppendTo(nil)
	caps := (&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(0, 1)})
	give := (&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: make([]uint64, 100)}).AppendTo(nil)
	cases := []struct {
		name  string
		msg   []byte
		out   int
		tweak func(e *mlxhw.CmdEntry)
		want  mlxhw.DeliveryStatus
	}{
		{"bad type", nop, 16, func(e *mlxhw.CmdEntry) { e.Type = 3 }, mlxhw.DeliveryBadCmdType},
		{"short inlen", nop, 16, func(e *mlxhw.CmdEntry) { e.InLen = 8 }, mlxhw.DeliveryInLen},
		{"short outlen", nop, 16, func(e *mlxhw.CmdEntry) { e.OutLen = 4 }, mlxhw.DeliveryOutLen},
		{"input pointer misaligned", give, 16, func(e *mlxhw.CmdEntry) { e.InPtr += 0x200 }, mlxhw.DeliveryInPtrAlign},
		{"output pointer misaligned", caps.AppendTo(nil), caps.OutLen(), func(e *mlxhw.CmdEntry) { e.OutPtr += 0x100 }, mlxhw.DeliveryOutPtrAlign},
		{"token", give, 16, func(e *mlxhw.CmdEntry) { e.Token ^= 0x80 }, mlxhw.DeliveryToken},
	}
	for _, tc := range cases {
		r := h.post(0, tc.msg, tc.out, tc.tweak)
		if r.owned || r.delivery != tc.want {
			t.Errorf("%s: owned %v delivery %v, want %v", tc.name, r.owned, r.delivery, tc.want)
		}
	}
	// Bad block number: rewrite the second input block's number.
	r := h.post(0, give, 16, func(e *mlxhw.CmdEntry) {
		blk := h.mbox.Bytes[1024 : 1024+mlxhw.MailboxSize]
		blk[0x238+3] = 7
	})
	if r.delivery != mlxhw.DeliveryBadBlockNum {
		t.Errorf("block number: %v", r.delivery)
	}
	// Strict mode: a nonzero reserved bit (NOP's dword 3).
	bad := append([]byte{}, nop...)
	bad[13] = 1
	if r := h.post(0, bad, 16, nil); r.delivery != mlxhw.DeliveryReservedNotZ {
		t.Errorf("reserved: %v", r.delivery)
	}
	if v := h.dev.Violations(); len(v) != 1 || v[0].Kind != VioReserved {
		t.Errorf("violations %v", v)
	}
	h.dev.ClearViolations()
	// A doorbell on an entry software still owns is ignored.
	before := h.dev.Stats().SpuriousDoorbells
	h.cmdq.Bytes[0x3f] = 0
	h.bar.Write32(mlxhw.RegCmdDoorbell, 1)
	if s := h.dev.Stats(); s.SpuriousDoorbells != before+1 {
		t.Errorf("spurious %d", s.SpuriousDoorbells)
	}
	// Fault injection: bad token next, timeout, failure.
	h.dev.Faults().BadTokenNext()
	if r := h.exec(simple(mlxhw.OpNOP)); r.delivery != mlxhw.DeliveryToken {
		t.Errorf("BadTokenNext: %v", r.delivery)
	}
	h.must(simple(mlxhw.OpNOP))
	h.dev.Faults().CommandTimeout(mlxhw.OpAllocPD, true)
	if r := h.exec(simple(mlxhw.OpAllocPD)); !r.owned {
		t.Error("timed-out command completed")
	}
	if h.dev.Faults().TimedOut() != 1 || h.dev.State().PDs != 0 {
		t.Error("timeout not counted or executed")
	}
	h.dev.Faults().CommandTimeout(mlxhw.OpAllocPD, false)
	h.dev.Faults().CommandFailure(mlxhw.OpAllocPD, mlxhw.StatusNoRes, 0xdead)
	if r := h.exec(simple(mlxhw.OpAllocPD)); r.status() != mlxhw.StatusNoRes || r.syndrome() != 0xdead {
		t.Errorf("failure fault: %v %#x", r.status(), r.syndrome())
	}
	h.dev.Faults().Clear()
	h.id(simple(mlxhw.OpAllocPD))
	if s := h.dev.Stats(); s.DeliveryErrors != 9 {
		t.Errorf("delivery errors %d", s.DeliveryErrors)
	}
	h.noViolations()
}

// TestCommandStatuses covers the command statuses of §7.5 and §7.7.
func TestCommandStatuses(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	eq := e.createEQ(7, mlxhw.EventComp.Bit(), 0)
	cq := e.createCQ(6, eq.n)
	sq := e.createSQ(cq, 6)
	rq := e.createRQ(cq, 6, false)
	// Object numbers come from disjoint bases (§7.7).
	if e.uar != 8 || e.pd != 0x10 || e.td != 0x20 || e.lkey>>8 != 0x100 || eq.n != 1 || cq.n != 0x400 ||
		sq.n != 0x800 || rq.n != 0xc00 || e.tis != 0x1000 {
		t.Fatalf("numbers uar %d pd %#x td %#x mkey %#x eq %d cq %#x sq %#x rq %#x tis %#x",
			e.uar, e.pd, e.td, e.lkey>>8, eq.n, cq.n, sq.n, rq.n, e.tis)
	}
	busy := mlxhw.StatusResBusy
	e.expect(obj(mlxhw.OpDestroyCQ, cq.n), busy)         // used by the SQ and RQ
	e.expect(obj(mlxhw.OpDestroyEQ, uint32(eq.n)), busy) // used by the CQ
	e.expect(obj(mlxhw.OpDestroyTIS, e.tis), busy)       // used by the SQ
	e.expect(obj(mlxhw.OpDeallocPD, e.pd), busy)         // used by the mkey and queues
	e.expect(obj(mlxhw.OpDeallocTransportDomain, e.td), busy)
	e.expect(obj(mlxhw.OpDeallocUAR, e.uar), busy)
	tir := e.directTIR(rq.n)
	e.expect(obj(mlxhw.OpDestroyRQ, rq.n), busy) // used by the TIR
	// Wrong kind of number: IX_ERR; right kind, not allocated: BAD_RES.
	e.expect(obj(mlxhw.OpDestroySQ, rq.n), mlxhw.StatusIxErr)
	e.expect(obj(mlxhw.OpDestroySQ, sq.n+1), mlxhw.StatusBadRes)
	e.expect(obj(mlxhw.OpDestroyTIR, tir+5), mlxhw.StatusBadRes)
	e.expect(obj(mlxhw.OpDeallocUAR, 3), mlxhw.StatusIxErr)
	// MODIFY_SQ with a wrong current state: BAD_RES_STATE; a transition
	// that does not exist: BAD_PARAM.
	e.expect(&mlxhw.ModifySQIn{CurState: mlxhw.QueueRST, SQN: sq.n, Ctx: mlxhw.SQContext{State: mlxhw.QueueRDY}}, mlxhw.StatusBadResState)
	e.expect(&mlxhw.ModifySQIn{CurState: mlxhw.QueueRDY, SQN: sq.n, Ctx: mlxhw.SQContext{State: mlxhw.QueueRDY}}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.ModifyRQIn{CurState: mlxhw.QueueERR, RQN: rq.n, Ctx: mlxhw.RQContext{State: mlxhw.QueueRST}}, mlxhw.StatusBadResState)
	// CREATE_* parameter checks.
	dbr, dbrA := e.dbr()
	_ = dbr
	pas := pasOf(e.alloc(1))
	cqIn := func(m func(*mlxhw.CQContext)) *mlxhw.CreateCQIn {
		c := mlxhw.CQContext{LogSize: 6, UARPage: e.uar, EQN: eq.n, DBRAddr: dbrA}
		m(&c)
		return &mlxhw.CreateCQIn{Ctx: c, PAS: pas}
	}
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.CQESize = 1 }), mlxhw.StatusBadParam)
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.CompEn = true }), mlxhw.StatusBadParam)
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.DBRAddr += 4 }), mlxhw.StatusBadParam)
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.EQN = 5 }), mlxhw.StatusBadRes)
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.EQN = 9 }), mlxhw.StatusIxErr)
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.LogSize = 7 }), mlxhw.StatusBadParam) // 8 KiB in one page
	e.expect(cqIn(func(c *mlxhw.CQContext) { c.UARPage = 9 }), mlxhw.StatusBadRes)
	e.expect(&mlxhw.CreateEQIn{Ctx: mlxhw.EQContext{LogSize: 0, UARPage: e.uar}, PAS: pas}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.CreateEQIn{Ctx: mlxhw.EQContext{LogSize: 6, UARPage: e.uar, Intr: 16}, PAS: pas}, mlxhw.StatusBadParam)
	sqIn := func(m func(*mlxhw.SQContext)) *mlxhw.CreateSQIn {
		c := mlxhw.SQContext{CQN: cq.n, TISListSize: 1, TISNum0: e.tis,
			WQ: mlxhw.WQ{Type: mlxhw.WQCyclic, PD: e.pd, UARPage: e.uar, DBRAddr: dbrA, LogStride: 6, LogSize: 6}}
		m(&c)
		return &mlxhw.CreateSQIn{Ctx: c, PAS: pas}
	}
	e.expect(sqIn(func(c *mlxhw.SQContext) { c.State = mlxhw.QueueRDY }), mlxhw.StatusBadParam)
	e.expect(sqIn(func(c *mlxhw.SQContext) { c.WQ.LogStride = 5 }), mlxhw.StatusBadParam)
	e.expect(sqIn(func(c *mlxhw.SQContext) { c.WQ.Type = mlxhw.WQLinkedList }), mlxhw.StatusBadParam)
	e.expect(sqIn(func(c *mlxhw.SQContext) { c.TISNum0 = 0x1003 }), mlxhw.StatusBadRes)
	e.expect(sqIn(func(c *mlxhw.SQContext) { c.CQN = rq.n }), mlxhw.StatusIxErr)
	e.expect(sqIn(func(c *mlxhw.SQContext) { c.WQ.PD = e.td }), mlxhw.StatusIxErr)
	e.expect(&mlxhw.CreateRQIn{Ctx: mlxhw.RQContext{CQN: cq.n, WQ: mlxhw.WQ{Type: mlxhw.WQLinkedList, PD: e.pd,
		DBRAddr: dbrA, LogStride: 5, LogSize: 4}}, PAS: pas}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.CreateMkeyIn{Ctx: mlxhw.MkeyContext{AccessMode: 1, Length64: true, PD: e.pd}}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.CreateMkeyIn{Ctx: mlxhw.MkeyContext{PD: e.pd}}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: mlxhw.TIRContext{DispType: mlxhw.TIRIndirect, IndirectTable: 0x1800, TransportDomain: e.td}}, mlxhw.StatusBadRes)
	e.expect(&mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: 1, RQs: []uint32{rq.n, rq.n}}}, mlxhw.StatusBadParam)
	// Limits: 4 TISes (log_max_tis 2).
	for range 3 {
		e.id(&mlxhw.CreateTISIn{Ctx: mlxhw.TISContext{TransportDomain: e.td}})
	}
	e.expect(&mlxhw.CreateTISIn{Ctx: mlxhw.TISContext{TransportDomain: e.td}}, mlxhw.StatusLimErr)
	// Registers and vport queries.
	e.expect(&mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegRead, RegisterID: 0x5001, Data: make([]byte, 16)}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegRead, RegisterID: mlxhw.RegIDPTYS, Data: make([]byte, 64)}, mlxhw.StatusBadParam) // proto_mask without ETH
	e.expect(&mlxhw.QueryVportStateIn{OtherVport: true}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectRoCE}, mlxhw.StatusBadParam)
	e.expect(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: mlxhw.TIRContext{DispType: 2, TransportDomain: e.td}}, mlxhw.StatusBadParam)
	e.noViolations()
}
