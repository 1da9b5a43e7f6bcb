package shmio

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/pci"
)

// GuestConfig configures the guest side.
type GuestConfig struct {
	// Timeout bounds a read (and a wait for ring space); a read the host
	// does not answer in time reads all-ones, as a vanished device does
	// (default 1 s).
	Timeout time.Duration
	// OnInterrupt, if set, receives every MSI-X vector the host posts, on
	// the guest's interrupt goroutine; vectors above MaxVector are counted
	// and dropped.
	OnInterrupt func(vector uint32)
	MaxVector   uint32
}

// GuestStats counts what the guest side did.
type GuestStats struct {
	Reads, Writes        uint64
	Timeouts             uint64 // reads answered all-ones because the host did not reply
	Interrupts           uint64
	BadVectors           uint64
	RingFullWaits        uint64
	ReadsAfterHostClosed uint64
}

// Guest is the driver's side of the channel. Its reads and writes may come
// from any goroutine; mu serializes them (one request ring producer, one
// reply slot).
type Guest struct {
	v   *view
	cfg GuestConfig

	mu  sync.Mutex
	tag uint32 // guarded by mu

	stop chan struct{}
	done chan struct{}
	once sync.Once

	reads, writes, timeouts, irqs, badVecs, fullWaits, afterClose atomic.Uint64
}

// NewGuest attaches to the channel a host laid out in mem and, with
// OnInterrupt, starts delivering interrupts.
func NewGuest(mem []byte, cfg GuestConfig) (*Guest, error) {
	v, err := parseView(mem)
	if err != nil {
		return nil, err
	}
	if st := v.u32(offHost).Load(); st != stateAlive {
		return nil, fmt.Errorf("%w: host state %d", ErrClosed, st)
	}
	if !v.u32(offGuest).CompareAndSwap(stateInit, stateAlive) {
		return nil, fmt.Errorf("%w: the channel already has a guest", ErrLayout)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	g := &Guest{v: v, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.OnInterrupt != nil {
		go g.irqPump()
	} else {
		close(g.done)
	}
	return g, nil
}

// Close detaches the guest and stops interrupt delivery.
func (g *Guest) Close() error {
	g.once.Do(func() {
		g.v.u32(offGuest).Store(stateClosed)
		close(g.stop)
	})
	<-g.done
	return nil
}

// Stats returns the guest side's counters.
func (g *Guest) Stats() GuestStats {
	return GuestStats{Reads: g.reads.Load(), Writes: g.writes.Load(), Timeouts: g.timeouts.Load(),
		Interrupts: g.irqs.Load(), BadVectors: g.badVecs.Load(), RingFullWaits: g.fullWaits.Load(),
		ReadsAfterHostClosed: g.afterClose.Load()}
}

func (g *Guest) hostAlive() bool { return g.v.u32(offHost).Load() == stateAlive }

// post puts a request on the ring (mu held); false if the host is gone or
// the ring stayed full for the timeout.
func (g *Guest) post(r request) bool {
	v := g.v
	prod := v.u32(offReqProd).Load()
	deadline := time.Time{}
	var bo backoff
	for n := 0; prod-v.u32(offReqCons).Load() >= v.reqSlots; n++ {
		if !g.hostAlive() {
			return false
		}
		if n == 0 {
			g.fullWaits.Add(1)
			deadline = time.Now().Add(g.cfg.Timeout)
		} else if time.Now().After(deadline) {
			return false
		}
		bo.idle()
	}
	r.put(v.reqSlot(prod))
	v.u32(offReqProd).Store(prod + 1)
	return true
}

func (g *Guest) write(space int, off uint64, size int, val uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.post(request{op: opWrite, space: uint8(space), size: uint8(size), off: off, val: val}) {
		g.writes.Add(1)
	}
}

func (g *Guest) read(space int, off uint64, size int) uint64 {
	ones := ^uint64(0) >> (64 - 8*size)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.hostAlive() {
		g.afterClose.Add(1)
		return ones
	}
	g.tag++
	if g.tag == 0 {
		g.tag = 1 // 0 is the reply slot's initial value
	}
	tag := g.tag
	if !g.post(request{op: opRead, space: uint8(space), size: uint8(size), tag: tag, off: off}) {
		g.timeouts.Add(1)
		return ones
	}
	g.reads.Add(1)
	v := g.v
	var bo backoff
	deadline := time.Now().Add(g.cfg.Timeout)
	for n := 0; v.u32(offReplySeq).Load() != tag; n++ {
		if n < spins {
			continue
		}
		if !g.hostAlive() || time.Now().After(deadline) {
			g.timeouts.Add(1)
			return ones
		}
		bo.idle()
	}
	return v.u64(offReplyVal).Load() & ones
}

func (g *Guest) irqPump() {
	defer close(g.done)
	v := g.v
	var bo backoff
	for {
		select {
		case <-g.stop:
			return
		default:
		}
		cons := v.u32(offIrqCons).Load()
		prod := v.u32(offIrqProd).Load()
		if prod == cons {
			bo.idle()
			continue
		}
		bo.reset()
		if prod-cons > v.irqSlots {
			g.badVecs.Add(uint64(prod - cons))
			v.u32(offIrqCons).Store(prod)
			continue
		}
		for ; cons != prod; cons++ {
			vec := v.irqSlot(cons).Load()
			v.u32(offIrqCons).Store(cons + 1)
			if vec > g.cfg.MaxVector {
				g.badVecs.Add(1)
				continue
			}
			g.irqs.Add(1)
			g.cfg.OnInterrupt(vec)
		}
	}
}

// BAR is register access to BAR index through the channel (size bytes):
// reads are requests the host answers, writes are posted. Out-of-range or
// misaligned accesses read all-ones and drop writes, as pci.BAR says.
func (g *Guest) BAR(index int, size uint64) pci.BAR {
	return &bar{g: g, space: index, size: size}
}

type bar struct {
	g     *Guest
	space int
	size  uint64
}

func (b *bar) Len() uint64 { return b.size }

func (b *bar) ok(off uint64, n uint64) bool { return off%n == 0 && off < b.size && b.size-off >= n }

func (b *bar) Read32(off uint64) uint32 {
	if !b.ok(off, 4) {
		return ^uint32(0)
	}
	return uint32(b.g.read(b.space, off, 4))
}

func (b *bar) Read64(off uint64) uint64 {
	if !b.ok(off, 8) {
		return ^uint64(0)
	}
	return b.g.read(b.space, off, 8)
}

func (b *bar) Write32(off uint64, v uint32) {
	if b.ok(off, 4) {
		b.g.write(b.space, off, 4, uint64(v))
	}
}

func (b *bar) Write64(off uint64, v uint64) {
	if b.ok(off, 8) {
		b.g.write(b.space, off, 8, v)
	}
}

// ConfigWindow is the vPCI configuration window through the channel
// (pci.MMIO, for hvpci.MMIOWindow).
func (g *Guest) ConfigWindow() pci.MMIO { return window{g} }

type window struct{ g *Guest }

func (w window) ReadMMIO(off uint64, size int) uint32 {
	if size != 1 && size != 2 && size != 4 {
		return ^uint32(0)
	}
	return uint32(w.g.read(SpaceConfigWindow, off, size))
}

func (w window) WriteMMIO(off uint64, size int, v uint32) {
	if size == 1 || size == 2 || size == 4 {
		w.g.write(SpaceConfigWindow, off, size, uint64(v)&(^uint64(0)>>(64-8*size)))
	}
}
