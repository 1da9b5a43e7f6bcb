package host

import (
	"sync"
	"time"

	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

// Faults injects misbehaviour into a Server for scenarios: dropping
// messages of a type (either direction), delaying messages to the guest,
// refusing protocol versions, and a slow host. Its methods may be called
// at any time from any goroutine; the zero value injects nothing.
//
// Delays are measured on the server's Config.Clock, so a test with a
// kernel.FakeClock decides when a delayed message goes out. Messages to
// the guest stay in order: a delayed message holds back the ones behind
// it, as a slow host would.
type Faults struct {
	mu      sync.Mutex                      // guards every field below
	drop    [2]map[vmbusmsg.MessageType]int // [dir]: remaining count, <0 forever
	delay   map[vmbusmsg.MessageType]time.Duration
	refused map[vmbusmsg.Version]bool
	slow    time.Duration
}

// FaultDir says which way a faulted message travels.
type FaultDir uint8

const (
	// FromGuest faults messages the guest posts: a dropped one is
	// accepted by the hypercall and then ignored.
	FromGuest FaultDir = iota
	// ToGuest faults messages the host sends.
	ToGuest
)

// Drop drops the next count messages of type t travelling in dir; count
// < 0 drops them until Reset.
func (f *Faults) Drop(dir FaultDir, t vmbusmsg.MessageType, count int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drop[dir] == nil {
		f.drop[dir] = map[vmbusmsg.MessageType]int{}
	}
	f.drop[dir][t] = count
}

// Delay holds every message of type t to the guest for d before sending.
func (f *Faults) Delay(t vmbusmsg.MessageType, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delay == nil {
		f.delay = map[vmbusmsg.MessageType]time.Duration{}
	}
	f.delay[t] = d
}

// RefuseVersion makes the host answer INITIATE_CONTACT for v with
// version_supported = 0, although it is configured to accept it.
func (f *Faults) RefuseVersion(v vmbusmsg.Version) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused == nil {
		f.refused = map[vmbusmsg.Version]bool{}
	}
	f.refused[v] = true
}

// SlowHost delays every message to the guest by d (0 turns it off).
func (f *Faults) SlowHost(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slow = d
}

// Reset removes every fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop = [2]map[vmbusmsg.MessageType]int{}
	f.delay, f.refused, f.slow = nil, nil, 0
}

// dropped reports whether to drop this message, consuming one count.
func (f *Faults) dropped(dir FaultDir, t vmbusmsg.MessageType) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.drop[dir][t]
	if !ok || n == 0 {
		return false
	}
	if n > 0 {
		f.drop[dir][t] = n - 1
	}
	return true
}

// delayFor returns how long to hold a message of type t to the guest.
func (f *Faults) delayFor(t vmbusmsg.MessageType) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slow + f.delay[t]
}

func (f *Faults) refuses(v vmbusmsg.Version) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused[v]
}
