// Package hosttest plays a VMBus guest by hand against the simulated
// host's VMBus server, for the tests of the host's devices (netvsp, vpci):
// VMBus messages through an in-process synic pair, channel packets through
// hyperv/ring rings on simulated RAM. It uses only what the host side may
// (wire packages, ring, synic, kernel), never the guest's VMBus client, so
// a mistake in the client cannot hide the same mistake in the server.
//
// Side: host (test support).
package hosttest

import (
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// Timeout bounds every wait for the host.
const Timeout = 5 * time.Second

// Guest is the scripted guest's VMBus side. Its goroutine is the test's.
type Guest struct {
	T    testing.TB
	Srv  *host.Server
	Port synic.GuestPort
	RAM  *kernel.SimRAM
	Conn uint32 // the message connection id (from VERSION_RESPONSE)
}

// New starts a VMBus server on ramPages pages of simulated RAM, attached
// to an in-process hypervisor pair; the test's cleanup closes it. Add the
// devices under test with g.Srv.AddDevice before Connect.
func New(t testing.TB, ramPages int) *Guest {
	t.Helper()
	ram := kernel.NewSimRAM(ramPages)
	srv, err := host.NewServer(host.Config{Memory: ram})
	if err != nil {
		t.Fatal(err)
	}
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &Guest{T: t, Srv: srv, Port: pair.Guest(), RAM: ram, Conn: 1}
}

// Post sends a channel-management message to the host.
func (g *Guest) Post(m vmbusmsg.Message) {
	g.T.Helper()
	if err := g.Port.PostMessage(g.Conn, uint32(tlfs.MsgVMBus), m.Encode()); err != nil {
		g.T.Fatalf("post %s: %v", m.Type(), err)
	}
}

// Recv waits for the next message from the host.
func (g *Guest) Recv() vmbusmsg.Message {
	g.T.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	var sm synic.Message
	for {
		if g.Port.TakeMessage(&sm) {
			m, err := vmbusmsg.DecodeFromHost(sm.Bytes())
			if err != nil {
				g.T.Fatal(err)
			}
			return m
		}
		select {
		case <-g.Port.Interrupt():
		case <-deadline.C:
			g.T.Fatal("no message from the host")
		}
	}
}

// Expect waits for the next message and fails the test unless it is a T.
func Expect[T vmbusmsg.Message](g *Guest) T {
	g.T.Helper()
	m := g.Recv()
	x, ok := m.(T)
	if !ok {
		g.T.Fatalf("got %s, want %T", m.Type(), x)
	}
	return x
}

// Connect negotiates VMBus (Windows 10 v5.3, as Linux first offers),
// requests the offers and returns the one of class, after all offers were
// delivered.
func (g *Guest) Connect(class tlfs.GUID) *vmbusmsg.OfferChannel {
	g.T.Helper()
	v := vmbusmsg.VersionWin10V5_3
	ic := &vmbusmsg.InitiateContact{VersionRequested: v}
	ic.SetTargetInfo(2, 0, 0)
	if err := g.Port.PostMessage(v.InitiateContactConnectionID(), uint32(tlfs.MsgVMBus), ic.Encode()); err != nil {
		g.T.Fatal(err)
	}
	g.Conn = Expect[*vmbusmsg.VersionResponse](g).MsgConnID
	g.Post(&vmbusmsg.RequestOffers{})
	var offer *vmbusmsg.OfferChannel
	for offer == nil {
		switch m := g.Recv().(type) {
		case *vmbusmsg.OfferChannel:
			if m.InterfaceType == class {
				offer = m
			}
		case *vmbusmsg.AllOffersDelivered:
			g.T.Fatalf("no offer of class %v", class)
		}
	}
	for {
		if _, ok := g.Recv().(*vmbusmsg.AllOffersDelivered); ok {
			return offer
		}
	}
}

// GPADL creates GPADL id over region on the channel relid.
func (g *Guest) GPADL(relid, id uint32, region *kernel.Region) {
	g.T.Helper()
	h, bodies, err := vmbusmsg.SplitGPADL(relid, id, []gpa.Range{vmbusmsg.PageRange(region.PFNs)})
	if err != nil {
		g.T.Fatal(err)
	}
	g.Post(h)
	for _, b := range bodies {
		g.Post(b)
	}
	if c := Expect[*vmbusmsg.GPADLCreated](g); c.CreationStatus != 0 {
		g.T.Fatalf("GPADL: %+v", c)
	}
}

// Open opens the offered channel on two rings of ringPages pages each
// (4, 16 KiB, as Linux), their GPADL numbered gpadlID.
func (g *Guest) Open(offer *vmbusmsg.OfferChannel, gpadlID uint32, ringPages int) *Channel {
	g.T.Helper()
	region, err := g.RAM.Alloc(2 * ringPages)
	if err != nil {
		g.T.Fatal(err)
	}
	first, second, err := ring.SplitPair(region.Bytes, ringPages)
	if err != nil {
		g.T.Fatal(err)
	}
	for _, m := range []ring.Memory{first, second} {
		ring.InitControl(m.Control)
	}
	g.GPADL(offer.ChildRelID, gpadlID, region)
	g.Post(&vmbusmsg.OpenChannel{ChildRelID: offer.ChildRelID, OpenID: offer.ChildRelID, RingBufferGPADL: gpadlID,
		DownstreamRingBufferPageOffset: uint32(ringPages)})
	if res := Expect[*vmbusmsg.OpenChannelResult](g); res.Status != 0 {
		g.T.Fatalf("open: %+v", res)
	}
	c := &Channel{G: g, Offer: offer}
	c.Out, _ = ring.NewWriter(first.Control, first.Data)
	c.In, _ = ring.NewReader(second.Control, second.Data, nil)
	return c
}

// Channel is an open channel of the scripted guest. Its goroutine is the
// test's.
type Channel struct {
	G       *Guest
	Offer   *vmbusmsg.OfferChannel
	Out     *ring.Writer
	In      *ring.Reader
	TID     uint64   // the last transaction id SendInBand used
	Pending []Packet // packets read while waiting for something else, read first
}

// Packet is a packet from the host, copied out of the ring.
type Packet struct {
	ring.Descriptor
	Ranges  []ring.XferRange // transfer-page packets only
	SetID   uint16
	Payload []byte
}

// Signal signals the channel's event to the host.
func (c *Channel) Signal() { c.G.Port.SignalEvent(c.Offer.ConnectionID) }

// Wait waits up to a millisecond for an interrupt, then clears the event
// flags.
func (c *Channel) Wait() {
	select {
	case <-c.G.Port.Interrupt():
	case <-time.After(time.Millisecond):
	}
	c.G.Port.ScanEvents(func(uint32) {})
}

// Write runs fn on the outgoing ring until it fits (committing and
// signalling the host while the ring is full), then commits and signals.
func (c *Channel) Write(fn func(w *ring.Writer) error) {
	c.G.T.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		err := fn(c.Out)
		if err == nil {
			break
		}
		if !errors.Is(err, ring.ErrFull) || time.Now().After(deadline) {
			c.G.T.Fatal(err)
		}
		if c.Out.Commit() {
			c.Signal()
		}
		c.Wait()
	}
	if c.Out.Commit() {
		c.Signal()
	}
}

// SendInBand writes b in-band with the next transaction id and returns it.
func (c *Channel) SendInBand(b []byte, completion bool) uint64 {
	c.TID++
	id := c.TID
	c.Write(func(w *ring.Writer) error { return w.WriteInBand(id, completion, b) })
	return id
}

// Read returns the next packet from the host within d.
func (c *Channel) Read(d time.Duration) (Packet, bool) {
	c.G.T.Helper()
	if len(c.Pending) > 0 {
		p := c.Pending[0]
		c.Pending = c.Pending[1:]
		return p, true
	}
	deadline := time.Now().Add(d)
	var p ring.Packet
	for {
		err := c.In.Next(&p)
		if err == nil {
			hp := Packet{Descriptor: p.Descriptor, Payload: append([]byte(nil), p.Payload...)}
			if p.Type == ring.TypeXferPages {
				hp.Ranges = p.AppendXferRanges(nil)
				hp.SetID = p.XferSetID
			}
			if c.In.Commit() {
				c.Signal()
			}
			return hp, true
		}
		if !errors.Is(err, ring.ErrEmpty) {
			c.G.T.Fatal(err)
		}
		if time.Now().After(deadline) {
			return Packet{}, false
		}
		c.Wait()
	}
}

// MustRead is Read within Timeout, failing the test without a packet.
func (c *Channel) MustRead() Packet {
	c.G.T.Helper()
	p, ok := c.Read(Timeout)
	if !ok {
		c.G.T.Fatal("no packet from the host")
	}
	return p
}

// Completion waits for the completion of transaction id and returns its
// payload; other packets read meanwhile stay pending, in order.
func (c *Channel) Completion(id uint64) []byte {
	c.G.T.Helper()
	var skipped []Packet
	defer func() { c.Pending = append(skipped, c.Pending...) }()
	for {
		p := c.MustRead()
		if p.Type == ring.TypeCompletion && p.TransID == id {
			return p.Payload
		}
		skipped = append(skipped, p)
	}
}
