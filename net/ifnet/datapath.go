package ifnet

import (
	"strconv"
	"sync/atomic"

	"github.com/hvguest/hvguest/net/packet"
)

// DropReason says why a packet was dropped.
type DropReason uint8

const (
	DropNoInput   DropReason = iota // received, but no stack input installed
	DropDetached                    // received on a detached interface
	DropDown                        // interface or link down
	DropNoBuffer                    // no packet buffer (pool exhausted)
	DropQueueFull                   // a transmit or receive queue was full
	DropTooBig                      // larger than the MTU allows
	DropInvalid                     // malformed (bad length, bad descriptor)
	DropFiltered                    // refused by an address or VLAN filter
	DropLoss                        // lost on the wire (test loss injection)
	DropOther                       // any other reason
	NumDropReasons
)

var dropNames = [...]string{"no-input", "detached", "down", "no-buffer", "queue-full", "too-big",
	"invalid", "filtered", "loss", "other"}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "drop(" + strconv.Itoa(int(r)) + ")"
}

// counters are an interface's statistics. All fields are atomics so the
// data path counts without a lock; the receive and transmit groups sit on
// separate cache lines because they are usually updated from different
// goroutines.
type counters struct {
	inPackets, inBytes, inMcast, inErrors atomic.Uint64
	_                                     [32]byte
	outPackets, outBytes, outMcast        atomic.Uint64
	outErrors                             atomic.Uint64
	_                                     [32]byte
	drops                                 [NumDropReasons]atomic.Uint64
}

// Stats is a snapshot of an interface's counters. Fields are read one by
// one, so a snapshot taken while packets flow may be torn between fields.
type Stats struct {
	InPackets, InBytes, InMulticast, InErrors     uint64
	OutPackets, OutBytes, OutMulticast, OutErrors uint64
	Drops                                         [NumDropReasons]uint64
}

// TotalDrops sums the drops over all reasons.
func (s Stats) TotalDrops() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

// Stats returns a snapshot of the counters.
func (ifp *Interface) Stats() Stats {
	c := &ifp.counters
	s := Stats{
		InPackets: c.inPackets.Load(), InBytes: c.inBytes.Load(), InMulticast: c.inMcast.Load(), InErrors: c.inErrors.Load(),
		OutPackets: c.outPackets.Load(), OutBytes: c.outBytes.Load(), OutMulticast: c.outMcast.Load(), OutErrors: c.outErrors.Load(),
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}

// CountDrops adds n drops for reason (driver side, or whoever dropped).
func (ifp *Interface) CountDrops(reason DropReason, n int) {
	if reason >= NumDropReasons {
		reason = DropOther
	}
	ifp.counters.drops[reason].Add(uint64(n))
}

// CountInErrors adds n receive errors (driver side).
func (ifp *Interface) CountInErrors(n int) { ifp.counters.inErrors.Add(uint64(n)) }

// CountOutErrors adds n transmit errors (driver side).
func (ifp *Interface) CountOutErrors(n int) { ifp.counters.outErrors.Add(uint64(n)) }

// Transmit hands a batch to the driver (stack side). The interface must be
// up and running (else ErrDown) and attached or never attached (else
// ErrDetached).
//
// Ownership: the driver takes packets from the front of b and removes them
// from it; the returned count is how many it took, and those are counted as
// sent (OutPackets, OutBytes, OutMulticast). Packets still in b on return
// (ring full, interface down, error) still belong to the caller, who may
// retry them or Free them. The batch itself always stays with the caller.
//
// Transmit takes no lock and allocates nothing.
func (ifp *Interface) Transmit(b *packet.Batch) (int, error) {
	n := b.Len()
	if n == 0 {
		return 0, nil
	}
	if ifp.detached.Load() {
		return 0, errTxDetached
	}
	if f := Flags(ifp.flags.Load()); f&(FlagUp|FlagRunning) != FlagUp|FlagRunning {
		return 0, errTxDown
	}
	var bytes, mc uint64
	for _, p := range b.Packets() {
		bytes += uint64(p.Len())
		if p.IsMulticast() {
			mc++
		}
	}
	if !ifp.txByDriver.Load() {
		ifp.observe(DirOut, b)
	}
	_, err := ifp.drv.Transmit(b)
	left := b.Len()
	if left > n {
		left = n // a driver that added packets is broken; count nothing extra
	}
	for _, p := range b.Packets()[:left] {
		bytes -= uint64(p.Len())
		if p.IsMulticast() {
			mc--
		}
	}
	sent := n - left
	if sent > 0 {
		c := &ifp.counters
		c.outPackets.Add(uint64(sent))
		c.outBytes.Add(bytes)
		if mc > 0 {
			c.outMcast.Add(mc)
		}
	}
	return sent, err
}

// Input delivers a batch received by the driver (driver side, or an input
// override relabelling packets for another interface). It sets each
// packet's Meta.RcvIf to this interface's index, counts the packets
// (InPackets, InBytes, InMulticast) and passes them to the interface's
// current input: the innermost override, else the stack's input, else a
// drop. The input takes every packet; on return b is empty and belongs to
// the caller again. On a detached interface the packets are freed and
// counted as DropDetached.
//
// Input takes no lock (one atomic load of the input chain) and allocates
// nothing.
func (ifp *Interface) Input(b *packet.Batch) {
	n := b.Len()
	if n == 0 {
		return
	}
	idx := ifp.index.Load()
	var bytes, mc uint64
	for _, p := range b.Packets() {
		p.Meta.RcvIf = idx
		bytes += uint64(p.Len())
		if p.IsMulticast() {
			mc++
		}
	}
	c := &ifp.counters
	c.inPackets.Add(uint64(n))
	c.inBytes.Add(bytes)
	if mc > 0 {
		c.inMcast.Add(mc)
	}
	if ifp.detached.Load() {
		c.drops[DropDetached].Add(uint64(n))
		b.Free()
		return
	}
	ifp.observe(DirIn, b)
	ifp.input.Load().fn(ifp, b)
	b.Clear()
}
