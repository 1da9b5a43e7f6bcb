package mlxhw

import (
	"errors"
	"testing"
)

func TestCmdEntryGolden(t *testing.T) {
	want := make([]byte, CmdEntrySize)
	w8(want, 0x00, 7)
	w32(want, 0x04, 0x130)
	w64(want, 0x08, 0x1_0000_0400)
	copy(want[0x10:], []byte{0x09, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	w64(want, 0x30, 0x1_0000_0800)
	w32(want, 0x38, 0x10)
	w8(want, 0x3c, 0xa5)
	w8(want, 0x3f, 0x01)
	e := CmdEntry{Type: CmdTypePCIe, InLen: 0x130, InPtr: 0x1_0000_0400, OutPtr: 0x1_0000_0800, OutLen: 0x10,
		Token: 0xa5, HWOwned: true}
	copy(e.In[:], want[0x10:0x20])
	got := make([]byte, 70)
	for i := range got {
		got[i] = 0xee // Put must clear reserved bytes
	}
	if err := e.Put(got); err != nil {
		t.Fatal(err)
	}
	same(t, "entry", got[:64], want)
	var d CmdEntry
	if err := ParseCmdEntry(want, &d); err != nil || d != e {
		t.Fatalf("parse %+v %v", d, err)
	}
	if !CmdOwned(want) || d.Check() != DeliveryOK {
		t.Fatal("owned/check")
	}
	// Device completion: ownership cleared, delivery status in bits 7:1.
	d.HWOwned, d.Status = false, DeliveryToken
	_ = d.Put(got)
	if got[0x3f] != 0x04 || CmdOwned(got) {
		t.Fatalf("status_own %#x", got[0x3f])
	}
	if err := ParseCmdEntry(want[:63], &d); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if err := e.Put(got[:63]); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
}

func TestCmdEntryCheck(t *testing.T) {
	ok := CmdEntry{Type: 7, InLen: 16, OutLen: 16}
	for _, c := range []struct {
		mod  func(*CmdEntry)
		want DeliveryStatus
	}{
		{func(e *CmdEntry) {}, DeliveryOK},
		{func(e *CmdEntry) { e.Type = 6 }, DeliveryBadCmdType},
		{func(e *CmdEntry) { e.InLen = 15 }, DeliveryInLen},
		{func(e *CmdEntry) { e.OutLen = 0 }, DeliveryOutLen},
		{func(e *CmdEntry) { e.InLen = 17 }, DeliveryInPtrAlign},
		{func(e *CmdEntry) { e.InLen, e.InPtr = 17, 0x1200 }, DeliveryInPtrAlign},
		{func(e *CmdEntry) { e.InLen, e.InPtr = 17, 0x1400 }, DeliveryOK},
		{func(e *CmdEntry) { e.OutLen, e.OutPtr = 0x1010, 0x900 }, DeliveryOutPtrAlign},
		{func(e *CmdEntry) { e.OutLen = MaxMessageLen + 1 }, DeliveryOutLen},
	} {
		e := ok
		c.mod(&e)
		if got := e.Check(); got != c.want {
			t.Errorf("%+v: %v, want %v", e, got, c.want)
		}
	}
	if DeliveryToken.String() != "token error" || DeliveryStatus(0x55).String() == "" {
		t.Fatal("names")
	}
}

func TestMailboxGolden(t *testing.T) {
	want := make([]byte, MailboxSize)
	copy(want, seq(512, 1))
	w64(want, 0x230, 0x2000)
	w32(want, 0x238, 3)
	w8(want, 0x23d, 0x5a)
	got := make([]byte, MailboxSize)
	if err := PutMailbox(got, seq(512, 1), 0x2000, 3, 0x5a); err != nil {
		t.Fatal(err)
	}
	same(t, "mailbox", got, want)
	var m Mailbox
	if err := ParseMailbox(want, &m); err != nil || m.Next != 0x2000 || m.BlockNum != 3 || m.Token != 0x5a ||
		len(m.Data) != 512 || m.Data[511] != want[511] {
		t.Fatalf("parse %+v %v", m, err)
	}
	if err := PutMailbox(got, make([]byte, 513), 0, 0, 0); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	if err := ParseMailbox(want[:0x23f], &m); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if Sig8([]byte{0x0f, 0xf0}) != 0 || Sig8(nil) != 0xff {
		t.Fatal("Sig8")
	}
}

func TestMailboxBlocks(t *testing.T) {
	for _, c := range [][2]int{{0, 0}, {16, 0}, {17, 1}, {528, 1}, {529, 2}, {QueryHCACapOutLen, 8}} {
		if got := MailboxBlocks(c[0]); got != c[1] {
			t.Errorf("MailboxBlocks(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

// TestChainRoundTrip drives a whole command through guest memory: the
// driver builds the input chain and a zeroed output chain, the device
// gathers the input and scatters an output, the driver gathers it.
func TestChainRoundTrip(t *testing.T) {
	mem := &memDMA{base: 0x100000, mem: make([]byte, 64<<10)}
	blk := make([]byte, MailboxSize)
	in := (&SetHCACapIn{OpMod: CapOpMod(CapGeneral, CapMax)}).AppendTo(nil)
	copy(in[HeaderSize:], seq(CapSize, 7))
	inAddrs := []uint64{0x101000, 0x102000, 0x103000, 0x104000, 0x105000, 0x106000, 0x107000, 0x108000}
	outAddrs := []uint64{0x109000, 0x10a000, 0x10b000, 0x10c000, 0x10d000, 0x10e000, 0x10f000, 0x110000 - 0x400}
	if err := BuildChain(mem, in, 0, inAddrs, 0x33, blk); err != nil {
		t.Fatal(err)
	}
	if err := BuildChain(mem, nil, QueryHCACapOutLen, outAddrs, 0x33, blk); err != nil {
		t.Fatal(err)
	}
	e := CmdEntry{Type: 7, InLen: uint32(len(in)), InPtr: inAddrs[0], OutLen: QueryHCACapOutLen,
		OutPtr: outAddrs[0], Token: 0x33, HWOwned: true}
	copy(e.In[:], in)
	dst := make([]byte, MaxMessageLen)
	got, err := GatherInput(mem, &e, dst, blk)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "gathered input", got, in)
	var caps QueryHCACapOut
	copy(caps.Cap[:], seq(CapSize, 99))
	out := caps.AppendTo(nil)
	if err := ScatterOutput(mem, &e, out, blk); err != nil {
		t.Fatal(err)
	}
	back, err := GatherOutput(mem, &e, dst, blk)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "gathered output", back, out)
	var dec QueryHCACapOut
	if err := dec.Decode(back); err != nil || dec != caps {
		t.Fatal("decoded caps differ", err)
	}

	// Delivery failures, each with its status.
	chainErr := func(err error, want DeliveryStatus) {
		t.Helper()
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Status != want || !errors.Is(err, ErrMailbox) {
			t.Fatalf("got %v, want %v", err, want)
		}
	}
	bad := e
	bad.Token = 0x34
	_, err = GatherInput(mem, &bad, dst, blk)
	chainErr(err, DeliveryToken)
	bad = e
	bad.InPtr = inAddrs[1] // block_num 1 where 0 is expected
	_, err = GatherInput(mem, &bad, dst, blk)
	chainErr(err, DeliveryBadBlockNum)
	bad = e
	bad.InPtr += 0x200
	_, err = GatherInput(mem, &bad, dst, blk)
	chainErr(err, DeliveryInPtrAlign)
	bad = e
	bad.OutPtr = 0x10 << 20 // aligned but outside memory
	chainErr(ScatterOutput(mem, &bad, out, blk), DeliveryFWInternal)
	bad = e
	bad.InLen = 8
	_, err = GatherInput(mem, &bad, dst, blk)
	chainErr(err, DeliveryInLen)
	if _, err := GatherInput(mem, &e, dst[:100], blk); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	if err := BuildChain(mem, in, 0, inAddrs[:2], 1, blk); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	if err := BuildChain(mem, in, 0, append([]uint64{0x101200}, inAddrs[1:]...), 1, blk); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
}
