package shmio

import "time"

// Poll intervals: a side with nothing to do sleeps pollMin, doubling up to
// pollMax; work drops it back (the two sides may be in different kernels,
// so nothing can wake a sleeper).
const (
	pollMin = 10 * time.Microsecond
	pollMax = time.Millisecond
	spins   = 64 // busy checks before a waiting requester starts sleeping
)

type backoff struct{ d time.Duration }

// idle sleeps for the current interval and lengthens the next one.
func (b *backoff) idle() {
	if b.d == 0 {
		b.d = pollMin
	}
	time.Sleep(b.d)
	b.d = min(2*b.d, pollMax)
}

func (b *backoff) reset() { b.d = 0 }
