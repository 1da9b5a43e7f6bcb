package testbed

import (
	"sync"
	"time"

	"github.com/hvguest/hvguest/kernel"
)

// skipClock is the guest hn driver's clock when Config.SkipAttachWait is
// set: a kernel.FakeClock that a pump goroutine keeps in step with real
// time (so every timeout still fires when it should), and that Skip jumps
// forward, so hn's attach wait (at least 2 s, as FreeBSD enforces) passes
// at once in the guest's time without changing what hn does.
//
// Ownership: mu serializes Advance between the pump and Skip; skipped is
// guarded by mu. stop and done belong to the pump.
type skipClock struct {
	*kernel.FakeClock
	start      time.Time // real time of the fake clock's zero
	fakeStart  time.Time
	mu         sync.Mutex
	skipped    time.Duration
	stop, done chan struct{}
}

const clockTick = 250 * time.Microsecond

func newSkipClock() *skipClock {
	now := time.Now()
	c := &skipClock{FakeClock: kernel.NewFakeClock(now), start: now, fakeStart: now,
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.pump()
	return c
}

func (c *skipClock) pump() {
	defer close(c.done)
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			want := time.Since(c.start) + c.skipped
			if d := want - c.Now().Sub(c.fakeStart); d > 0 {
				c.Advance(d)
			}
			c.mu.Unlock()
		}
	}
}

// Skip moves the clock forward by d at once, firing what falls due.
func (c *skipClock) Skip(d time.Duration) {
	c.mu.Lock()
	c.skipped += d
	c.Advance(d)
	c.mu.Unlock()
}

// Skipped returns the total time skipped.
func (c *skipClock) Skipped() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skipped
}

func (c *skipClock) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		<-c.done
	}
}
