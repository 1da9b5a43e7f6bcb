package mlxdev

import (
	"bytes"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// TestCmdEQE: with a command EQ (mask bit 0x0a), every completion posts a
// CMD EQE whose vector is the slot's bit, and interrupts while armed.
func TestCmdEQE(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	cmdEQ := e.createEQ(5, mlxhw.EventCmd.Bit(), 3)
	e.post(4, simple(mlxhw.OpNOP).AppendTo(nil), 16, nil)
	evs := cmdEQ.poll(true)
	if len(evs) != 2 || evs[0].Type != mlxhw.EventCmd || evs[0].CmdVector() != 1 || evs[1].CmdVector() != 1<<4 {
		t.Fatalf("CMD EQEs %+v", evs)
	}
	// The first EQE reports the CREATE_EQ that made the EQ (it exists by
	// the time the command completes), so arming it fired at once.
	if n := e.irqs[3].Load(); n != 1 {
		t.Fatalf("%d interrupts", n)
	}
	e.must(simple(mlxhw.OpNOP))
	if n := e.irqs[3].Load(); n != 2 {
		t.Fatalf("%d interrupts after re-arm", n)
	}
	e.must(simple(mlxhw.OpNOP)) // not re-armed: EQE but no interrupt
	if n := e.irqs[3].Load(); n != 2 {
		t.Fatalf("%d interrupts without arming", n)
	}
	if evs := cmdEQ.poll(true); len(evs) != 2 {
		t.Fatalf("%d EQEs", len(evs))
	}
	e.noViolations()
}

// TestRingWrap runs three laps of every ring: SQ, CQ, EQ and RQ, checking
// owner parity on each (§7.9, §3.4).
func TestRingWrap(t *testing.T) {
	x := newTxEnv(t, nil)
	// Small rings: EQ 128 entries (log 7 is the minimum with spares), CQ 16, SQ 16 WQEBBs.
	eq := x.createEQ(4, mlxhw.EventComp.Bit(), 4)
	cq := x.createCQ(4, eq.n)
	sq := x.createSQ(cq, 4)
	rcq := x.createCQ(4, eq.n)
	rq := x.createRQ(rcq, 3, false)
	x.directTIR(rq.n)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("wrap"), true)
	copy(x.data, frame[14:])
	rx := tcpFrame(t, mac(testMAC[:]...), 3, 4, []byte("rx"), true)
	for i := range 3 * 16 {
		cq.arm(false)
		w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]}
		if i%5 == 0 { // a two-WQEBB WQE now and then forces edge NOPs
			w.Inline = frame[:54]
		}
		sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - len(w.Inline)), LKey: x.lkey, Addr: x.base + uint64(len(w.Inline)-14)}}, true)
		c := cq.poll()
		if len(c) == 0 || c[len(c)-1].Opcode != mlxhw.CQEReq {
			t.Fatalf("send %d: CQEs %+v", i, c)
		}
		rq.fill(1)
		rcq.arm(false)
		deliver(x.dev, rx)
		rc := rcq.poll()
		if len(rc) != 1 || !bytes.Equal(rq.frame(&rc[0]), rx) {
			t.Fatalf("receive %d: %+v", i, rc)
		}
		evs := eq.poll(true)
		if len(evs) != 2 {
			t.Fatalf("lap %d: %d EQEs", i/16, len(evs))
		}
	}
	if got := len(x.wire.take()); got != 48 {
		t.Fatalf("%d frames sent", got)
	}
	if cq.cc < 48 || rcq.cc != 48 || eq.ci != 96 || uint32(rq.pc) != 48 {
		t.Fatalf("counters cq %d rcq %d eq %d rq %d", cq.cc, rcq.cc, eq.ci, rq.pc)
	}
	x.noViolations()
}

// TestCQArm: no completion event unless armed; one per arming; arming
// behind existing CQEs fires at once; solicited arming waits for SE.
func TestCQArm(t *testing.T) {
	x := newTxEnv(t, nil)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("arm"), true)
	send := func(se bool) {
		w := mlxhw.SendWQE{}
		if se {
			w.FmCeSe = mlxhw.CECQEAlways | mlxhw.SESolicited
		}
		x.send(frame, 14, w)
	}
	send(false)
	if evs := x.eq.poll(true); len(evs) != 0 {
		t.Fatalf("unarmed CQ raised %d events", len(evs))
	}
	x.cq.poll()
	x.cq.arm(false)
	send(false)
	send(false)
	if evs := x.eq.poll(true); len(evs) != 1 {
		t.Fatalf("armed CQ raised %d events for 2 CQEs", len(evs))
	}
	// Arm at a CI behind existing CQEs: fires at once.
	x.cq.arm(false)
	if evs := x.eq.poll(true); len(evs) != 1 || evs[0].CompCQN() != x.cq.n {
		t.Fatalf("arm behind CQEs: %+v", evs)
	}
	x.cq.poll()
	x.cq.arm(true)
	send(false)
	if evs := x.eq.poll(true); len(evs) != 0 {
		t.Fatal("solicited arm fired on an unsolicited CQE")
	}
	send(true)
	if evs := x.eq.poll(true); len(evs) != 1 {
		t.Fatal("solicited arm did not fire on SE")
	}
	// CE = 0: no CQE for a successful WQE.
	x.cq.poll()
	x.send(frame, 14, mlxhw.SendWQE{FmCeSe: mlxhw.CECQEOnError | 0x80}) // fence bits only
	if c := x.cq.poll(); len(c) != 0 {
		t.Fatalf("CE=0 produced %d CQEs", len(c))
	}
	x.noViolations()
}

// TestModeration: cq_max_count and cq_period delay the completion event.
func TestModeration(t *testing.T) {
	x := newTxEnv(t, nil)
	x.must(&mlxhw.ModifyCQIn{CQN: x.cq.n, FieldSelect: mlxhw.ModifyCQPeriod | mlxhw.ModifyCQMaxCount,
		Ctx: mlxhw.CQContext{Period: 50, MaxCount: 3}})
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("mod"), true)
	x.cq.arm(false)
	x.send(frame, 14, mlxhw.SendWQE{})
	x.send(frame, 14, mlxhw.SendWQE{})
	if evs := x.eq.poll(true); len(evs) != 0 {
		t.Fatal("event before max_count")
	}
	x.send(frame, 14, mlxhw.SendWQE{})
	if evs := x.eq.poll(true); len(evs) != 1 {
		t.Fatal("no event at max_count")
	}
	x.cq.poll()
	x.cq.arm(false)
	x.send(frame, 14, mlxhw.SendWQE{})
	x.clk.WaitForTimers(1)
	x.clk.Advance(40 * time.Microsecond)
	if evs := x.eq.poll(true); len(evs) != 0 {
		t.Fatal("event before the period")
	}
	x.clk.Advance(10 * time.Microsecond)
	deadline := time.Now().Add(2 * time.Second)
	for len(x.eq.poll(true)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event after the period")
		}
		time.Sleep(time.Millisecond)
	}
	x.noViolations()
}

// TestEQOverrun: a driver that never updates the EQ CI overruns it: the
// model sets health.synd 0xc, stops the EQ and records a violation.
func TestEQOverrun(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	eq := e.createEQ(1, mlxhw.EventCmd.Bit(), 0) // 2 entries
	for range 3 {
		e.must(simple(mlxhw.OpNOP))
	}
	if _, s, _ := mlxhw.HealthSynd(e.bar.Read32(mlxhw.RegHealthSynd)); s != mlxhw.HealthSyndEQOverrun {
		t.Fatalf("health synd %#x", s)
	}
	v := e.dev.Violations()
	if len(v) != 1 || v[0].Kind != VioEQOverrun {
		t.Fatalf("violations %v", v)
	}
	if evs := eq.poll(false); len(evs) != 2 {
		t.Fatalf("%d EQEs", len(evs))
	}
	e.must(simple(mlxhw.OpNOP))
	if evs := eq.poll(false); len(evs) != 0 {
		t.Fatal("stopped EQ still written")
	}
	if s := e.dev.State(); s.HealthSynd != mlxhw.HealthSyndEQOverrun {
		t.Fatalf("state %+v", s)
	}
}

// TestCQOverrun: CQEs beyond set_ci + size post CQ_ERROR and move the
// CQ's queues to ERR.
func TestCQOverrun(t *testing.T) {
	x := newTxEnv(t, nil)
	cq := x.createCQ(2, x.eq.n) // 4 entries
	sq := x.createSQ(cq, 6)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("ovr"), true)
	copy(x.data, frame[14:])
	for range 5 {
		w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]}
		sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - 14), LKey: x.lkey, Addr: x.base}}, true)
	}
	evs := x.eq.poll(true)
	if len(evs) != 1 || evs[0].Type != mlxhw.EventCQError {
		t.Fatalf("EQEs %+v", evs)
	}
	if n, s := evs[0].CQError(); n != cq.n || s != cqOverrunSynd {
		t.Fatalf("CQ_ERROR cqn %#x synd %d", n, s)
	}
	if c := cq.poll(); len(c) != 4 {
		t.Fatalf("%d CQEs", len(c))
	}
	if st := sq.modify(mlxhw.QueueRDY, mlxhw.QueueERR); st != mlxhw.StatusBadResState {
		t.Fatalf("SQ not in ERR: %v", st)
	}
	if v := x.dev.Violations(); len(v) != 1 || v[0].Kind != VioCQOverrun {
		t.Fatalf("violations %v", v)
	}
}

// TestErrorCQERecovery: an injected error CQE puts the SQ in ERR and
// flushes what follows; MODIFY ERR→RST→RDY recovers it (§7.15 step 14).
func TestErrorCQERecovery(t *testing.T) {
	x := newTxEnv(t, nil)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("err"), true)
	copy(x.data, frame[14:])
	if !x.dev.Faults().ErrorCQEOnSQ(x.sq.n, 2) {
		t.Fatal("fault not set")
	}
	// Three WQEs published, one doorbell: #2 fails, #3 is flushed.
	var idx []uint16
	for i := range 3 {
		w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]}
		idx = append(idx, x.sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - 14), LKey: x.lkey, Addr: x.base}}, i == 2))
	}
	c := x.cq.poll()
	if len(c) != 3 || c[0].Opcode != mlxhw.CQEReq ||
		c[1].Opcode != mlxhw.CQEReqErr || c[1].Syndrome != mlxhw.SyndLocalQPOp || c[1].WQECounter != idx[1] ||
		c[1].ErrWQEOpcode() != mlxhw.WQEOpSend || c[1].QPN() != x.sq.n ||
		c[2].Opcode != mlxhw.CQEReqErr || c[2].Syndrome != mlxhw.SyndWRFlush || c[2].WQECounter != idx[2] {
		t.Fatalf("CQEs %+v", c)
	}
	if n := len(x.wire.take()); n != 1 {
		t.Fatalf("%d frames sent", n)
	}
	// A doorbell in ERR is ignored.
	w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]}
	x.sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - 14), LKey: x.lkey, Addr: x.base}}, true)
	if c := x.cq.poll(); len(c) != 0 {
		t.Fatalf("ERR SQ completed %d", len(c))
	}
	if st := x.sq.modify(mlxhw.QueueERR, mlxhw.QueueRST); st != mlxhw.StatusOK {
		t.Fatal(st)
	}
	if st := x.sq.modify(mlxhw.QueueRST, mlxhw.QueueRDY); st != mlxhw.StatusOK {
		t.Fatal(st)
	}
	x.send(frame, 14, mlxhw.SendWQE{})
	if c := x.cq.poll(); len(c) != 1 || c[0].Opcode != mlxhw.CQEReq || c[0].WQECounter != 0 {
		t.Fatalf("after recovery %+v", c)
	}
	// Bad lkey: LOCAL_PROT. Bad wqe_index: LOCAL_QP_OP.
	x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]},
		[]mlxhw.DataSeg{{ByteCount: 10, LKey: x.lkey ^ 1, Addr: x.base}}, true)
	if c := x.cq.poll(); len(c) != 1 || c[0].Syndrome != mlxhw.SyndLocalProt {
		t.Fatalf("bad lkey %+v", c)
	}
	x.sq.modify(mlxhw.QueueERR, mlxhw.QueueRST)
	x.sq.modify(mlxhw.QueueRST, mlxhw.QueueRDY)
	i := x.sq.post(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame}, nil, false)
	x.sq.buf.Bytes[int(i)*64+2]++ // corrupt wqe_index
	x.sq.ring(i)
	if c := x.cq.poll(); len(c) != 1 || c[0].Syndrome != mlxhw.SyndLocalQPOp {
		t.Fatalf("bad index %+v", c)
	}
	// RX error CQE fault.
	r := x.createRQ(x.cq, 4, false)
	r.fill(4)
	x.directTIR(r.n)
	x.dev.Faults().ErrorCQEOnRQ(r.n, 1)
	rx := tcpFrame(t, mac(testMAC[:]...), 1, 2, []byte("rx"), true)
	deliver(x.dev, rx, rx)
	if c := x.cq.poll(); len(c) != 2 || c[0].Opcode != mlxhw.CQERespErr || c[1].Opcode != mlxhw.CQERespSend {
		t.Fatalf("RX fault %+v", c)
	}
	x.noViolations()
}
