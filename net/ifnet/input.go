package ifnet

import "github.com/hvguest/hvguest/net/packet"

// InputFunc receives a batch of packets from an interface. It takes
// ownership of every packet in b (it must free them or hand them on), must
// not keep b itself after returning, and must not block for long: it runs on
// the driver's receive goroutine. ifp is the interface the packets arrived
// on (each packet's Meta.RcvIf is its index).
type InputFunc func(ifp *Interface, b *packet.Batch)

// inputNode is one immutable layer of an interface's input chain. The chain
// is replaced as a whole (copy on write) under Interface.mu and read with a
// single atomic load on the data path.
type inputNode struct {
	fn   InputFunc
	ov   *InputOverride // nil for the base (stack) layer
	next *inputNode     // the layer below; nil for the base
}

// dropInput is the base input of an interface no stack has claimed: it
// counts and frees.
func dropInput(ifp *Interface, b *packet.Batch) {
	ifp.counters.drops[DropNoInput].Add(uint64(b.Len()))
	b.Free()
}

// SetInput installs the stack's input function (the base of the input
// chain; nil drops and counts DropNoInput). Overrides stay in front of it.
// It is safe while packets flow: a batch already being delivered finishes
// with the function it started with.
func (ifp *Interface) SetInput(fn InputFunc) {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	ifp.baseInput = fn
	ifp.rebuildInputLocked()
}

// InputOverride is the handle of one input override; only it can remove
// that override.
type InputOverride struct {
	ifp       *Interface
	fn        InputFunc
	installed bool // guarded by ifp.mu
}

// OverrideInput puts fn in front of the interface's input: from now on the
// interface's received batches go to fn instead of the previous input. This
// is how hn's transparent VF mode takes over its VF's receive path
// (FreeBSD's if_input swap, made safe): fn typically relabels the packets by
// passing them to another interface's Input; it can also pass them on with
// the handle's Next (a capture tap).
//
// Overrides nest: the most recent is called first. Restore on a handle
// removes exactly that override wherever it sits in the stack; overrides
// installed after it keep running, and their Next reaches whatever is now
// below them. So an owner can never restore "the wrong thing": it cannot
// remove another owner's override or resurrect an input that was replaced
// since. Changes are safe while packets flow (no lock on the data path); a
// batch already being delivered finishes with the chain it started with,
// so an override's fn may run briefly after Restore returns.
func (ifp *Interface) OverrideInput(fn InputFunc) (*InputOverride, error) {
	if fn == nil {
		return nil, wrapf(ErrInvalid, ifp.name, "nil input override")
	}
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if ifp.Detached() {
		return nil, wrapf(ErrDetached, ifp.name, "override input")
	}
	o := &InputOverride{ifp: ifp, fn: fn, installed: true}
	ifp.overrides = append(ifp.overrides, o)
	ifp.rebuildInputLocked()
	return o, nil
}

// Restore removes this override. A second Restore returns ErrReleased.
// Restoring on a detached interface still succeeds (detach does not remove
// overrides, so owners can undo their work in any order).
func (o *InputOverride) Restore() error {
	ifp := o.ifp
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if !o.installed {
		return wrapf(ErrReleased, ifp.name, "input override already restored")
	}
	o.installed = false
	for i, x := range ifp.overrides {
		if x == o {
			ifp.overrides = append(ifp.overrides[:i], ifp.overrides[i+1:]...)
			break
		}
	}
	ifp.rebuildInputLocked()
	return nil
}

// Interface returns the overridden interface.
func (o *InputOverride) Interface() *Interface { return o.ifp }

// Next passes b to the input below this override in the current chain (the
// next older override, or the stack's input). If the override has been
// restored meanwhile, b goes to the interface's current input. Like any
// InputFunc, the callee takes the packets.
func (o *InputOverride) Next(b *packet.Batch) {
	head := o.ifp.input.Load()
	for n := head; n != nil; n = n.next {
		if n.ov == o {
			n.next.fn(o.ifp, b) // an override is never the base, so next != nil
			return
		}
	}
	head.fn(o.ifp, b)
}

// Overridden reports how many input overrides are installed.
func (ifp *Interface) Overridden() int {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	return len(ifp.overrides)
}

// rebuildInputLocked publishes a fresh chain. mu must be held.
func (ifp *Interface) rebuildInputLocked() {
	base := ifp.baseInput
	if base == nil {
		base = dropInput
	}
	n := &inputNode{fn: base}
	for _, o := range ifp.overrides {
		n = &inputNode{fn: o.fn, ov: o, next: n}
	}
	ifp.input.Store(n)
}
