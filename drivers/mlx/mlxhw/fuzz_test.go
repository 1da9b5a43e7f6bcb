package mlxhw

import (
	"errors"
	"reflect"
	"testing"
)

var keptOps = func() []Opcode {
	var ops []Opcode
	for op := range opNames {
		if NewOutput(op) != nil {
			ops = append(ops, op)
		}
	}
	// Stable order so corpus entries keep their meaning.
	for i := range ops {
		for j := i + 1; j < len(ops); j++ {
			if ops[j] < ops[i] {
				ops[i], ops[j] = ops[j], ops[i]
			}
		}
	}
	return ops
}()

func opIndex(op Opcode) uint8 {
	for i, o := range keptOps {
		if o == op {
			return uint8(i)
		}
	}
	return 0
}

// FuzzCommandOutput decodes device output for any kept opcode; what
// decodes must re-encode to bytes that decode to the same value.
func FuzzCommandOutput(f *testing.F) {
	for _, g := range goldens() {
		if g.out != nil {
			f.Add(opIndex(g.out.Opcode()), g.wire)
		}
	}
	f.Add(opIndex(OpQueryHCACap), (&QueryHCACapOut{}).AppendTo(nil))
	f.Add(opIndex(OpCreateSQ), AppendErrorOutput(nil, StatusBadParam, 7))
	f.Fuzz(func(t *testing.T, k uint8, b []byte) {
		op := keptOps[int(k)%len(keptOps)]
		out, err := DecodeOutput(op, b)
		if err != nil {
			sentinel(t, err)
			return
		}
		enc := out.AppendTo(nil)
		again, err := DecodeOutput(op, enc)
		if err != nil {
			t.Fatalf("%v: re-encoded output refused: %v", op, err)
		}
		if !reflect.DeepEqual(out, again) {
			t.Fatalf("%v: round trip differs\n %+v\n %+v", op, out, again)
		}
	})
}

// FuzzCommandInput is the device's side: any input bytes.
func FuzzCommandInput(f *testing.F) {
	for _, g := range goldens() {
		if g.in != nil {
			f.Add(g.wire)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodeInput(b)
		if err != nil {
			sentinel(t, err)
			return
		}
		enc := in.AppendTo(nil)
		if len(enc) != in.InLen() {
			t.Fatalf("%v: %d bytes, InLen %d", in.Opcode(), len(enc), in.InLen())
		}
		again, err := DecodeInput(enc)
		if err != nil {
			t.Fatalf("%v: re-encoded input refused: %v", in.Opcode(), err)
		}
		if !reflect.DeepEqual(in, again) {
			t.Fatalf("%v: round trip differs\n %+v\n %+v", in.Opcode(), in, again)
		}
	})
}

func FuzzEQE(f *testing.F) {
	for _, e := range []EQE{EQEComp(0x400), EQECmd(3), EQEPortChange(PortChangeDown, 1), EQEPageRequest(0, 8),
		EQEVportChange(0), EQECQError(0x401, 1)} {
		b := make([]byte, EQESize)
		_ = PutEQE(b, &e)
		f.Add(b, uint32(0), uint8(4))
	}
	f.Fuzz(func(t *testing.T, b []byte, ci uint32, log uint8) {
		var e EQE
		if err := ParseEQE(b, ci, log, &e); err != nil {
			sentinel(t, err)
			if errors.Is(err, ErrNotOwned) && SWOwned(b[0x3f], ci, log) {
				t.Fatal("owned entry refused")
			}
			return
		}
		_, _ = e.CompCQN(), e.CmdVector()
		_, _ = e.PageRequest()
		_, _ = e.CQError()
		_, _ = e.WQError()
		_, _ = e.Port(), e.VportNum()
		enc := make([]byte, EQESize)
		if err := PutEQE(enc, &e); err != nil {
			t.Fatal(err)
		}
		var d EQE
		if err := ParseEQE(enc, ci, log, &d); err != nil || d != e {
			t.Fatalf("round trip: %v\n %+v\n %+v", err, e, d)
		}
	})
}

func FuzzCQE(f *testing.F) {
	for _, c := range []CQE{{Opcode: CQERespSend, ByteCnt: 60, HdsIPExt: 7, Owner: 1},
		{Opcode: CQEReqErr, Syndrome: SyndWRFlush, SopDropQPN: 0x800}, {Opcode: CQEReq, WQECounter: 9}} {
		b := make([]byte, CQESize)
		_ = PutCQE(b, &c)
		f.Add(b, uint32(c.Owner)<<4, uint8(4))
	}
	f.Fuzz(func(t *testing.T, b []byte, cc uint32, log uint8) {
		var c CQE
		if err := ParseCQE(b, cc, log, &c); err != nil {
			sentinel(t, err)
			return
		}
		_, _, _ = c.L3Type(), c.L4Type(), c.QPN()
		enc := make([]byte, CQESize)
		if err := PutCQE(enc, &c); err != nil {
			t.Fatal(err)
		}
		var d CQE
		if err := ParseCQE(enc, cc, log, &d); err != nil || d != c {
			t.Fatalf("round trip: %v\n %+v\n %+v", err, c, d)
		}
	})
}

// slotDMA is compact fuzz memory: a 64-byte command entry, then mailbox
// slots of 576 bytes; slot k is the 1 KiB-aligned address (k+1)*0x400,
// and an access must stay inside one slot.
type slotDMA struct{ mem []byte }

func (m *slotDMA) span(addr uint64, n int) ([]byte, error) {
	k, off := addr/MailboxAlign, addr%MailboxAlign
	if k == 0 || off+uint64(n) > MailboxSize {
		return nil, errors.New("DMA outside a slot")
	}
	i := uint64(CmdEntrySize) + (k-1)*MailboxSize + off
	if i > uint64(len(m.mem)) || uint64(len(m.mem))-i < uint64(n) {
		return nil, errors.New("DMA outside memory")
	}
	return m.mem[i : i+uint64(n)], nil
}

func (m *slotDMA) ReadDMA(addr uint64, b []byte) error {
	s, err := m.span(addr, len(b))
	if err == nil {
		copy(b, s)
	}
	return err
}

func (m *slotDMA) WriteDMA(addr uint64, b []byte) error {
	s, err := m.span(addr, len(b))
	if err == nil {
		copy(s, b)
	}
	return err
}

// FuzzMailbox treats the input as device-visible memory: a command entry
// and mailbox slots. The device's gather and scatter and the driver's
// gather must fail cleanly with a delivery status or preserve the bytes.
func FuzzMailbox(f *testing.F) {
	seed := func(inLen, outLen int) []byte {
		mem := &slotDMA{mem: make([]byte, CmdEntrySize+4*MailboxSize)}
		blk := make([]byte, MailboxSize)
		msg := seq(inLen, 3)
		addrs := []uint64{0x400, 0x800, 0xc00, 0x1000}
		_ = BuildChain(mem, msg, 0, addrs[:2], 9, blk)
		_ = BuildChain(mem, nil, outLen, addrs[2:], 9, blk)
		e := CmdEntry{Type: 7, InLen: uint32(inLen), InPtr: 0x400, OutLen: uint32(outLen), OutPtr: 0xc00, Token: 9, HWOwned: true}
		copy(e.In[:], msg)
		_ = e.Put(mem.mem)
		return mem.mem
	}
	f.Add(seed(0x300, 0x300))
	f.Add(seed(16, 0x20))
	f.Add(seed(0x20, 16))
	f.Fuzz(mailboxBody)
}

func mailboxBody(t *testing.T, b []byte) {
	if len(b) >= MailboxSize {
		var m Mailbox
		_ = ParseMailbox(b, &m)
		enc := make([]byte, MailboxSize)
		if err := PutMailbox(enc, m.Data, m.Next, m.BlockNum, m.Token); err != nil {
			t.Fatal(err)
		}
		var d Mailbox
		_ = ParseMailbox(enc, &d)
		if string(d.Data) != string(m.Data) || d.Next != m.Next || d.BlockNum != m.BlockNum || d.Token != m.Token {
			t.Fatal("mailbox round trip")
		}
	}
	var e CmdEntry
	if err := ParseCmdEntry(b, &e); err != nil {
		sentinel(t, err)
		return
	}
	// Lengths beyond what the bytes could hold fail on the first
	// missing block; keep the buffers small.
	if e.Check() != DeliveryOK || e.InLen > 8192 || e.OutLen > 8192 {
		return
	}
	mem := &slotDMA{mem: append([]byte(nil), b...)}
	blk := make([]byte, MailboxSize)
	dst := make([]byte, max(e.InLen, e.OutLen))
	in, err := GatherInput(mem, &e, dst, blk)
	if err != nil {
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Status == DeliveryOK {
			t.Fatalf("gather error without a delivery status: %v", err)
		}
		return
	}
	if len(in) != int(e.InLen) || string(in[:16]) != string(e.In[:]) {
		t.Fatal("gathered input length or header")
	}
	out := seq(int(e.OutLen), 0x40)
	if err := ScatterOutput(mem, &e, out, blk); err != nil {
		sentinel(t, err)
		return
	}
	back, err := GatherOutput(mem, &e, dst, blk)
	if err != nil {
		t.Fatalf("output the device scattered cannot be gathered: %v", err)
	}
	// Input and output chains may share slots in fuzzed memory, but the
	// output chain alone was just written whole: it must read back.
	if string(back) != string(out) {
		t.Fatalf("gathered output differs from scattered output")
	}
}

func FuzzSendWQE(f *testing.F) {
	b := make([]byte, 256)
	n, _ := PutSendWQE(b, &SendWQE{Opcode: WQEOpLSO, SQN: 0x800, MSS: 1448, Inline: seq(54, 0)},
		[]DataSeg{{ByteCount: 1000, LKey: 1, Addr: 2}, {Inline: seq(7, 1)}})
	f.Add(b[:n*WQEBBSize])
	n, _ = PutSendWQE(b, &SendWQE{Opcode: WQEOpSend, VLAN: true, VLANTCI: 5}, []DataSeg{{ByteCount: 60}})
	f.Add(b[:n*WQEBBSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		var w SendWQE
		segs := make([]DataSeg, MaxDS)
		k, err := ParseSendWQE(b, &w, segs)
		if err != nil {
			sentinel(t, err)
			return
		}
		if w.DS < 2 || (w.Opcode == WQEOpNOP && w.DS == 2 && k == 0 && w.Inline == nil) {
			return // NOP-shaped WQEs re-encode with their minimal ds
		}
		enc := make([]byte, MaxSendWQESize)
		orig := w
		if _, err := PutSendWQE(enc, &w, segs[:k]); err != nil {
			t.Fatal(err)
		}
		if w.DS != orig.DS {
			t.Fatalf("ds %d re-encoded as %d", orig.DS, w.DS)
		}
		var d SendWQE
		segs2 := make([]DataSeg, MaxDS)
		k2, err := ParseSendWQE(enc, &d, segs2)
		if err != nil || k2 != k || !reflect.DeepEqual(d, w) || !reflect.DeepEqual(segs2[:k2], segs[:k]) {
			t.Fatalf("round trip: %v\n %+v\n %+v", err, w, d)
		}
	})
}
