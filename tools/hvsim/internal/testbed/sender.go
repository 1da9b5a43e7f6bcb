package testbed

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// guestStream is the guest's end of the frame stream on the interface the
// stack uses (hn0, or the failover aggregate): an input override in front
// of the stack takes the stream frames and passes everything else on.
//
// Ownership: ov is published once, right after OverrideInput returns
// (atomic: the override may run before that); close restores it.
type guestStream struct {
	ifp *ifnet.Interface
	rx  *streamRx
	now func() int64
	ov  atomic.Pointer[ifnet.InputOverride]
}

func newGuestStream(ifp *ifnet.Interface, rx *streamRx, now func() int64) (*guestStream, error) {
	g := &guestStream{ifp: ifp, rx: rx, now: now}
	ov, err := ifp.OverrideInput(g.input)
	if err != nil {
		return nil, fmt.Errorf("testbed: stream input on %s: %w", ifp.Name(), err)
	}
	g.ov.Store(ov)
	return g, nil
}

func (g *guestStream) input(_ *ifnet.Interface, b *packet.Batch) {
	if g.filter(b) == 0 {
		return
	}
	ov := g.ov.Load()
	for ov == nil { // published just after OverrideInput returned
		runtime.Gosched()
		ov = g.ov.Load()
	}
	ov.Next(b)
}

// filter takes the stream frames out of b (recording and freeing them)
// and returns how many other frames are left in it.
func (g *guestStream) filter(b *packet.Batch) int {
	now := g.now()
	pk := b.Packets()
	keep := 0
	for _, p := range pk {
		if isStream(p) {
			g.rx.deliver(p.Bytes(), now)
			p.Free()
			continue
		}
		pk[keep] = p
		keep++
	}
	b.Truncate(keep)
	return keep
}

func (g *guestStream) close() {
	if ov := g.ov.Load(); ov != nil {
		ov.Restore()
	}
}

// sender sends one direction of the stream at a fixed rate, in batches of
// the frames that fell due since the last tick.
//
// Ownership: the sending goroutine owns everything but the counters, which
// the report reads atomically.
type sender struct {
	dir       Direction
	dst, src  [6]byte
	size      int
	rate      int
	max       uint64 // sequence numbers available
	pool      *packet.Pool
	now       func() int64
	out       func(ctx context.Context, b *packet.Batch) error
	sentAt    []int64       // send time per sequence number (read after run returns)
	sent      atomic.Uint64 // frames handed over (sequence numbers used)
	refused   atomic.Uint64 // of those, given up on: the interface refused them
	firstRef  atomic.Value  // first refusal error (string)
	startedNS int64
}

const (
	senderTick  = 500 * time.Microsecond
	senderBatch = 64
)

// run sends until stop is closed or ctx ends.
func (s *sender) run(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(senderTick)
	defer t.Stop()
	b := packet.NewBatch(senderBatch)
	s.sentAt = make([]int64, s.max)
	start := s.now()
	s.startedNS = start
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		due := uint64(float64(s.now()-start) * float64(s.rate) / 1e9)
		for seq := s.sent.Load(); seq < due && seq < s.max; seq = s.sent.Load() {
			n := min(due-seq, s.max-seq, senderBatch)
			now := s.now()
			for i := range n {
				p := s.pool.Get()
				buf, err := p.Append(s.size)
				if err != nil {
					p.Free()
					break
				}
				encodeStream(buf, s.dst, s.src, s.dir, seq+i, now)
				s.sentAt[seq+i] = now
				b.Add(p)
			}
			s.sent.Add(uint64(b.Len()))
			if err := s.out(ctx, b); err != nil {
				s.refused.Add(uint64(b.Len()))
				s.firstRef.CompareAndSwap(nil, err.Error())
				b.Free()
			}
		}
	}
}

// errGaveUp is returned when the interface kept refusing frames.
var errGaveUp = errors.New("testbed: interface kept refusing frames")

// transmitAll hands b to ifp, retrying while the interface is busy or down
// (a switch-over in progress), for at most a second.
func transmitAll(ctx context.Context, ifp *ifnet.Interface, b *packet.Batch) error {
	deadline := time.Now().Add(time.Second)
	var last error
	for b.Len() > 0 {
		_, err := ifp.Transmit(b)
		if b.Len() == 0 {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: %v", errGaveUp, last)
		}
		if errors.Is(err, ifnet.ErrBusy) {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return nil
}
