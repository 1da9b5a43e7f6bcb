// Package pair provides two in-memory Ethernet interfaces joined by a wire,
// like FreeBSD's epair(4): what one end transmits is delivered, batched, to
// the other end's input.
//
// It belongs to both sides: tests use it as a NIC with configurable
// capabilities (so a stack can be made to use checksum offload and TSO),
// link up/down control, loss injection and ioctl fault injection; hn's tests
// use it as a stand-in VF; benchmarks use it to measure the ifnet data path.
//
// The wire emulates offloads the way a host switch does: transmit checksum
// requests arrive as "verified good" receive flags when the receiving end has
// receive checksum offload enabled; TSO packets are delivered whole, as if
// the receiver had coalesced them. The wire does not enforce the MTU.
//
// Delivery is synchronous by default (the receiver's input runs on the
// transmitting goroutine, deterministic for tests) or, with QueueLen > 0,
// queued per direction and delivered by one goroutine per end, which Close
// stops. Neither mode allocates per packet.
package pair

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Preallocated data-path errors.
var (
	errLinkDown  = fmt.Errorf("%w: pair link is down", ifnet.ErrDown)
	errClosed    = fmt.Errorf("%w: pair closed", ifnet.ErrDown)
	errQueueFull = fmt.Errorf("%w: pair queue full", ifnet.ErrBusy)
)

// Config configures a pair. Zero values give defaults.
type Config struct {
	NameA, NameB string           // default "epair0a", "epair0b"
	MACA, MACB   net.HardwareAddr // default 02:ee:00:00:00:0a and ...:0b
	MTU, MaxMTU  int              // as ifnet.Config
	// Capabilities of both ends, all enabled at start.
	Capabilities ifnet.Cap
	TSO          ifnet.TSOLimits
	// Speed of the link in bits/s for the media state (default 10 Gb/s).
	Speed uint64
	// QueueLen > 0 makes delivery asynchronous with that many batches in
	// flight per direction; a transmit that finds no free batch returns
	// ErrBusy with the rest of its packets left to the caller.
	QueueLen int
	// BatchSize is the capacity of a queued batch (default
	// packet.DefaultBatchSize).
	BatchSize int
}

// LossFunc decides whether the wire loses a packet (true: lost). It runs on
// the transmitting goroutine and must not keep p.
type LossFunc func(p *packet.Packet) bool

// Pair is two interfaces joined by an in-memory wire. A and B are the ends;
// attach them to a registry to make them visible.
type Pair struct {
	A, B *ifnet.Interface

	ends   [2]*end
	speed  uint64
	link   atomic.Bool
	closed atomic.Bool
	wg     sync.WaitGroup
	once   sync.Once
}

// end is one side's driver.
type end struct {
	p    *Pair
	ifp  *ifnet.Interface
	peer *end
	loss atomic.Pointer[LossFunc]
	hook atomic.Pointer[func(ifnet.Request) error]

	// Asynchronous mode only: batches cycle free -> q -> delivery -> free.
	q, free chan *packet.Batch
	done    chan struct{}
}

// New creates a pair with its link up.
func New(cfg Config) (*Pair, error) {
	if cfg.NameA == "" {
		cfg.NameA = "epair0a"
	}
	if cfg.NameB == "" {
		cfg.NameB = "epair0b"
	}
	if cfg.MACA == nil {
		cfg.MACA = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x0a}
	}
	if cfg.MACB == nil {
		cfg.MACB = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x0b}
	}
	if cfg.Speed == 0 {
		cfg.Speed = 10_000_000_000
	}
	if cfg.QueueLen < 0 {
		return nil, fmt.Errorf("%w: pair queue length %d", ifnet.ErrInvalid, cfg.QueueLen)
	}
	p := &Pair{speed: cfg.Speed}
	names := [2]string{cfg.NameA, cfg.NameB}
	macs := [2]net.HardwareAddr{cfg.MACA, cfg.MACB}
	for i := range p.ends {
		e := &end{p: p}
		ifp, err := ifnet.New(ifnet.Config{
			Name: names[i], MAC: macs[i], MTU: cfg.MTU, MaxMTU: cfg.MaxMTU,
			Flags:        ifnet.FlagBroadcast | ifnet.FlagMulticast,
			Capabilities: cfg.Capabilities | ifnet.CapLinkState, Enabled: cfg.Capabilities | ifnet.CapLinkState,
			TSO:   cfg.TSO,
			Media: p.media(true),
		}, e)
		if err != nil {
			return nil, err
		}
		e.ifp = ifp
		if cfg.QueueLen > 0 {
			e.q = make(chan *packet.Batch, cfg.QueueLen)
			e.free = make(chan *packet.Batch, cfg.QueueLen)
			e.done = make(chan struct{})
			for range cfg.QueueLen {
				e.free <- packet.NewBatch(cfg.BatchSize)
			}
		}
		p.ends[i] = e
	}
	p.ends[0].peer, p.ends[1].peer = p.ends[1], p.ends[0]
	p.A, p.B = p.ends[0].ifp, p.ends[1].ifp
	p.link.Store(true)
	for _, e := range p.ends {
		e.ifp.SetLinkState(ifnet.LinkUp)
		if e.q != nil {
			p.wg.Add(1)
			go e.deliver()
		}
	}
	return p, nil
}

func (p *Pair) media(up bool) ifnet.MediaState {
	m := ifnet.Media{Type: ifnet.MediaEthernet, Speed: p.speed, FullDuplex: true}
	st := ifnet.MediaState{Current: ifnet.Media{Type: ifnet.MediaEthernet, Auto: true}, Active: m, Status: ifnet.MediaValid}
	if up {
		st.Status |= ifnet.MediaActive
	}
	return st
}

// SetLink plugs (true) or unplugs the wire: both ends see the link state
// change, and transmits on a down link fail with ErrDown leaving the packets
// to the caller.
func (p *Pair) SetLink(up bool) {
	p.link.Store(up)
	state := ifnet.LinkDown
	if up {
		state = ifnet.LinkUp
	}
	for _, e := range p.ends {
		e.ifp.SetMediaState(p.media(up))
		e.ifp.SetLinkState(state)
	}
}

// SetLoss installs a loss function for packets transmitted by from (p.A or
// p.B); nil removes it. Lost packets are freed and counted as
// ifnet.DropLoss on the transmitting end (the sender still counts them as
// sent, as with a real wire).
func (p *Pair) SetLoss(from *ifnet.Interface, fn LossFunc) error {
	e, err := p.endOf(from)
	if err != nil {
		return err
	}
	if fn == nil {
		e.loss.Store(nil)
	} else {
		e.loss.Store(&fn)
	}
	return nil
}

// SetIoctlHook installs a function that sees every ioctl request the end's
// driver receives before the driver handles it; a non-nil error fails the
// request (fault injection, e.g. a VF that refuses SetCapabilities). nil
// removes it.
func (p *Pair) SetIoctlHook(ifp *ifnet.Interface, fn func(ifnet.Request) error) error {
	e, err := p.endOf(ifp)
	if err != nil {
		return err
	}
	if fn == nil {
		e.hook.Store(nil)
	} else {
		e.hook.Store(&fn)
	}
	return nil
}

func (p *Pair) endOf(ifp *ifnet.Interface) (*end, error) {
	for _, e := range p.ends {
		if e.ifp == ifp {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w: %v is not an end of this pair", ifnet.ErrInvalid, ifp)
}

// Close stops the delivery goroutines (asynchronous mode) and frees packets
// still queued; later transmits fail with ErrDown. It does not detach the
// interfaces. Transmits must not race with Close. It is idempotent.
func (p *Pair) Close() error {
	p.once.Do(func() {
		p.closed.Store(true)
		for _, e := range p.ends {
			if e.done != nil {
				close(e.done)
			}
		}
		p.wg.Wait()
	})
	return nil
}

// DropEvery returns a LossFunc that loses every n-th packet (n >= 1).
func DropEvery(n int) LossFunc {
	if n < 1 {
		n = 1
	}
	var count atomic.Uint64
	return func(*packet.Packet) bool { return count.Add(1)%uint64(n) == 0 }
}

// Transmit implements ifnet.Driver.
func (e *end) Transmit(b *packet.Batch) (int, error) {
	if e.p.closed.Load() {
		return 0, errClosed
	}
	if !e.p.link.Load() {
		return 0, errLinkDown
	}
	if e.q == nil {
		n := b.Len()
		e.applyLoss(b)
		e.emulateOffloads(b)
		e.peer.ifp.Input(b) // takes every packet, leaves b empty
		return n, nil
	}
	taken := 0
	for b.Len() > 0 {
		var fb *packet.Batch
		select {
		case fb = <-e.free:
		default:
			return taken, errQueueFull
		}
		taken += b.MoveTo(fb)
		e.applyLoss(fb)
		e.emulateOffloads(fb)
		e.q <- fb // never blocks: there are only cap(q) batches
	}
	return taken, nil
}

// deliver runs in asynchronous mode: it hands queued batches to the peer.
func (e *end) deliver() {
	defer e.p.wg.Done()
	for {
		select {
		case fb := <-e.q:
			e.peer.ifp.Input(fb)
			e.free <- fb
		case <-e.done:
			for {
				select {
				case fb := <-e.q:
					fb.Free()
					e.free <- fb
				default:
					return
				}
			}
		}
	}
}

func (e *end) applyLoss(b *packet.Batch) {
	lf := e.loss.Load()
	if lf == nil {
		return
	}
	pk := b.Packets()
	k := 0
	for _, p := range pk {
		if (*lf)(p) {
			p.Free()
			continue
		}
		pk[k] = p
		k++
	}
	if lost := len(pk) - k; lost > 0 {
		e.ifp.CountDrops(ifnet.DropLoss, lost)
		b.Truncate(k)
	}
}

// emulateOffloads turns transmit checksum requests into receive results,
// as the host switch would, and clears per-NIC metadata.
func (e *end) emulateOffloads(b *packet.Batch) {
	rx := e.peer.ifp.CapEnabled()
	for _, p := range b.Packets() {
		c := p.Meta.Csum
		var out packet.Csum
		if rx&ifnet.CapRxCsum != 0 {
			if c&packet.CsumTxIPv4 != 0 {
				out |= packet.CsumRxIPOK
			}
			if c&(packet.CsumTxTCPv4|packet.CsumTxUDPv4|packet.CsumTxTSOv4) != 0 {
				out |= packet.CsumRxL4OK
			}
		}
		if rx&ifnet.CapRxCsumIPv6 != 0 && c&(packet.CsumTxTCPv6|packet.CsumTxUDPv6|packet.CsumTxTSOv6) != 0 {
			out |= packet.CsumRxL4OK
		}
		p.Meta.Csum = out
		p.Meta.Hash, p.Meta.HashType, p.Meta.Queue = 0, packet.HashNone, 0
	}
}

// Ioctl implements ifnet.Driver.
func (e *end) Ioctl(req ifnet.Request) error {
	if h := e.hook.Load(); h != nil {
		if err := (*h)(req); err != nil {
			return err
		}
	}
	switch r := req.(type) {
	case *ifnet.SetFlags:
		e.ifp.SetRunning(r.Flags&ifnet.FlagUp != 0)
	case *ifnet.SetMTU, *ifnet.AddMulti, *ifnet.DelMulti, *ifnet.SetCapabilities, *ifnet.SetMAC,
		*ifnet.GetMedia, *ifnet.GetRSSKey, *ifnet.GetRSSHash:
		// State is kept by ifnet; the wire has nothing to program.
	case *ifnet.SetMedia:
		m := r.Media
		if m.Type != ifnet.MediaEthernet || (!m.Auto && (m.Speed != e.p.speed || !m.FullDuplex)) {
			return fmt.Errorf("pair: only Ethernet autoselect or %d bit/s full duplex: %w", e.p.speed, ifnet.ErrInvalid)
		}
	default:
		return fmt.Errorf("pair: %s: %w", req.RequestName(), ifnet.ErrNotSupported)
	}
	return nil
}
