//go:build !linux

package synic

import (
	"sync/atomic"
	"time"
)

// Without a futex the waiters poll: futexWait sleeps a short while and
// futexWake does nothing.
func futexWait(addr *atomic.Uint32, val uint32, d time.Duration) {
	if addr.Load() == val {
		time.Sleep(min(d, pollMax))
	}
}

func futexWake(*atomic.Uint32) {}
