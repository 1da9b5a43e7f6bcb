package vpciwire

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// wire builds expected bytes field by field from the documented offsets,
// independently of the encoders.
type wire []byte

func lay(size int, t MessageType) wire {
	w := make(wire, size)
	if size >= 4 {
		w.u32(0, uint32(t))
	}
	return w
}
func (w wire) u8(off int, v uint8)   { w[off] = v }
func (w wire) u16(off int, v uint16) { binary.LittleEndian.PutUint16(w[off:], v) }
func (w wire) u32(off int, v uint32) { binary.LittleEndian.PutUint32(w[off:], v) }
func (w wire) u64(off int, v uint64) { binary.LittleEndian.PutUint64(w[off:], v) }

type golden struct {
	name string
	wire wire
	want Message
}

var descA = Description{
	VendorID: 0x15B3, DeviceID: 0x101A, Revision: 0x80, ProgIf: 0x00, SubClass: 0x00, BaseClass: 0x02,
	SubsystemVendorID: 0x15B3, SubsystemID: 0x0001, Slot: MakeSlot(0, 0), Serial: 0x11223344,
}

func descWire(w wire, off int, d Description, v2 bool) {
	w.u16(off+0, d.VendorID)
	w.u16(off+2, d.DeviceID)
	w.u8(off+4, d.Revision)
	w.u8(off+5, d.ProgIf)
	w.u8(off+6, d.SubClass)
	w.u8(off+7, d.BaseClass)
	w.u32(off+8, uint32(d.SubsystemVendorID)|uint32(d.SubsystemID)<<16)
	w.u32(off+12, uint32(d.Slot))
	w.u32(off+16, d.Serial)
	if v2 {
		w.u32(off+20, d.Flags)
		w.u16(off+24, d.VirtualNUMANode)
	}
}

func goldens() []golden {
	var g []golden

	w := lay(8, MsgQueryProtocolVersion)
	w.u32(4, 0x00010004)
	g = append(g, golden{"query version", w, &QueryProtocolVersion{Version: Version1_4}})

	w = lay(16, MsgBusD0Entry)
	w.u64(8, 0xFE0000000)
	g = append(g, golden{"d0 entry", w, &BusD0Entry{MMIOBase: 0xFE0000000}})

	g = append(g, golden{"d0 exit", lay(4, MsgBusD0Exit), &Bare{MsgType: MsgBusD0Exit}})
	g = append(g, golden{"query relations", lay(4, MsgQueryBusRelations), &Bare{MsgType: MsgQueryBusRelations}})

	w = lay(8+2*20, MsgBusRelations)
	w.u32(4, 2)
	descB := descA
	descB.Slot, descB.Serial = MakeSlot(1, 2), 7
	descWire(w, 8, descA, false)
	descWire(w, 28, descB, false)
	g = append(g, golden{"bus relations", w, &BusRelations{Devices: []Description{descA, descB}}})

	w = lay(8+28, MsgBusRelations2)
	w.u32(4, 1)
	d2 := descA
	d2.Flags, d2.VirtualNUMANode = DescriptionFlagNUMA, 3
	descWire(w, 8, d2, true)
	g = append(g, golden{"bus relations2", w, &BusRelations{V2: true, Devices: []Description{d2}}})

	g = append(g, golden{"bus relations empty", func() wire { w := lay(8, MsgBusRelations); return w }(), &BusRelations{}})

	w = lay(8, MsgQueryResourceRequirements)
	w.u32(4, 0x41) // device 1, function 2
	g = append(g, golden{"query resources", w, &SlotMessage{MsgType: MsgQueryResourceRequirements, Slot: MakeSlot(1, 2)}})

	w = lay(8, MsgEject)
	w.u32(4, 3)
	g = append(g, golden{"eject", w, &SlotMessage{MsgType: MsgEject, Slot: 3}})

	w = lay(8, MsgResourcesReleased)
	g = append(g, golden{"released", w, &SlotMessage{MsgType: MsgResourcesReleased}})

	w = lay(12, MsgEjectionComplete)
	w.u32(4, 5)
	g = append(g, golden{"ejection complete", w, &EjectionComplete{Slot: 5}})

	w = lay(16, MsgPowerStateChange)
	w.u32(8, PowerD3)
	g = append(g, golden{"power", w, &PowerStateChange{State: PowerD3}})

	w = lay(16, MsgInvalidateBlock)
	w.u32(4, 1)
	w.u64(8, 0x8000000000000001)
	g = append(g, golden{"invalidate block", w, &InvalidateBlock{Slot: 1, BlockMask: 0x8000000000000001}})

	w = lay(16, MsgReadBlock)
	w.u32(4, 9)
	w.u32(8, 1)
	w.u32(12, 128)
	g = append(g, golden{"read block", w, &ReadBlock{BlockID: 9, Slot: 1, Length: 128}})

	w = lay(19, MsgWriteBlock)
	w.u32(4, 2)
	w.u32(12, 3)
	copy(w[16:], "abc")
	g = append(g, golden{"write block", w, &WriteBlock{BlockID: 2, Data: []byte("abc")}})

	w = lay(24, MsgCreateInterrupt)
	w.u32(4, 0)
	w.u8(8, 0x30)
	w.u8(9, DeliveryFixed)
	w.u16(10, 1)
	w.u64(16, 0x3)
	g = append(g, golden{"create interrupt", w, &CreateInterrupt{Variant: 1, Vector: 0x30, VectorCount: 1, CPUMask: 3}})

	w = lay(80, MsgCreateInterrupt2)
	w.u8(8, 0x31)
	w.u8(9, DeliveryLowestPriority)
	w.u16(10, 1)
	w.u16(12, 2)
	w.u16(14, 4)
	w.u16(16, 5)
	g = append(g, golden{"create interrupt2", w, &CreateInterrupt{Variant: 2, Vector: 0x31, DeliveryMode: 1, VectorCount: 1, Processors: []uint16{4, 5}}})

	w = lay(84, MsgCreateInterrupt3)
	w.u32(4, 1)
	w.u32(8, 0x2001)
	w.u16(14, 32)
	w.u16(16, 1)
	w.u16(18, 7)
	g = append(g, golden{"create interrupt3", w, &CreateInterrupt{Variant: 3, Slot: 1, Vector: 0x2001, VectorCount: 32, Processors: []uint16{7}}})

	w = lay(24, MsgDeleteInterrupt)
	w.u16(10, 1)
	w.u32(12, 0x4041)
	w.u64(16, 0xFEE00000)
	g = append(g, golden{"delete interrupt", w, &DeleteInterrupt{Interrupt: TranslatedInterrupt{VectorCount: 1, Data: 0x4041, Address: 0xFEE00000}}})

	w = lay(148, MsgResourcesAssigned)
	w.u32(4, 1)
	g = append(g, golden{"resources assigned (Linux 148)", w, &ResourcesAssigned{Variant: 1, Slot: 1}})

	w = lay(202, MsgResourcesAssigned2)
	w.u8(8+20, ResourceMemoryLarge)
	w.u16(8+20+2, ResourceFlagLarge48)
	w.u64(8+20+4, 0x2000000000)
	w.u32(8+20+12, 0x10)
	g = append(g, golden{"resources assigned2 (Linux 202)", w, &ResourcesAssigned{Variant: 2, Memory: [6]PartialResourceDescriptor{
		1: {ResourceType: ResourceMemoryLarge, Flags: ResourceFlagLarge48, Address: 0x2000000000, AdjustedLen: 0x10}}}})
	return g
}

func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			if got := g.want.Encode(); !bytes.Equal(got, g.wire) {
				t.Fatalf("encode\n got %x\nwant %x", got, []byte(g.wire))
			}
			if n := g.want.EncodedLen(); n != len(g.wire) {
				t.Fatalf("EncodedLen %d, want %d", n, len(g.wire))
			}
			if got := g.want.AppendTo([]byte{0xAA}); !bytes.Equal(got[1:], g.wire) || got[0] != 0xAA {
				t.Fatalf("AppendTo clobbered or differs")
			}
			m, err := Decode(g.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, g.want) {
				t.Fatalf("decode\n got %+v\nwant %+v", m, g.want)
			}
			var dec func([]byte) (Message, error)
			var wrong func([]byte) (Message, error)
			if g.want.Type().Direction() == HostToGuest {
				dec, wrong = DecodeFromHost, DecodeFromGuest
			} else {
				dec, wrong = DecodeFromGuest, DecodeFromHost
			}
			if _, err := dec(g.wire); err != nil {
				t.Fatal(err)
			}
			if _, err := wrong(g.wire); err == nil {
				t.Fatal("decoded in the wrong direction")
			}
		})
	}
}

func TestGoldenReplies(t *testing.T) {
	w := lay(28, 0)
	w.u32(4, 0xFFF00000)
	w.u32(8, 0xFFFFC00C)
	w.u32(12, 0xFFFFFFFF)
	r, err := DecodeResourceRequirementsReply(w)
	if err != nil || r.ProbedBAR != [6]uint32{0xFFF00000, 0xFFFFC00C, 0xFFFFFFFF} || !bytes.Equal(r.Encode(), w) {
		t.Fatalf("requirements reply %+v %v", r, err)
	}

	w = lay(24, 0)
	w.u16(10, 1)
	w.u32(12, 0x4031)
	w.u64(16, 0xFEE01000)
	c, err := DecodeCreateInterruptReply(w)
	want := TranslatedInterrupt{VectorCount: 1, Data: 0x4031, Address: 0xFEE01000}
	if err != nil || c.Interrupt != want || !bytes.Equal(c.Encode(), w) {
		t.Fatalf("create interrupt reply %+v %v", c, err)
	}

	w = lay(8, 0)
	w.u32(0, uint32(StatusRevisionMismatch))
	w.u32(4, uint32(Version1_3))
	v, err := DecodeVersionReply(w)
	if err != nil || v.Status != StatusRevisionMismatch || !v.Status.Failed() || v.Version != Version1_3 || !bytes.Equal(v.Encode(), w) {
		t.Fatalf("version reply %+v %v", v, err)
	}
	if v, err := DecodeVersionReply(w[:4]); err != nil || v.Version != 0 {
		t.Fatalf("4-byte version reply %+v %v", v, err)
	}

	w = lay(16, 0)
	w.u32(4, 2)
	w.u32(8, PowerD0)
	p, err := DecodePowerStateReply(w)
	if err != nil || *p != (PowerStateReply{Slot: 2, State: PowerD0}) || !bytes.Equal(p.Encode(), w) {
		t.Fatalf("power reply %+v %v", p, err)
	}

	w = lay(8, 0)
	copy(w[4:], "wxyz")
	rb, err := DecodeReadBlockReply(w, 4)
	if err != nil || string(rb.Data) != "wxyz" || !bytes.Equal(rb.Encode(), w) {
		t.Fatalf("read block reply %+v %v", rb, err)
	}
	if rb, err := DecodeReadBlockReply(append(w, 0, 0, 0, 0), 2); err != nil || string(rb.Data) != "wx" {
		t.Fatalf("padded read block reply %+v %v", rb, err)
	}
	if rb, err := DecodeReadBlockReply(w, 128); err != nil || string(rb.Data) != "wxyz" {
		t.Fatalf("short read block reply %+v %v", rb, err)
	}
	w.u32(0, uint32(StatusBadData))
	if rb, err := DecodeReadBlockReply(w, 4); err != nil || rb.Data != nil {
		t.Fatalf("failed read block reply %+v %v", rb, err)
	}

	w = lay(136, 0)
	w.u32(4, 1)
	w.u8(8+2*20, ResourceMemory)
	w.u64(8+2*20+4, 0xFE000000)
	w.u32(8+2*20+12, 0x4000)
	w.u32(128, 0)
	ra, err := DecodeResourcesAssignedReply(w)
	if err != nil || ra.Slot != 1 || ra.Memory[2].Address != 0xFE000000 || ra.Memory[2].Length() != 0x4000 || !bytes.Equal(ra.Encode(), w) {
		t.Fatalf("resources assigned reply %+v %v", ra, err)
	}
	if _, err := DecodeResourcesAssignedReply(w[:135]); err == nil {
		t.Fatal("short resources assigned reply accepted")
	}
	if s, err := DecodeStatusReply([]byte{0x0B, 0x09, 0x00, 0xC0}); err != nil || s.Status != StatusBadData {
		t.Fatalf("status reply %+v %v", s, err)
	}
}
