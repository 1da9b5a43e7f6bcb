package vswitch

import (
	"fmt"
	"sync/atomic"

	"github.com/hvguest/hvguest/net/packet"
)

// Port is one end attached to the switch.
type Port interface {
	// Deliver hands the port frames that leave the switch through it. The
	// port owns every packet of b when Deliver is called (it must free or
	// keep them) and must not keep b itself, which the switch clears and
	// reuses. Deliver may be called concurrently and reentrantly.
	Deliver(b *packet.Batch)
}

// DropReason says why the switch dropped a frame.
type DropReason int

// Drop reasons. Ingress reasons are counted on the port the frame came
// from, egress reasons on the port it was going to.
const (
	DropRunt      DropReason = iota // shorter than an Ethernet header (ingress)
	DropBadSource                   // source address is multicast or zero (ingress)
	DropVLAN                        // VLAN not allowed on the ingress port (ingress)
	DropHairpin                     // destination learned on the ingress port (ingress)
	DropLinkDown                    // port link is down (ingress or egress)
	DropNoBuffer                    // no packet buffer for a flood copy (egress)
	DropNoRoute                     // flood found no other member of the VLAN (ingress)
	NumDropReasons
)

var dropNames = [...]string{"runt", "bad-source", "vlan", "hairpin", "link-down", "no-buffer", "no-route"}

func (r DropReason) String() string {
	if r >= 0 && int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}

// PortStats are a port's counters. Rx counts frames the port sent into the
// switch, Tx frames the switch delivered to the port.
type PortStats struct {
	RxFrames, RxBytes uint64
	TxFrames, TxBytes uint64
	Flooded           uint64 // Tx frames that were flooded rather than switched
	Drops             [NumDropReasons]uint64
}

// TotalDrops sums the drops of all reasons.
func (s PortStats) TotalDrops() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

type portCounters struct {
	rxFrames, rxBytes, txFrames, txBytes, flooded atomic.Uint64
	drops                                         [NumDropReasons]atomic.Uint64
}

// SwitchPort is the switch's handle on an attached port.
type SwitchPort struct {
	sw   *Switch
	id   int
	name string
	port Port
	slot atomic.Int32 // index in the switch's current port list, -1 once detached
	up   atomic.Bool
	vlan atomic.Pointer[vlanConfig]
	// member is the port's steering role (steer.go), nil if none; set
	// with CompareAndSwap so a port joins at most one steering.
	member atomic.Pointer[membership]
	stats  portCounters
}

// ID returns the port's number, unique for the switch's lifetime.
func (p *SwitchPort) ID() int { return p.id }

// Name returns the name given at Attach.
func (p *SwitchPort) Name() string { return p.name }

// Port returns the attached Port.
func (p *SwitchPort) Port() Port { return p.port }

// Switch returns the switch the port belongs to.
func (p *SwitchPort) Switch() *Switch { return p.sw }

// SetLink sets the port's link state. Frames to or from a port whose link
// is down are dropped (DropLinkDown); taking the link down also forgets
// the addresses learned on the port.
func (p *SwitchPort) SetLink(up bool) {
	p.up.Store(up)
	if !up {
		p.sw.FlushPort(p)
	}
}

// LinkUp reports the port's link state.
func (p *SwitchPort) LinkUp() bool { return p.up.Load() }

// SetVLAN changes the port's VLAN mode; addresses learned on the port are
// forgotten.
func (p *SwitchPort) SetVLAN(c VLANConfig) error {
	vc, err := c.compile()
	if err != nil {
		return err
	}
	p.vlan.Store(vc)
	p.sw.FlushPort(p)
	return nil
}

// VLAN returns the port's VLAN mode.
func (p *SwitchPort) VLAN() VLANConfig { return p.vlan.Load().cfg }

// Stats returns a snapshot of the port's counters.
func (p *SwitchPort) Stats() PortStats {
	var s PortStats
	s.RxFrames = p.stats.rxFrames.Load()
	s.RxBytes = p.stats.rxBytes.Load()
	s.TxFrames = p.stats.txFrames.Load()
	s.TxBytes = p.stats.txBytes.Load()
	s.Flooded = p.stats.flooded.Load()
	for i := range s.Drops {
		s.Drops[i] = p.stats.drops[i].Load()
	}
	return s
}

func (p *SwitchPort) drop(r DropReason, n uint64) { p.stats.drops[r].Add(n) }

// Input switches the frames of b, which come from this port. It takes every
// packet of b and leaves b empty.
func (p *SwitchPort) Input(b *packet.Batch) { p.sw.input(p, b) }

// Detach removes the port from the switch and forgets its addresses. Frames
// already on their way to it may still be delivered during Detach.
func (p *SwitchPort) Detach() { p.sw.detach(p) }
