package vmbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/kernel"
)

// Handler receives the packets a channel reads, a batch at a time, on the
// channel's receive goroutine. The packets (and their payload slices) are
// valid only during the call: copy what must outlive it. Completions that
// answer Channel.Request are consumed before the handler sees the batch.
// A handler may send on the same channel.
type Handler interface {
	HandlePackets(ch *Channel, pkts []ring.Packet)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ch *Channel, pkts []ring.Packet)

// HandlePackets implements Handler.
func (f HandlerFunc) HandlePackets(ch *Channel, pkts []ring.Packet) { f(ch, pkts) }

// ChannelConfig builds a Channel over rings that are already shared with
// the host.
type ChannelConfig struct {
	Out ring.Memory // guest-to-host ring (the guest writes it)
	In  ring.Memory // host-to-guest ring (the guest reads it)
	// Signal tells the host that Out has data or that In has room
	// (HvSignalEvent on the channel's connection id, or a write to a
	// uio_hv_generic device).
	Signal  func() error
	Handler Handler
	Clock   kernel.Clock
	Logger  *slog.Logger
	Name    string
	// Batch is how many packets the receive loop reads per commit
	// (default 64).
	Batch int
	// RequestTimeout bounds Request (default 10 s).
	RequestTimeout time.Duration
}

// RequestIDBit marks the transaction ids that Channel.Request allocates.
// Drivers that choose their own ids (for completions they match
// themselves) must keep this bit clear.
const RequestIDBit = 1 << 63

const requestSlots = 64

// Channel is the data path of an open VMBus channel.
//
// Ownership: the writer side (Out, pending-send state) is guarded by txMu
// and may be used from any goroutine; the reader side (In) belongs to the
// receive goroutine alone. Counters are atomics.
type Channel struct {
	cfg    ChannelConfig
	log    *slog.Logger
	in     *ring.Reader
	wake   *kernel.Event // data may be waiting in In
	space  *kernel.Event // the host may have freed room in Out
	stop   chan struct{}
	gone   chan struct{} // closed on rescind or corruption
	done   chan struct{} // closed when the receive goroutine exits
	start  sync.Once
	closed sync.Once
	err    atomic.Pointer[error] // why the channel died

	txMu sync.Mutex // guards out and tx
	tx   Tx         // the staging handle of the Send in progress
	// waiting is set while a Send holds txMu waiting for ring space, so
	// TrySend can fail at once instead of queueing behind it.
	waiting atomic.Bool
	out     *ring.Writer

	reqMu  sync.Mutex // guards reqs and reqGen
	reqs   [requestSlots]request
	reqGen uint32

	stats channelCounters
}

type request struct {
	id   uint64
	c    chan []byte // buffered 1; receives a copy of the completion payload
	busy bool
}

type channelCounters struct {
	txPackets, txBytes, txSignals, txFullWaits atomic.Uint64
	rxPackets, rxBytes, rxSignals, rxBatches   atomic.Uint64
	lateCompletions                            atomic.Uint64
}

// ChannelStats is a snapshot of a channel's counters.
type ChannelStats struct {
	TxPackets, TxBytes, TxSignals, TxFullWaits uint64
	RxPackets, RxBytes, RxSignals, RxBatches   uint64
	LateCompletions                            uint64
}

// NewChannel builds a channel over rings already shared with the host.
// Call Start to begin receiving, and Notify whenever the host signals.
func NewChannel(cfg ChannelConfig) (*Channel, error) {
	if cfg.Signal == nil {
		return nil, fmt.Errorf("vmbus: channel needs a Signal function: %w", ErrState)
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.RealClock{}
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	out, err := ring.NewWriter(cfg.Out.Control, cfg.Out.Data)
	if err != nil {
		return nil, fmt.Errorf("vmbus: %s outbound ring: %w", cfg.Name, err)
	}
	in, err := ring.NewReader(cfg.In.Control, cfg.In.Data, nil)
	if err != nil {
		return nil, fmt.Errorf("vmbus: %s inbound ring: %w", cfg.Name, err)
	}
	c := &Channel{
		cfg: cfg, log: kernel.LoggerOr(cfg.Logger).With("chan", cfg.Name), in: in, out: out,
		wake: kernel.NewEvent(), space: kernel.NewEvent(),
		stop: make(chan struct{}), gone: make(chan struct{}), done: make(chan struct{}),
	}
	for i := range c.reqs {
		c.reqs[i].c = make(chan []byte, 1)
	}
	return c, nil
}

// Start starts the receive goroutine.
func (c *Channel) Start() {
	c.start.Do(func() { go c.receive() })
}

// Notify tells the channel the host signalled it: data may be waiting, or
// room in the outbound ring. It never blocks.
func (c *Channel) Notify() {
	c.wake.Signal()
	c.space.Signal()
}

// Close stops the receive goroutine and fails outstanding requests. It
// does not tell the host; Offer.Close does that.
func (c *Channel) Close() {
	c.closed.Do(func() {
		close(c.stop)
		c.start.Do(func() { close(c.done) }) // never started
		<-c.done
		c.failRequests()
	})
}

// Err returns why the channel stopped working (rescind or a corrupt
// ring), or nil.
func (c *Channel) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *Channel) die(err error) {
	if c.err.CompareAndSwap(nil, &err) {
		close(c.gone)
		c.failRequests()
		c.space.Signal()
	}
}

func (c *Channel) rescind() { c.die(ErrRescinded) }

// Stats returns a snapshot of the channel's counters.
func (c *Channel) Stats() ChannelStats {
	s := &c.stats
	return ChannelStats{
		TxPackets: s.txPackets.Load(), TxBytes: s.txBytes.Load(), TxSignals: s.txSignals.Load(),
		TxFullWaits: s.txFullWaits.Load(), RxPackets: s.rxPackets.Load(), RxBytes: s.rxBytes.Load(),
		RxSignals: s.rxSignals.Load(), RxBatches: s.rxBatches.Load(), LateCompletions: s.lateCompletions.Load(),
	}
}

// Tx stages packets for one batched send; see Channel.Send.
type Tx struct {
	c      *Channel
	n      int
	noWait bool // TrySend: fail with ErrRingFull instead of waiting
}

// Send runs fn with the outbound ring locked; every packet fn stages is
// published with as few index updates and signals as possible (one of
// each when the batch fits). If the ring fills mid-batch, what is staged
// is published and Send waits for the host to make room.
func (c *Channel) Send(fn func(tx *Tx) error) error {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	tx := &c.tx // reused under txMu: a Tx on the stack would escape through fn
	*tx = Tx{c: c}
	err := fn(tx)
	if err != nil {
		// Keep what was staged before the failure: those packets are whole.
		c.commitLocked()
		return err
	}
	return c.commitLocked()
}

// TrySend is Send for callers that must not wait for the host (a driver's
// transmit path, or a receive handler answering the host): a packet that
// does not fit in the ring now fails with the bare ErrRingFull, fn sees it
// and decides what to do; what was staged before it is published. If
// another Send is waiting for ring space, TrySend returns ErrRingFull at
// once without calling fn, so a receive handler never blocks behind it.
func (c *Channel) TrySend(fn func(tx *Tx) error) error {
	for !c.txMu.TryLock() {
		if c.waiting.Load() {
			c.stats.txFullWaits.Add(1)
			return ErrRingFull
		}
		runtime.Gosched()
	}
	defer c.txMu.Unlock()
	tx := &c.tx
	*tx = Tx{c: c, noWait: true}
	err := fn(tx)
	if cerr := c.commitLocked(); err == nil {
		err = cerr
	}
	return err
}

// InBand stages an in-band packet.
func (tx *Tx) InBand(transID uint64, completion bool, payload []byte) error {
	return tx.write(ring.InBandSize(len(payload)), len(payload), func(w *ring.Writer) error {
		return w.WriteInBand(transID, completion, payload)
	})
}

// GPADirect stages a GPA-direct packet whose ranges point into guest
// memory the host reads (or writes) directly.
func (tx *Tx) GPADirect(transID uint64, completion bool, ranges []gpa.Range, payload []byte) error {
	return tx.write(ring.GPADirectSize(ranges, len(payload)), len(payload), func(w *ring.Writer) error {
		return w.WriteGPADirect(transID, completion, ranges, payload)
	})
}

// Completion stages a completion answering transID.
func (tx *Tx) Completion(transID uint64, payload []byte) error {
	return tx.write(ring.InBandSize(len(payload)), len(payload), func(w *ring.Writer) error {
		return w.WriteCompletion(transID, payload)
	})
}

func (tx *Tx) write(total, n int, stage func(w *ring.Writer) error) error {
	c := tx.c
	if total > c.out.MaxPacketSize() {
		return fmt.Errorf("vmbus: %s: %d-byte packet: %w", c.cfg.Name, total, ErrTooLarge)
	}
	for {
		if err := c.Err(); err != nil {
			return err
		}
		err := stage(c.out)
		if err == nil {
			tx.n++
			c.stats.txPackets.Add(1)
			c.stats.txBytes.Add(uint64(n))
			return nil
		}
		if !errors.Is(err, ring.ErrFull) {
			return fmt.Errorf("vmbus: %s: %w", c.cfg.Name, err)
		}
		if tx.noWait {
			c.stats.txFullWaits.Add(1)
			return ErrRingFull
		}
		if err := c.waitSpaceLocked(total); err != nil {
			return err
		}
	}
}

// waitSpaceLocked publishes what is staged and waits until the host has
// freed total bytes (pending send size, spec §3.4).
func (c *Channel) waitSpaceLocked(total int) error {
	if err := c.commitLocked(); err != nil {
		return err
	}
	c.stats.txFullWaits.Add(1)
	c.waiting.Store(true)
	defer c.waiting.Store(false)
	for {
		ready, err := c.out.ArmPendingSend(total)
		if err != nil {
			c.die(err)
			return err
		}
		if ready {
			return nil
		}
		select {
		case <-c.space.C():
		case <-c.stop:
			return ErrClosed
		case <-c.gone:
			return c.Err()
		}
	}
}

func (c *Channel) commitLocked() error {
	if c.out.Staged() == 0 {
		return nil
	}
	if c.out.Commit() {
		c.stats.txSignals.Add(1)
		if err := c.cfg.Signal(); err != nil {
			return fmt.Errorf("vmbus: %s: signal host: %w", c.cfg.Name, err)
		}
	}
	return nil
}

// SendInBand sends one in-band packet.
func (c *Channel) SendInBand(transID uint64, completion bool, payload []byte) error {
	return c.Send(func(tx *Tx) error { return tx.InBand(transID, completion, payload) })
}

// Request sends payload in-band asking for a completion and returns a copy
// of the completion's payload. It fails after the channel's request
// timeout, on close and on rescind; a completion that arrives after its
// request gave up is counted and dropped.
func (c *Channel) Request(ctx context.Context, payload []byte) ([]byte, error) {
	return c.RequestTx(ctx, func(tx *Tx, id uint64) error { return tx.InBand(id, true, payload) })
}

// RequestTx is Request for any packet: stage is given the transaction id
// to put in the one packet it stages with completion requested (for
// instance a GPA-direct packet).
func (c *Channel) RequestTx(ctx context.Context, stage func(tx *Tx, transID uint64) error) ([]byte, error) {
	slot, id, err := c.allocRequest()
	if err != nil {
		return nil, err
	}
	defer c.freeRequest(slot)
	if err := c.Send(func(tx *Tx) error { return stage(tx, id) }); err != nil {
		return nil, err
	}
	t := c.cfg.Clock.NewTimer(c.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case resp := <-c.reqs[slot].c:
		if resp == nil {
			if err := c.Err(); err != nil {
				return nil, err
			}
			return nil, ErrClosed
		}
		return resp, nil
	case <-t.C():
		return nil, fmt.Errorf("vmbus: %s: request %#x: %w", c.cfg.Name, id, ErrTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Channel) allocRequest() (int, uint64, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	for i := range c.reqs {
		if !c.reqs[i].busy {
			c.reqGen++
			r := &c.reqs[i]
			r.busy = true
			r.id = RequestIDBit | uint64(c.reqGen)<<16 | uint64(i+1)
			select { // drop a stale answer left by a late completion race
			case <-r.c:
			default:
			}
			return i, r.id, nil
		}
	}
	return 0, 0, ErrNoTransID
}

func (c *Channel) freeRequest(i int) {
	c.reqMu.Lock()
	c.reqs[i].busy = false
	c.reqs[i].id = 0
	c.reqMu.Unlock()
}

// completeRequest hands a completion to its request; false if it is not
// one of ours (the handler gets it).
func (c *Channel) completeRequest(p *ring.Packet) bool {
	if p.TransID&RequestIDBit == 0 {
		return false
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	i := int(p.TransID&0xFFFF) - 1
	if i < 0 || i >= requestSlots || !c.reqs[i].busy || c.reqs[i].id != p.TransID {
		c.stats.lateCompletions.Add(1)
		return true
	}
	// A non-nil copy even when empty: nil means "failed" to the waiter,
	// and some completions carry no payload (netvsc SWITCH_DATA_PATH).
	resp := make([]byte, len(p.Payload))
	copy(resp, p.Payload)
	c.reqs[i].c <- resp
	c.reqs[i].id = 0 // a duplicate completion is late from now on
	return true
}

func (c *Channel) failRequests() {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	for i := range c.reqs {
		if c.reqs[i].busy && c.reqs[i].id != 0 {
			c.reqs[i].id = 0
			c.reqs[i].c <- nil
		}
	}
}

// receive drains the inbound ring whenever the host signals: mask, drain,
// unmask, re-check (spec §3.4).
func (c *Channel) receive() {
	defer close(c.done)
	batch := make([]ring.Packet, c.cfg.Batch)
	for {
		select {
		case <-c.stop:
			return
		case <-c.gone:
			<-c.stop
			return
		case <-c.wake.C():
		}
		for more := true; more; {
			c.in.BeginRead()
			for {
				n, err := c.in.ReadBatch(batch)
				if n > 0 {
					// Take out the completions of Requests, compacting in
					// place: the common batch has none and is handed on
					// as it was read.
					k := 0
					var bytes uint64
					for i := range batch[:n] {
						p := &batch[i]
						bytes += uint64(len(p.Payload))
						if p.Type == ring.TypeCompletion && c.completeRequest(p) {
							continue
						}
						if k != i {
							batch[k] = *p
						}
						k++
					}
					c.stats.rxPackets.Add(uint64(n))
					c.stats.rxBytes.Add(bytes)
					c.stats.rxBatches.Add(1)
					if k > 0 && c.cfg.Handler != nil {
						c.cfg.Handler.HandlePackets(c, batch[:k])
					}
					if c.in.Commit() {
						c.stats.rxSignals.Add(1)
						if serr := c.cfg.Signal(); serr != nil {
							c.log.Warn("signal host", "err", serr)
						}
					}
				}
				if err != nil {
					c.log.Error("inbound ring is corrupt; channel stopped", "err", err)
					c.die(fmt.Errorf("vmbus: %s: %w", c.cfg.Name, err))
					break
				}
				if n < len(batch) {
					break
				}
			}
			if c.Err() != nil {
				break
			}
			more = c.in.EndRead()
		}
	}
}
