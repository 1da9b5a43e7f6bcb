package vmbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// Config configures a Bus.
type Config struct {
	Port   synic.GuestPort // required
	Memory kernel.Memory   // required: rings, GPADL'd buffers, contact pages
	Clock  kernel.Clock    // default kernel.RealClock
	Logger *slog.Logger    // default: discard

	// Versions is the try order, newest first; default
	// vmbusmsg.GuestVersions() (6.0 down to WIN8 2.4).
	Versions []vmbusmsg.Version
	// Timeout bounds each wait for a host response; default 10 s.
	Timeout time.Duration
	// TargetVCPU is the VP index that receives VMBus messages.
	TargetVCPU uint32
}

// Driver takes the offers of one device class. Add and Remove run on the
// bus's worker goroutine, one at a time, in the order the host sent the
// offers and rescinds; they may block.
type Driver interface {
	// Add is called for each primary offer of the class.
	Add(o *Offer)
	// Remove is called when the host rescinds the offer (or the bus
	// closes). The driver must stop using the offer's channel; the bus
	// releases whatever is still open once Remove returns.
	Remove(o *Offer)
}

// firstGPADL is where GPADL handles start: Linux and FreeBSD both begin at
// 0xE1E10 (spec §4).
const firstGPADL = 0xE1E10

// Bus is a VMBus connection.
type Bus struct {
	cfg     Config
	port    synic.GuestPort
	log     *slog.Logger
	timeout time.Duration

	version   vmbusmsg.Version // set once by Connect, read-only after
	msgConnID uint32           // HvPostMessage connection id after Connect
	contact   *kernel.Region   // interrupt page + two monitor pages

	w         waiters
	nextGPADL atomic.Uint32
	chans     [synic.MaxRelID + 1]atomic.Pointer[Channel] // relid → open channel; lock-free for events

	mu       sync.Mutex // guards offers, drivers, closed
	offers   map[uint32]*Offer
	drivers  map[tlfs.GUID]Driver
	closed   bool
	offered  chan struct{} // closed at ALLOFFERS_DELIVERED
	offerOne sync.Once

	onEventFn func(relid uint32) // b.onEvent, bound once: a method value allocates per use
	work      workQueue
	stop      chan struct{}
	wg        sync.WaitGroup
	badMsgs   atomic.Uint64
	unmached  atomic.Uint64
}

// Connect negotiates a VMBus connection, requests the offers and returns
// once the host has delivered them all. Drivers registered in drivers get
// their offers as they arrive (more can be registered later).
func Connect(ctx context.Context, cfg Config, drivers map[tlfs.GUID]Driver) (*Bus, error) {
	if cfg.Port == nil || cfg.Memory == nil {
		return nil, fmt.Errorf("vmbus: Config needs Port and Memory: %w", ErrState)
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.RealClock{}
	}
	if len(cfg.Versions) == 0 {
		cfg.Versions = vmbusmsg.GuestVersions()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	b := &Bus{
		cfg: cfg, port: cfg.Port, log: kernel.LoggerOr(cfg.Logger).With("dev", "vmbus"),
		timeout: cfg.Timeout, offers: map[uint32]*Offer{}, drivers: map[tlfs.GUID]Driver{},
		offered: make(chan struct{}), stop: make(chan struct{}),
	}
	for g, d := range drivers {
		b.drivers[g] = d
	}
	b.onEventFn = b.onEvent
	b.nextGPADL.Store(firstGPADL - 1)
	contact, err := cfg.Memory.Alloc(3)
	if err != nil {
		return nil, fmt.Errorf("vmbus: contact pages: %w", err)
	}
	b.contact = contact
	b.work.init()
	b.wg.Add(2)
	go b.dispatch()
	go b.work.run(&b.wg)

	if err := b.negotiate(ctx); err != nil {
		b.shutdown()
		return nil, err
	}
	if err := b.post(&vmbusmsg.RequestOffers{}); err != nil {
		b.shutdown()
		return nil, fmt.Errorf("vmbus: request offers: %w", err)
	}
	t := b.cfg.Clock.NewTimer(b.timeout)
	defer t.Stop()
	select {
	case <-b.offered:
	case <-t.C():
		b.shutdown()
		return nil, fmt.Errorf("vmbus: waiting for all offers: %w", ErrTimeout)
	case <-ctx.Done():
		b.shutdown()
		return nil, ctx.Err()
	}
	return b, nil
}

// negotiate tries each version, newest first (spec §2.5 step 3).
func (b *Bus) negotiate(ctx context.Context) error {
	for _, v := range b.cfg.Versions {
		msg := &vmbusmsg.InitiateContact{VersionRequested: v, TargetVCPU: b.cfg.TargetVCPU,
			MonitorPage1: b.contact.GPA(kernel.PageSize), MonitorPage2: b.contact.GPA(2 * kernel.PageSize)}
		if v >= vmbusmsg.VersionWin10V5 {
			msg.SetTargetInfo(tlfs.VMBusMessageSINT, 0, 0)
		} else {
			msg.InterruptPageOrTarget = b.contact.GPA(0)
		}
		k := waitKey{kind: waitVersion}
		c, err := b.w.add(k, 0)
		if err != nil {
			return err
		}
		err = b.postTo(v.InitiateContactConnectionID(), msg)
		if errors.Is(err, synic.StatusInvalidConnectionID) {
			// A host older than 5.0 has no message port 4 (spec §2.1).
			b.w.remove(k)
			b.log.Debug("version refused by connection id", "version", v)
			continue
		}
		if err != nil {
			b.w.remove(k)
			return fmt.Errorf("vmbus: initiate contact %v: %w", v, err)
		}
		resp, err := b.wait(ctx, k, c)
		if err != nil {
			return fmt.Errorf("vmbus: initiate contact %v: %w", v, err)
		}
		vr := resp.(*vmbusmsg.VersionResponse)
		if !vr.Supported() {
			continue
		}
		if vr.ConnectionState != vmbusmsg.ConnectionSuccessful {
			return fmt.Errorf("vmbus: host accepted %v but reports %v: %w", v, vr.ConnectionState, ErrRefused)
		}
		b.version = v
		b.msgConnID = tlfs.VMBusMessageConnectionID
		if v >= vmbusmsg.VersionWin10V5 {
			b.msgConnID = vr.MsgConnID
		}
		b.log.Info("connected", "version", v, "msgConnID", b.msgConnID)
		return nil
	}
	return ErrNoVersion
}

// Version returns the negotiated protocol version.
func (b *Bus) Version() vmbusmsg.Version { return b.version }

// RegisterDriver routes offers of class to d, including offers that
// arrived before it registered.
func (b *Bus) RegisterDriver(class tlfs.GUID, d Driver) {
	b.mu.Lock()
	b.drivers[class] = d
	var pending []*Offer
	for _, o := range b.offers {
		if o.ClassID() == class && o.msg.SubChannelIndex == 0 {
			pending = append(pending, o)
		}
	}
	b.mu.Unlock()
	for _, o := range pending {
		b.work.push(func() { d.Add(o) })
	}
}

// Offers returns the offers the bus knows, primaries and sub-channels.
func (b *Bus) Offers() []*Offer {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Offer, 0, len(b.offers))
	for _, o := range b.offers {
		out = append(out, o)
	}
	return out
}

// Stats is a snapshot of the bus's counters.
type Stats struct {
	Offers, PendingWaits int
	BadMessages          uint64 // host messages that failed to decode or made no sense
	UnmatchedResponses   uint64
}

// Stats returns a snapshot of the counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	n := len(b.offers)
	b.mu.Unlock()
	return Stats{Offers: n, PendingWaits: b.w.len(), BadMessages: b.badMsgs.Load(), UnmatchedResponses: b.unmached.Load()}
}

func (b *Bus) post(m vmbusmsg.Message) error { return b.postTo(b.msgConnID, m) }

// postTo posts a channel message, retrying while the host's message queue
// is full, as Linux vmbus_post_msg does.
func (b *Bus) postTo(conn uint32, m vmbusmsg.Message) error {
	var buf [vmbusmsg.MaxMessageSize]byte
	p := m.AppendTo(buf[:0])
	delay := time.Millisecond
	for try := 0; ; try++ {
		err := b.port.PostMessage(conn, uint32(tlfs.MsgVMBus), p)
		if !errors.Is(err, synic.StatusInsufficientBuffers) || try == 20 {
			return err
		}
		t := b.cfg.Clock.NewTimer(delay)
		select {
		case <-t.C():
		case <-b.stop:
			t.Stop()
			return ErrClosed
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// wait waits for the response registered under k.
func (b *Bus) wait(ctx context.Context, k waitKey, c <-chan any) (any, error) {
	t := b.cfg.Clock.NewTimer(b.timeout)
	defer t.Stop()
	select {
	case v := <-c:
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v, nil
	case <-t.C():
		b.w.remove(k)
		return nil, ErrTimeout
	case <-ctx.Done():
		b.w.remove(k)
		return nil, ctx.Err()
	case <-b.stop:
		b.w.remove(k)
		return nil, ErrClosed
	}
}

// request registers a wait, posts m and waits for the response.
func (b *Bus) request(ctx context.Context, k waitKey, relid uint32, msgs ...vmbusmsg.Message) (any, error) {
	c, err := b.w.add(k, relid)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := b.post(m); err != nil {
			b.w.remove(k)
			return nil, err
		}
	}
	return b.wait(ctx, k, c)
}

// dispatch services the SINT: event flags first, then messages.
func (b *Bus) dispatch() {
	defer b.wg.Done()
	var m synic.Message
	for {
		select {
		case <-b.stop:
			return
		case <-b.port.Interrupt():
		}
		b.port.ScanEvents(b.onEventFn)
		for b.port.TakeMessage(&m) {
			b.onMessage(&m)
		}
	}
}

func (b *Bus) onEvent(relid uint32) {
	if relid <= synic.MaxRelID {
		if ch := b.chans[relid].Load(); ch != nil {
			ch.Notify()
		}
	}
}

func (b *Bus) bad(msg string, args ...any) {
	b.badMsgs.Add(1)
	b.log.Warn(msg, args...)
}

func (b *Bus) onMessage(m *synic.Message) {
	if tlfs.MessageType(m.Type) != tlfs.MsgVMBus {
		b.bad("ignoring SynIC message of unexpected type", "type", tlfs.MessageType(m.Type))
		return
	}
	msg, err := vmbusmsg.DecodeFromHost(m.Bytes())
	if err != nil {
		b.bad("ignoring malformed channel message", "err", err)
		return
	}
	var matched bool
	switch msg := msg.(type) {
	case *vmbusmsg.VersionResponse:
		matched = b.w.complete(waitKey{kind: waitVersion}, msg)
	case *vmbusmsg.OfferChannel:
		b.onOffer(msg)
		return
	case *vmbusmsg.AllOffersDelivered:
		b.offerOne.Do(func() { close(b.offered) })
		return
	case *vmbusmsg.RescindChannelOffer:
		b.onRescind(msg.ChildRelID)
		return
	case *vmbusmsg.OpenChannelResult:
		matched = b.w.complete(waitKey{kind: waitOpen, id: msg.ChildRelID}, msg)
	case *vmbusmsg.GPADLCreated:
		matched = b.w.complete(waitKey{kind: waitGPADLCreated, id: msg.GPADL}, msg)
	case *vmbusmsg.GPADLTorndown:
		matched = b.w.complete(waitKey{kind: waitGPADLTorndown, id: msg.GPADL}, msg)
	case *vmbusmsg.UnloadResponse:
		matched = b.w.complete(waitKey{kind: waitUnload}, msg)
	default:
		b.log.Debug("ignoring channel message", "type", msg.Type())
		return
	}
	if !matched {
		b.unmached.Add(1)
		b.log.Warn("host response matches no request", "type", msg.Type())
	}
}

// Close closes every open channel, unloads the connection (protocol 3.0
// and later, as Linux does) and stops the bus's goroutines. Drivers get
// Remove for their offers first.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var offers []*Offer
	for _, o := range b.offers {
		offers = append(offers, o)
	}
	b.mu.Unlock()
	var first error
	done := make(chan struct{})
	b.work.push(func() {
		for _, o := range offers {
			if d := b.driverFor(o); d != nil && o.msg.SubChannelIndex == 0 {
				d.Remove(o)
			}
		}
		close(done)
	})
	<-done
	for _, o := range offers {
		if err := o.Close(ctx); err != nil && !errors.Is(err, ErrState) && first == nil {
			first = err
		}
		o.releaseMemory()
	}
	if b.version >= vmbusmsg.VersionWin8_1 {
		if _, err := b.request(ctx, waitKey{kind: waitUnload}, 0, &vmbusmsg.Unload{}); err != nil && first == nil {
			first = fmt.Errorf("vmbus: unload: %w", err)
		}
	}
	b.shutdown()
	return first
}

// shutdown stops the goroutines and frees the contact pages.
func (b *Bus) shutdown() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	b.work.close()
	b.wg.Wait()
	b.w.failAll(ErrClosed)
	if b.contact != nil {
		b.cfg.Memory.Free(b.contact)
		b.contact = nil
	}
}

func (b *Bus) driverFor(o *Offer) Driver {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.drivers[o.ClassID()]
}
