package synic

import (
	"fmt"
	mathbits "math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/kernel"
)

// SharedHost is the hypervisor's host end of the shared-memory transport:
// the simulated host's HostPort over a file (or mapping) that a guest in
// another process, or in a QEMU VM, attaches to with OpenShared or
// NewSharedGuestOver.
//
// It runs one dispatcher goroutine that answers the guest's posts, turns
// its signal bits into HandleSignal calls and refills the message slot on
// EOM. Handlers run on that goroutine; they may call Deliver and
// SignalGuest but must not block or call Close.
//
// State ownership: the message queue (its records and the authoritative
// head and tail, which live here and are only mirrored into the file) and
// the slot's contents while it is empty belong to the host; everything the
// guest writes (post slot, signal bits, EOM doorbell, its state words) is
// read as untrusted input.
type SharedHost struct {
	v       *shmView
	cfg     shmConfig
	handler HostHandler
	ram     *kernel.SimRAM
	unmap   func() error // nil when the caller owns the mapping

	mu         sync.Mutex // guards the queue, head, tail and slot refills
	head, tail uint32     // free-running queue indices (authoritative)

	mapMu     sync.RWMutex // read-held while touching mem; Close write-holds it to unmap
	closing   atomic.Bool  // Close has begun
	gone      atomic.Bool  // the guest closed or died
	closeOnce sync.Once
	done      chan struct{} // closed when the dispatcher has exited
	peerDone  chan struct{} // closed when the guest is gone or the host closed

	posts, signals, delivered, refills, badPosts atomic.Uint64
}

// SharedHostStats counts what crossed the shared transport on the host.
type SharedHostStats struct {
	Posts, Signals, Delivered, Refills, BadPosts uint64
}

// CreateShared creates (or truncates) the file at path, lays out a shared
// transport with ramPages pages of guest RAM at kernel.DefaultBasePFN, and
// starts the host end; guest posts and signals go to h.
func CreateShared(path string, ramPages int, h HostHandler, opts ...SharedOption) (*SharedHost, error) {
	if ramPages <= 0 {
		return nil, fmt.Errorf("%w: %d pages of guest RAM", ErrBadLayout, ramPages)
	}
	mem, err := kernel.MapSharedFile(path, SharedSize(ramPages), true)
	if err != nil {
		return nil, err
	}
	s, err := newSharedHost(mem, ramPages, h, opts)
	if err != nil {
		kernel.UnmapShared(mem)
		return nil, err
	}
	s.unmap = func() error { return kernel.UnmapShared(mem) }
	return s, nil
}

// NewSharedHostOver lays out a shared transport over mem, which the caller
// has mapped (at least SharedSize(ramPages) bytes, 8-byte aligned) and
// unmaps after Close.
func NewSharedHostOver(mem []byte, ramPages int, h HostHandler, opts ...SharedOption) (*SharedHost, error) {
	return newSharedHost(mem, ramPages, h, opts)
}

func newSharedHost(mem []byte, ramPages int, h HostHandler, opts []SharedOption) (*SharedHost, error) {
	if h == nil {
		return nil, fmt.Errorf("synic: shared host needs a handler")
	}
	v, err := initLayout(mem, ramPages, kernel.DefaultBasePFN)
	if err != nil {
		return nil, err
	}
	ram, err := kernel.NewSimRAMOver(v.ram(), v.ramBase)
	if err != nil {
		return nil, err
	}
	v.polled = newConfig(opts).polled
	s := &SharedHost{v: v, cfg: newConfig(opts), handler: h, ram: ram,
		done: make(chan struct{}), peerDone: make(chan struct{})}
	flags := uint32(flagFutexWake)
	if s.cfg.polled {
		flags = 0
	}
	v.u32(hHostFlags).Store(flags)
	v.u32(hHostState).Store(stateAlive) // last: the guest may attach from now on
	go s.dispatch()
	return s, nil
}

// Host returns the HostPort.
func (s *SharedHost) Host() HostPort { return (*shmHostPort)(s) }

// RAM returns the guest RAM, which the host reads and writes by PFN only
// (the guest allocates). It is valid until Close.
func (s *SharedHost) RAM() *kernel.SimRAM { return s.ram }

// Done is closed once the guest has closed or died, or the host closed.
func (s *SharedHost) Done() <-chan struct{} { return s.peerDone }

// Stats returns a snapshot of the counters.
func (s *SharedHost) Stats() SharedHostStats {
	return SharedHostStats{Posts: s.posts.Load(), Signals: s.signals.Load(),
		Delivered: s.delivered.Load(), Refills: s.refills.Load(), BadPosts: s.badPosts.Load()}
}

// Close marks the host closed in the file (so the guest's calls fail with
// ErrClosed), stops the dispatcher and unmaps the file if CreateShared
// mapped it. It is idempotent and must not be called from a handler.
func (s *SharedHost) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.v.u32(hHostState).Store(stateClosed)
		s.v.guestBell().ring()
		s.v.hostBell().ring() // wakes our own dispatcher
		<-s.done
		s.mapMu.Lock()
		defer s.mapMu.Unlock()
		if s.unmap != nil {
			err = s.unmap()
		}
	})
	return err
}

// closed reports whether calls must fail with ErrClosed; the caller holds
// mapMu for reading.
func (s *SharedHost) closed() bool {
	return s.closing.Load() || s.gone.Load() || s.v.u32(hGuestState).Load() > stateAlive
}

type shmHostPort SharedHost

func (p *shmHostPort) Close() error { return (*SharedHost)(p).Close() }

// Deliver queues a message for the guest's SINT2 slot: straight into the
// slot when it is free and nothing waits, otherwise into the queue with
// MessagePending set on the message in the slot.
func (p *shmHostPort) Deliver(msgType uint32, payload []byte) error {
	s := (*SharedHost)(p)
	if len(payload) > MaxPayload {
		return fmt.Errorf("synic: deliver %d bytes: %w", len(payload), StatusInvalidParameter)
	}
	s.mapMu.RLock()
	defer s.mapMu.RUnlock()
	if s.closed() {
		return ErrClosed
	}
	s.mu.Lock()
	s.refillLocked()
	slot := s.v.slot0()
	if s.head == s.tail && uint32(slot.Load()) == 0 {
		writeMsg(s.v.tbytes(tSlot, shmRecordSize), slot, msgType, payload, 0)
	} else if s.tail-s.head >= ShmQueue {
		s.mu.Unlock()
		return StatusInsufficientBuffers
	} else {
		rec := s.v.tbytes(tQueue+int(s.tail%ShmQueue)*shmRecordSize, shmRecordSize)
		writeMsg(rec, nil, msgType, payload, 0)
		s.tail++
		s.v.t32(tQueueTail).Store(s.tail)
		s.markPendingLocked()
	}
	s.mu.Unlock()
	s.delivered.Add(1)
	s.v.guestBell().ring()
	return nil
}

// writeMsg writes an HV_MESSAGE into rec; the first word goes last, through
// w when the record is the live slot.
func writeMsg(rec []byte, w *atomic.Uint64, msgType uint32, payload []byte, flags uint64) {
	clear(rec[8:16]) // origination id: the hypervisor's own messages carry 0
	n := copy(rec[16:], payload)
	clear(rec[16+n:])
	word := uint64(msgType) | uint64(len(payload))<<32 | flags
	if w != nil {
		w.Store(word)
		return
	}
	for i := range 8 {
		rec[i] = byte(word >> (8 * i))
	}
}

// markPendingLocked sets MessagePending on the message in the slot, or
// refills the slot if the guest emptied it meanwhile.
func (s *SharedHost) markPendingLocked() {
	slot := s.v.slot0()
	for {
		w := slot.Load()
		if uint32(w) == 0 {
			s.refillLocked()
			return
		}
		if w&msgPendingBit != 0 || slot.CompareAndSwap(w, w|msgPendingBit) {
			return
		}
	}
}

// refillLocked moves the oldest queued message into the slot if the guest
// has emptied it, with MessagePending set when more remain. It reports
// whether it did.
func (s *SharedHost) refillLocked() bool {
	slot := s.v.slot0()
	if s.head == s.tail || uint32(slot.Load()) != 0 {
		return false
	}
	rec := s.v.tbytes(tQueue+int(s.head%ShmQueue)*shmRecordSize, shmRecordSize)
	dst := s.v.tbytes(tSlot, shmRecordSize)
	var word uint64
	for i := range 8 {
		word |= uint64(rec[i]) << (8 * i)
	}
	copy(dst[8:], rec[8:])
	s.head++
	s.v.t32(tQueueHead).Store(s.head)
	word &^= 0xff << 40 // flags are the hypervisor's to set
	if s.head != s.tail {
		word |= msgPendingBit
	}
	slot.Store(word)
	s.refills.Add(1)
	return true
}

// SignalGuest sets event flag relid in the SINT2 event area and rings the
// guest's doorbell.
func (p *shmHostPort) SignalGuest(relid uint32) error {
	s := (*SharedHost)(p)
	if relid == 0 || relid > MaxRelID {
		return fmt.Errorf("synic: signal relid %d: %w", relid, StatusInvalidParameter)
	}
	s.mapMu.RLock()
	defer s.mapMu.RUnlock()
	if s.closed() {
		return ErrClosed
	}
	s.v.t64(tEvents + int(relid/64)*8).Or(1 << (relid % 64))
	s.v.guestBell().ring()
	return nil
}

// dispatch is the host's one goroutine: it serves posts, signals and EOM
// refills until Close or until the guest leaves. It holds no lock while a
// handler runs.
func (s *SharedHost) dispatch() {
	defer close(s.done)
	defer s.markGone()
	v := s.v
	hb := v.hostBell()
	beat := v.u32(hHostBeat)
	gstate := v.u32(hGuestState)
	var lastReq uint32 // initLayout zeroed the request sequence
	var live liveness
	attached := false
	var bo backoff
	var buf [MaxPayload]byte
	for {
		seen := hb.seq.Load()
		if s.closing.Load() {
			return
		}
		beat.Add(1)
		switch st := gstate.Load(); {
		case st > stateAlive:
			return
		case st == stateAlive && !attached:
			attached = true
			live = newLiveness(v.u32(hGuestBeat), s.cfg.peerTimeout)
		}
		work := false
		if r := v.t32(tPostSeq).Load(); r != lastReq {
			lastReq = r
			s.servePost(r, buf[:])
			work = true
		}
		for w := range (MaxSignalConnID + 1) / 64 {
			bits := v.t64(tSignals + w*8).Swap(0)
			for bits != 0 {
				b := mathbits.TrailingZeros64(bits)
				bits &^= 1 << b
				s.signals.Add(1)
				s.handler.HandleSignal(uint32(w*64 + b))
				work = true
			}
		}
		s.mu.Lock()
		refilled := s.refillLocked()
		s.mu.Unlock()
		if refilled {
			v.guestBell().ring()
			work = true
		}
		if work {
			bo.reset()
			runtime.Gosched() // a handler may have readied a goroutine; see bell.wait
			continue
		}
		polled := s.cfg.polled || (attached && v.u32(hGuestFlags).Load()&flagFutexWake == 0)
		hb.wait(seen, bo.next(polled, s.cfg.heartbeat()))
		if attached && live.dead(time.Now()) {
			return
		}
	}
}

// servePost answers post request seq. The request is copied out of shared
// memory before it is checked, so the guest cannot change it under us.
func (s *SharedHost) servePost(seq uint32, buf []byte) {
	v := s.v
	conn := v.t32(tPostConn).Load()
	typ := v.t32(tPostTyp).Load()
	size := v.t32(tPostSize).Load()
	st := StatusInvalidParameter
	if size <= MaxPayload {
		n := copy(buf, v.tbytes(tPostPayload, int(size)))
		s.posts.Add(1)
		st = s.handler.HandlePost(conn, typ, buf[:n])
	} else {
		s.badPosts.Add(1)
	}
	v.t32(tPostStatus).Store(uint32(st))
	v.postBell().set(seq)
}

func (s *SharedHost) markGone() {
	s.gone.Store(true)
	close(s.peerDone)
}
