package synic

import (
	"fmt"
	mathbits "math/bits"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/kernel"
)

// SharedGuest is the guest end of the shared-memory transport: a GuestPort
// over a file that the host created with CreateShared, or over a mapped
// byte slice (an ivshmem BAR inside a QEMU VM).
//
// It runs one goroutine that turns the guest doorbell into Interrupt() and
// watches the host's state and heartbeat. Everything it reads from the
// shared area is the host's and untrusted; its own state is the post
// request slot (serialized by postMu), the signal bits it sets, its state
// words and the slot it empties.
type SharedGuest struct {
	v     *shmView
	cfg   shmConfig
	ram   *kernel.SimRAM
	unmap func() error // nil when the caller owns the mapping

	postMu  sync.Mutex // serializes the one post request slot
	postSeq uint32     // last request number, guarded by postMu

	mapMu     sync.RWMutex // read-held while touching mem; Close write-holds it to unmap
	closing   atomic.Bool  // Close has begun
	gone      atomic.Bool  // the host closed or died
	closeOnce sync.Once
	intr      chan struct{} // the SINT's edge, coalesced
	done      chan struct{} // closed when the goroutine has exited
	peerDone  chan struct{} // closed when the host is gone or the guest closed

	posts, signals, messages, eoms, interrupts, badMessages atomic.Uint64
}

// SharedGuestStats counts what crossed the shared transport on the guest.
type SharedGuestStats struct {
	Posts, Signals, Messages, EOMs, Interrupts, BadMessages uint64
}

// OpenShared maps the file at path, which CreateShared laid out, validates
// its header and attaches as its one guest.
func OpenShared(path string, opts ...SharedOption) (*SharedGuest, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("synic: open shared transport: %w", err)
	}
	if st.Size() < shmRAMOff || st.Size() > 1<<40 {
		return nil, fmt.Errorf("%w: %s has %d bytes", ErrBadLayout, path, st.Size())
	}
	mem, err := kernel.MapSharedFile(path, int(st.Size()), false)
	if err != nil {
		return nil, err
	}
	g, err := newSharedGuest(mem, opts)
	if err != nil {
		kernel.UnmapShared(mem)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	g.unmap = func() error { return kernel.UnmapShared(mem) }
	return g, nil
}

// NewSharedGuestOver attaches to a shared transport in mem, which the caller
// has mapped (8-byte aligned) and unmaps after Close. Inside a VM, pass
// WithPolling.
func NewSharedGuestOver(mem []byte, opts ...SharedOption) (*SharedGuest, error) {
	return newSharedGuest(mem, opts)
}

func newSharedGuest(mem []byte, opts []SharedOption) (*SharedGuest, error) {
	v, err := parseLayout(mem)
	if err != nil {
		return nil, err
	}
	switch st := v.u32(hHostState).Load(); st {
	case stateAlive:
	case stateInit:
		return nil, fmt.Errorf("%w: host has not finished setting up", ErrBadLayout)
	default:
		return nil, fmt.Errorf("synic: host state %d: %w", st, ErrClosed)
	}
	ram, err := kernel.NewSimRAMOver(v.ram(), v.ramBase)
	if err != nil {
		return nil, err
	}
	v.polled = newConfig(opts).polled
	g := &SharedGuest{v: v, cfg: newConfig(opts), ram: ram,
		intr: make(chan struct{}, 1), done: make(chan struct{}), peerDone: make(chan struct{})}
	flags := uint32(flagFutexWake)
	if g.cfg.polled {
		flags = 0
	}
	v.u32(hGuestFlags).Store(flags)
	if !v.u32(hGuestState).CompareAndSwap(stateInit, stateAlive) {
		return nil, fmt.Errorf("synic: shared transport already has a guest (state %d)", v.u32(hGuestState).Load())
	}
	g.postSeq = v.t32(tPostSeq).Load()
	v.hostBell().ring()
	go g.run()
	return g, nil
}

// Guest returns the GuestPort.
func (g *SharedGuest) Guest() GuestPort { return (*shmGuestPort)(g) }

// RAM returns the guest RAM (the guest allocates from it). It is valid
// until Close.
func (g *SharedGuest) RAM() *kernel.SimRAM { return g.ram }

// Done is closed once the host has closed or died, or the guest closed.
func (g *SharedGuest) Done() <-chan struct{} { return g.peerDone }

// Stats returns a snapshot of the counters.
func (g *SharedGuest) Stats() SharedGuestStats {
	return SharedGuestStats{Posts: g.posts.Load(), Signals: g.signals.Load(),
		Messages: g.messages.Load(), EOMs: g.eoms.Load(), Interrupts: g.interrupts.Load(),
		BadMessages: g.badMessages.Load()}
}

// Close marks the guest closed in the file (so the host's calls fail with
// ErrClosed and its dispatcher stops), stops the goroutine, and unmaps the
// file if OpenShared mapped it. It is idempotent.
func (g *SharedGuest) Close() error {
	var err error
	g.closeOnce.Do(func() {
		g.closing.Store(true)
		g.v.u32(hGuestState).Store(stateClosed)
		g.v.hostBell().ring()
		g.wakeLocal()
		<-g.done
		g.mapMu.Lock()
		defer g.mapMu.Unlock()
		if g.unmap != nil {
			err = g.unmap()
		}
	})
	return err
}

// wakeLocal wakes this process's sleepers so they notice closing or gone.
func (g *SharedGuest) wakeLocal() {
	futexWake(g.v.guestBell().seq)
	futexWake(g.v.postBell().seq)
}

// closed reports whether calls must fail with ErrClosed; the caller holds
// mapMu for reading.
func (g *SharedGuest) closed() bool {
	return g.closing.Load() || g.gone.Load() || g.v.u32(hHostState).Load() != stateAlive
}

// run is the guest's goroutine: doorbell to Interrupt(), heartbeat, and
// watching the host.
func (g *SharedGuest) run() {
	defer close(g.done)
	defer func() {
		g.gone.Store(true)
		close(g.peerDone)
		g.wakeLocal()
	}()
	v := g.v
	gb := v.guestBell()
	beat := v.u32(hGuestBeat)
	live := newLiveness(v.u32(hHostBeat), g.cfg.peerTimeout)
	last := gb.seq.Load()
	g.interrupt() // the host may have delivered before we attached
	var bo backoff
	for {
		seen := gb.seq.Load()
		if g.closing.Load() || v.u32(hHostState).Load() != stateAlive {
			return
		}
		beat.Add(1)
		if seen != last {
			last = seen
			g.interrupt()
			bo.reset()
			runtime.Gosched() // let the SINT goroutine have this P; see bell.wait
			continue
		}
		gb.wait(seen, bo.next(g.cfg.polled, g.cfg.heartbeat()))
		if live.dead(time.Now()) {
			return
		}
	}
}

func (g *SharedGuest) interrupt() {
	g.interrupts.Add(1)
	select {
	case g.intr <- struct{}{}:
	default:
	}
}

type shmGuestPort SharedGuest

func (p *shmGuestPort) Close() error { return (*SharedGuest)(p).Close() }

func (p *shmGuestPort) Interrupt() <-chan struct{} { return p.intr }

// PostMessage is the synchronous post "hypercall": it fills the request
// slot, rings the host and waits for the completion with the same number.
// A host that closes, dies, or leaves the request unanswered for the peer
// timeout yields ErrClosed.
func (p *shmGuestPort) PostMessage(connID, msgType uint32, payload []byte) error {
	g := (*SharedGuest)(p)
	if len(payload) > MaxPayload {
		return fmt.Errorf("synic: post of %d bytes: %w", len(payload), StatusInvalidParameter)
	}
	g.mapMu.RLock()
	defer g.mapMu.RUnlock()
	if g.closed() {
		return ErrClosed
	}
	g.postMu.Lock()
	defer g.postMu.Unlock()
	v := g.v
	v.t32(tPostConn).Store(connID)
	v.t32(tPostTyp).Store(msgType)
	v.t32(tPostSize).Store(uint32(len(payload)))
	copy(v.tbytes(tPostPayload, MaxPayload), payload)
	g.postSeq++
	seq := g.postSeq
	v.t32(tPostSeq).Store(seq)
	g.posts.Add(1)
	v.hostBell().ring()

	pb := v.postBell()
	deadline := time.Now().Add(g.cfg.peerTimeout)
	var bo backoff
	for {
		seen := pb.seq.Load()
		if seen == seq {
			return Status(uint16(v.t32(tPostStatus).Load())).Err()
		}
		if g.closed() {
			return ErrClosed
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("synic: post not answered in %v: %w", g.cfg.peerTimeout, ErrClosed)
		}
		pb.wait(seen, bo.next(g.cfg.polled, g.cfg.heartbeat()))
	}
}

// SignalEvent sets the connection's bit in the signal bitmap and rings the
// host: no round trip, so the handler's status is not returned, and
// signals to one connection before the host looks coalesce into one, as
// event flags do. Connection ids above MaxSignalConnID give
// StatusInvalidConnectionID.
func (p *shmGuestPort) SignalEvent(connID uint32) error {
	g := (*SharedGuest)(p)
	g.mapMu.RLock()
	defer g.mapMu.RUnlock()
	if g.closed() {
		return ErrClosed
	}
	if connID > MaxSignalConnID {
		return StatusInvalidConnectionID
	}
	g.v.t64(tSignals + int(connID/64)*8).Or(1 << (connID % 64))
	g.signals.Add(1)
	g.v.hostBell().ring()
	return nil
}

// TakeMessage copies the SINT2 slot, frees it, and if MessagePending was
// set does EOM: it rings the host and waits (bounded) for the refill, so
// that, as with Pair, the next TakeMessage finds the next message. It
// reports false when the slot is empty or after Close.
func (p *shmGuestPort) TakeMessage(m *Message) bool {
	g := (*SharedGuest)(p)
	g.mapMu.RLock()
	defer g.mapMu.RUnlock()
	if g.closing.Load() {
		return false
	}
	v := g.v
	slot := v.slot0()
	if uint32(slot.Load()) == 0 {
		return false
	}
	// The host writes the slot only while its type is zero, so the
	// payload is stable until we free it.
	copy(m.Payload[:], v.tbytes(tSlot+16, MaxPayload))
	w := slot.Swap(0) // frees the slot; a full barrier
	if uint32(w) == 0 {
		return false
	}
	m.Type = uint32(w)
	m.Size = uint8(w >> 32)
	if m.Size > MaxPayload {
		g.badMessages.Add(1)
		m.Size = MaxPayload
	}
	g.messages.Add(1)
	if w&msgPendingBit != 0 {
		g.eom()
	}
	return true
}

// eom is the end-of-message write: ring the host, then wait until it has
// refilled the slot, closed, or the peer timeout passed.
func (g *SharedGuest) eom() {
	g.eoms.Add(1)
	v := g.v
	gb := v.guestBell()
	v.hostBell().ring()
	deadline := time.Now().Add(g.cfg.peerTimeout)
	var bo backoff
	for {
		seen := gb.seq.Load()
		if uint32(v.slot0().Load()) != 0 || g.closed() || time.Now().After(deadline) {
			return
		}
		gb.wait(seen, bo.next(g.cfg.polled, g.cfg.heartbeat()))
	}
}

// ScanEvents test-and-clears the SINT2 event flags, lowest relid first.
// The callback runs after the flags are read, outside the port's lock.
func (p *shmGuestPort) ScanEvents(fn func(relid uint32)) {
	g := (*SharedGuest)(p)
	var words [(MaxRelID + 1) / 64]uint64
	g.mapMu.RLock()
	if g.closing.Load() {
		g.mapMu.RUnlock()
		return
	}
	for w := range words {
		words[w] = g.v.t64(tEvents + w*8).Swap(0)
	}
	g.mapMu.RUnlock()
	for w, bits := range words {
		for bits != 0 {
			b := mathbits.TrailingZeros64(bits)
			bits &^= 1 << b
			fn(uint32(w*64 + b))
		}
	}
}
