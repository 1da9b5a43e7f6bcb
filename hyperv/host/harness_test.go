package host_test

import (
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
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

// The tests play the guest by hand: they post raw encoded vmbusmsg
// messages through the synic pair's guest end and decode what the server
// delivers, and they drive rings with hyperv/ring on simulated RAM.

const waitTimeout = 5 * time.Second

var leakChecked sync.Map // *testing.T -> registered

type env struct {
	t       *testing.T
	srv     *host.Server
	pair    *synic.Pair
	port    synic.GuestPort
	ram     *kernel.SimRAM
	msgConn uint32
	pending []vmbusmsg.Message // taken from the slot but not yet consumed
}

func newEnv(t *testing.T, cfg host.Config) *env {
	t.Helper()
	if _, ok := leakChecked.LoadOrStore(t, true); !ok {
		// Registered first, so it runs after every env's Close.
		t.Cleanup(func() { checkNoServerGoroutines(t) })
	}
	ram := kernel.NewSimRAM(2048)
	cfg.Memory = ram
	srv, err := host.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, pair: pair, port: pair.Guest(), ram: ram, msgConn: 1}
	t.Cleanup(func() { srv.Close() })
	return e
}

// checkNoServerGoroutines fails if any goroutine still runs server code.
func checkNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		leaked := ""
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "hyperv/host.") || strings.Contains(g, "hyperv/host/echo.") {
				leaked = g
				break
			}
		}
		if leaked == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server goroutine still running after Close:\n%s", leaked)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) post(m vmbusmsg.Message) error { return e.postOn(e.msgConn, m) }

func (e *env) postOn(conn uint32, m vmbusmsg.Message) error {
	return e.port.PostMessage(conn, uint32(tlfs.MsgVMBus), m.Encode())
}

func (e *env) mustPost(m vmbusmsg.Message) {
	e.t.Helper()
	if err := e.post(m); err != nil {
		e.t.Fatalf("post %s: %v", m.Type(), err)
	}
}

// take returns the next message in the slot, waiting up to d.
func (e *env) take(d time.Duration) (vmbusmsg.Message, bool) {
	e.t.Helper()
	if len(e.pending) > 0 {
		m := e.pending[0]
		e.pending = e.pending[1:]
		return m, true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var sm synic.Message
	for {
		if e.port.TakeMessage(&sm) {
			m, err := vmbusmsg.DecodeFromHost(sm.Bytes())
			if err != nil {
				e.t.Fatalf("host sent an undecodable message % x: %v", sm.Bytes(), err)
			}
			return m, true
		}
		select {
		case <-e.port.Interrupt():
		case <-deadline.C:
			return nil, false
		}
	}
}

func (e *env) recv() vmbusmsg.Message {
	e.t.Helper()
	m, ok := e.take(waitTimeout)
	if !ok {
		e.t.Fatal("no message from the host")
	}
	return m
}

// expect receives the next message and checks its type.
func expect[T vmbusmsg.Message](e *env) T {
	e.t.Helper()
	m := e.recv()
	x, ok := m.(T)
	if !ok {
		var zero T
		e.t.Fatalf("got %s %+v, want %T", m.Type(), m, zero)
	}
	return x
}

func (e *env) expectNone(d time.Duration) {
	e.t.Helper()
	if m, ok := e.take(d); ok {
		e.t.Fatalf("unexpected %s %+v", m.Type(), m)
	}
}

// connect negotiates v and checks it is accepted.
func (e *env) connect(v vmbusmsg.Version) *vmbusmsg.VersionResponse {
	e.t.Helper()
	ic := &vmbusmsg.InitiateContact{VersionRequested: v}
	if v >= vmbusmsg.VersionWin10V5 {
		ic.SetTargetInfo(2, 0, 0)
	}
	if err := e.postOn(v.InitiateContactConnectionID(), ic); err != nil {
		e.t.Fatalf("INITIATE_CONTACT %v: %v", v, err)
	}
	r := expect[*vmbusmsg.VersionResponse](e)
	if !r.Supported() || r.ConnectionState != vmbusmsg.ConnectionSuccessful {
		e.t.Fatalf("version %v refused: %+v", v, r)
	}
	if v >= vmbusmsg.VersionWin10V5 {
		e.msgConn = r.MsgConnID
	}
	return r
}

// offers requests offers and returns them.
func (e *env) offers() []*vmbusmsg.OfferChannel {
	e.t.Helper()
	e.mustPost(&vmbusmsg.RequestOffers{})
	var out []*vmbusmsg.OfferChannel
	for {
		switch m := e.recv().(type) {
		case *vmbusmsg.OfferChannel:
			out = append(out, m)
		case *vmbusmsg.AllOffersDelivered:
			return out
		default:
			e.t.Fatalf("unexpected %s during offers", m.Type())
		}
	}
}

// gpadl creates a GPADL over region on relid and returns the reply.
func (e *env) gpadl(relid, id uint32, ranges ...gpa.Range) *vmbusmsg.GPADLCreated {
	e.t.Helper()
	h, bodies, err := vmbusmsg.SplitGPADL(relid, id, ranges)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mustPost(h)
	for _, b := range bodies {
		e.mustPost(b)
	}
	return expect[*vmbusmsg.GPADLCreated](e)
}

// guestChan is the guest side of an open channel: it writes the first
// ring of the GPADL and reads the second.
type guestChan struct {
	e      *env
	offer  *vmbusmsg.OfferChannel
	region *kernel.Region
	gpadl  uint32
	out    *ring.Writer
	in     *ring.Reader
}

// open creates a ring GPADL (sendPages + recvPages) and opens the offer.
func (e *env) open(o *vmbusmsg.OfferChannel, id uint32, sendPages, recvPages int) *guestChan {
	e.t.Helper()
	region, err := e.ram.Alloc(sendPages + recvPages)
	if err != nil {
		e.t.Fatal(err)
	}
	first, second, err := ring.SplitPair(region.Bytes, sendPages)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range []ring.Memory{first, second} {
		if err := ring.InitControl(m.Control); err != nil {
			e.t.Fatal(err)
		}
	}
	if c := e.gpadl(o.ChildRelID, id, vmbusmsg.PageRange(region.PFNs)); c.CreationStatus != 0 || c.GPADL != id {
		e.t.Fatalf("ring GPADL: %+v", c)
	}
	e.mustPost(&vmbusmsg.OpenChannel{ChildRelID: o.ChildRelID, OpenID: o.ChildRelID, RingBufferGPADL: id,
		DownstreamRingBufferPageOffset: uint32(sendPages)})
	r := e.openResult()
	if r.Status != 0 || r.ChildRelID != o.ChildRelID || r.OpenID != o.ChildRelID {
		e.t.Fatalf("open: %+v", r)
	}
	out, err := ring.NewWriter(first.Control, first.Data)
	if err != nil {
		e.t.Fatal(err)
	}
	in, err := ring.NewReader(second.Control, second.Data, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &guestChan{e: e, offer: o, region: region, gpadl: id, out: out, in: in}
}

func (g *guestChan) signal() {
	if err := g.e.port.SignalEvent(g.offer.ConnectionID); err != nil {
		g.e.t.Fatalf("signal: %v", err)
	}
}

// write stages a packet with fn, waiting for ring space, and commits.
func (g *guestChan) write(total int, fn func(w *ring.Writer) error) {
	g.e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := fn(g.out)
		if err == nil {
			break
		}
		if !errors.Is(err, ring.ErrFull) {
			g.e.t.Fatal(err)
		}
		if g.out.Commit() {
			g.signal()
		}
		if ready, err := g.out.ArmPendingSend(total); err != nil {
			g.e.t.Fatal(err)
		} else if !ready {
			g.drainEvents(deadline)
		}
	}
	if g.out.Commit() {
		g.signal()
	}
}

// drainEvents waits for an interrupt (host signalled, or message).
func (g *guestChan) drainEvents(deadline time.Time) {
	g.e.t.Helper()
	if time.Now().After(deadline) {
		g.e.t.Fatal("timed out waiting for the host")
	}
	select {
	case <-g.e.port.Interrupt():
	case <-time.After(time.Millisecond):
	}
	g.e.port.ScanEvents(func(uint32) {})
}

// read returns the next packet from the host (copied), waiting for it.
func (g *guestChan) read() (ring.Descriptor, []byte) {
	g.e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var p ring.Packet
	for {
		err := g.in.Next(&p)
		if err == nil {
			payload := append([]byte(nil), p.Payload...)
			if g.in.Commit() {
				g.signal()
			}
			return p.Descriptor, payload
		}
		if err != ring.ErrEmpty {
			g.e.t.Fatal(err)
		}
		g.drainEvents(deadline)
	}
}

func (g *guestChan) close() {
	g.e.mustPost(&vmbusmsg.CloseChannel{ChildRelID: g.offer.ChildRelID})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

type (
	ringWriter = ring.Writer
	ringPacket = ring.Packet
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// readNoFatal is read for goroutines other than the test's.
func (g *guestChan) readNoFatal() (ring.Descriptor, []byte) {
	var p ring.Packet
	for {
		err := g.in.Next(&p)
		if err == nil {
			payload := append([]byte(nil), p.Payload...)
			if g.in.Commit() {
				g.e.port.SignalEvent(g.offer.ConnectionID)
			}
			return p.Descriptor, payload
		}
		if err != ring.ErrEmpty {
			return ring.Descriptor{}, nil
		}
		select {
		case <-g.e.port.Interrupt():
		case <-time.After(time.Millisecond):
		}
	}
}

func pageRange(pfns []uint64) gpa.Range { return vmbusmsg.PageRange(pfns) }

// openResult waits for OPENCHANNEL_RESULT; messages that arrive before it
// (offers a device makes while opening) are kept for later.
func (e *env) openResult() *vmbusmsg.OpenChannelResult {
	e.t.Helper()
	var early []vmbusmsg.Message
	for {
		m := e.recv()
		if r, ok := m.(*vmbusmsg.OpenChannelResult); ok {
			e.pending = append(early, e.pending...)
			return r
		}
		early = append(early, m)
	}
}
