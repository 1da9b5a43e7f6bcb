package vpci_test

import (
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host/hosttest"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// The tests play a vPCI guest by hand (hyperv/host/hosttest): VMBus
// messages through the synic pair, vPCI messages through hyperv/ring rings
// on simulated RAM.

const waitTimeout = hosttest.Timeout

type env struct {
	*hosttest.Guest
	t   *testing.T
	bus *vpci.Bus
}

func newEnv(t *testing.T, cfg vpci.Config, funcs ...vpci.Function) *env {
	t.Helper()
	g := hosttest.New(t, 256)
	bus := vpci.New(cfg)
	for _, f := range funcs {
		if _, err := bus.AddFunction(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Srv.AddDevice(bus); err != nil {
		t.Fatal(err)
	}
	return &env{Guest: g, t: t, bus: bus}
}

func expectMsg[T vmbusmsg.Message](e *env) T { e.t.Helper(); return hosttest.Expect[T](e.Guest) }

// guest is a scripted vPCI guest on the bus channel.
type guest struct {
	*hosttest.Channel
	e *env
	t *testing.T
}

type hostPacket = hosttest.Packet

// connect negotiates VMBus, finds the bus offer and opens it (16 KiB
// rings, as Linux).
func (e *env) connect() *guest {
	e.t.Helper()
	offer := e.Connect(tlfs.GUIDPCIPassthrough)
	return &guest{Channel: e.Open(offer, 0x100, 4), e: e, t: e.t}
}

func (g *guest) send(m vpciwire.Message, completion bool) uint64 {
	return g.SendInBand(m.Encode(), completion)
}

// message waits for the next in-band message from the host.
func (g *guest) message() vpciwire.Message {
	g.t.Helper()
	p := g.MustRead()
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
	if p, ok := g.Read(50 * time.Millisecond); ok {
		g.t.Fatalf("unexpected packet %v % x", p.Type, p.Payload)
	}
}

func (g *guest) status(id uint64) vpciwire.Status {
	g.t.Helper()
	r, err := vpciwire.DecodeStatusReply(g.Completion(id))
	if err != nil {
		g.t.Fatal(err)
	}
	return r.Status
}

// negotiate tries versions in Linux's order and returns the one accepted.
func (g *guest) negotiate() vpciwire.Version {
	g.t.Helper()
	for _, v := range vpciwire.GuestVersions {
		r, err := vpciwire.DecodeVersionReply(g.Completion(g.send(&vpciwire.QueryProtocolVersion{Version: v}, true)))
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
