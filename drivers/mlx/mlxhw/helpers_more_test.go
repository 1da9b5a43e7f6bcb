package mlxhw

import (
	"errors"
	"testing"
)

func TestSmallHelpers(t *testing.T) {
	if maj, min := SplitFWRev(0x00230010); maj != 16 || min != 35 {
		t.Fatal("fw_rev")
	}
	if CmdIfRevOf(0x000507d0) != CmdIfRev || !DeviceGone(0xffffffff) || DeviceGone(0x00230010) {
		t.Fatal("cmdif/gone")
	}
	he := make([]byte, HostEndiannessSize)
	HostEndiannessHE.Put(he, 1)
	if he[0] != 0x80 {
		t.Fatal("he bit")
	}
	// Device completion: only out[] and status_own change.
	e := CmdEntry{Type: 7, InLen: 16, OutLen: 16, Token: 3, HWOwned: true}
	b := make([]byte, CmdEntrySize)
	_ = e.Put(b)
	want := append([]byte(nil), b...)
	w8(want, 0x20, byte(StatusBadParam))
	w32(want, 0x24, 0x1234)
	w8(want, 0x3f, 0)
	if err := CompleteCmdEntry(b, AppendErrorOutput(nil, StatusBadParam, 0x1234), DeliveryOK); err != nil {
		t.Fatal(err)
	}
	same(t, "completed entry", b, want)
	_ = CompleteCmdEntry(b, nil, DeliveryBadCmdType)
	if b[0x3f] != 0x20 || CmdOwned(b) {
		t.Fatal("delivery status")
	}
	if err := CompleteCmdEntry(b[:10], nil, 0); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	if CmdSlotOffset(31, LogCmdqStride) != 0x7c0 {
		t.Fatal("slot offset")
	}
	if WQEBBsToEdge(0, 6) != 64 || WQEBBsToEdge(62, 6) != 2 || WQEBBsToEdge(64+63, 6) != 1 {
		t.Fatal("edge")
	}
	for n, want := range map[int]uint8{0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 3} {
		if RecvLogStride(n) != want {
			t.Errorf("RecvLogStride(%d) = %d", n, RecvLogStride(n))
		}
	}
	c := CQE{Opcode: CQEReqErr, SopDropQPN: WQEOpLSO<<24 | 0x800}
	if c.ErrWQEOpcode() != WQEOpLSO {
		t.Fatal("s_wqe_opcode")
	}
}

func TestReservedClear(t *testing.T) {
	for _, g := range goldens() {
		if g.in == nil {
			continue
		}
		ok, err := ReservedClear(g.wire)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", g.name, ok, err)
		}
	}
	b := (&CreateSQIn{}).AppendTo(nil)
	b[0x08] = 1 // CREATE_SQ has no object number at 0x08
	if ok, err := ReservedClear(b); err != nil || ok {
		t.Fatal("reserved bit not seen", ok, err)
	}
	if _, err := ReservedClear(hdr(16, OpQueryAdapter, 0)); !errors.Is(err, ErrOpcode) {
		t.Fatal(err)
	}
}
