package vmbus

import (
	"sync"
)

// waitKey names the host response a control request waits for. The
// channel-management protocol has no transaction ids: responses are
// matched by what they carry (Linux drivers/hv/channel_mgmt.c matches
// OPENCHANNEL_RESULT by relid, GPADL_CREATED and GPADL_TORNDOWN by gpadl
// handle, VERSION_RESPONSE and UNLOAD_RESPONSE by being the only one).
type waitKey struct {
	kind waitKind
	id   uint32 // relid or gpadl handle; 0 for bus-wide waits
}

type waitKind uint8

const (
	waitVersion waitKind = iota + 1
	waitOpen
	waitGPADLCreated
	waitGPADLTorndown
	waitUnload
)

type waiter struct {
	c     chan any // buffered 1: the response message or an error
	relid uint32   // the channel the wait belongs to (0: the bus)
}

// waiters holds the control requests in flight. Requesters register
// before posting so a fast response is never missed; the dispatcher
// goroutine completes them.
type waiters struct {
	mu sync.Mutex // guards m
	m  map[waitKey]waiter
}

func (w *waiters) add(k waitKey, relid uint32) (<-chan any, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[waitKey]waiter{}
	}
	if _, dup := w.m[k]; dup {
		return nil, ErrBusy
	}
	c := make(chan any, 1)
	w.m[k] = waiter{c: c, relid: relid}
	return c, nil
}

func (w *waiters) remove(k waitKey) {
	w.mu.Lock()
	delete(w.m, k)
	w.mu.Unlock()
}

// complete hands v to the waiter for k; it reports whether one was
// waiting (an unmatched response is the host's mistake, logged).
func (w *waiters) complete(k waitKey, v any) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	x, ok := w.m[k]
	if ok {
		delete(w.m, k)
		x.c <- v
	}
	return ok
}

// failChannel fails every wait that belongs to relid: the host does not
// answer outstanding requests of a rescinded channel.
func (w *waiters) failChannel(relid uint32, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, x := range w.m {
		if x.relid == relid {
			delete(w.m, k)
			x.c <- err
		}
	}
}

// failAll fails every wait with err (the bus is going away).
func (w *waiters) failAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, x := range w.m {
		delete(w.m, k)
		x.c <- err
	}
}

func (w *waiters) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}
