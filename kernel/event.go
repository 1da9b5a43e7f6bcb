package kernel

// Event is a coalescing wake-up: any number of Signal calls before the
// waiter looks collapse into one. It is the in-process stand-in for an
// edge-triggered interrupt line. The zero value is not usable; use
// NewEvent.
type Event struct{ c chan struct{} }

// NewEvent returns an event with no signal pending.
func NewEvent() *Event { return &Event{c: make(chan struct{}, 1)} }

// Signal marks the event pending; it never blocks.
func (e *Event) Signal() {
	select {
	case e.c <- struct{}{}:
	default:
	}
}

// C is the channel a waiter selects on; receiving clears the pending mark.
func (e *Event) C() <-chan struct{} { return e.c }

// Pending reports and clears a pending signal without blocking.
func (e *Event) Pending() bool {
	select {
	case <-e.c:
		return true
	default:
		return false
	}
}
