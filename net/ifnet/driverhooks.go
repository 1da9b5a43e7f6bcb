package ifnet

import "github.com/hvguest/hvguest/net/packet"

// Driver-side hooks for a driver that stands in front of another
// interface (hn in transparent or non-transparent VF mode,
// spec/vf-modes.md §2.3, §3.4–3.6). They are additive to the basic driver
// side (SetRunning, SetLinkState, ...) and, like it, only the interface's
// own driver calls them.

// ForceMTU publishes a new MTU without a SetMTU request (driver side) and
// announces it (EventMTU). hn uses it for FreeBSD's fallback when its VF
// refuses a jumbo MTU at adoption: hn's MTU drops back to 1500
// (hn_xpnt_vf_setready). The MTU must lie within the interface's bounds.
func (ifp *Interface) ForceMTU(mtu int) error {
	if mtu < ifp.minMTU || mtu > ifp.maxMTU {
		return wrapf(ErrInvalid, ifp.name, "ForceMTU %d outside [%d, %d]", mtu, ifp.minMTU, ifp.maxMTU)
	}
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	old := ifp.MTU()
	if old == mtu {
		return nil
	}
	ifp.mtu.Store(int64(mtu))
	ifp.postLocked(Event{Type: EventMTU, OldMTU: old, MTU: mtu})
	return nil
}

// AccountInput counts b as received on this interface (InPackets,
// InBytes, InMulticast) and shows it to the observer, without delivering
// it and without changing the packets (driver side). Non-transparent hn
// accounts packets that still arrive on the synthetic path on itself and
// then hands them to its VF's Input, which relabels them as the VF's
// (FreeBSD hn_rxpkt with an active RXVF). It takes no lock and allocates
// nothing.
func (ifp *Interface) AccountInput(b *packet.Batch) {
	n := b.Len()
	if n == 0 {
		return
	}
	var bytes, mc uint64
	for _, p := range b.Packets() {
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
	ifp.observe(DirIn, b)
}

// SetTxObservedByDriver decides who shows transmitted batches to the
// observer (driver side). Off (the default): Transmit shows every batch
// before the driver sees it. On: Transmit does not, and the driver calls
// ObserveTx with what it wants shown, e.g. only what a VF accepted
// (FreeBSD's vf_xpnt_accbpf, "accurate BPF").
func (ifp *Interface) SetTxObservedByDriver(on bool) { ifp.txByDriver.Store(on) }

// TxObservedByDriver reports the SetTxObservedByDriver setting.
func (ifp *Interface) TxObservedByDriver() bool { return ifp.txByDriver.Load() }

// Observed reports whether an observer is installed (one atomic load), so
// a driver can skip work done only for capture.
func (ifp *Interface) Observed() bool { return ifp.observer.Load() != nil }

// ObserveTx shows b to the observer as transmitted on this interface
// (driver side, with SetTxObservedByDriver on). The observer must not
// keep or change the packets.
func (ifp *Interface) ObserveTx(b *packet.Batch) {
	if b.Len() > 0 {
		ifp.observe(DirOut, b)
	}
}

// GetReady asks whether the driver has finished bringing its device up far
// enough to be configured and to move packets (hn waits for this, besides
// its attach wait, before adopting a VF; spec/vf-modes.md §3.4). The
// driver sets Ready; a driver that does not implement it answers
// ErrNotSupported, and callers take that as ready.
type GetReady struct{ Ready bool }

func (*GetReady) RequestName() string { return "GetReady" }
func (*GetReady) ReadOnly() bool      { return true }
