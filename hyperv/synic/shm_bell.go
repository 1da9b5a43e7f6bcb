package synic

import (
	"sync/atomic"
	"time"
)

// bell is a doorbell in shared memory: a sequence counter the ringer
// advances and a count of sleepers, both 32-bit words so the sequence can
// be a futex. A waiter reads the sequence, looks for work, and sleeps only
// while the sequence still holds the value it read, so a ring between the
// look and the sleep is never lost. The ringer makes the futex system call
// only when somebody sleeps: with sequentially consistent atomics either
// the ringer sees the waiter count or the waiter sees the new sequence.
//
// A peer that cannot reach our futex (a guest in a QEMU VM) still works:
// its ring moves the sequence, and our bounded sleep polls it.
type bell struct {
	seq, waiters *atomic.Uint32
	noWake       bool // this side polls (another kernel): futex wakes cannot reach the peer
}

// ring advances the sequence and wakes sleepers.
func (b bell) ring() {
	b.seq.Add(1)
	if !b.noWake && b.waiters.Load() != 0 {
		futexWake(b.seq)
	}
}

// set stores v as the sequence (a completion number) and wakes sleepers.
func (b bell) set(v uint32) {
	b.seq.Store(v)
	if !b.noWake && b.waiters.Load() != 0 {
		futexWake(b.seq)
	}
}

// wait sleeps for at most d unless the sequence has moved from seen.
//
// A loop that may have readied a goroutine (sending on the Interrupt
// channel, running a handler) must yield before it waits: the readied
// goroutine sits in this P's run-next slot, and the futex system call
// keeps the P, and so that goroutine, blocked until sysmon retakes it
// (measured: ~80µs per signal round trip without the yield).
func (b bell) wait(seen uint32, d time.Duration) {
	b.waiters.Add(1)
	if b.seq.Load() == seen {
		futexWait(b.seq, seen, d)
	}
	b.waiters.Add(^uint32(0))
}

// Poll intervals for a side whose peer cannot wake it; the interval
// doubles while idle and drops back on work.
const (
	pollMin = 20 * time.Microsecond
	pollMax = time.Millisecond
	// heartbeatMax bounds every sleep of a side whose peer wakes it, so it
	// notices its own Close, beats, and checks the peer's heartbeat.
	heartbeatMax = 100 * time.Millisecond
	// DefaultPeerTimeout is how long a side waits for the peer's heartbeat
	// to move (or a post to complete) before it treats the peer as gone.
	DefaultPeerTimeout = 5 * time.Second
)

// backoff is one waiter's sleep length.
type backoff struct {
	cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// next returns how long to sleep: long when the peer can wake us, a growing
// poll interval otherwise.
func (b *backoff) next(polled bool, beat time.Duration) time.Duration {
	if !polled {
		return beat
	}
	switch {
	case b.cur == 0:
		b.cur = pollMin
	case b.cur < pollMax:
		b.cur *= 2
	}
	return min(b.cur, beat)
}

// liveness watches the peer's heartbeat word. It is owned by one goroutine.
type liveness struct {
	word    *atomic.Uint32
	last    uint32
	changed time.Time
	timeout time.Duration
}

func newLiveness(w *atomic.Uint32, timeout time.Duration) liveness {
	return liveness{word: w, last: w.Load(), changed: time.Now(), timeout: timeout}
}

// dead reports whether the heartbeat has not moved for the timeout.
func (l *liveness) dead(now time.Time) bool {
	if v := l.word.Load(); v != l.last {
		l.last, l.changed = v, now
		return false
	}
	return now.Sub(l.changed) > l.timeout
}

// SharedOption adjusts a shared-memory port.
type SharedOption func(*shmConfig)

type shmConfig struct {
	peerTimeout time.Duration
	polled      bool
}

func newConfig(opts []SharedOption) shmConfig {
	c := shmConfig{peerTimeout: DefaultPeerTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.peerTimeout <= 0 {
		c.peerTimeout = DefaultPeerTimeout
	}
	return c
}

// heartbeat is how long the side's loop sleeps at most.
func (c shmConfig) heartbeat() time.Duration { return min(heartbeatMax, c.peerTimeout/4) }

// WithPeerTimeout sets how long the peer's heartbeat may stall, or a post
// may stay unanswered, before the peer counts as gone (ErrClosed).
func WithPeerTimeout(d time.Duration) SharedOption {
	return func(c *shmConfig) { c.peerTimeout = d }
}

// WithPolling says this side does not share a kernel with its peer (a
// guest in a QEMU VM reaching the file through an ivshmem BAR): it does not
// advertise futex wake-ups, and it polls the shared words with a short,
// backing-off interval instead of sleeping until woken.
func WithPolling() SharedOption {
	return func(c *shmConfig) { c.polled = true }
}
