package ifnet

import (
	"bytes"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// EventType says what happened to an interface.
type EventType uint8

const (
	EventAttach EventType = iota + 1 // attached (first event of an interface)
	EventDetach                      // detached (last event of an interface)
	EventLink                        // link state changed (OldLink, Link)
	EventFlags                       // flags changed (OldFlags, Flags)
	EventMTU                         // MTU changed (OldMTU, MTU)
	EventCaps                        // capabilities, enabled set or hwassist changed (Caps)
	EventMAC                         // link-layer address changed (MAC)

	eventUnsubscribed // internal: acknowledges an Unsubscribe
)

func (t EventType) String() string {
	switch t {
	case EventAttach:
		return "attach"
	case EventDetach:
		return "detach"
	case EventLink:
		return "link"
	case EventFlags:
		return "flags"
	case EventMTU:
		return "mtu"
	case EventCaps:
		return "caps"
	case EventMAC:
		return "mac"
	}
	return "event(" + strconv.Itoa(int(t)) + ")"
}

// Event is one registry announcement. Fields that do not belong to Type are
// zero.
type Event struct {
	Seq       uint64 // registry-wide sequence number, increasing by one per event
	Type      EventType
	Interface *Interface
	Index     uint32
	Name      string

	OldFlags, Flags Flags
	OldLink, Link   LinkState
	OldMTU, MTU     int
	Caps            CapState
	MAC             net.HardwareAddr // EventAttach and EventMAC

	sub *Subscription // eventUnsubscribed only
}

// Registry holds the attached interfaces and announces their attach,
// detach, link, flag and configuration changes (FreeBSD's
// ether_ifattach_event, ifnet_departure_event, ifnet_link_event,
// ifnet_event). hn subscribes to find its VF.
//
// Events go into one queue in the order the changes happened and one
// dispatcher goroutine delivers each event to every subscriber, in
// subscription order, before the next event. So every subscriber sees the
// same global order; per interface, attach comes first and detach last. A
// callback runs with no registry or interface lock held: it may look
// interfaces up, issue ioctls, attach, detach or subscribe. It must not call
// Close or wait for Subscription.Done of any subscription (the dispatcher
// would wait for itself), and a slow callback delays everyone's events.
//
// Concurrency: mu guards every field below it. Lock order: Interface.ioctlMu,
// then Interface.mu, then Registry.mu.
type Registry struct {
	wake chan struct{} // capacity 1; nudges the dispatcher
	done chan struct{} // closed when the dispatcher exits

	mu        sync.Mutex
	byName    map[string]*Interface
	byIndex   map[uint32]*Interface
	lastIndex uint32
	subs      []*Subscription // copy on write; the dispatcher reads snapshots
	queue     []Event
	spare     []Event // the drained queue, reused
	seq       uint64
	closed    bool
	exited    bool
}

// NewRegistry returns an empty registry and starts its dispatcher; Close
// stops it.
func NewRegistry() *Registry {
	r := &Registry{
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		byName:  make(map[string]*Interface),
		byIndex: make(map[uint32]*Interface),
	}
	go r.dispatch()
	return r
}

// Close delivers the events already queued, stops the dispatcher and waits
// for it. Later events are discarded; Attach and Subscribe fail with
// ErrClosed. Interfaces stay attached (their data path is unaffected).
// Close is idempotent. It must not be called from a subscriber callback.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.nudge()
	<-r.done
	return nil
}

func (r *Registry) nudge() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// enqueue queues an event (takes mu).
func (r *Registry) enqueue(ev Event) {
	r.mu.Lock()
	r.enqueueLocked(ev)
	r.mu.Unlock()
}

func (r *Registry) enqueueLocked(ev Event) {
	if r.closed && ev.Type != eventUnsubscribed {
		return
	}
	if ev.Type != eventUnsubscribed {
		r.seq++
		ev.Seq = r.seq
	}
	r.queue = append(r.queue, ev)
	r.nudge()
}

func (r *Registry) dispatch() {
	defer close(r.done)
	for {
		r.mu.Lock()
		for len(r.queue) == 0 {
			if r.closed {
				r.exited = true
				for _, s := range r.subs {
					s.closeDoneLocked()
				}
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			<-r.wake
			r.mu.Lock()
		}
		evs, subs := r.queue, r.subs
		r.queue, r.spare = r.spare[:0], nil
		r.mu.Unlock()

		for i := range evs {
			ev := &evs[i]
			if ev.Type == eventUnsubscribed {
				r.mu.Lock()
				ev.sub.closeDoneLocked()
				r.mu.Unlock()
				continue
			}
			for _, s := range subs {
				if ev.Seq >= s.from && !s.dead.Load() {
					s.fn(*ev)
				}
			}
		}
		clear(evs)
		r.mu.Lock()
		if r.spare == nil {
			r.spare = evs[:0]
		}
		r.mu.Unlock()
	}
}

// Subscription is a registered event callback.
type Subscription struct {
	reg  *Registry
	fn   func(Event)
	from uint64 // first event sequence number delivered
	dead atomic.Bool
	done chan struct{}
	// doneClosed is guarded by reg.mu.
	doneClosed bool
}

func (s *Subscription) closeDoneLocked() {
	if !s.doneClosed {
		s.doneClosed = true
		close(s.done)
	}
}

// Subscribe registers fn for every event queued from now on. Existing
// interfaces are not replayed: call Interfaces after Subscribe to find them
// (an interface attached in between shows up in both, so handle duplicates
// by index).
func (r *Registry) Subscribe(fn func(Event)) (*Subscription, error) {
	if fn == nil {
		return nil, wrapf(ErrInvalid, "", "nil subscriber")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, wrapf(ErrClosed, "", "subscribe")
	}
	s := &Subscription{reg: r, fn: fn, from: r.seq + 1, done: make(chan struct{})}
	r.subs = append(slices.Clip(r.subs), s)
	return s, nil
}

// Unsubscribe stops deliveries: no callback starts after it returns (one
// already running on the dispatcher may finish). Done is closed once the
// dispatcher has moved past any running callback. A second call returns
// ErrReleased. It may be called from a callback.
func (s *Subscription) Unsubscribe() error {
	r := s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.dead.Load() {
		return wrapf(ErrReleased, "", "subscription already cancelled")
	}
	s.dead.Store(true)
	i := slices.Index(r.subs, s)
	r.subs = slices.Delete(slices.Clone(r.subs), i, i+1)
	if r.exited {
		s.closeDoneLocked()
	} else {
		r.enqueueLocked(Event{Type: eventUnsubscribed, sub: s})
	}
	return nil
}

// Done is closed when the subscription's callback will never run again:
// after Unsubscribe, or when the registry's dispatcher has stopped (Close).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Attach makes the interface visible: it gets the next index (indexes are
// never reused), and subscribers get EventAttach. The name must be unused.
// A detached interface cannot be attached again.
func (r *Registry) Attach(ifp *Interface) error {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	switch {
	case ifp.Detached():
		return wrapf(ErrDetached, ifp.name, "attach")
	case ifp.reg != nil:
		return wrapf(ErrExists, ifp.name, "already attached")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return wrapf(ErrClosed, ifp.name, "attach")
	}
	if _, ok := r.byName[ifp.name]; ok {
		return wrapf(ErrExists, ifp.name, "an interface with this name is attached")
	}
	r.lastIndex++
	ifp.index.Store(r.lastIndex)
	r.byName[ifp.name] = ifp
	r.byIndex[r.lastIndex] = ifp
	ifp.reg = r
	r.enqueueLocked(Event{Type: EventAttach, Interface: ifp, Index: r.lastIndex, Name: ifp.name,
		Flags: ifp.Flags(), Link: ifp.LinkState(), MTU: ifp.MTU(), MAC: slices.Clone(ifp.mac),
		Caps: CapState{ifp.caps, ifp.CapEnabled(), ifp.HWAssist()}})
	return nil
}

// Detach removes the interface for good: subscribers get EventDetach (its
// last event), ioctls and transmits fail with ErrDetached, received packets
// are dropped (DropDetached), and FlagRunning is cleared. It waits for an
// ioctl in progress on the interface. Claims and input overrides are left
// for their owners to release; the driver stops its own goroutines.
func (r *Registry) Detach(ifp *Interface) error {
	ifp.ioctlMu.Lock()
	defer ifp.ioctlMu.Unlock()
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if ifp.reg != r {
		return wrapf(ErrNotFound, ifp.name, "not attached to this registry")
	}
	ifp.detached.Store(true)
	r.mu.Lock()
	delete(r.byName, ifp.name)
	delete(r.byIndex, ifp.Index())
	r.enqueueLocked(Event{Type: EventDetach, Interface: ifp, Index: ifp.Index(), Name: ifp.name})
	r.mu.Unlock()
	ifp.reg = nil
	ifp.flags.Store(uint32(ifp.Flags() &^ FlagRunning))
	return nil
}

// ByName returns the attached interface with that name.
func (r *Registry) ByName(name string) (*Interface, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ifp, ok := r.byName[name]; ok {
		return ifp, nil
	}
	return nil, wrapf(ErrNotFound, "", "no interface named %q", name)
}

// ByIndex returns the attached interface with that index.
func (r *Registry) ByIndex(index uint32) (*Interface, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ifp, ok := r.byIndex[index]; ok {
		return ifp, nil
	}
	return nil, wrapf(ErrNotFound, "", "no interface with index %d", index)
}

// ByMAC returns the attached interfaces with that link-layer address, by
// index. There can be several: hn and its VF share one.
func (r *Registry) ByMAC(mac net.HardwareAddr) []*Interface {
	var out []*Interface
	for _, ifp := range r.Interfaces() {
		if bytes.Equal(ifp.MAC(), mac) {
			out = append(out, ifp)
		}
	}
	return out
}

// Interfaces returns the attached interfaces ordered by index.
func (r *Registry) Interfaces() []*Interface {
	r.mu.Lock()
	out := make([]*Interface, 0, len(r.byIndex))
	for _, ifp := range r.byIndex {
		out = append(out, ifp)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *Interface) int { return int(a.Index()) - int(b.Index()) })
	return out
}
