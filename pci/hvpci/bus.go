package hvpci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// queueLen bounds the host messages waiting for the bus goroutine; a host
// that floods past it loses messages (counted in Stats.Dropped).
const queueLen = 256

// Stats are a bus's counters.
type Stats struct {
	Messages  uint64 // host messages handled
	Bad       uint64 // host packets that failed to decode or made no sense
	Dropped   uint64 // host messages dropped because the queue was full
	Ejects    uint64 // ejects completed
	Surprises uint64 // surprise removals
}

// Bus is one vPCI bus (one VMBus channel).
type Bus struct {
	d     *Driver
	offer *vmbus.Offer
	log   *slog.Logger
	ctx   context.Context
	halt  context.CancelFunc
	done  chan struct{}
	in    chan []byte // host messages, copied out of the ring
	ready chan struct{}

	version atomic.Uint32
	ch      *vmbus.Channel // set before ready; read-only after
	win     Window

	winMu sync.Mutex // serialises slot select + config access

	mu    sync.Mutex
	funcs map[vpciwire.Slot]*Function
	err   error

	messages, bad, dropped, ejects, surprises atomic.Uint64
}

func newBus(d *Driver, o *vmbus.Offer) *Bus {
	ctx, cancel := context.WithCancel(context.Background())
	return &Bus{d: d, offer: o, log: d.log.With("bus", o.InstanceID().String()), ctx: ctx, halt: cancel,
		done: make(chan struct{}), in: make(chan []byte, queueLen), ready: make(chan struct{}),
		funcs: map[vpciwire.Slot]*Function{}}
}

// Instance is the bus instance GUID.
func (b *Bus) Instance() tlfs.GUID { return b.offer.InstanceID() }

// Version is the negotiated protocol version (0 before negotiation).
func (b *Bus) Version() vpciwire.Version { return vpciwire.Version(b.version.Load()) }

// Ready closes when bring-up finished, successfully or not (see Err).
func (b *Bus) Ready() <-chan struct{} { return b.ready }

// Err is the bring-up error, if any.
func (b *Bus) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Stats returns the bus counters.
func (b *Bus) Stats() Stats {
	return Stats{Messages: b.messages.Load(), Bad: b.bad.Load(), Dropped: b.dropped.Load(),
		Ejects: b.ejects.Load(), Surprises: b.surprises.Load()}
}

// Functions returns the present functions, by slot order not guaranteed.
func (b *Bus) Functions() []*Function {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Function, 0, len(b.funcs))
	for _, f := range b.funcs {
		out = append(out, f)
	}
	return out
}

// HandlePackets implements vmbus.Handler: it copies in-band messages to the
// bus goroutine (requests and eject handshakes must not run on the
// channel's receive goroutine).
func (b *Bus) HandlePackets(_ *vmbus.Channel, pkts []ring.Packet) {
	for i := range pkts {
		p := &pkts[i]
		if p.Type != ring.TypeInBand {
			b.bad.Add(1)
			b.log.Warn("unexpected packet type from host", "type", p.Type)
			continue
		}
		msg := append([]byte(nil), p.Payload...)
		select {
		case b.in <- msg:
		default:
			b.dropped.Add(1)
			b.log.Warn("host message queue full; message dropped")
		}
	}
}

func (b *Bus) run() {
	defer close(b.done)
	err := b.bringUp()
	if err != nil && b.ctx.Err() == nil {
		// Recorded before Ready closes: whoever sees the bus ready and
		// failed finds the failure in Driver.Errors too.
		b.d.fail(fmt.Errorf("hvpci: bus %v: %w", b.Instance(), err))
	}
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
	close(b.ready)
	if err != nil {
		return
	}
	for {
		select {
		case <-b.ctx.Done():
			return
		case msg := <-b.in:
			b.handle(msg, nil)
		}
	}
}

// stop removes every function, releases them to the host if the channel
// still works, and closes the channel.
func (b *Bus) stop() {
	b.halt()
	<-b.done
	b.mu.Lock()
	funcs := b.funcs
	b.funcs = map[vpciwire.Slot]*Function{}
	b.mu.Unlock()
	for _, f := range funcs {
		f.kill()
		b.d.publish(Event{Type: Removed, Function: f, Serial: f.Serial(), Reason: ReasonBusGone})
	}
	if b.ch != nil && !b.offer.Rescinded() {
		ctx, cancel := context.WithTimeout(context.Background(), b.d.cfg.Timeout)
		for _, f := range funcs {
			m := vpciwire.SlotMessage{MsgType: vpciwire.MsgResourcesReleased, Slot: f.desc.Slot}
			_ = b.ch.SendInBand(0, false, m.Encode())
		}
		_, _ = b.ch.Request(ctx, (&vpciwire.Bare{MsgType: vpciwire.MsgBusD0Exit}).Encode())
		cancel()
	}
	_ = b.offer.Close(context.Background())
}

func (b *Bus) bringUp() error {
	ch, err := b.offer.Open(b.ctx, vmbus.OpenOptions{SendPages: b.d.cfg.RingPages, RecvPages: b.d.cfg.RingPages, Handler: b})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	b.ch = ch
	if err := b.negotiate(); err != nil {
		return err
	}
	if b.win, err = b.d.cfg.Window(b.Instance()); err != nil {
		return fmt.Errorf("window: %w", err)
	}
	if err := ch.SendInBand(0, false, (&vpciwire.Bare{MsgType: vpciwire.MsgQueryBusRelations}).Encode()); err != nil {
		return fmt.Errorf("query bus relations: %w", err)
	}
	// Wait for the first relations; anything else that comes first (an
	// eject of nothing, an invalidate) is handled and ignored.
	var rel *vpciwire.BusRelations
	t := b.d.cfg.Clock.NewTimer(b.d.cfg.Timeout)
	for rel == nil {
		select {
		case <-b.ctx.Done():
			t.Stop()
			return b.ctx.Err()
		case <-t.C():
			return fmt.Errorf("%w: no bus relations", ErrTimeout)
		case msg := <-b.in:
			b.handle(msg, &rel)
		}
	}
	t.Stop()
	d0 := vpciwire.BusD0Entry{MMIOBase: b.win.Base()}
	if err := b.statusRequest(d0.Encode()); err != nil {
		return fmt.Errorf("bus D0 entry: %w", err)
	}
	b.relations(rel)
	return nil
}

func (b *Bus) negotiate() error {
	for _, v := range b.d.cfg.Versions {
		q := vpciwire.QueryProtocolVersion{Version: v}
		st, err := b.request(q.Encode())
		if err != nil {
			return fmt.Errorf("query protocol version %v: %w", v, err)
		}
		if st == vpciwire.StatusRevisionMismatch {
			continue
		}
		if st.Failed() {
			return fmt.Errorf("%w: version %v: %v", ErrHost, v, st)
		}
		b.version.Store(uint32(v))
		b.log.Debug("protocol version", "version", v)
		return nil
	}
	return ErrNoVersion
}

// request sends a request and decodes the status at the start of the reply.
func (b *Bus) request(payload []byte) (vpciwire.Status, error) {
	reply, err := b.rawRequest(b.ctx, payload)
	if err != nil {
		return 0, err
	}
	r, err := vpciwire.DecodeStatusReply(reply)
	if err != nil {
		b.bad.Add(1)
		return 0, fmt.Errorf("%w: %w", ErrHost, err)
	}
	return r.Status, nil
}

func (b *Bus) statusRequest(payload []byte) error {
	st, err := b.request(payload)
	if err != nil {
		return err
	}
	if st.Failed() {
		return fmt.Errorf("%w: %v", ErrHost, st)
	}
	return nil
}

func (b *Bus) rawRequest(ctx context.Context, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.d.cfg.Timeout)
	defer cancel()
	reply, err := b.ch.Request(ctx, payload)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, vmbus.ErrTimeout) {
			return nil, fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return nil, err
	}
	return reply, nil
}

// handle processes one host message. During bring-up (first != nil) bus
// relations are stored in *first instead of applied.
func (b *Bus) handle(msg []byte, first **vpciwire.BusRelations) {
	b.messages.Add(1)
	m, err := vpciwire.DecodeFromHost(msg)
	if err != nil {
		b.bad.Add(1)
		b.log.Warn("bad host message", "err", err)
		return
	}
	switch m := m.(type) {
	case *vpciwire.BusRelations:
		if first != nil {
			*first = m
			return
		}
		b.relations(m)
	case *vpciwire.SlotMessage: // EJECT
		b.eject(m.Slot)
	case *vpciwire.InvalidateBlock:
		b.log.Debug("invalidate block", "slot", m.Slot, "mask", m.BlockMask)
	default:
		b.bad.Add(1)
		b.log.Warn("unexpected host message", "type", m.Type())
	}
}

// relations applies a complete list of functions: those missing are
// surprise-removed, new ones are set up and announced.
func (b *Bus) relations(m *vpciwire.BusRelations) {
	seen := make(map[vpciwire.Slot]bool, len(m.Devices))
	var add []vpciwire.Description
	for _, desc := range m.Devices {
		if !desc.Slot.Valid() || seen[desc.Slot] {
			b.bad.Add(1)
			b.log.Warn("bus relations: bad or duplicate slot", "slot", desc.Slot)
			continue
		}
		seen[desc.Slot] = true
		b.mu.Lock()
		old := b.funcs[desc.Slot]
		b.mu.Unlock()
		if old != nil && sameIdentity(&old.desc, &desc) {
			continue
		}
		if old != nil { // a different function in the same slot
			b.surprise(old)
		}
		add = append(add, desc)
	}
	for _, f := range b.Functions() {
		if !seen[f.desc.Slot] {
			b.surprise(f)
		}
	}
	for _, desc := range add {
		f, err := b.setup(desc)
		if err != nil {
			b.log.Warn("function setup failed", "slot", desc.Slot, "serial", desc.Serial, "err", err)
			continue
		}
		// Insert and announce under the driver lock, so a concurrent
		// Subscribe sees the function either in its snapshot or as an
		// event, never both.
		b.d.mu.Lock()
		b.mu.Lock()
		b.funcs[desc.Slot] = f
		b.mu.Unlock()
		b.d.publishLocked(Event{Type: Added, Function: f, Serial: f.Serial()})
		b.d.mu.Unlock()
	}
}

func sameIdentity(a, c *vpciwire.Description) bool {
	return a.VendorID == c.VendorID && a.DeviceID == c.DeviceID && a.Serial == c.Serial &&
		a.SubsystemVendorID == c.SubsystemVendorID && a.SubsystemID == c.SubsystemID
}

// setup queries a new function's BARs and assigns its resources.
func (b *Bus) setup(desc vpciwire.Description) (*Function, error) {
	q := vpciwire.SlotMessage{MsgType: vpciwire.MsgQueryResourceRequirements, Slot: desc.Slot}
	reply, err := b.rawRequest(b.ctx, q.Encode())
	if err != nil {
		return nil, fmt.Errorf("resource requirements: %w", err)
	}
	rr, err := vpciwire.DecodeResourceRequirementsReply(reply)
	if err != nil {
		b.bad.Add(1)
		return nil, fmt.Errorf("%w: resource requirements: %w", ErrHost, err)
	}
	if rr.Status.Failed() {
		return nil, fmt.Errorf("%w: resource requirements: %v", ErrHost, rr.Status)
	}
	bars, err := pci.DecodeProbedBARs(rr.ProbedBAR)
	if err != nil {
		b.bad.Add(1)
		return nil, fmt.Errorf("%w: probed BARs: %w", ErrHost, err)
	}
	variant := uint8(2)
	if b.Version() < vpciwire.Version1_2 {
		variant = 1
	}
	ra := vpciwire.ResourcesAssigned{Variant: variant, Slot: desc.Slot}
	if err := b.statusRequest(ra.Encode()); err != nil {
		return nil, fmt.Errorf("resources assigned: %w", err)
	}
	f := newFunction(b, desc, bars)
	if m := b.d.mmio; m != nil {
		if err := m.placeBARs(f.Config(), f.bars); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// surprise removes f at once: it is dead before subscribers hear of it.
func (b *Bus) surprise(f *Function) {
	b.mu.Lock()
	if b.funcs[f.desc.Slot] == f {
		delete(b.funcs, f.desc.Slot)
	}
	b.mu.Unlock()
	f.kill()
	b.surprises.Add(1)
	b.d.publish(Event{Type: Removed, Function: f, Serial: f.Serial(), Reason: ReasonSurprise})
}

// eject tells subscribers, waits for them (bounded), then kills the
// function and sends EJECTION_COMPLETE.
func (b *Bus) eject(slot vpciwire.Slot) {
	b.mu.Lock()
	f := b.funcs[slot]
	b.mu.Unlock()
	if f == nil {
		b.bad.Add(1)
		b.log.Warn("eject of an unknown slot", "slot", slot)
		return
	}
	acks := b.d.publish(Event{Type: Removed, Function: f, Serial: f.Serial(), Reason: ReasonEject})
	if !b.d.waitAcks(b.ctx, acks, b.d.cfg.EjectTimeout) {
		b.log.Warn("eject: subscribers did not acknowledge in time", "slot", slot, "serial", f.Serial())
	}
	b.mu.Lock()
	if b.funcs[slot] == f {
		delete(b.funcs, slot)
	}
	b.mu.Unlock()
	f.kill()
	m := vpciwire.EjectionComplete{Slot: slot}
	if err := b.ch.SendInBand(0, false, m.Encode()); err != nil {
		b.log.Warn("ejection complete not sent", "slot", slot, "err", err)
		return
	}
	b.ejects.Add(1)
}
