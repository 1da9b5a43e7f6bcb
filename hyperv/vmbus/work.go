package vmbus

import "sync"

// workQueue runs driver callbacks in order on one goroutine. push never
// blocks, so the dispatcher can queue from the SINT path.
type workQueue struct {
	mu     sync.Mutex // guards q and closed
	q      []func()
	closed bool
	wake   chan struct{}
}

func (w *workQueue) init() { w.wake = make(chan struct{}, 1) }

func (w *workQueue) push(f func()) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.q = append(w.q, f)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *workQueue) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *workQueue) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for range w.wake {
		for {
			w.mu.Lock()
			if len(w.q) == 0 {
				closed := w.closed
				w.mu.Unlock()
				if closed {
					return
				}
				break
			}
			f := w.q[0]
			w.q[0] = nil
			w.q = w.q[1:]
			w.mu.Unlock()
			f()
		}
	}
}
