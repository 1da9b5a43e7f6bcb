package hvpci

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// Class is the VMBus device class of a vPCI bus.
var Class = tlfs.GUIDPCIPassthrough

// Errors returned by this package, wrapped with context; test them with
// errors.Is.
var (
	// ErrRemoved: the function was ejected or vanished, or its bus is gone.
	ErrRemoved = errors.New("hvpci: function removed")
	// ErrHost: the host answered with a failure status or broke the protocol.
	ErrHost = errors.New("hvpci: host refused or broke the protocol")
	// ErrNoVersion: the host accepted none of the protocol versions offered.
	ErrNoVersion = errors.New("hvpci: host accepted no protocol version")
	// ErrTimeout: the host did not send what the bus waited for in time.
	ErrTimeout = errors.New("hvpci: timed out waiting for the host")
	// ErrConfig: a bad Config or argument.
	ErrConfig = errors.New("hvpci: invalid configuration or argument")
	// ErrResources: a function's BARs do not fit in Config.MMIO.
	ErrResources = errors.New("hvpci: no room for the function's BARs")
)

// Window is the bus's 8 KiB configuration MMIO window as the platform maps
// it (vpciwire.WindowSize bytes, 4 KiB aligned). The driver serialises its
// accesses: a slot-select write at vpciwire.WindowSlotSelect is followed by
// the config access at vpciwire.WindowConfigPage+offset, with nothing
// between them. Implementations order each access after the previous one
// (the mb() Linux issues after the slot write).
type Window interface {
	// Base is the guest-physical address passed in BUS_D0ENTRY.
	Base() uint64
	// Read performs one size-byte (1, 2, 4) read at off in the window.
	Read(off uint64, size int) (uint32, error)
	// Write performs one size-byte (1, 2, 4) write at off in the window.
	Write(off uint64, size int, v uint32) error
}

// Config configures a Driver.
type Config struct {
	// Window returns the configuration window for the bus with the given
	// instance GUID (required). It is called once per bus, before D0 entry.
	Window func(instance tlfs.GUID) (Window, error)
	// Clock times the waits (default kernel.RealClock).
	Clock kernel.Clock
	// Logger receives the driver's logs (default: discard); host-triggered
	// messages go through a rate limiter.
	Logger *slog.Logger
	// Versions is the order versions are offered (default
	// vpciwire.GuestVersions: 1.4, 1.3, 1.2, 1.1).
	Versions []vpciwire.Version
	// RingPages is the size of each ring in pages (default 4, as Linux).
	RingPages int
	// Timeout bounds each wait for the host: an unanswered request or the
	// first bus relations (default 10 s).
	Timeout time.Duration
	// EjectTimeout bounds how long an eject waits for subscribers before
	// it sends EJECTION_COMPLETE anyway (default 5 s).
	EjectTimeout time.Duration
	// MapBAR gives a function's driver register access to one of its
	// memory BARs (optional; Function.MapBAR fails without it). gpa and
	// size are the BAR's guest-physical placement and size. On real
	// hardware this is a sysfs/VFIO mmap of the BAR; an in-process test
	// maps it to the host device model's BAR.
	MapBAR func(f *Function, bar int, gpa, size uint64) (pci.BAR, error)
	// MMIO are the guest-physical ranges the driver places BARs in (on
	// Hyper-V the VMBus device's ACPI MMIO ranges, below and above 4 GiB;
	// they must not hold a bus's configuration window). Each memory BAR of
	// a new function gets a naturally aligned piece, written to its config
	// space before the function is announced, and freed when it goes. Nil:
	// BARs are left where the device has them (Function.BARs' Base is 0).
	MMIO []MMIORange
}

// Driver is the vPCI bus driver; it implements vmbus.Driver for Class.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	mmio *mmioSpace // nil without Config.MMIO; guarded by its own mutex

	mu    sync.Mutex
	buses map[*vmbus.Offer]*Bus
	subs  map[int]*subscriber
	next  int
	errs  []error
}

// NewDriver returns a driver.
func NewDriver(cfg Config) (*Driver, error) {
	if cfg.Window == nil {
		return nil, errors.Join(ErrConfig, errors.New("Window is required"))
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.RealClock{}
	}
	if len(cfg.Versions) == 0 {
		cfg.Versions = vpciwire.GuestVersions
	}
	if cfg.RingPages <= 0 {
		cfg.RingPages = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.EjectTimeout <= 0 {
		cfg.EjectTimeout = 5 * time.Second
	}
	var mmio *mmioSpace
	if len(cfg.MMIO) > 0 {
		m, err := newMMIOSpace(cfg.MMIO)
		if err != nil {
			return nil, err
		}
		mmio = m
	}
	base := kernel.LoggerOr(cfg.Logger)
	log := slog.New(kernel.RateLimit(base.Handler(), 20, time.Second, cfg.Clock)).With("drv", "hvpci")
	return &Driver{cfg: cfg, log: log, mmio: mmio, buses: map[*vmbus.Offer]*Bus{}, subs: map[int]*subscriber{}}, nil
}

// Add implements vmbus.Driver: it starts bringing the bus up in the
// background and returns.
func (d *Driver) Add(o *vmbus.Offer) {
	b := newBus(d, o)
	d.mu.Lock()
	d.buses[o] = b
	d.mu.Unlock()
	go b.run()
}

// Remove implements vmbus.Driver: every function of the bus is removed
// (ReasonBusGone) and the channel closed before it returns.
func (d *Driver) Remove(o *vmbus.Offer) {
	d.mu.Lock()
	b := d.buses[o]
	delete(d.buses, o)
	d.mu.Unlock()
	if b != nil {
		b.stop()
	}
}

// Buses returns the buses the driver has.
func (d *Driver) Buses() []*Bus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*Bus, 0, len(d.buses))
	for _, b := range d.buses {
		out = append(out, b)
	}
	return out
}

// Functions returns every present function of every bus.
func (d *Driver) Functions() []*Function {
	var out []*Function
	for _, b := range d.Buses() {
		out = append(out, b.Functions()...)
	}
	return out
}

// Errors returns the bring-up failures seen so far.
func (d *Driver) Errors() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.errs...)
}

func (d *Driver) fail(err error) {
	d.mu.Lock()
	d.errs = append(d.errs, err)
	d.mu.Unlock()
	d.log.Warn("bus failed", "err", err)
}

// EventType says what happened to a function.
type EventType uint8

const (
	// Added: a function appeared and is ready to use.
	Added EventType = iota + 1
	// Removed: a function is going (ReasonEject: still reachable until the
	// callback returns) or gone (the other reasons).
	Removed
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Removed:
		return "removed"
	}
	return "unknown"
}

// Reason says why a function was removed.
type Reason uint8

const (
	// ReasonEject: the host asked for the function back (PCI_EJECT).
	ReasonEject Reason = iota + 1
	// ReasonSurprise: a bus relations update no longer listed it.
	ReasonSurprise
	// ReasonBusGone: the bus was rescinded or the driver stopped it.
	ReasonBusGone
)

func (r Reason) String() string {
	switch r {
	case ReasonEject:
		return "eject"
	case ReasonSurprise:
		return "surprise"
	case ReasonBusGone:
		return "bus gone"
	}
	return "unknown"
}

// Event is one hot-plug event.
type Event struct {
	Type     EventType
	Function *Function
	Serial   uint32 // Function's serial, the netvsc pairing key
	Reason   Reason // for Removed
}

// subscriber delivers events in order on its own goroutine.
type subscriber struct {
	fn    func(Event)
	mu    sync.Mutex
	queue []delivery
	wake  chan struct{}
	quit  chan struct{}
}

type delivery struct {
	ev   Event
	done chan struct{} // closed when fn returned
}

// Subscribe registers fn for events. Each subscriber's events arrive in
// order on a goroutine of its own; returning from fn acknowledges the
// event. For an eject (Removed, ReasonEject) the function stays reachable
// until every subscriber has returned or Config.EjectTimeout passed: stop
// touching the device before returning. Functions already present are
// announced as Added first. cancel stops delivery.
func (d *Driver) Subscribe(fn func(Event)) (cancel func()) {
	s := &subscriber{fn: fn, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	d.mu.Lock()
	id := d.next
	d.next++
	d.subs[id] = s
	for _, b := range d.buses {
		for _, f := range b.Functions() {
			s.push(Event{Type: Added, Function: f, Serial: f.Serial()})
		}
	}
	d.mu.Unlock()
	go s.loop()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			delete(d.subs, id)
			d.mu.Unlock()
			close(s.quit)
		})
	}
}

func (s *subscriber) push(ev Event) chan struct{} {
	done := make(chan struct{})
	s.mu.Lock()
	s.queue = append(s.queue, delivery{ev: ev, done: done})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return done
}

func (s *subscriber) loop() {
	for {
		s.mu.Lock()
		var dl delivery
		ok := len(s.queue) > 0
		if ok {
			dl = s.queue[0]
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.quit:
				return
			}
		}
		select {
		case <-s.quit:
			close(dl.done)
			continue
		default:
		}
		s.fn(dl.ev)
		close(dl.done)
	}
}

// publish sends ev to every subscriber and returns the channels that close
// as each acknowledges.
func (d *Driver) publish(ev Event) []chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.publishLocked(ev)
}

func (d *Driver) publishLocked(ev Event) []chan struct{} {
	acks := make([]chan struct{}, 0, len(d.subs))
	for _, s := range d.subs {
		acks = append(acks, s.push(ev))
	}
	return acks
}

// waitAcks waits for every ack or the timeout; it reports whether all came.
func (d *Driver) waitAcks(ctx context.Context, acks []chan struct{}, timeout time.Duration) bool {
	t := d.cfg.Clock.NewTimer(timeout)
	defer t.Stop()
	for _, a := range acks {
		select {
		case <-a:
		case <-t.C():
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}
