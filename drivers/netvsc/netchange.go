package netvsc

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/kernel"
)

// NetworkChangeDelay is how long hn reports its link down after the host
// says the network changed (RNDIS NETWORK_CHANGE): Linux's LINKCHANGE_INT
// (netvsc_link_change), long enough for a DHCP client to see the carrier
// go and come back and renew its lease.
const NetworkChangeDelay = 2 * time.Second

// netChange runs the fake carrier cycle of a NETWORK_CHANGE: the link goes
// down at once and up NetworkChangeDelay later on the platform clock,
// unless a real MEDIA_CONNECT or MEDIA_DISCONNECT settles it first. Its mu
// guards cancel and stopped and is held while the delayed "up" is
// published, so a real indication never interleaves with it. The receive
// goroutine arms and cancels; one timer goroutine per pending cycle fires.
type netChange struct {
	mu      sync.Mutex
	cancel  chan struct{} // closes the pending cycle's goroutine; nil if none
	stopped bool
	wg      sync.WaitGroup
	count   atomic.Uint64 // cycles started (Stats.NetworkChanges)
}

// start begins a cycle (restarting a pending one): down now, up later,
// both called with n.mu held.
func (n *netChange) start(c kernel.Clock, down, up func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.cancelLocked()
	down()
	t := c.NewTimer(NetworkChangeDelay)
	done := make(chan struct{})
	n.cancel = done
	n.count.Add(1)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-t.C():
			n.mu.Lock()
			if n.cancel == done {
				n.cancel = nil
				up()
			}
			n.mu.Unlock()
		case <-done:
			t.Stop()
		}
	}()
}

// settle ends a pending cycle because a real link indication came; set
// publishes it under n.mu.
func (n *netChange) settle(set func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cancelLocked()
	set()
}

func (n *netChange) pending() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cancel != nil
}

func (n *netChange) cancelLocked() {
	if n.cancel != nil {
		close(n.cancel)
		n.cancel = nil
	}
}

// stop cancels a pending cycle for good and waits for its goroutine.
func (n *netChange) stop() {
	n.mu.Lock()
	n.stopped = true
	n.cancelLocked()
	n.mu.Unlock()
	n.wg.Wait()
}
