package vpciwire

import (
	"errors"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	rel := func(n uint32, descs, extra int, typ MessageType, size int) []byte {
		w := lay(8+descs*size+extra, typ)
		w.u32(4, n)
		return w
	}
	cases := []struct {
		name string
		b    []byte
		dec  func([]byte) (Message, error)
		want error
	}{
		{"empty", nil, Decode, ErrShort},
		{"three bytes", []byte{1, 2, 3}, Decode, ErrShort},
		{"unknown", lay(8, MessageBase+0x7F), Decode, ErrUnknownType},
		{"invalidate device (layout unknown)", lay(8, MsgInvalidateDevice), Decode, ErrUnknownType},
		{"relations to host", rel(0, 0, 0, MsgBusRelations, 20), DecodeFromGuest, ErrWrongDirection},
		{"d0 entry to guest", lay(16, MsgBusD0Entry), DecodeFromHost, ErrWrongDirection},
		{"d0 entry short", lay(15, MsgBusD0Entry), Decode, ErrShort},
		{"relations short header", lay(7, MsgBusRelations), Decode, ErrShort},
		{"relations count past bytes", rel(2, 1, 0, MsgBusRelations, 20), DecodeFromHost, ErrInconsistent},
		{"relations count huge", rel(0xFFFFFFFF, 1, 0, MsgBusRelations, 20), DecodeFromHost, ErrInconsistent},
		{"relations count below bytes", rel(1, 2, 0, MsgBusRelations, 20), DecodeFromHost, ErrInconsistent},
		{"relations2 with v1 sizes", rel(2, 2, 0, MsgBusRelations2, 20), DecodeFromHost, ErrInconsistent},
		{"relations2 trailing 8", rel(1, 1, 8, MsgBusRelations2, 28), DecodeFromHost, ErrInconsistent},
		{"create interrupt2 linux-short", lay(77, MsgCreateInterrupt2), Decode, ErrShort},
		{"create interrupt3 processors", func() []byte { w := lay(84, MsgCreateInterrupt3); w.u16(16, 33); return w }(), Decode, ErrInconsistent},
		{"create interrupt2 processors", func() []byte { w := lay(80, MsgCreateInterrupt2); w.u16(12, 0xFFFF); return w }(), Decode, ErrInconsistent},
		{"read block too long", func() []byte { w := lay(16, MsgReadBlock); w.u32(12, 129); return w }(), Decode, ErrInconsistent},
		{"write block past bytes", func() []byte { w := lay(20, MsgWriteBlock); w.u32(12, 5); return w }(), Decode, ErrInconsistent},
		{"write block too long", func() []byte { w := lay(200, MsgWriteBlock); w.u32(12, 129); return w }(), Decode, ErrInconsistent},
		{"assigned short", lay(135, MsgResourcesAssigned), Decode, ErrShort},
		{"assigned msi past bytes", func() []byte { w := lay(148, MsgResourcesAssigned2); w.u32(128, 1); return w }(), Decode, ErrInconsistent},
		{"assigned msi count huge", func() []byte { w := lay(202, MsgResourcesAssigned); w.u32(128, 495); return w }(), Decode, ErrInconsistent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.dec(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v (%v), want %v", m, err, c.want)
			}
		})
	}
}

func TestRelationsPadding(t *testing.T) {
	w := lay(8+20+4, MsgBusRelations) // 28 bytes padded to 32 by VMBus
	w.u32(4, 1)
	descWire(w, 8, descA, false)
	m, err := DecodeFromHost(w)
	if err != nil {
		t.Fatal(err)
	}
	if r := m.(*BusRelations); len(r.Devices) != 1 || r.Devices[0] != descA {
		t.Fatalf("%+v", r)
	}
}

func TestAssignedOpenVMMForm(t *testing.T) {
	w := lay(136+2*72, MsgResourcesAssigned2)
	w.u32(128, 2)
	m, err := DecodeFromGuest(w)
	if err != nil {
		t.Fatal(err)
	}
	ra := m.(*ResourcesAssigned)
	if ra.MSICount != 2 || ra.EncodedLen() != 280 {
		t.Fatalf("%+v len %d", ra, ra.EncodedLen())
	}
	w = lay(136, MsgResourcesAssigned)
	if _, err := DecodeFromGuest(w); err != nil {
		t.Fatal(err)
	}
}

func TestLinuxCreateInterruptSizes(t *testing.T) {
	w := lay(78, MsgCreateInterrupt2)
	w.u16(12, 32)
	w.u16(14+31*2, 9)
	m, err := DecodeFromGuest(w)
	if err != nil {
		t.Fatal(err)
	}
	if ci := m.(*CreateInterrupt); len(ci.Processors) != 32 || ci.Processors[31] != 9 {
		t.Fatalf("%+v", ci)
	}
	w = lay(82, MsgCreateInterrupt3)
	w.u16(16, 32)
	w.u16(18+31*2, 11)
	m, err = DecodeFromGuest(w)
	if err != nil {
		t.Fatal(err)
	}
	if ci := m.(*CreateInterrupt); len(ci.Processors) != 32 || ci.Processors[31] != 11 {
		t.Fatalf("%+v", ci)
	}
}

func TestSlot(t *testing.T) {
	s := MakeSlot(0x1F, 7)
	if s != 0xFF || s.Device() != 0x1F || s.Function() != 7 || !s.Valid() {
		t.Fatalf("%#x", uint32(s))
	}
	if s.DevFn() != 0xFF || SlotFromDevFn(0x0A) != MakeSlot(1, 2) || MakeSlot(1, 2).DevFn() != 0x0A {
		t.Fatal("devfn conversion")
	}
	if uint32(MakeSlot(1, 2)) != 0x41 || MakeSlot(1, 2).String() != "01.2" {
		t.Fatal(MakeSlot(1, 2))
	}
	if Slot(0x100).Valid() {
		t.Fatal("reserved bits accepted")
	}
	for devfn := range 256 {
		if SlotFromDevFn(uint8(devfn)).DevFn() != uint8(devfn) {
			t.Fatal(devfn)
		}
	}
}

func TestWindow(t *testing.T) {
	if off, err := WindowOffset(0x34, 1); err != nil || off != 0x1034 {
		t.Fatal(off, err)
	}
	for _, c := range []struct{ where, size int }{{0x1000, 1}, {-1, 1}, {0xFFE, 4}, {2, 4}, {1, 2}, {0, 3}, {0, 8}} {
		if _, err := WindowOffset(c.where, c.size); !errors.Is(err, ErrWindow) {
			t.Errorf("%+v accepted", c)
		}
	}
	if k, _, err := ClassifyWindowAccess(0, 4, true); err != nil || k != AccessSlotSelect {
		t.Fatal(k, err)
	}
	if k, w, err := ClassifyWindowAccess(0x1FFC, 4, false); err != nil || k != AccessConfig || w != 0xFFC {
		t.Fatal(k, w, err)
	}
	if k, w, err := ClassifyWindowAccess(0x1001, 2, true); err != nil || k != AccessConfig || w != 1 {
		t.Fatal(k, w, err)
	}
	for _, c := range []struct {
		off   uint64
		size  int
		write bool
	}{{0, 4, false}, {0, 2, true}, {4, 4, true}, {0x1003, 2, true}, {0x1002, 4, false}, {0x1000, 3, false}, {0x2000, 1, false}, {1 << 63, 4, true}} {
		if _, _, err := ClassifyWindowAccess(c.off, c.size, c.write); !errors.Is(err, ErrWindow) {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestDescriptionConfigRead(t *testing.T) {
	d := descA
	if v, ok := d.ConfigRead(0, 4); !ok || v != 0x101A15B3 {
		t.Fatalf("%#x", v)
	}
	if v, ok := d.ConfigRead(2, 2); !ok || v != 0x101A {
		t.Fatalf("%#x", v)
	}
	if v, ok := d.ConfigRead(8, 4); !ok || v != 0x02000080 {
		t.Fatalf("%#x", v)
	}
	if v, ok := d.ConfigRead(0x0B, 1); !ok || v != 0x02 {
		t.Fatalf("%#x", v)
	}
	if v, ok := d.ConfigRead(0x2E, 2); !ok || v != 0x0001 {
		t.Fatalf("%#x", v)
	}
	if _, ok := d.ConfigRead(0x04, 2); ok {
		t.Fatal("command served from description")
	}
}

func TestVersionString(t *testing.T) {
	if Version1_4.String() != "1.4" || MsgBusRelations2.String() != "BUS_RELATIONS2" || MsgCreateInterrupt3.Direction() != GuestToHost {
		t.Fatal("names")
	}
}
