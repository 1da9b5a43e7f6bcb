package vpci

import (
	"testing"

	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// FuzzGuestMessages feeds arbitrary guest messages to the bus's protocol
// core in every state (version negotiated or not, D0 or not, an ejection
// pending or not) and arbitrary accesses to the config window. Nothing may
// panic, every reply must at least carry a status, and the window must
// answer unclaimed reads with all-ones.
func FuzzGuestMessages(f *testing.F) {
	seeds := []vpciwire.Message{
		&vpciwire.QueryProtocolVersion{Version: vpciwire.Version1_4},
		&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations},
		&vpciwire.Bare{MsgType: vpciwire.MsgBusD0Exit},
		&vpciwire.BusD0Entry{MMIOBase: 0xF8000000},
		&vpciwire.SlotMessage{MsgType: vpciwire.MsgQueryResourceRequirements},
		&vpciwire.SlotMessage{MsgType: vpciwire.MsgResourcesReleased},
		&vpciwire.ResourcesAssigned{Variant: 2},
		&vpciwire.CreateInterrupt{Variant: 3, Vector: 0x30, VectorCount: 1, Processors: []uint16{1}},
		&vpciwire.CreateInterrupt{Variant: 1, Vector: 0x30, VectorCount: 1, CPUMask: 4},
		&vpciwire.DeleteInterrupt{},
		&vpciwire.EjectionComplete{},
		&vpciwire.PowerStateChange{State: vpciwire.PowerD0},
		&vpciwire.WriteBlock{Data: []byte{1, 2, 3}},
	}
	for i, m := range seeds {
		f.Add(uint8(i), m.Encode(), uint16(0x1000), uint8(4), uint32(0))
	}
	f.Fuzz(func(t *testing.T, state uint8, msg []byte, off uint16, size uint8, val uint32) {
		b := New(Config{})
		tf := NewTestFunction(7)
		if err := b.AddFunctionAt(0, tf); err != nil {
			t.Fatal(err)
		}
		if state&1 != 0 {
			b.version = vpciwire.Version1_1 + vpciwire.Version(state>>4&7)
		}
		if state&2 != 0 {
			b.d0, b.mmioBase = true, 0xF8000000
		}
		if state&4 != 0 {
			b.funcs[0].ejecting = make(chan struct{})
		}
		h := &handler{b: b}
		reply, _ := h.handle(msg)
		if reply != nil {
			if _, err := vpciwire.DecodeStatusReply(reply); err != nil {
				t.Fatalf("reply % x: %v", reply, err)
			}
		}
		// Twice: once as the message arrived, once in whatever state
		// it left behind.
		h.handle(msg)

		w := b.Window(0xF8000000)
		w.WriteMMIO(0, 4, uint32(state>>3))
		w.WriteMMIO(uint64(off), int(size), val)
		v := w.ReadMMIO(uint64(off), int(size))
		if int(size) >= 1 && int(size) <= 4 {
			if _, _, err := vpciwire.ClassifyWindowAccess(uint64(off), int(size), false); err != nil && v != sizeMask(int(size)) {
				t.Fatalf("refused access read %#x", v)
			}
		}
		_ = b.relationsLocked().Encode()
	})
}
