package hvpci_test

import (
	"testing"
	"time"

	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// FuzzHostPackets sends arbitrary in-band packets from the host to a bus
// that is up, and checks that the guest handles each one (no panic, no
// hang) and that config access keeps answering.
func FuzzHostPackets(f *testing.F) {
	slot := vpciwire.MakeSlot(0, 0)
	desc := newHostFunc(slot, 77, 0x15b3, 0x101a).desc
	other := desc
	other.Slot, other.Serial = vpciwire.MakeSlot(2, 1), 78
	f.Add((&vpciwire.BusRelations{Devices: []vpciwire.Description{desc}}).Encode())
	f.Add((&vpciwire.BusRelations{V2: true, Devices: []vpciwire.Description{desc, other}}).Encode())
	f.Add((&vpciwire.BusRelations{}).Encode())
	f.Add((&vpciwire.SlotMessage{MsgType: vpciwire.MsgEject, Slot: slot}).Encode())
	f.Add((&vpciwire.InvalidateBlock{Slot: slot, BlockMask: 1}).Encode())
	f.Add([]byte{0x00, 0x00, 0x49, 0x42, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})

	h := newFakeHost(f, all, newHostFunc(slot, 77, 0x15b3, 0x101a))
	w := newWorld(f, h, hvpci.Config{EjectTimeout: 100 * time.Millisecond})
	b := w.ready(f)
	if err := b.Err(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2048 {
			data = data[:2048]
		}
		before := b.Stats().Messages
		h.mu.Lock()
		ch := h.ch
		h.mu.Unlock()
		if err := ch.SendInBand(0, false, data); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for b.Stats().Messages == before {
			if time.Now().After(deadline) {
				t.Fatal("guest did not handle the packet")
			}
			time.Sleep(100 * time.Microsecond)
		}
		for _, fn := range b.Functions() {
			_ = fn.Config().Read16(pci.Command)
		}
	})
}
