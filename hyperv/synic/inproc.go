package synic

import (
	"fmt"
	mathbits "math/bits"
	"sync"
	"sync/atomic"
)

// DefaultQueue is how many messages may wait behind the slot before
// Deliver reports insufficient buffers.
const DefaultQueue = 256

// Pair is an in-process hypervisor between one guest and one host: the
// guest end is a GuestPort, the host end a HostPort whose guest input goes
// to a HostHandler.
type Pair struct {
	guest guestEnd
	host  hostEnd

	handler HostHandler // set once before use

	mu     sync.Mutex // guards slot, queue and closed
	slot   *Message   // message in the SINT slot, nil when free
	queue  []Message  // messages waiting for the slot (MessagePending)
	limit  int
	closed bool

	flags [(MaxRelID + 1) / 64]atomic.Uint64 // event flags, bit = relid; lock-free
	intr  chan struct{}                      // the SINT's edge, coalesced

	posts, signals, delivered, interrupts atomic.Uint64
}

// PairStats counts what crossed the simulated hypervisor.
type PairStats struct {
	Posts, Signals, Delivered, Interrupts uint64
}

// NewPair returns a connected in-process pair whose guest posts and
// signals go to h.
func NewPair(h HostHandler) *Pair {
	p := &Pair{handler: h, limit: DefaultQueue, intr: make(chan struct{}, 1)}
	p.guest.p, p.host.p = p, p
	return p
}

// Guest returns the guest end.
func (p *Pair) Guest() GuestPort { return &p.guest }

// Host returns the host end.
func (p *Pair) Host() HostPort { return &p.host }

// Stats returns a snapshot of the counters.
func (p *Pair) Stats() PairStats {
	return PairStats{Posts: p.posts.Load(), Signals: p.signals.Load(),
		Delivered: p.delivered.Load(), Interrupts: p.interrupts.Load()}
}

func (p *Pair) interrupt() {
	p.interrupts.Add(1)
	select {
	case p.intr <- struct{}{}:
	default:
	}
}

func (p *Pair) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

func (p *Pair) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

type guestEnd struct{ p *Pair }

func (g *guestEnd) PostMessage(connID, msgType uint32, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("synic: post of %d bytes: %w", len(payload), StatusInvalidParameter)
	}
	if g.p.isClosed() {
		return ErrClosed
	}
	g.p.posts.Add(1)
	return g.p.handler.HandlePost(connID, msgType, payload).Err()
}

func (g *guestEnd) SignalEvent(connID uint32) error {
	if g.p.isClosed() {
		return ErrClosed
	}
	g.p.signals.Add(1)
	return g.p.handler.HandleSignal(connID).Err()
}

func (g *guestEnd) Interrupt() <-chan struct{} { return g.p.intr }

func (g *guestEnd) TakeMessage(m *Message) bool {
	p := g.p
	p.mu.Lock()
	if p.slot == nil {
		p.mu.Unlock()
		return false
	}
	*m = *p.slot
	p.slot = nil
	more := false
	if len(p.queue) > 0 { // EOM: the hypervisor rescans and refills the slot
		next := p.queue[0]
		copy(p.queue, p.queue[1:])
		p.queue = p.queue[:len(p.queue)-1]
		p.slot = &next
		more = true
	}
	p.mu.Unlock()
	if more {
		p.interrupt()
	}
	return true
}

func (g *guestEnd) ScanEvents(fn func(relid uint32)) {
	for w := range g.p.flags {
		bits := g.p.flags[w].Swap(0)
		for bits != 0 {
			b := mathbits.TrailingZeros64(bits)
			bits &^= 1 << b
			fn(uint32(w*64 + b))
		}
	}
}

func (g *guestEnd) Close() error { g.p.close(); return nil }

type hostEnd struct{ p *Pair }

func (h *hostEnd) Deliver(msgType uint32, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("synic: deliver %d bytes: %w", len(payload), StatusInvalidParameter)
	}
	p := h.p
	m := Message{Type: msgType, Size: uint8(len(payload))}
	copy(m.Payload[:], payload)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.slot == nil {
		p.slot = &m
	} else if len(p.queue) >= p.limit {
		p.mu.Unlock()
		return StatusInsufficientBuffers
	} else {
		p.queue = append(p.queue, m)
	}
	p.mu.Unlock()
	p.delivered.Add(1)
	p.interrupt()
	return nil
}

func (h *hostEnd) SignalGuest(relid uint32) error {
	if relid == 0 || relid > MaxRelID {
		return fmt.Errorf("synic: signal relid %d: %w", relid, StatusInvalidParameter)
	}
	if h.p.isClosed() {
		return ErrClosed
	}
	h.p.flags[relid/64].Or(1 << (relid % 64))
	h.p.interrupt()
	return nil
}

func (h *hostEnd) Close() error { h.p.close(); return nil }
