package mlxhw

import (
	"errors"
	"reflect"
	"testing"
)

func TestOwnerArithmetic(t *testing.T) {
	const log = 3 // 8 entries
	// Lap parity: counters 0..7 owner 0, 8..15 owner 1, 16..23 owner 0.
	for c, want := range map[uint32]uint8{0: 0, 7: 0, 8: 1, 15: 1, 16: 0, 0xffffffff: 1} {
		if OwnerBit(c, log) != want {
			t.Errorf("OwnerBit(%d) = %d", c, OwnerBit(c, log))
		}
	}
	if EntryIndex(19, log) != 3 {
		t.Fatal("EntryIndex")
	}
	// Simulate 3+ laps of a CQ: initialised with 0xf1, the device
	// writes CQEs one at a time, the consumer sees exactly those.
	ring := make([]byte, 8*CQESize)
	InitCQ(ring)
	var cc, prod uint32
	var c CQE
	for prod < 8*4 {
		slot := ring[EntryIndex(cc, log)*CQESize:][:CQESize]
		if err := ParseCQE(slot, cc, log, &c); !errors.Is(err, ErrNotOwned) {
			t.Fatalf("cc %d: empty slot parsed: %v", cc, err)
		}
		_ = PutCQE(ring[EntryIndex(prod, log)*CQESize:], &CQE{Opcode: CQERespSend, WQECounter: uint16(prod),
			Owner: OwnerBit(prod, log)})
		prod++
		if err := ParseCQE(slot, cc, log, &c); err != nil || c.WQECounter != uint16(cc) {
			t.Fatalf("cc %d: %v %+v", cc, err, c)
		}
		cc++
	}
	// EQ: owner initialised to 1 means lap 0 is empty.
	eq := make([]byte, 8*EQESize)
	InitEQ(eq)
	var e EQE
	if err := ParseEQE(eq, 0, log, &e); !errors.Is(err, ErrNotOwned) {
		t.Fatal(err)
	}
	ev := EQEComp(0x400)
	ev.Owner = OwnerBit(8, log)
	_ = PutEQE(eq, &ev)
	if err := ParseEQE(eq, 0, log, &e); !errors.Is(err, ErrNotOwned) {
		t.Fatal("lap-1 entry seen on lap 0")
	}
	if err := ParseEQE(eq, 8, log, &e); err != nil || e.CompCQN() != 0x400 {
		t.Fatal(err)
	}
}

func TestEQEGolden(t *testing.T) {
	for _, c := range []struct {
		name  string
		e     EQE
		build func(b []byte)
		check func(e *EQE) bool
	}{
		{"COMP", EQEComp(0x1400401), func(b []byte) { w8(b, 1, 0); w32(b, 0x38, 0x400401) },
			func(e *EQE) bool { return e.CompCQN() == 0x400401 }},
		{"CMD", EQECmd(1<<31 | 1), func(b []byte) { w8(b, 1, 0x0a); w32(b, 0x20, 0x80000001) },
			func(e *EQE) bool { return e.CmdVector() == 0x80000001 }},
		{"PORT_CHANGE", EQEPortChange(PortChangeActive, 1), func(b []byte) { w8(b, 1, 9); w8(b, 3, 4); w8(b, 0x28, 0x10) },
			func(e *EQE) bool { return e.Port() == 1 && e.SubType == PortChangeActive }},
		{"PAGE_REQUEST", EQEPageRequest(0, -3), func(b []byte) { w8(b, 1, 0x0b); w32(b, 0x24, 0xfffffffd) },
			func(e *EQE) bool { f, n := e.PageRequest(); return f == 0 && n == -3 }},
		{"NIC_VPORT_CHANGE", EQEVportChange(0x12), func(b []byte) { w8(b, 1, 0x0d); w16(b, 0x22, 0x12) },
			func(e *EQE) bool { return e.VportNum() == 0x12 }},
		{"CQ_ERROR", EQECQError(0x400, 1), func(b []byte) { w8(b, 1, 4); w32(b, 0x20, 0x400); w8(b, 0x2b, 1) },
			func(e *EQE) bool { n, s := e.CQError(); return n == 0x400 && s == 1 }},
		{"WQ_CATAS", EQEWQError(EventWQCatastrophic, ResourceSQ, 0x800),
			func(b []byte) { w8(b, 1, 5); w8(b, 0x34, 2); w32(b, 0x38, 0x800) },
			func(e *EQE) bool { r, n := e.WQError(); return r == ResourceSQ && n == 0x800 }},
	} {
		want := make([]byte, EQESize)
		c.build(want)
		w8(want, 0x3f, 1)
		c.e.Owner = 1
		got := make([]byte, EQESize)
		if err := PutEQE(got, &c.e); err != nil {
			t.Fatal(err)
		}
		same(t, c.name, got, want)
		var d EQE
		if err := DecodeEQE(want, &d); err != nil || d != c.e || !c.check(&d) {
			t.Fatalf("%s: %+v %v", c.name, d, err)
		}
	}
	if EventPortChange.Bit() != 1<<9 || EventCmd.Bit() != 1<<10 {
		t.Fatal("event bits")
	}
	if err := DecodeEQE(make([]byte, 63), new(EQE)); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
}

func TestCQEGolden(t *testing.T) {
	// RX completion with checksum, VLAN and RSS fields (spec §3.3).
	want := make([]byte, CQESize)
	w32(want, 0x0c, 0xcafef00d)
	w8(want, 0x10, 2<<6|1<<2)
	w16(want, 0x14, 0xbeef)
	w8(want, 0x1c, CQEL2OK|CQEL3OK|CQEL4OK)
	w8(want, 0x1d, CQEL4TCPAckDat<<4|CQEL3IPv4<<2|CQEVLANPresent)
	w16(want, 0x1e, 0x2064)
	w32(want, 0x2c, 1514)
	w64(want, 0x30, 123456789)
	w32(want, 0x38, 0xc00)
	w16(want, 0x3c, 0x1234)
	w8(want, 0x3f, CQERespSend<<4|1)
	c := CQE{RSSHash: 0xcafef00d, RSSHashType: 2<<6 | 1<<2, Checksum: 0xbeef, HdsIPExt: 7,
		L4L3HdrType: CQEL4TCPAckDat<<4 | CQEL3IPv4<<2 | 1, VLANInfo: 0x2064, ByteCnt: 1514, Timestamp: 123456789,
		SopDropQPN: 0xc00, WQECounter: 0x1234, Opcode: CQERespSend, Owner: 1}
	got := make([]byte, CQESize)
	if err := PutCQE(got, &c); err != nil {
		t.Fatal(err)
	}
	same(t, "RX CQE", got, want)
	var d CQE
	if err := ParseCQE(want, 8, 3, &d); err != nil || d != c {
		t.Fatalf("%+v %v", d, err)
	}
	if !d.L3OK() || !d.L4OK() || !d.VLANStripped() || d.L3Type() != CQEL3IPv4 || d.L4Type() != CQEL4TCPAckDat ||
		d.QPN() != 0xc00 || d.IsError() {
		t.Fatal("accessors")
	}
	// TX error CQE: REQ_ERR, syndrome @0x37, vendor syndrome @0x36.
	want = make([]byte, CQESize)
	w8(want, 0x36, 0x99)
	w8(want, 0x37, SyndLocalQPOp)
	w32(want, 0x38, WQEOpSend<<24|0x800)
	w16(want, 0x3c, 7)
	w8(want, 0x3f, CQEReqErr<<4)
	e := CQE{VendorErrSynd: 0x99, Syndrome: SyndLocalQPOp, SopDropQPN: WQEOpSend<<24 | 0x800, WQECounter: 7,
		Opcode: CQEReqErr}
	_ = PutCQE(got, &e)
	same(t, "error CQE", got, want)
	if err := ParseCQE(want, 0, 3, &d); err != nil || d != e || !d.IsError() || d.QPN() != 0x800 {
		t.Fatalf("%+v %v", d, err)
	}
	// Owned INVALID and compressed CQEs are refused.
	want[0x3f] = 0xf0
	if err := ParseCQE(want, 0, 3, &d); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
	want[0x3f] = 3 << 2
	if err := ParseCQE(want, 0, 3, &d); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
}

func TestSendWQEGolden(t *testing.T) {
	// LSO with 54 header bytes inline and two gather segments:
	// ds = 2 + ceil(52/16)=4 + 2 = 8 -> 2 WQEBBs.
	hdrs := seq(54, 0x10)
	segs := []DataSeg{{ByteCount: 1448, LKey: 0x10042, Addr: 0x7000_0000}, {ByteCount: 100, LKey: 0x10042, Addr: 0x7100_0000}}
	w := SendWQE{Opcode: WQEOpLSO, WQEIndex: 0x0102, SQN: 0x800, FmCeSe: CECQEAlways, Imm: 0x1000,
		CSFlags: CSL3 | CSL4, MSS: 1448, Inline: hdrs}
	want := make([]byte, 128)
	w32(want, 0x00, 0x0102<<8|WQEOpLSO)
	w32(want, 0x04, 0x800<<8|8)
	w8(want, 0x0b, 0x08)
	w32(want, 0x0c, 0x1000)
	w8(want, 0x14, 0xc0)
	w16(want, 0x16, 1448)
	w16(want, 0x1c, 54)
	copy(want[0x1e:], hdrs) // 2 bytes in the eth segment, 52 in DS 2..5
	w32(want, 0x60, 1448)
	w32(want, 0x64, 0x10042)
	w64(want, 0x68, 0x7000_0000)
	w32(want, 0x70, 100)
	w32(want, 0x74, 0x10042)
	w64(want, 0x78, 0x7100_0000)
	got := make([]byte, 256)
	for i := range got {
		got[i] = 0xee
	}
	nbb, err := PutSendWQE(got, &w, segs)
	if err != nil || nbb != 2 || w.DS != 8 {
		t.Fatal(nbb, w.DS, err)
	}
	same(t, "LSO WQE", got[:128], want)
	var p SendWQE
	ps := make([]DataSeg, 4)
	n, err := ParseSendWQE(want, &p, ps)
	if err != nil || n != 2 || !reflect.DeepEqual(p, w) || !reflect.DeepEqual(ps[:2], segs) {
		t.Fatalf("%d %v\n%+v\n%+v", n, err, p, ps[:n])
	}
	d0, d1 := SQDoorbellWords(want)
	if ParseSQDoorbell(d0, d1) != (SQDoorbell{WQEIndex: 0x102, SQN: 0x800, Opcode: WQEOpLSO, DS: 8}) {
		t.Fatal("doorbell words")
	}

	// SEND with VLAN insertion and an inline data segment.
	w = SendWQE{Opcode: WQEOpSend, WQEIndex: 9, SQN: 0x801, FmCeSe: CECQEAlways, VLAN: true, VLANTCI: 0x6064}
	segs = []DataSeg{{Inline: seq(20, 1)}}
	want = make([]byte, 64)
	w32(want, 0, 9<<8|WQEOpSend)
	w32(want, 4, 0x801<<8|4)
	w8(want, 0x0b, 0x08)
	w16(want, 0x1c, 0x8000)
	w16(want, 0x1e, 0x6064)
	w32(want, 0x20, 0x80000000|20)
	copy(want[0x24:], seq(20, 1))
	nbb, err = PutSendWQE(got, &w, segs)
	if err != nil || nbb != 1 || w.DS != 4 {
		t.Fatal(nbb, err)
	}
	same(t, "VLAN WQE", got[:64], want)
	n, err = ParseSendWQE(want, &p, ps)
	if err != nil || n != 1 || !p.VLAN || p.VLANTCI != 0x6064 || string(ps[0].Inline) != string(seq(20, 1)) {
		t.Fatalf("%v %+v", err, p)
	}

	// NOP: ctrl segment only.
	nbb, err = PutSendWQE(got, &SendWQE{WQEIndex: 3, SQN: 0x800}, nil)
	if err != nil || nbb != 1 || got[7] != 1 {
		t.Fatal(err)
	}
	if SendDS(0, 1) != 3 || SendDS(18, 1) != 4 || SendDS(2, 0) != 2 || WQEBBs(5) != 2 {
		t.Fatal("SendDS/WQEBBs")
	}
}

func TestSendWQEErrors(t *testing.T) {
	b := make([]byte, 1024)
	if _, err := PutSendWQE(b, &SendWQE{Opcode: WQEOpSend, VLAN: true, Inline: []byte{1}}, nil); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
	if _, err := PutSendWQE(b, &SendWQE{Opcode: WQEOpSend}, make([]DataSeg, 62)); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	if _, err := PutSendWQE(b[:63], &SendWQE{Opcode: WQEOpSend}, nil); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	var w SendWQE
	segs := make([]DataSeg, 4)
	w32(b, 4, 0x800<<8) // ds 0
	if _, err := ParseSendWQE(b, &w, segs); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
	w32(b, 4, 0x800<<8|63)
	if _, err := ParseSendWQE(b[:63*16-1], &w, segs); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	w32(b, 4, 0x800<<8|2)
	w16(b, 0x1c, 100) // 100 inline bytes in 2 DS
	if _, err := ParseSendWQE(b, &w, segs); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	w16(b, 0x1c, 0)
	w32(b, 4, 0x800<<8|3)
	w32(b, 0x20, 0x80000000|13) // inline segment overruns ds
	if _, err := ParseSendWQE(b, &w, segs); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	w32(b, 0x20, 0)
	w32(b, 4, 0x800<<8|7)
	if _, err := ParseSendWQE(b, &w, segs); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
}

func TestRecvWQE(t *testing.T) {
	segs := []DataSeg{{ByteCount: 2048, LKey: 0x10042, Addr: 0x9000}}
	want := make([]byte, 32)
	w32(want, 0, 2048)
	w32(want, 4, 0x10042)
	w64(want, 8, 0x9000)
	w32(want, 0x14, InvalidLKey) // unused slot terminator
	got := make([]byte, 32)
	if err := PutRecvWQE(got, false, 0, segs); err != nil {
		t.Fatal(err)
	}
	same(t, "cyclic RQ WQE", got, want)
	ps := make([]DataSeg, 2)
	next, n, err := ParseRecvWQE(want, false, ps)
	if err != nil || n != 1 || next != 0 || !reflect.DeepEqual(ps[0], segs[0]) {
		t.Fatal(n, err)
	}
	// Linked list: next segment with next_wqe_index @2, then data.
	want = make([]byte, 32)
	w16(want, 2, 5)
	w32(want, 0x10, 2048)
	w32(want, 0x14, 0x10042)
	w64(want, 0x18, 0x9000)
	if err := PutRecvWQE(got, true, 5, segs); err != nil {
		t.Fatal(err)
	}
	same(t, "linked RQ WQE", got, want)
	next, n, err = ParseRecvWQE(want, true, ps)
	if err != nil || n != 1 || next != 5 {
		t.Fatal(n, err)
	}
	if err := PutRecvWQE(got[:16], true, 0, segs); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	if _, _, err := ParseRecvWQE(make([]byte, 64), false, ps); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
}
