package ifnet

import "github.com/hvguest/hvguest/net/packet"

// Direction says which way an observed batch travels.
type Direction uint8

const (
	DirIn  Direction = iota + 1 // received: passed to Interface.Input
	DirOut                      // transmitted: passed to Interface.Transmit
)

func (d Direction) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	}
	return "dir(" + itoa(int(d)) + ")"
}

// ObserverFunc sees the batches that cross an interface (a capture tap such
// as net/pcap). It runs synchronously on the data path: for DirOut in
// Transmit before the driver takes the packets, for DirIn in Input before
// the input chain gets them. It must not keep, change or free the packets
// or the batch, and should be quick.
type ObserverFunc func(ifp *Interface, dir Direction, b *packet.Batch)

// Observer is the handle of an installed observer.
type Observer struct {
	ifp *Interface
	fn  ObserverFunc
}

// Observe installs fn as the interface's observer. An interface has at most
// one; a second Observe fails with ErrBusy until the first is stopped. The
// data path pays one atomic load when no observer is installed.
func (ifp *Interface) Observe(fn ObserverFunc) (*Observer, error) {
	if fn == nil {
		return nil, wrapf(ErrInvalid, ifp.name, "nil observer")
	}
	o := &Observer{ifp: ifp, fn: fn}
	if !ifp.observer.CompareAndSwap(nil, o) {
		return nil, wrapf(ErrBusy, ifp.name, "interface already has an observer")
	}
	return o, nil
}

// Stop removes the observer; a second Stop returns ErrReleased. A batch
// already being observed finishes, so fn may run briefly after Stop
// returns.
func (o *Observer) Stop() error {
	if !o.ifp.observer.CompareAndSwap(o, nil) {
		return wrapf(ErrReleased, o.ifp.name, "observer already stopped")
	}
	return nil
}

// observe calls the installed observer, if any.
func (ifp *Interface) observe(dir Direction, b *packet.Batch) {
	if o := ifp.observer.Load(); o != nil {
		o.fn(ifp, dir, b)
	}
}
