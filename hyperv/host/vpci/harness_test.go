package vpci_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// The tests play a vPCI guest by hand: VMBus messages through the synic
// pair, vPCI messages through hyperv/ring rings on simulated RAM.

const waitTimeout = 5 * time.Second

type env struct {
	t    *testing.T
	srv  *host.Server
	port synic.GuestPort
	ram  *kernel.SimRAM
	bus  *vpci.Bus
	conn uint32
}

func newEnv(t *testing.T, cfg vpci.Config, funcs ...vpci.Function) *env {
	t.Helper()
	ram := kernel.NewSimRAM(256)
	srv, err := host.NewServer(host.Config{Memory: ram})
	if err != nil {
		t.Fatal(err)
	}
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bus := vpci.New(cfg)
	for _, f := range funcs {
		if _, err := bus.AddFunction(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.AddDevice(bus); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, port: pair.Guest(), ram: ram, bus: bus, conn: 1}
}

func (e *env) post(m vmbusmsg.Message) {
	e.t.Helper()
	if err := e.port.PostMessage(e.conn, uint32(tlfs.MsgVMBus), m.Encode()); err != nil {
		e.t.Fatalf("post %s: %v", m.Type(), err)
	}
}

func (e *env) recv() vmbusmsg.Message {
	e.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	var sm synic.Message
	for {
		if e.port.TakeMessage(&sm) {
			m, err := vmbusmsg.DecodeFromHost(sm.Bytes())
			if err != nil {
				e.t.Fatal(err)
			}
			return m
		}
		select {
		case <-e.port.Interrupt():
		case <-deadline.C:
			e.t.Fatal("no message from the host")
		}
	}
}

func expectMsg[T vmbusmsg.Message](e *env) T {
	e.t.Helper()
	m := e.recv()
	x, ok := m.(T)
	if !ok {
		e.t.Fatalf("got %s, want %T", m.Type(), x)
	}
	return x
}

// guest is a scripted vPCI guest on the bus channel.
type guest struct {
	e       *env
	t       *testing.T
	offer   *vmbusmsg.OfferChannel
	out     *ring.Writer
	in      *ring.Reader
	tid     uint64
	pending []hostPacket
}

type hostPacket struct {
	ring.Descriptor
	Payload []byte
}

// connect negotiates VMBus, finds the bus offer and opens it (16 KiB
// rings, as Linux).
func (e *env) connect() *guest {
	e.t.Helper()
	v := vmbusmsg.VersionWin10V5_3
	ic := &vmbusmsg.InitiateContact{VersionRequested: v}
	ic.SetTargetInfo(2, 0, 0)
	if err := e.port.PostMessage(v.InitiateContactConnectionID(), uint32(tlfs.MsgVMBus), ic.Encode()); err != nil {
		e.t.Fatal(err)
	}
	r := expectMsg[*vmbusmsg.VersionResponse](e)
	e.conn = r.MsgConnID
	e.post(&vmbusmsg.RequestOffers{})
	var offer *vmbusmsg.OfferChannel
	for offer == nil {
		switch m := e.recv().(type) {
		case *vmbusmsg.OfferChannel:
			if m.InterfaceType == tlfs.GUIDPCIPassthrough {
				offer = m
			}
		case *vmbusmsg.AllOffersDelivered:
			e.t.Fatal("no vPCI offer")
		}
	}
	for {
		if _, ok := e.recv().(*vmbusmsg.AllOffersDelivered); ok {
			break
		}
	}
	region, err := e.ram.Alloc(8)
	if err != nil {
		e.t.Fatal(err)
	}
	first, second, err := ring.SplitPair(region.Bytes, 4)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range []ring.Memory{first, second} {
		ring.InitControl(m.Control)
	}
	g := &guest{e: e, t: e.t, offer: offer}
	h, bodies, err := vmbusmsg.SplitGPADL(offer.ChildRelID, 0x100, []gpa.Range{vmbusmsg.PageRange(region.PFNs)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.post(h)
	for _, b := range bodies {
		e.post(b)
	}
	if c := expectMsg[*vmbusmsg.GPADLCreated](e); c.CreationStatus != 0 {
		e.t.Fatalf("GPADL: %+v", c)
	}
	e.post(&vmbusmsg.OpenChannel{ChildRelID: offer.ChildRelID, OpenID: offer.ChildRelID, RingBufferGPADL: 0x100,
		DownstreamRingBufferPageOffset: 4})
	if res := expectMsg[*vmbusmsg.OpenChannelResult](e); res.Status != 0 {
		e.t.Fatalf("open: %+v", res)
	}
	g.out, _ = ring.NewWriter(first.Control, first.Data)
	g.in, _ = ring.NewReader(second.Control, second.Data, nil)
	return g
}

func (g *guest) signal() { g.e.port.SignalEvent(g.offer.ConnectionID) }

func (g *guest) wait() {
	select {
	case <-g.e.port.Interrupt():
	case <-time.After(time.Millisecond):
	}
	g.e.port.ScanEvents(func(uint32) {})
}

// sendRaw writes b in-band and returns its trans id.
func (g *guest) sendRaw(b []byte, completion bool) uint64 {
	g.t.Helper()
	g.tid++
	id := g.tid
	deadline := time.Now().Add(waitTimeout)
	for {
		err := g.out.WriteInBand(id, completion, b)
		if err == nil {
			break
		}
		if !errors.Is(err, ring.ErrFull) || time.Now().After(deadline) {
			g.t.Fatal(err)
		}
		g.wait()
	}
	if g.out.Commit() {
		g.signal()
	}
	return id
}

func (g *guest) send(m vpciwire.Message, completion bool) uint64 {
	return g.sendRaw(m.Encode(), completion)
}

// read returns the next packet from the host within d.
func (g *guest) read(d time.Duration) (hostPacket, bool) {
	g.t.Helper()
	if len(g.pending) > 0 {
		p := g.pending[0]
		g.pending = g.pending[1:]
		return p, true
	}
	deadline := time.Now().Add(d)
	var p ring.Packet
	for {
		err := g.in.Next(&p)
		if err == nil {
			hp := hostPacket{Descriptor: p.Descriptor, Payload: append([]byte(nil), p.Payload...)}
			if g.in.Commit() {
				g.signal()
			}
			return hp, true
		}
		if err != ring.ErrEmpty {
			g.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			return hostPacket{}, false
		}
		g.wait()
	}
}

func (g *guest) mustRead() hostPacket {
	g.t.Helper()
	p, ok := g.read(waitTimeout)
	if !ok {
		g.t.Fatal("no packet from the host")
	}
	return p
}

// completion waits for the completion of id, keeping other packets.
func (g *guest) completion(id uint64) []byte {
	g.t.Helper()
	var skipped []hostPacket
	defer func() { g.pending = append(skipped, g.pending...) }()
	for {
		p := g.mustRead()
		if p.Type == ring.TypeCompletion && p.TransID == id {
			return p.Payload
		}
		skipped = append(skipped, p)
	}
}

// message waits for the next in-band message from the host.
func (g *guest) message() vpciwire.Message {
	g.t.Helper()
	p := g.mustRead()
	if p.Type != ring.TypeInBand {
		g.t.Fatalf("got %v packet (trans %d), want in-band", p.Type, p.TransID)
	}
	m, err := vpciwire.DecodeFromHost(p.Payload)
	if err != nil {
		g.t.Fatalf("decode % x: %v", p.Payload, err)
	}
	return m
}

func (g *guest) relations() *vpciwire.BusRelations {
	g.t.Helper()
	m := g.message()
	r, ok := m.(*vpciwire.BusRelations)
	if !ok {
		g.t.Fatalf("got %s, want bus relations", m.Type())
	}
	return r
}

// noPacket checks that the host sends nothing for a while.
func (g *guest) noPacket() {
	g.t.Helper()
	if p, ok := g.read(50 * time.Millisecond); ok {
		g.t.Fatalf("unexpected packet %v % x", p.Type, p.Payload)
	}
}

func (g *guest) status(id uint64) vpciwire.Status {
	g.t.Helper()
	r, err := vpciwire.DecodeStatusReply(g.completion(id))
	if err != nil {
		g.t.Fatal(err)
	}
	return r.Status
}

// negotiate tries versions in Linux's order and returns the one accepted.
func (g *guest) negotiate() vpciwire.Version {
	g.t.Helper()
	for _, v := range vpciwire.GuestVersions {
		r, err := vpciwire.DecodeVersionReply(g.completion(g.send(&vpciwire.QueryProtocolVersion{Version: v}, true)))
		if err != nil {
			g.t.Fatal(err)
		}
		if r.Status == vpciwire.StatusSuccess {
			return v
		}
		if r.Status != vpciwire.StatusRevisionMismatch {
			g.t.Fatalf("version %v: %v", v, r.Status)
		}
	}
	g.t.Fatal("no version accepted")
	return 0
}

const windowBase = 0xF8000000

// bringUp runs the Linux sequence up to D0 (relations, requirements,
// D0 entry) and returns the relations.
func (g *guest) bringUp() *vpciwire.BusRelations {
	g.t.Helper()
	g.negotiate()
	g.send(&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}, false)
	rel := g.relations()
	id := g.send(&vpciwire.BusD0Entry{MMIOBase: windowBase}, true)
	if again := g.relations(); len(again.Devices) != len(rel.Devices) {
		g.t.Fatalf("relations after D0 entry: %+v", again)
	}
	if st := g.status(id); st != vpciwire.StatusSuccess {
		g.t.Fatalf("D0 entry: %v", st)
	}
	return rel
}
