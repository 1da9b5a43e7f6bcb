package testbed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hvguest/hvguest/net/packet"
)

// Timing of the migration driver (real time).
const (
	leadIn      = 300 * time.Millisecond // traffic before the first migration
	baseHold    = 120 * time.Millisecond // time on the synthetic path, ±50% by seed
	settle      = 150 * time.Millisecond // after the guest took the VF back
	tail        = 300 * time.Millisecond // traffic after the last migration
	drainWait   = time.Second            // the most to wait for frames in flight
	tcpGrace    = 20 * time.Second       // the most a transfer may outlast the traffic
	gapLookback = 2 * time.Millisecond   // a switch-over window starts this early
)

// event is one step the migration driver took, in ns since the epoch.
type event struct {
	migration int
	kind      string // "withdraw", "removed", "reoffer", "taken"
	at        int64
}

// switchOver is one change of the data path with its window.
type switchOver struct {
	migration  int
	kind       string // "to_synthetic" or "to_vf"
	start, end int64  // the window searched for the gap
	at         int64  // when the path changed (host view)
}

// migrationLoss is what a surprise removal could have lost.
type migrationLoss struct {
	migration int
	rec       *surpriseRecord
}

// migrationLog is what the migration driver did. The driver writes it
// (Run calls it on its own goroutine) and the report reads it after; mu
// guards every field all the same, so a future concurrent reader is safe.
type migrationLog struct {
	mu       sync.Mutex
	events   []event
	switches []switchOver
	losses   []migrationLoss
	done     int
	err      error
}

func (l *migrationLog) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *migrationLog) add(e event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// Run streams frames both ways and runs the two TCP transfers while the
// host performs cfg.Migrations live migrations, then reports. A testbed
// runs once (its sequence numbers are used up).
func (tb *Testbed) Run(ctx context.Context) (*Report, error) {
	if !tb.ran.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: a testbed runs once", ErrConfig)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := tb.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5851f42d4c957f2d))
	pool := packet.MustPool(packet.PoolConfig{Size: 2048})
	seqs := uint64(len(tb.toGuest.arrival))
	toGuest := &sender{dir: ToGuest, dst: GuestMAC, src: RemoteMAC, size: cfg.FrameSize, rate: cfg.Rate, max: seqs,
		pool: pool, now: tb.now, out: func(_ context.Context, b *packet.Batch) error { tb.remote.send(b); return nil }}
	toStation := &sender{dir: ToStation, dst: RemoteMAC, src: GuestMAC, size: cfg.FrameSize, rate: cfg.Rate, max: seqs,
		pool: pool, now: tb.now, out: func(ctx context.Context, b *packet.Batch) error { return transmitAll(ctx, tb.gif, b) }}

	start := tb.now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range []*sender{toGuest, toStation} {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx, stop) }()
	}
	tcpRes := make([]TCPResult, 2)
	var tcpWG sync.WaitGroup
	if cfg.TCPBytes > 0 {
		// Paced to end near the end of the traffic, so the transfers
		// cross every migration.
		pace := time.Duration(float64(cfg.expectedRunTime()) * 0.85)
		tcpWG.Add(2)
		go func() {
			defer tcpWG.Done()
			tcpRes[0] = transfer(ctx, ToStation, tb.gstack, tb.rstack, 5001, cfg.TCPBytes, cfg.Seed, pace)
		}()
		go func() {
			defer tcpWG.Done()
			tcpRes[1] = transfer(ctx, ToGuest, tb.rstack, tb.gstack, 5002, cfg.TCPBytes, cfg.Seed+1, pace)
		}()
	}

	log := &migrationLog{}
	tb.migrate(ctx, rng, log)
	// Traffic runs at least Duration, and tail past the last migration.
	until := time.Duration(start) + cfg.Duration
	if t := time.Duration(tb.now()) + tail; t > until {
		until = t
	}
	select {
	case <-time.After(time.Until(tb.epoch.Add(until))):
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	end := tb.now()
	tb.drain(toGuest, toStation)
	tcpDone := make(chan struct{})
	go func() { tcpWG.Wait(); close(tcpDone) }()
	select {
	case <-tcpDone:
	case <-time.After(tcpGrace):
		cancel()
		<-tcpDone
	}
	if cfg.TCPBytes == 0 {
		tcpRes = nil
	}
	return tb.report(start, end, toGuest, toStation, tcpRes, log), nil
}

// drain waits until every sent frame arrived or nothing moved for a while.
func (tb *Testbed) drain(senders ...*sender) {
	deadline := time.Now().Add(drainWait)
	var last uint64
	quiet := 0
	for time.Now().Before(deadline) {
		var got, want uint64
		for _, s := range senders {
			rx := tb.toGuest
			if s.dir == ToStation {
				rx = tb.toStation
			}
			_, n := rx.deliveries(s.sent.Load())
			got += n
			want += s.sent.Load() - s.refused.Load()
		}
		if got >= want {
			return
		}
		if got == last {
			if quiet++; quiet > 20 {
				return
			}
		} else {
			quiet = 0
		}
		last = got
		time.Sleep(10 * time.Millisecond)
	}
}

// migrate is the host's migration driver: cfg.Migrations times, withdraw
// the VF (switch-back, withdraw, eject; or surprise removal), run on the
// synthetic path for a while, offer a fresh VF and wait for the guest to
// take it back.
func (tb *Testbed) migrate(ctx context.Context, rng *rand.Rand, log *migrationLog) {
	sleep := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}
	// Migration i starts at leadIn + i*spacing, or when the one before
	// it has settled, whichever is later.
	begin := tb.now()
	spacing := time.Duration(0)
	if m := tb.cfg.Migrations; m > 0 {
		spacing = max(0, (tb.cfg.Duration-leadIn-tail)/time.Duration(m))
	}
	for i := range tb.cfg.Migrations {
		due := begin + int64(leadIn+time.Duration(i)*spacing)
		if !sleep(time.Duration(due - tb.now())) {
			return
		}
		path := tb.dataPath()
		t0 := tb.now()
		log.add(event{migration: i, kind: "withdraw", at: t0})
		switched, rec, err := tb.withdrawVF(tb.vf, tb.cfg.Surprise)
		if err != nil {
			log.fail(err)
			return
		}
		tb.vf = nil
		if rec != nil {
			log.mu.Lock()
			log.losses = append(log.losses, migrationLoss{migration: i, rec: rec})
			log.mu.Unlock()
		}
		t1 := tb.now()
		log.add(event{migration: i, kind: "removed", at: t1})
		if path == PathVF {
			log.mu.Lock()
			log.switches = append(log.switches, switchOver{migration: i, kind: "to_synthetic",
				start: t0 - int64(gapLookback), end: max(t1, switched+int64(settle)), at: switched})
			log.mu.Unlock()
		}
		hold := baseHold/2 + time.Duration(rng.Int64N(int64(baseHold)))
		if !sleep(hold) {
			return
		}
		t2 := tb.now()
		vf, err := tb.offerVF(i + 1)
		if err != nil {
			log.fail(err)
			return
		}
		tb.vf = vf
		log.add(event{migration: i, kind: "reoffer", at: t2})
		if err := tb.waitVFTaken(ctx, i+1); err != nil {
			log.fail(err)
			return
		}
		t3 := tb.now()
		log.add(event{migration: i, kind: "taken", at: t3})
		if tb.dataPath() == PathVF {
			log.mu.Lock()
			log.switches = append(log.switches, switchOver{migration: i, kind: "to_vf",
				start: t2, end: t3 + int64(settle), at: t3})
			log.mu.Unlock()
		}
		log.mu.Lock()
		log.done++
		log.mu.Unlock()
		if !sleep(settle) {
			return
		}
	}
}
