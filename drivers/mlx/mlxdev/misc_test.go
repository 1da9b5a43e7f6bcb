package mlxdev

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/pci"
)

// TestInterruptReentry: a driver whose interrupt handler polls the EQ and
// re-arms it through the BAR (as the guest driver does) does not deadlock.
func TestInterruptReentry(t *testing.T) {
	var x *txEnv
	var handled atomic.Int64
	var mu sync.Mutex
	x = newTxEnv(t, func(c *Config) {
		c.Interrupt = func(v int) {
			if v != 1 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range x.eq.poll(true) { // BAR write from the handler
				if ev.Type == mlxhw.EventComp {
					x.cq.poll()
					x.cq.arm(false) // and another
					handled.Add(1)
				}
			}
		}
	})
	x.cq.arm(false)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("irq"), true)
	for range 5 {
		mu.Lock()
		copy(x.data, frame[14:])
		mu.Unlock()
		w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]}
		x.sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - 14), LKey: x.lkey, Addr: x.base}}, true)
	}
	if n := handled.Load(); n != 5 {
		t.Fatalf("%d completions handled from the interrupt", n)
	}
	x.noViolations()
}

// TestMSIXMasking: a masked vector stays pending in the PBA and is sent
// when unmasked; with MSI-X disabled nothing is sent.
func TestMSIXMasking(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	off, _ := pci.FindCapability(e.cfg, pci.CapMSIX)
	m, _ := pci.ParseMSIX(e.cfg, off)
	eq := e.createEQ(5, mlxhw.EventCmd.Bit(), 6)
	eq.poll(true)
	_ = m.MaskEntry(e.bar, 6, true)
	e.must(simple(mlxhw.OpNOP))
	if n := e.irqs[6].Load(); n != 1 { // the arm at creation fired once
		t.Fatalf("%d interrupts while masked", n)
	}
	if pba := e.bar.Read32(mlxhw.MSIXPBAOff); pba != 1<<6 {
		t.Fatalf("PBA %#x", pba)
	}
	_ = m.MaskEntry(e.bar, 6, false)
	if n := e.irqs[6].Load(); n != 2 || e.bar.Read32(mlxhw.MSIXPBAOff) != 0 {
		t.Fatalf("pending vector not sent on unmask: %d", n)
	}
	if ent, _ := m.ReadEntry(e.bar, 6); ent.Address != 0xfee00000 || ent.Data != 6 || ent.Masked {
		t.Fatalf("entry %+v", ent)
	}
	// 64-bit accesses to the table are little-endian (PCI).
	e.bar.Write64(mlxhw.MSIXTableOff+7*16, 0x00000001_fee01000)
	if lo, hi := e.bar.Read32(mlxhw.MSIXTableOff+7*16), e.bar.Read32(mlxhw.MSIXTableOff+7*16+4); lo != 0xfee01000 || hi != 1 {
		t.Fatalf("64-bit table write: %#x %#x", lo, hi)
	}
	if v := e.bar.Read64(mlxhw.MSIXTableOff + 7*16); v != 0x00000001_fee01000 {
		t.Fatalf("64-bit table read %#x", v)
	}
	// Function mask, then MSI-X off.
	eq.poll(true)
	m.SetMaskAll(e.cfg, true)
	e.must(simple(mlxhw.OpNOP))
	m.SetMaskAll(e.cfg, false)
	if n := e.irqs[6].Load(); n != 3 {
		t.Fatalf("function mask: %d", n)
	}
	eq.poll(true)
	m.SetEnabled(e.cfg, false)
	e.must(simple(mlxhw.OpNOP))
	if n := e.irqs[6].Load(); n != 3 || e.dev.Stats().InterruptsSuppressed != 1 {
		t.Fatalf("MSI-X off: %d", n)
	}
	e.noViolations()
}

// TestConcurrentTxRx drives transmit from one goroutine and receive from
// another (the race detector checks the model's locking and the DMA
// ordering contract).
func TestConcurrentTxRx(t *testing.T) {
	x := newTxEnv(t, nil)
	rcq := x.createCQ(10, x.eq.n)
	rq := x.createRQ(rcq, 10, false)
	rq.fill(1 << 10)
	x.directTIR(rq.n)
	const n = 300
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("tx"), true)
	copy(x.data, frame[14:])
	rx := tcpFrame(t, mac(testMAC[:]...), 3, 4, []byte("rx"), true)
	var wg sync.WaitGroup
	wg.Add(1)
	var rxGot int
	go func() {
		defer wg.Done()
		for range n {
			deliver(x.dev, rx)
			rxGot += len(rcq.poll())
		}
	}()
	txGot := 0
	for range n {
		w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, Inline: frame[:14]}
		x.sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - 14), LKey: x.lkey, Addr: x.base}}, true)
		txGot += len(x.cq.poll())
	}
	wg.Wait()
	if txGot != n || rxGot != n || len(x.wire.take()) != n {
		t.Fatalf("tx %d rx %d", txGot, rxGot)
	}
	x.noViolations()
}

// TestLinkedListRQ: with Config.LinkedListRQ, a wq_type 0 RQ follows
// next_wqe_index.
func TestLinkedListRQ(t *testing.T) {
	e := newEnv(newHarness(t, func(c *Config) { c.LinkedListRQ = true }))
	eq := e.createEQ(7, mlxhw.EventComp.Bit(), 1)
	cq := e.createCQ(6, eq.n)
	buf := e.alloc(1)
	data := e.alloc(4)
	dbr, dbrA := e.dbr()
	rqn := e.id(&mlxhw.CreateRQIn{Ctx: mlxhw.RQContext{CQN: cq.n, WQ: mlxhw.WQ{Type: mlxhw.WQLinkedList, PD: e.pd,
		DBRAddr: dbrA, LogStride: 5, LogSize: 3}}, PAS: pasOf(buf)})
	e.must(&mlxhw.ModifyRQIn{CurState: mlxhw.QueueRST, RQN: rqn, Ctx: mlxhw.RQContext{State: mlxhw.QueueRDY}})
	e.directTIR(rqn)
	// Chain 0 -> 5 -> 2 with buffers at distinct offsets.
	order := []uint16{0, 5, 2}
	for i, idx := range order {
		next := uint16(0)
		if i+1 < len(order) {
			next = order[i+1]
		}
		seg := mlxhw.DataSeg{ByteCount: 2048, LKey: e.lkey, Addr: data.GPA(int(idx) * 2048)}
		_ = mlxhw.PutRecvWQE(buf.Bytes[int(idx)*32:int(idx)*32+32], true, next, []mlxhw.DataSeg{seg})
	}
	storeBE32(dbr, 3)
	for i := range 3 {
		deliver(e.dev, tcpFrame(e.t, mac(testMAC[:]...), uint16(i), 1, []byte{byte(i)}, true))
	}
	c := cq.poll()
	if len(c) != 3 {
		t.Fatalf("%d CQEs", len(c))
	}
	for i, idx := range order {
		if c[i].WQECounter != idx || !bytes.Equal(data.Bytes[int(idx)*2048:int(idx)*2048+int(c[i].ByteCnt)],
			tcpFrame(e.t, mac(testMAC[:]...), uint16(i), 1, []byte{byte(i)}, true)) {
			t.Fatalf("CQE %d: counter %d", i, c[i].WQECounter)
		}
	}
	// Without the flag a linked-list RQ is refused.
	e2 := newEnv(newHarness(t, nil))
	cq2 := e2.createCQ(6, e2.createEQ(7, 1, 0).n)
	_, a2 := e2.dbr()
	e2.expect(&mlxhw.CreateRQIn{Ctx: mlxhw.RQContext{CQN: cq2.n, WQ: mlxhw.WQ{Type: mlxhw.WQLinkedList, PD: e2.pd,
		DBRAddr: a2, LogStride: 5, LogSize: 3}}, PAS: pasOf(e2.alloc(1))}, mlxhw.StatusBadParam)
	e.noViolations()
}

// TestRequireL2Inline: the knob advertises wqe_inline_mode 0 and fails a
// SEND without inline L2 headers with LOCAL_QP_OP.
func TestRequireL2Inline(t *testing.T) {
	x := newTxEnv(t, func(c *Config) { c.RequireL2Inline = true })
	o := x.must(&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapEthernetOffloads, 1)}).(*mlxhw.QueryHCACapOut)
	var ec mlxhw.EthCaps
	_ = ec.Parse(o.Cap[:])
	if ec.WQEInlineMode != mlxhw.InlineModeL2 {
		t.Fatalf("inline mode %d", ec.WQEInlineMode)
	}
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("l2"), true)
	x.send(frame, 18, mlxhw.SendWQE{})
	x.send(frame, 0, mlxhw.SendWQE{})
	c := x.cq.poll()
	if len(c) != 2 || c[0].Opcode != mlxhw.CQEReq || c[1].Syndrome != mlxhw.SyndLocalQPOp {
		t.Fatalf("CQEs %+v", c)
	}
}

// TestModifyRQTAndTIRAndCounters: MODIFY_RQT narrows the spread, MODIFY_TIR
// with hash none sends everything to RQT[0]; QUERY_VPORT_COUNTER counts.
func TestModifyRQTAndTIRAndCounters(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	eq := e.createEQ(7, mlxhw.EventComp.Bit(), 1)
	cq := e.createCQ(9, eq.n)
	var rqs []*trq
	var ids []uint32
	for range 3 {
		r := e.createRQ(cq, 7, false)
		r.fill(128)
		rqs = append(rqs, r)
		ids = append(ids, r.n)
	}
	rqt := e.id(&mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: 4, RQs: ids}})
	tc := mlxhw.TIRContext{DispType: mlxhw.TIRIndirect, IndirectTable: rqt, HashFn: mlxhw.RxHashToeplitz, TransportDomain: e.td,
		SelectorOuter: mlxhw.HashSelSrcIP | mlxhw.HashSelDstIP | mlxhw.HashSelL4SPort | mlxhw.HashSelL4DPort}
	copy(tc.ToeplitzKey[:], "0123456789012345678901234567890123456789")
	tir := e.id(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: tc})
	e.must(&mlxhw.RQTIn{Op: mlxhw.OpModifyRQT, RQTN: rqt, Bitmask: 1, Ctx: mlxhw.RQTContext{RQs: []uint32{ids[1], ids[2]}}})
	e.must(obj(mlxhw.OpDestroyRQ, ids[0])) // no longer referenced
	for i := range 40 {
		deliver(e.dev, tcpFrame(t, mac(testMAC[:]...), uint16(i), 80, nil, true))
	}
	seen := map[uint32]int{}
	for _, c := range cq.poll() {
		seen[c.QPN()]++
	}
	if len(seen) != 2 || seen[ids[1]] == 0 || seen[ids[2]] == 0 {
		t.Fatalf("spread %v", seen)
	}
	e.must(&mlxhw.TIRIn{Op: mlxhw.OpModifyTIR, TIRN: tir, Bitmask: 1 << 2, Ctx: mlxhw.TIRContext{HashFn: mlxhw.RxHashNone}})
	for i := range 10 {
		deliver(e.dev, tcpFrame(t, mac(testMAC[:]...), uint16(i), 80, nil, true))
	}
	for _, c := range cq.poll() {
		if c.QPN() != ids[1] || c.RSSHash != 0 {
			t.Fatalf("hash none went to %#x (hash %#x)", c.QPN(), c.RSSHash)
		}
	}
	deliver(e.dev, tcpFrame(t, mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 1, 1, nil, true))
	cnt := e.must(&mlxhw.QueryVportCounterIn{}).(*mlxhw.QueryVportCounterOut)
	if u := cnt.Counters[mlxhw.CounterRxEthUnicast]; u.Packets != 50 || u.Octets != 50*60 /* padded to 60 */ {
		t.Fatalf("unicast %+v", u)
	}
	if b := cnt.Counters[mlxhw.CounterRxEthBroadcast]; b.Packets != 1 {
		t.Fatalf("broadcast %+v", b)
	}
	e.must(&mlxhw.QueryVportCounterIn{Clear: true})
	if c := e.must(&mlxhw.QueryVportCounterIn{}).(*mlxhw.QueryVportCounterOut); c.Counters[mlxhw.CounterRxEthUnicast].Packets != 0 {
		t.Fatal("not cleared")
	}
	e.noViolations()
}

// TestCloseStopsTimers: pending command-latency and moderation timers end
// their goroutines when the device closes.
func TestCloseStopsTimers(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t, func(c *Config) { c.CommandLatency = time.Hour })
	h.pciUp()
	h.cmdqUp()
	for i := range 4 {
		h.post(i, simple(mlxhw.OpNOP).AppendTo(nil), 16, nil)
	}
	if h.clk.Timers() < 4 {
		t.Fatalf("%d timers", h.clk.Timers())
	}
	if err := h.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.dev.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(time.Millisecond)
	}
	// A closed device ignores its BAR and drops frames.
	h.bar.Write32(mlxhw.RegCmdDoorbell, 1)
	deliver(h.dev, tcpFrame(t, mac(testMAC[:]...), 1, 2, nil, true))
	if s := h.dev.Stats(); s.RxDrops[DropNotReady] != 1 || s.Commands != 0 {
		t.Fatalf("stats %+v", s)
	}
}
