package shmio

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Handler is the device side of the channel: it performs one access to a
// space (a BAR index, or SpaceConfigWindow) at a byte offset. Calls come
// from the host's pump goroutine, one at a time, in the guest's order.
type Handler interface {
	Read(space int, off uint64, size int) uint64
	Write(space int, off uint64, size int, v uint64)
}

// HostStats counts what the host's pump did.
type HostStats struct {
	Reads, Writes  uint64
	BadRequests    uint64 // malformed requests (dropped; a read of one answers all-ones)
	BadCounters    uint64 // request producer counts that ran past the ring (skipped)
	Interrupts     uint64
	InterruptsLost uint64 // the guest did not drain its ring in time
}

// Host serves the channel: its pump goroutine runs the guest's requests
// through the Handler until Close.
type Host struct {
	v *view
	h Handler

	irqMu sync.Mutex // serializes Interrupt (the ring has one producer)

	stop chan struct{}
	done chan struct{}
	once sync.Once

	reads, writes, bad, badCounters, irqs, irqLost atomic.Uint64
}

// NewHost lays a channel out over mem (Size(reqSlots, irqSlots) bytes at
// least, 8-byte aligned) and starts serving it.
func NewHost(mem []byte, reqSlots, irqSlots int, h Handler) (*Host, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: no handler", ErrLayout)
	}
	v, err := initView(mem, reqSlots, irqSlots)
	if err != nil {
		return nil, err
	}
	s := &Host{v: v, h: h, stop: make(chan struct{}), done: make(chan struct{})}
	v.u32(offHost).Store(stateAlive)
	go s.pump()
	return s, nil
}

// GuestAttached reports whether a guest attached (and has not closed).
func (s *Host) GuestAttached() bool { return s.v.u32(offGuest).Load() == stateAlive }

// Interrupt posts an MSI-X vector to the guest. It reports false, and
// counts the loss, when the guest's ring is full.
func (s *Host) Interrupt(vector uint32) bool {
	s.irqMu.Lock()
	defer s.irqMu.Unlock()
	v := s.v
	prod := v.u32(offIrqProd).Load()
	if prod-v.u32(offIrqCons).Load() >= v.irqSlots {
		s.irqLost.Add(1)
		return false
	}
	v.irqSlot(prod).Store(vector)
	v.u32(offIrqProd).Store(prod + 1)
	s.irqs.Add(1)
	return true
}

// Close marks the channel closed (the guest's reads then answer all-ones
// at once) and stops the pump.
func (s *Host) Close() error {
	s.once.Do(func() {
		s.v.u32(offHost).Store(stateClosed)
		close(s.stop)
	})
	<-s.done
	return nil
}

// Stats returns the pump's counters.
func (s *Host) Stats() HostStats {
	return HostStats{Reads: s.reads.Load(), Writes: s.writes.Load(), BadRequests: s.bad.Load(),
		BadCounters: s.badCounters.Load(), Interrupts: s.irqs.Load(), InterruptsLost: s.irqLost.Load()}
}

func (s *Host) pump() {
	defer close(s.done)
	var bo backoff
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if s.serve() {
			bo.reset()
			continue
		}
		bo.idle()
	}
}

// serve runs every request posted so far; it reports whether there was
// any.
func (s *Host) serve() bool {
	v := s.v
	cons := v.u32(offReqCons).Load()
	prod := v.u32(offReqProd).Load()
	if prod == cons {
		return false
	}
	if prod-cons > v.reqSlots {
		// The guest moved its count past the ring: what the slots hold is
		// not what it meant. Skip to its count.
		s.badCounters.Add(1)
		v.u32(offReqCons).Store(prod)
		return true
	}
	for ; cons != prod; cons++ {
		s.handle(v.reqSlot(cons))
		v.u32(offReqCons).Store(cons + 1)
	}
	return true
}

// handle runs one request record (untrusted guest input).
func (s *Host) handle(slot []byte) {
	r, err := decodeRequest(slot)
	if err != nil {
		s.bad.Add(1)
		if r.op == opRead {
			s.reply(r.tag, ^uint64(0))
		}
		return
	}
	switch r.op {
	case opRead:
		s.reads.Add(1)
		val := s.h.Read(int(r.space), r.off, int(r.size))
		if r.size < 8 {
			val &= 1<<(8*r.size) - 1
		}
		s.reply(r.tag, val)
	case opWrite:
		s.writes.Add(1)
		s.h.Write(int(r.space), r.off, int(r.size), r.val)
	}
}

// reply publishes a read's value, then its tag.
func (s *Host) reply(tag uint32, val uint64) {
	s.v.u64(offReplyVal).Store(val)
	s.v.u32(offReplySeq).Store(tag)
}
