package vpci_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

const serial = 0x12345678

func TestNegotiationDefault(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	if off := g.Offer; off.MMIOMegabytes != vpci.DefaultMMIOMegabytes {
		t.Errorf("offer mmio megabytes %d", off.MMIOMegabytes)
	}
	if v := g.negotiate(); v != vpciwire.Version1_4 {
		t.Fatalf("negotiated %v", v)
	}
	g.send(&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}, false)
	if r := g.relations(); !r.V2 || len(r.Devices) != 1 {
		t.Fatalf("relations %+v", r)
	}
	if st := e.bus.State(); st.Version != vpciwire.Version1_4 || st.D0 || !st.Open {
		t.Fatalf("state %+v", st)
	}
}

func TestNegotiationFallback(t *testing.T) {
	e := newEnv(t, vpci.Config{Versions: []vpciwire.Version{vpciwire.Version1_2}}, vpci.NewTestFunction(serial))
	g := e.connect()
	for _, v := range []vpciwire.Version{vpciwire.Version1_4, vpciwire.Version1_3} {
		r, err := vpciwire.DecodeVersionReply(g.Completion(g.send(&vpciwire.QueryProtocolVersion{Version: v}, true)))
		if err != nil || r.Status != vpciwire.StatusRevisionMismatch {
			t.Fatalf("%v: %+v %v", v, r, err)
		}
	}
	if v := g.negotiate(); v != vpciwire.Version1_2 {
		t.Fatalf("negotiated %v", v)
	}
	rel := g.bringUp()
	if rel.V2 {
		t.Fatal("BUS_RELATIONS2 at 1.2")
	}
}

func TestMessagesBeforeVersion(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	if st := g.status(g.send(&vpciwire.BusD0Entry{MMIOBase: windowBase}, true)); st != vpciwire.StatusNotSupported {
		t.Fatalf("D0 entry before version: %v", st)
	}
	g.send(&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}, false)
	g.noPacket()
	if e.bus.State().D0 {
		t.Fatal("D0 before version")
	}
}

func TestBusRelationsBytes(t *testing.T) {
	e := newEnv(t, vpci.Config{Versions: []vpciwire.Version{vpciwire.Version1_2}}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.negotiate()
	g.send(&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}, false)
	p := g.MustRead()
	want := []byte{
		0x00, 0x00, 0x49, 0x42, // BUS_RELATIONS
		1, 0, 0, 0, // device_count
		0xB3, 0x15, 0x1A, 0x10, // vendor, device
		1, 0, 0, 2, // revision, prog-if, subclass, base class
		0xB3, 0x15, 0x01, 0x00, // subsystem vendor | id<<16
		0, 0, 0, 0, // win_slot 0
		0x78, 0x56, 0x34, 0x12, // serial
	}
	if !bytes.HasPrefix(p.Payload, want) || len(p.Payload) > len(want)+7 {
		t.Fatalf("relations\n got % x\nwant % x", p.Payload, want)
	}

	// Version 1.3 and later: description2, 28 bytes.
	e2 := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g2 := e2.connect()
	g2.negotiate()
	g2.send(&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}, false)
	p2 := g2.MustRead()
	if binary.LittleEndian.Uint32(p2.Payload) != uint32(vpciwire.MsgBusRelations2) || len(p2.Payload) < 8+28 ||
		!bytes.Equal(p2.Payload[8:28], want[8:28]) {
		t.Fatalf("relations2 % x", p2.Payload)
	}
}

func TestResources(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.negotiate()
	// Assigning before D0 is refused.
	ra := &vpciwire.ResourcesAssigned{Variant: 2, Slot: 0}
	if st := g.status(g.send(ra, true)); st != vpciwire.StatusNotSupported {
		t.Fatalf("assigned before D0: %v", st)
	}
	g.send(&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}, false)
	g.relations()
	r, err := vpciwire.DecodeResourceRequirementsReply(g.Completion(g.send(
		&vpciwire.SlotMessage{MsgType: vpciwire.MsgQueryResourceRequirements, Slot: 0}, true)))
	if err != nil || r.Status != vpciwire.StatusSuccess {
		t.Fatalf("requirements %+v %v", r, err)
	}
	want := [6]uint32{^uint32(vpci.TestBARSize-1) | pci.BARMemType64 | pci.BARMemPrefetch, ^uint32(0)}
	if r.ProbedBAR != want {
		t.Fatalf("probed %#x, want %#x", r.ProbedBAR, want)
	}
	bars, err := pci.DecodeProbedBARs(r.ProbedBAR)
	if err != nil || len(bars) != 1 || bars[0].Size != vpci.TestBARSize || !bars[0].Is64 {
		t.Fatalf("decoded %+v %v", bars, err)
	}
	r, _ = vpciwire.DecodeResourceRequirementsReply(g.Completion(g.send(
		&vpciwire.SlotMessage{MsgType: vpciwire.MsgQueryResourceRequirements, Slot: vpciwire.MakeSlot(7, 0)}, true)))
	if r.Status != vpciwire.StatusBadData {
		t.Fatalf("unknown slot: %v", r.Status)
	}

	id := g.send(&vpciwire.BusD0Entry{MMIOBase: windowBase}, true)
	g.relations()
	if st := g.status(id); st != vpciwire.StatusSuccess {
		t.Fatal(st)
	}
	if st := e.bus.State(); !st.D0 || st.MMIOBase != windowBase {
		t.Fatalf("state %+v", st)
	}
	ra.Memory[0] = vpciwire.PartialResourceDescriptor{ResourceType: vpciwire.ResourceMemory, Address: 0x4_0000_0000, AdjustedLen: vpci.TestBARSize}
	rr, err := vpciwire.DecodeResourcesAssignedReply(g.Completion(g.send(ra, true)))
	if err != nil || rr.Status != vpciwire.StatusSuccess || rr.Memory[0].Address != 0x4_0000_0000 {
		t.Fatalf("assigned reply %+v %v", rr, err)
	}
	if got, ok := e.bus.Resources(0); !ok || got.Memory[0].Address != 0x4_0000_0000 {
		t.Fatalf("recorded %+v %v", got, ok)
	}
	ra.Slot = 9
	if st := g.status(g.send(ra, true)); st != vpciwire.StatusBadData {
		t.Fatalf("unknown slot: %v", st)
	}
	// Released: forgotten.
	g.send(&vpciwire.SlotMessage{MsgType: vpciwire.MsgResourcesReleased, Slot: 0}, false)
	if st := g.status(g.send(&vpciwire.Bare{MsgType: vpciwire.MsgBusD0Exit}, true)); st != vpciwire.StatusSuccess {
		t.Fatal(st)
	}
	if _, ok := e.bus.Resources(0); ok {
		t.Fatal("resources kept after release")
	}
	if st := e.bus.State(); st.D0 {
		t.Fatal("D0 after exit")
	}
}

func TestInterrupts(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.bringUp()
	ci := &vpciwire.CreateInterrupt{Variant: 3, Slot: 0, Vector: 0x31, VectorCount: 1, Processors: []uint16{2}}
	r, err := vpciwire.DecodeCreateInterruptReply(g.Completion(g.send(ci, true)))
	if err != nil || r.Status != vpciwire.StatusSuccess {
		t.Fatalf("create: %+v %v", r, err)
	}
	if r.Interrupt.Address != 0xFEE02000 || r.Interrupt.Data != 0x31 || r.Interrupt.VectorCount != 1 {
		t.Fatalf("translated %+v", r.Interrupt)
	}
	ci2 := &vpciwire.CreateInterrupt{Variant: 2, Slot: 0, Vector: 0x40, VectorCount: 4, Processors: []uint16{0}}
	if r2, _ := vpciwire.DecodeCreateInterruptReply(g.Completion(g.send(ci2, true))); r2.Status != vpciwire.StatusSuccess {
		t.Fatal(r2.Status)
	}
	irqs := e.bus.Interrupts(0)
	if len(irqs) != 2 || irqs[0].Request.Vector != 0x31 {
		t.Fatalf("recorded %+v", irqs)
	}
	for _, bad := range []*vpciwire.CreateInterrupt{
		{Variant: 3, Slot: 5, Vector: 0x31, VectorCount: 1, Processors: []uint16{0}},   // no function
		{Variant: 3, Slot: 0, Vector: 0x31, VectorCount: 0, Processors: []uint16{0}},   // no vectors
		{Variant: 3, Slot: 0, Vector: 0x1000, VectorCount: 1, Processors: []uint16{0}}, // vector too big
		{Variant: 2, Slot: 0, Vector: 0x31, VectorCount: 1},                            // no processor
	} {
		if r, _ := vpciwire.DecodeCreateInterruptReply(g.Completion(g.send(bad, true))); r.Status != vpciwire.StatusBadData {
			t.Errorf("%+v: %v", bad, r.Status)
		}
	}
	// Linux deletes without asking for a completion.
	g.send(&vpciwire.DeleteInterrupt{Slot: 0, Interrupt: r.Interrupt}, false)
	if st := g.status(g.send(&vpciwire.DeleteInterrupt{Slot: 0, Interrupt: r.Interrupt}, true)); st != vpciwire.StatusBadData {
		t.Fatalf("second delete: %v", st)
	}
	if irqs := e.bus.Interrupts(0); len(irqs) != 1 || irqs[0].Request.Vector != 0x40 {
		t.Fatalf("after delete %+v", irqs)
	}
}

func TestInterruptVariantNeedsVersion(t *testing.T) {
	e := newEnv(t, vpci.Config{Versions: []vpciwire.Version{vpciwire.Version1_2}}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.bringUp()
	ci := &vpciwire.CreateInterrupt{Variant: 3, Slot: 0, Vector: 0x31, VectorCount: 1, Processors: []uint16{0}}
	if r, _ := vpciwire.DecodeCreateInterruptReply(g.Completion(g.send(ci, true))); r.Status != vpciwire.StatusNotSupported {
		t.Fatalf("CREATE_INTERRUPT3 at 1.2: %v", r.Status)
	}
}

func TestWindowConfig(t *testing.T) {
	f := vpci.NewTestFunction(serial)
	e := newEnv(t, vpci.Config{}, f)
	w := e.bus.Window(windowBase)
	if v := w.ReadMMIO(vpciwire.WindowConfigPage, 4); v != ^uint32(0) {
		t.Fatalf("read before D0: %#x", v)
	}
	g := e.connect()
	g.bringUp()
	w.WriteMMIO(vpciwire.WindowSlotSelect, 4, uint32(vpciwire.MakeSlot(0, 0)))
	if v := w.ReadMMIO(vpciwire.WindowConfigPage+pci.VendorID, 4); v != vpci.TestDeviceID<<16|vpci.TestVendorID {
		t.Fatalf("vendor/device %#x", v)
	}
	if v := w.ReadMMIO(vpciwire.WindowConfigPage+pci.DeviceID, 2); v != vpci.TestDeviceID {
		t.Fatalf("device %#x", v)
	}
	if v := w.ReadMMIO(vpciwire.WindowConfigPage+1, 2); v != 0x1A15 { // inside one dword, unaligned
		t.Fatalf("unaligned word %#x", v)
	}
	if v := w.ReadMMIO(vpciwire.WindowConfigPage+3, 2); v != 0xFFFF { // crosses a dword
		t.Fatalf("crossing %#x", v)
	}
	if v := w.ReadMMIO(vpciwire.WindowSlotSelect, 4); v != ^uint32(0) {
		t.Fatalf("slot register read %#x", v)
	}
	// Config writes land in the function; the capability list is walkable
	// through the window.
	cs := windowConfig{w}
	pci.EnableMemory(cs, true)
	if f.Cfg.Read16(pci.Command)&pci.CommandMemory == 0 {
		t.Fatal("command write lost")
	}
	off, err := pci.FindCapability(cs, pci.CapMSIX)
	if err != nil {
		t.Fatal(err)
	}
	if x, err := pci.ParseMSIX(cs, off); err != nil || x.TableSize != vpci.TestMSIXVectors {
		t.Fatalf("MSI-X %+v %v", x, err)
	}
	// Another base, or an empty slot: nothing decodes.
	if v := e.bus.Window(windowBase+0x2000).ReadMMIO(vpciwire.WindowConfigPage, 4); v != ^uint32(0) {
		t.Fatalf("other base %#x", v)
	}
	w.WriteMMIO(vpciwire.WindowSlotSelect, 4, uint32(vpciwire.MakeSlot(3, 0)))
	if v := w.ReadMMIO(vpciwire.WindowConfigPage, 4); v != ^uint32(0) {
		t.Fatalf("empty slot %#x", v)
	}
}

// windowConfig is a guest-side config accessor over the window, as
// pci/hvpci would build one (the slot is already selected).
type windowConfig struct{ w pci.MMIO }

func (c windowConfig) at(off int) uint64   { return vpciwire.WindowConfigPage + uint64(off) }
func (c windowConfig) Read8(off int) uint8 { return uint8(c.w.ReadMMIO(c.at(off), 1)) }
func (c windowConfig) Read16(off int) uint16 {
	return uint16(c.w.ReadMMIO(c.at(off), 2))
}
func (c windowConfig) Read32(off int) uint32     { return c.w.ReadMMIO(c.at(off), 4) }
func (c windowConfig) Write8(off int, v uint8)   { c.w.WriteMMIO(c.at(off), 1, uint32(v)) }
func (c windowConfig) Write16(off int, v uint16) { c.w.WriteMMIO(c.at(off), 2, uint32(v)) }
func (c windowConfig) Write32(off int, v uint32) { c.w.WriteMMIO(c.at(off), 4, v) }

func TestHotAddAndEject(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.bringUp()
	slot, err := e.bus.AddFunction(vpci.NewTestFunction(serial + 1))
	if err != nil || slot != vpciwire.MakeSlot(1, 0) {
		t.Fatalf("add: %v %v", slot, err)
	}
	if r := g.relations(); len(r.Devices) != 2 || r.Devices[1].Serial != serial+1 || r.Devices[1].Slot != slot {
		t.Fatalf("relations after hot add %+v", r)
	}
	done := make(chan error, 1)
	go func() { done <- e.bus.Eject(slot) }()
	m := g.message()
	if ej, ok := m.(*vpciwire.SlotMessage); !ok || ej.MsgType != vpciwire.MsgEject || ej.Slot != slot {
		t.Fatalf("got %+v, want eject", m)
	}
	if e.bus.Eject(slot) != vpci.ErrEjecting {
		t.Fatal("second eject accepted")
	}
	g.send(&vpciwire.SlotMessage{MsgType: vpciwire.MsgResourcesReleased, Slot: slot}, false)
	g.send(&vpciwire.EjectionComplete{Slot: slot}, false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("eject did not return")
	}
	if r := g.relations(); len(r.Devices) != 1 || r.Devices[0].Serial != serial {
		t.Fatalf("relations after eject %+v", r)
	}
	if s := e.bus.Stats(); s.Ejected != 1 || s.Timeouts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEjectTimeout(t *testing.T) {
	clock := kernel.NewFakeClock(time.Unix(0, 0))
	e := newEnv(t, vpci.Config{Clock: clock, EjectTimeout: time.Second}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.bringUp()
	done := make(chan error, 1)
	go func() { done <- e.bus.Eject(0) }()
	if ej, ok := g.message().(*vpciwire.SlotMessage); !ok || ej.MsgType != vpciwire.MsgEject {
		t.Fatal("no eject")
	}
	clock.WaitForTimers(1)
	clock.Advance(time.Second)
	select {
	case err := <-done:
		if !errors.Is(err, vpci.ErrEjectTimeout) {
			t.Fatalf("eject: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("eject did not time out")
	}
	if r := g.relations(); len(r.Devices) != 0 {
		t.Fatalf("relations %+v", r)
	}
	// A late EJECTION_COMPLETE is harmless.
	g.send(&vpciwire.EjectionComplete{Slot: 0}, false)
	g.noPacket()
	if s := e.bus.Stats(); s.Timeouts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSurpriseRemoval(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.bringUp()
	w := e.bus.Window(windowBase)
	w.WriteMMIO(vpciwire.WindowSlotSelect, 4, 0)
	if v := w.ReadMMIO(vpciwire.WindowConfigPage, 2); v != vpci.TestVendorID {
		t.Fatalf("vendor %#x", v)
	}
	if err := e.bus.Remove(0); err != nil {
		t.Fatal(err)
	}
	if v := w.ReadMMIO(vpciwire.WindowConfigPage, 4); v != ^uint32(0) {
		t.Fatalf("removed function reads %#x", v)
	}
	if r := g.relations(); len(r.Devices) != 0 {
		t.Fatalf("relations %+v", r)
	}
	if e.bus.Remove(0) != vpci.ErrSlot {
		t.Fatal("second remove")
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.negotiate()
	le := binary.LittleEndian
	cases := []struct {
		name string
		msg  []byte
		want vpciwire.Status
	}{
		{"empty-ish", []byte{1, 2}, vpciwire.StatusBadData},
		{"unknown type", le.AppendUint32(nil, 0x4249FFFF), vpciwire.StatusBadData},
		{"host-to-guest type", (&vpciwire.BusRelations{}).Encode(), vpciwire.StatusBadData},
		{"short D0 entry", le.AppendUint32(nil, uint32(vpciwire.MsgBusD0Entry)), vpciwire.StatusBadData},
		{"misaligned window", (&vpciwire.BusD0Entry{MMIOBase: windowBase + 8}).Encode(), vpciwire.StatusBadData},
		{"D0 exit outside D0", (&vpciwire.Bare{MsgType: vpciwire.MsgBusD0Exit}).Encode(), vpciwire.StatusNotSupported},
		{"read block", (&vpciwire.ReadBlock{Length: 4}).Encode(), vpciwire.StatusNotSupported},
		{"reset before 1.5", (&vpciwire.SlotMessage{MsgType: vpciwire.MsgResetDevice}).Encode(), vpciwire.StatusNotSupported},
		{"release empty slot", (&vpciwire.SlotMessage{MsgType: vpciwire.MsgResourcesReleased, Slot: 4}).Encode(), vpciwire.StatusBadData},
		{"eject complete unasked", (&vpciwire.EjectionComplete{Slot: 0}).Encode(), vpciwire.StatusBadData},
		{"power state unknown", (&vpciwire.PowerStateChange{Slot: 0, State: 7}).Encode(), vpciwire.StatusBadData},
	}
	for _, c := range cases {
		if st := g.status(g.SendInBand(c.msg, true)); st != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
	}
	// The same without completions: dropped, nothing sent.
	for _, c := range cases {
		g.SendInBand(c.msg, false)
	}
	g.noPacket()
	// The channel still works.
	g.bringUpAfterVersion()
	if st := g.status(g.send(&vpciwire.BusD0Entry{MMIOBase: windowBase}, true)); st != vpciwire.StatusNotSupported {
		t.Fatalf("second D0 entry: %v", st)
	}
	if r, _ := vpciwire.DecodeVersionReply(g.Completion(g.send(&vpciwire.QueryProtocolVersion{Version: vpciwire.Version1_4}, true))); r.Status != vpciwire.StatusNotSupported {
		t.Fatalf("version query in D0: %v", r.Status)
	}
	if s := e.bus.Stats(); s.Rejected < uint64(2*len(cases)) {
		t.Fatalf("stats %+v", s)
	}
}

func (g *guest) bringUpAfterVersion() {
	g.t.Helper()
	id := g.send(&vpciwire.BusD0Entry{MMIOBase: windowBase}, true)
	g.relations()
	if st := g.status(id); st != vpciwire.StatusSuccess {
		g.t.Fatalf("D0 entry: %v", st)
	}
}

func TestAPIErrors(t *testing.T) {
	e := newEnv(t, vpci.Config{}, vpci.NewTestFunction(serial))
	g := e.connect()
	g.bringUp()
	if err := e.bus.Eject(vpciwire.MakeSlot(9, 0)); err != vpci.ErrSlot {
		t.Fatalf("eject empty slot: %v", err)
	}
	if _, err := e.bus.AddFunction(nil); err != vpci.ErrSlot {
		t.Fatalf("nil function: %v", err)
	}
	if err := e.bus.AddFunctionAt(0, vpci.NewTestFunction(1)); err != vpci.ErrSlot {
		t.Fatalf("slot in use: %v", err)
	}
}
