package hvpci_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

var all = []vpciwire.Version{vpciwire.Version1_1, vpciwire.Version1_2, vpciwire.Version1_3, vpciwire.Version1_4}

func TestBringUpAndConfig(t *testing.T) {
	hf := newHostFunc(vpciwire.MakeSlot(0, 0), 0x12345678, 0x15b3, 0x101a)
	h := newFakeHost(t, all, hf)
	w := newWorld(t, h, hvpci.Config{})
	ev := subscribe(t, w.drv, nil)
	b := w.ready(t)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if b.Version() != vpciwire.Version1_4 {
		t.Fatalf("version %v, want 1.4", b.Version())
	}
	e := ev.next(t)
	if e.Type != hvpci.Added || e.Serial != 0x12345678 {
		t.Fatalf("event %+v", e)
	}
	f := e.Function
	if f.SlotName() != "305419896" {
		t.Fatalf("slot name %q", f.SlotName())
	}
	cs := f.Config()
	if cs.Read16(pci.VendorID) != 0x15b3 || cs.Read16(pci.DeviceID) != 0x101a {
		t.Fatalf("vendor/device %#x/%#x", cs.Read16(pci.VendorID), cs.Read16(pci.DeviceID))
	}
	// Through the window: the command register.
	cs.Write16(pci.Command, pci.CommandMemory|pci.CommandMaster)
	if got := cs.Read16(pci.Command); got != pci.CommandMemory|pci.CommandMaster {
		t.Fatalf("command %#x", got)
	}
	if hf.cfg.Read16(pci.Command) != pci.CommandMemory|pci.CommandMaster {
		t.Fatal("command write did not reach the device")
	}
	bars := f.BARs()
	if len(bars) != 1 || bars[0].Size != 1<<20 || !bars[0].Is64 {
		t.Fatalf("BARs %+v", bars)
	}
	if h.d0Base != windowBase {
		t.Fatalf("D0 base %#x", h.d0Base)
	}
	ra := h.waitMessage(vpciwire.MsgResourcesAssigned2, 1)
	if ra[0].(*vpciwire.ResourcesAssigned).Slot != f.Slot() {
		t.Fatal("resources assigned to the wrong slot")
	}
	if len(h.messages(vpciwire.MsgQueryResourceRequirements)) != 1 {
		t.Fatal("no resource requirements query")
	}
	ti, err := f.CreateInterrupt(context.Background(), hvpci.InterruptRequest{Vector: 0x41, VectorCount: 1, Processors: []uint16{0}})
	if err != nil || ti.Data != 0x41 || ti.Address != 0xFEE00000 {
		t.Fatalf("create interrupt: %+v %v", ti, err)
	}
	if ci := h.waitMessage(vpciwire.MsgCreateInterrupt3, 1); ci[0].(*vpciwire.CreateInterrupt).Variant != 3 {
		t.Fatal("not CREATE_INTERRUPT3 at 1.4")
	}
	if err := f.DeleteInterrupt(ti); err != nil {
		t.Fatal(err)
	}
	h.waitMessage(vpciwire.MsgDeleteInterrupt, 1)
}

func TestVersionFallback(t *testing.T) {
	h := newFakeHost(t, []vpciwire.Version{vpciwire.Version1_1}, newHostFunc(0, 7, 0x1414, 1))
	w := newWorld(t, h, hvpci.Config{})
	b := w.ready(t)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if b.Version() != vpciwire.Version1_1 {
		t.Fatalf("version %v", b.Version())
	}
	tried := h.messages(vpciwire.MsgQueryProtocolVersion)
	if len(tried) != 4 {
		t.Fatalf("%d version queries", len(tried))
	}
	for i, want := range vpciwire.GuestVersions {
		if v := tried[i].(*vpciwire.QueryProtocolVersion).Version; v != want {
			t.Fatalf("query %d: %v, want %v", i, v, want)
		}
	}
	h.waitMessage(vpciwire.MsgResourcesAssigned, 1) // v1 at 1.1
	f := w.drv.Functions()[0]
	if _, err := f.CreateInterrupt(context.Background(), hvpci.InterruptRequest{Vector: 0x30, VectorCount: 1, Processors: []uint16{3}}); err != nil {
		t.Fatal(err)
	}
	ci := h.waitMessage(vpciwire.MsgCreateInterrupt, 1)[0].(*vpciwire.CreateInterrupt)
	if ci.CPUMask != 1<<3 {
		t.Fatalf("cpu mask %#x", ci.CPUMask)
	}
}

func TestNoVersion(t *testing.T) {
	h := newFakeHost(t, nil)
	w := newWorld(t, h, hvpci.Config{})
	b := w.ready(t)
	if !errors.Is(b.Err(), hvpci.ErrNoVersion) {
		t.Fatalf("err %v", b.Err())
	}
	if len(w.drv.Errors()) != 1 {
		t.Fatal("failure not recorded")
	}
}

func TestNoRelationsTimesOut(t *testing.T) {
	h := newFakeHost(t, all)
	h.noRel = true
	clk := kernel.NewFakeClock(time.Unix(0, 0))
	w := newWorld(t, h, hvpci.Config{Clock: clk, Timeout: time.Second})
	h.waitMessage(vpciwire.MsgQueryBusRelations, 1)
	deadline := time.Now().Add(10 * time.Second)
	for len(w.drv.Errors()) == 0 && time.Now().Before(deadline) {
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	if errs := w.drv.Errors(); len(errs) != 1 || !errors.Is(errs[0], hvpci.ErrTimeout) {
		t.Fatalf("errors %v", errs)
	}
}

func TestEjectHandshake(t *testing.T) {
	hf := newHostFunc(vpciwire.MakeSlot(1, 0), 42, 0x15b3, 0x101a)
	h := newFakeHost(t, all, hf)
	w := newWorld(t, h, hvpci.Config{})
	release := make(chan struct{})
	var readDuringEject uint16
	ev := subscribe(t, w.drv, func(e hvpci.Event) {
		if e.Type == hvpci.Removed {
			// Still reachable: quiesce the device, then acknowledge.
			readDuringEject = e.Function.Config().Read16(pci.Command)
			<-release
		}
	})
	w.ready(t)
	f := ev.next(t).Function
	h.send((&vpciwire.SlotMessage{MsgType: vpciwire.MsgEject, Slot: f.Slot()}).Encode())
	time.Sleep(20 * time.Millisecond)
	if len(h.messages(vpciwire.MsgEjectionComplete)) != 0 {
		t.Fatal("EJECTION_COMPLETE before the subscriber acknowledged")
	}
	close(release)
	e := ev.next(t)
	if e.Type != hvpci.Removed || e.Reason != hvpci.ReasonEject || e.Serial != 42 {
		t.Fatalf("event %+v", e)
	}
	ec := h.waitMessage(vpciwire.MsgEjectionComplete, 1)[0].(*vpciwire.EjectionComplete)
	if ec.Slot != f.Slot() || ec.Status != 0 {
		t.Fatalf("ejection complete %+v", ec)
	}
	if readDuringEject == 0xFFFF {
		t.Fatal("function unreachable during the eject callback")
	}
	if _, err := f.ReadConfig(pci.Command, 2); !errors.Is(err, hvpci.ErrRemoved) {
		t.Fatalf("read after eject: %v", err)
	}
	if f.Config().Read32(pci.VendorID) != 0xFFFFFFFF {
		t.Fatal("config space of an ejected function does not read all-ones")
	}
}

func TestEjectTimeout(t *testing.T) {
	h := newFakeHost(t, all, newHostFunc(0, 9, 1, 2))
	clk := kernel.NewFakeClock(time.Unix(0, 0))
	w := newWorld(t, h, hvpci.Config{Clock: clk, EjectTimeout: time.Second})
	block := make(chan struct{})
	defer close(block)
	ev := subscribe(t, w.drv, func(e hvpci.Event) {
		if e.Type == hvpci.Removed {
			<-block
		}
	})
	w.ready(t)
	f := ev.next(t).Function
	timers := clk.Timers()
	h.send((&vpciwire.SlotMessage{MsgType: vpciwire.MsgEject, Slot: f.Slot()}).Encode())
	clk.WaitForTimers(timers + 1)
	clk.Advance(time.Second)
	h.waitMessage(vpciwire.MsgEjectionComplete, 1)
	<-f.Gone()
}

func TestSurpriseRemoval(t *testing.T) {
	a := newHostFunc(vpciwire.MakeSlot(0, 0), 1, 0x15b3, 0x101a)
	c := newHostFunc(vpciwire.MakeSlot(1, 0), 2, 0x15b3, 0x101a)
	h := newFakeHost(t, all, a, c)
	w := newWorld(t, h, hvpci.Config{})
	ev := subscribe(t, w.drv, nil)
	w.ready(t)
	got := map[uint32]*hvpci.Function{}
	for range 2 {
		e := ev.next(t)
		got[e.Serial] = e.Function
	}
	h.setFuncs(c)
	if err := h.sendRelations(); err != nil {
		t.Fatal(err)
	}
	e := ev.next(t)
	if e.Type != hvpci.Removed || e.Reason != hvpci.ReasonSurprise || e.Serial != 1 {
		t.Fatalf("event %+v", e)
	}
	if _, err := got[1].ReadConfig(pci.Command, 2); !errors.Is(err, hvpci.ErrRemoved) {
		t.Fatalf("read after surprise removal: %v", err)
	}
	if len(h.messages(vpciwire.MsgEjectionComplete)) != 0 {
		t.Fatal("ejection complete for a surprise removal")
	}
	// Hot add back.
	h.setFuncs(c, a)
	if err := h.sendRelations(); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t); e.Type != hvpci.Added || e.Serial != 1 {
		t.Fatalf("event %+v", e)
	}
	if n := len(w.drv.Functions()); n != 2 {
		t.Fatalf("%d functions", n)
	}
}

func TestMalformedHostMessages(t *testing.T) {
	h := newFakeHost(t, all, newHostFunc(0, 5, 1, 2))
	w := newWorld(t, h, hvpci.Config{})
	ev := subscribe(t, w.drv, nil)
	b := w.ready(t)
	ev.next(t)
	bad := [][]byte{
		{1, 2},
		binary.LittleEndian.AppendUint32(nil, 0xdeadbeef),
		binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, uint32(vpciwire.MsgBusRelations)), 1000),
		(&vpciwire.SlotMessage{MsgType: vpciwire.MsgEject, Slot: vpciwire.MakeSlot(9, 1)}).Encode(),
		(&vpciwire.Bare{MsgType: vpciwire.MsgBusD0Exit}).Encode(), // wrong direction
	}
	for _, m := range bad {
		h.send(m)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Bad < uint64(len(bad)) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", b.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(w.drv.Functions()); n != 1 {
		t.Fatalf("%d functions after bad messages", n)
	}
	select {
	case e := <-ev.c:
		t.Fatalf("unexpected event %+v", e)
	default:
	}
}

func TestRemoveBus(t *testing.T) {
	h := newFakeHost(t, all, newHostFunc(0, 5, 1, 2))
	w := newWorld(t, h, hvpci.Config{})
	ev := subscribe(t, w.drv, nil)
	w.ready(t)
	f := ev.next(t).Function
	if _, err := w.srv.Rescind(h); err != nil {
		t.Fatal(err)
	}
	e := ev.next(t)
	if e.Type != hvpci.Removed || e.Reason != hvpci.ReasonBusGone {
		t.Fatalf("event %+v", e)
	}
	if _, err := f.ReadConfig(0x40, 4); !errors.Is(err, hvpci.ErrRemoved) {
		t.Fatal(err)
	}
}
