package mlxdev

import (
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/packet"
)

// FuzzCommand feeds arbitrary input messages (inline bytes and mailbox
// data) to the command engine of a RUNNING device: it must never panic and
// must always hand the entry back with a delivery status and, when that is
// OK, an output that starts with a command status.
func FuzzCommand(f *testing.F) {
	seeds := []mlxhw.Input{
		simple(mlxhw.OpNOP), simple(mlxhw.OpAllocUAR), obj(mlxhw.OpDestroyCQ, 0x400),
		&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: []uint64{0x100000, 0x101000}},
		&mlxhw.CreateEQIn{Ctx: mlxhw.EQContext{LogSize: 6, UARPage: 8}, EventBitmask: 1 << 10, PAS: []uint64{0x120000}},
		&mlxhw.CreateCQIn{Ctx: mlxhw.CQContext{LogSize: 6, UARPage: 8, EQN: 1, DBRAddr: 0x130000}, PAS: []uint64{0x140000}},
		&mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectAddressesList,
			Ctx: mlxhw.NICVportContext{ListType: mlxhw.ListMC, Addresses: [][6]byte{{1, 0, 0x5e, 0, 0, 1}}}},
		&mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: 2, RQs: []uint32{0xc00, 0xc01}}},
		&mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegRead, RegisterID: mlxhw.RegIDPTYS, Data: make([]byte, 64)},
	}
	for _, s := range seeds {
		f.Add(s.AppendTo(nil), uint16(s.OutLen()))
	}
	f.Fuzz(func(t *testing.T, msg []byte, outLen uint16) {
		if len(msg) < 16 || len(msg) > 8192 {
			return
		}
		out := int(outLen)%8192 + 16
		h := newHarnessSized(t, 256, nil)
		h.bringUp()
		// Give the fuzzer live objects to name.
		uar := h.id(simple(mlxhw.OpAllocUAR))
		_ = uar
		h.id(simple(mlxhw.OpAllocPD))
		r := h.post(0, msg, out, nil)
		if r.owned {
			t.Fatal("command never completed")
		}
		if r.delivery == mlxhw.DeliveryOK {
			if len(r.out) < 16 {
				t.Fatalf("output of %d bytes", len(r.out))
			}
			if _, err := mlxhw.PeekOutHeader(r.out); err != nil {
				t.Fatal(err)
			}
		}
		// The device still answers.
		h.must(simple(mlxhw.OpNOP))
	})
}

// FuzzSendWQE writes arbitrary WQE bytes at the SQ's producer and rings
// the doorbell: the device must not panic, must complete or fail every
// WQE it consumes, and must stay usable after recovery.
func FuzzSendWQE(f *testing.F) {
	var b [mlxhw.MaxSendWQESize]byte
	frame := make([]byte, 60)
	copy(frame, peerMAC)
	for _, w := range []mlxhw.SendWQE{
		{Opcode: mlxhw.WQEOpSend, FmCeSe: mlxhw.CECQEAlways, Inline: frame, CSFlags: mlxhw.CSL3 | mlxhw.CSL4},
		{Opcode: mlxhw.WQEOpLSO, FmCeSe: mlxhw.CECQEAlways, Inline: frame[:54], MSS: 100},
		{Opcode: mlxhw.WQEOpSend, VLAN: true, VLANTCI: 5, FmCeSe: mlxhw.CECQEAlways},
		{Opcode: mlxhw.WQEOpNOP},
	} {
		n, err := mlxhw.PutSendWQE(b[:], &w, []mlxhw.DataSeg{{ByteCount: 64, LKey: 0x10000 | 0x5a, Addr: 0x200000}})
		if err != nil {
			n, _ = mlxhw.PutSendWQE(b[:], &w, nil)
		}
		f.Add(append([]byte(nil), b[:n*64]...), true)
	}
	x := newTxEnv(f, func(c *Config) { c.Strict = false })
	f.Fuzz(func(t *testing.T, wqe []byte, fix bool) {
		if len(wqe) == 0 || len(wqe) > mlxhw.MaxSendWQESize {
			return
		}
		x.harness.t = t
		s := x.sq
		if st := s.modify(mlxhw.QueueRDY, mlxhw.QueueRST); st != mlxhw.StatusOK {
			s.modify(mlxhw.QueueERR, mlxhw.QueueRST)
		}
		s.modify(mlxhw.QueueRST, mlxhw.QueueRDY)
		s.cq.poll()
		buf := s.buf.Bytes[:len(wqe)]
		copy(buf, wqe)
		if fix && len(buf) >= 8 {
			buf[1], buf[2] = 0, 0 // wqe_index 0
			buf[4], buf[5], buf[6] = byte(s.n>>16), byte(s.n>>8), byte(s.n)
		}
		bbs := (len(wqe) + 63) / 64
		storeBE32(s.dbr[4:], uint32(bbs))
		s.pc = uint16(bbs)
		s.ring(0)
		cqes := s.cq.poll()
		if len(cqes) > bbs {
			t.Fatalf("%d CQEs for %d WQEBBs", len(cqes), bbs)
		}
		x.wire.take()
		x.dev.ClearViolations()
	})
}

// FuzzDeliver hands arbitrary frames (optionally with a switch-carried
// VLAN tag) to the receive path behind an RSS TIR: parsing, filtering,
// hashing, VLAN strip and checksum verification must never panic, and
// every frame is either received or dropped with a reason.
func FuzzDeliver(f *testing.F) {
	f.Add(tcpFrame(f, mac(testMAC[:]...), 1, 2, []byte("seed"), true), false, uint16(0))
	f.Add(udp6Frame(f, []byte("v6"), true), true, uint16(7))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 0x81, 0x00, 0, 1, 0x08, 0x00, 0x45}, false, uint16(0))
	e := newEnv(newHarness(f, func(c *Config) { c.Strict = false }))
	eq := e.createEQ(7, mlxhw.EventComp.Bit(), 1)
	cq := e.createCQ(8, eq.n)
	rq := e.createRQ(cq, 6, false)
	rq.fill(64)
	rqt := e.id(&mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: 1, RQs: []uint32{rq.n}}})
	tc := mlxhw.TIRContext{DispType: mlxhw.TIRIndirect, IndirectTable: rqt, HashFn: mlxhw.RxHashToeplitz, TransportDomain: e.td,
		SelectorOuter: mlxhw.HashSelSrcIP | mlxhw.HashSelDstIP | mlxhw.HashSelL4SPort | mlxhw.HashSelL4DPort}
	e.id(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: tc})
	e.must(&mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectPromisc | mlxhw.FieldSelectMTU,
		Ctx: mlxhw.NICVportContext{PromiscAll: true, MTU: 9022}})
	f.Fuzz(func(t *testing.T, frame []byte, tagged bool, tci uint16) {
		if len(frame) > 9000 {
			return
		}
		e.harness.t = t
		before := e.dev.Stats()
		b := packet.NewBatch(1)
		p := packet.New(0, len(frame))
		_ = p.AppendBytes(frame)
		if tagged {
			p.Meta.SetVLAN(tci)
		}
		b.Add(p)
		e.dev.Deliver(b)
		after := e.dev.Stats()
		if after.RxPackets+after.RxDropped() != before.RxPackets+before.RxDropped()+1 {
			t.Fatalf("frame neither received nor dropped")
		}
		cq.poll()
		if c := uint32(after.RxPackets + after.RxDrops[DropRxError]); uint32(rq.pc)-c < 32 {
			rq.fill(32)
		}
	})
}
