package hvpci_test

// A scripted vPCI host for the guest bus driver: a host.Device on the real
// simulated VMBus server (hyperv/host) that answers vpciwire messages, plus
// a Window that reaches its functions' config spaces the way the MMIO
// window would.

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

const windowBase = 0xF8000000

type hostFunc struct {
	desc vpciwire.Description
	cfg  *pci.MemConfig
}

// fakeHost is the scripted vPCI server.
type fakeHost struct {
	t        testing.TB
	instance tlfs.GUID
	versions []vpciwire.Version // accepted

	mu        sync.Mutex
	funcs     []*hostFunc
	ch        *host.Channel
	version   vpciwire.Version
	got       []vpciwire.Message // every guest message
	d0Base    uint64
	noRel     bool // don't answer QUERY_BUS_RELATIONS
	gotNotify chan struct{}
}

func newFakeHost(t testing.TB, versions []vpciwire.Version, funcs ...*hostFunc) *fakeHost {
	inst := tlfs.GUIDPCIPassthrough
	inst[0], inst[1], inst[2], inst[3] = 0x78, 0x56, 0x34, 0x12
	return &fakeHost{t: t, instance: inst, versions: versions, funcs: funcs, gotNotify: make(chan struct{}, 1)}
}

func newHostFunc(slot vpciwire.Slot, serial uint32, vendor, device uint16) *hostFunc {
	h := pci.Header{VendorID: vendor, DeviceID: device, Revision: 1, ClassCode: 0x020000,
		SubsystemVendorID: 0x15b3, SubsystemID: 0x0001}
	cfg := pci.NewMemConfig(h)
	if err := cfg.SetBAR(0, 1<<20, pci.BAR64|pci.BARPrefetch); err != nil {
		panic(err)
	}
	return &hostFunc{cfg: cfg, desc: vpciwire.Description{VendorID: vendor, DeviceID: device, Revision: 1,
		BaseClass: 2, SubsystemVendorID: 0x15b3, SubsystemID: 1, Slot: slot, Serial: serial}}
}

func (h *fakeHost) Offer() host.Offer {
	return host.Offer{Class: tlfs.GUIDPCIPassthrough, Instance: h.instance}
}

func (h *fakeHost) Open(ch *host.Channel) (host.Handler, error) {
	h.mu.Lock()
	h.ch = ch
	h.mu.Unlock()
	return h, nil
}

func (h *fakeHost) Close() {}

func (h *fakeHost) reply(p *ring.Packet, r vpciwire.Reply) error {
	return h.ch.SendCompletion(p.TransID, r.Encode())
}

func (h *fakeHost) Packet(p *ring.Packet) error {
	m, err := vpciwire.DecodeFromGuest(p.Payload)
	if err != nil {
		h.t.Errorf("host: bad guest message: %v", err)
		return nil
	}
	h.mu.Lock()
	h.got = append(h.got, m)
	h.mu.Unlock()
	select {
	case h.gotNotify <- struct{}{}:
	default:
	}
	ok := &vpciwire.StatusReply{Status: vpciwire.StatusSuccess}
	switch m := m.(type) {
	case *vpciwire.QueryProtocolVersion:
		if !slices.Contains(h.versions, m.Version) {
			return h.reply(p, &vpciwire.StatusReply{Status: vpciwire.StatusRevisionMismatch})
		}
		h.mu.Lock()
		h.version = m.Version
		h.mu.Unlock()
		return h.reply(p, ok)
	case *vpciwire.Bare:
		switch m.MsgType {
		case vpciwire.MsgQueryBusRelations:
			h.mu.Lock()
			skip := h.noRel
			h.mu.Unlock()
			if !skip {
				return h.sendRelations()
			}
		case vpciwire.MsgBusD0Exit:
			return h.reply(p, ok)
		}
	case *vpciwire.BusD0Entry:
		h.mu.Lock()
		h.d0Base = m.MMIOBase
		h.mu.Unlock()
		return h.reply(p, ok)
	case *vpciwire.SlotMessage:
		if m.MsgType == vpciwire.MsgQueryResourceRequirements {
			r := &vpciwire.ResourceRequirementsReply{}
			f := h.find(m.Slot)
			if f == nil {
				r.Status = vpciwire.StatusBadData
			} else {
				for i := range 6 {
					off := pci.BAROffset(i)
					old := f.cfg.Read32(off)
					f.cfg.Write32(off, 0xFFFFFFFF)
					r.ProbedBAR[i] = f.cfg.Read32(off)
					f.cfg.Write32(off, old)
				}
			}
			return h.reply(p, r)
		}
	case *vpciwire.ResourcesAssigned:
		return h.reply(p, ok)
	case *vpciwire.CreateInterrupt:
		return h.reply(p, &vpciwire.CreateInterruptReply{Interrupt: vpciwire.TranslatedInterrupt{
			VectorCount: m.VectorCount, Data: m.Vector, Address: 0xFEE00000}})
	}
	if p.CompletionRequested() {
		return h.reply(p, ok)
	}
	return nil
}

func (h *fakeHost) find(s vpciwire.Slot) *hostFunc {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.funcs {
		if f.desc.Slot == s {
			return f
		}
	}
	return nil
}

func (h *fakeHost) sendRelations() error {
	h.mu.Lock()
	m := vpciwire.BusRelations{V2: h.version >= vpciwire.Version1_3}
	for _, f := range h.funcs {
		m.Devices = append(m.Devices, f.desc)
	}
	ch := h.ch
	h.mu.Unlock()
	return ch.SendInBand(0, false, m.Encode())
}

// send sends raw bytes as an unsolicited host message.
func (h *fakeHost) send(b []byte) {
	h.mu.Lock()
	ch := h.ch
	h.mu.Unlock()
	if err := ch.SendInBand(0, false, b); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) setFuncs(funcs ...*hostFunc) {
	h.mu.Lock()
	h.funcs = funcs
	h.mu.Unlock()
}

// messages returns the guest messages of type t so far.
func (h *fakeHost) messages(t vpciwire.MessageType) []vpciwire.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []vpciwire.Message
	for _, m := range h.got {
		if m.Type() == t {
			out = append(out, m)
		}
	}
	return out
}

// waitMessage waits for n guest messages of type t.
func (h *fakeHost) waitMessage(t vpciwire.MessageType, n int) []vpciwire.Message {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ms := h.messages(t); len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("host never got %d %v", n, t)
		}
		select {
		case <-h.gotNotify:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// window is the MMIO window as the host would decode it.
type window struct {
	h    *fakeHost
	mu   sync.Mutex
	slot uint32
}

func (w *window) ReadMMIO(off uint64, size int) uint32 {
	w.mu.Lock()
	slot := w.slot
	w.mu.Unlock()
	f := w.h.find(vpciwire.Slot(slot))
	if off < vpciwire.WindowConfigPage || f == nil {
		return 0xFFFFFFFF >> (32 - 8*size)
	}
	where := int(off - vpciwire.WindowConfigPage)
	switch size {
	case 1:
		return uint32(f.cfg.Read8(where))
	case 2:
		return uint32(f.cfg.Read16(where))
	}
	return f.cfg.Read32(where)
}

func (w *window) WriteMMIO(off uint64, size int, v uint32) {
	if off == vpciwire.WindowSlotSelect {
		w.mu.Lock()
		w.slot = v
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	slot := w.slot
	w.mu.Unlock()
	f := w.h.find(vpciwire.Slot(slot))
	if f == nil || off < vpciwire.WindowConfigPage {
		return
	}
	where := int(off - vpciwire.WindowConfigPage)
	switch size {
	case 1:
		f.cfg.Write8(where, uint8(v))
	case 2:
		f.cfg.Write16(where, uint16(v))
	default:
		f.cfg.Write32(where, v)
	}
}

type world struct {
	h   *fakeHost
	srv *host.Server
	drv *hvpci.Driver
	bus *vmbus.Bus
}

func newWorld(t testing.TB, h *fakeHost, cfg hvpci.Config) *world {
	t.Helper()
	ram := kernel.NewSimRAM(1024)
	srv, err := host.NewServer(host.Config{Memory: ram})
	if err != nil {
		t.Fatal(err)
	}
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddDevice(h); err != nil {
		t.Fatal(err)
	}
	cfg.Window = func(tlfs.GUID) (hvpci.Window, error) { return hvpci.MMIOWindow(windowBase, &window{h: h}), nil }
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	drv, err := hvpci.NewDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{h: h, srv: srv, drv: drv}
	w.bus, err = vmbus.Connect(context.Background(), vmbus.Config{Port: pair.Guest(), Memory: ram},
		map[tlfs.GUID]vmbus.Driver{hvpci.Class: drv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.bus.Close(context.Background())
		srv.Close()
	})
	return w
}

// ready waits for the one bus to finish bring-up and returns it.
func (w *world) ready(t testing.TB) *hvpci.Bus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if bs := w.drv.Buses(); len(bs) == 1 {
			select {
			case <-bs[0].Ready():
				return bs[0]
			case <-time.After(10 * time.Second):
				t.Fatal("bus not ready")
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no bus")
		}
		time.Sleep(time.Millisecond)
	}
}

// events collects subscriber events.
type events struct {
	mu  sync.Mutex
	evs []hvpci.Event
	c   chan hvpci.Event
}

func subscribe(t testing.TB, d *hvpci.Driver, onEvent func(hvpci.Event)) *events {
	e := &events{c: make(chan hvpci.Event, 64)}
	cancel := d.Subscribe(func(ev hvpci.Event) {
		if onEvent != nil {
			onEvent(ev)
		}
		e.c <- ev
	})
	t.Cleanup(cancel)
	return e
}

func (e *events) next(t testing.TB) hvpci.Event {
	t.Helper()
	select {
	case ev := <-e.c:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return hvpci.Event{}
}
