package failover

import (
	"bytes"
	"fmt"
	"net"
	"slices"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// addLocked enslaves ifp in role r. mu held. The claim comes first, so a
// refusal has no side effects; a failure after it undoes what was done.
func (f *Failover) addLocked(ifp *ifnet.Interface, r Role) error {
	if f.closed {
		return fmt.Errorf("failover %s: add %s: %w", f.cfg.Name, ifp, ErrClosed)
	}
	if r >= numRoles {
		return fmt.Errorf("failover %s: add %s: role %d: %w", f.cfg.Name, ifp, r, ErrInvalid)
	}
	if f.slots[r].Load() != nil {
		return fmt.Errorf("failover %s: add %s as %s: %w", f.cfg.Name, ifp, r, ErrSlotTaken)
	}
	if o := f.slots[1-r].Load(); o != nil && o.ifp == ifp {
		return fmt.Errorf("failover %s: add %s as %s: already %s: %w", f.cfg.Name, ifp, r, 1-r, ErrSlotTaken)
	}
	if err := f.matches(ifp, r, false); err != nil {
		return err
	}
	claim, err := ifp.Claim(f.owner)
	if err != nil {
		return fmt.Errorf("failover %s: add %s: %w", f.cfg.Name, ifp, err)
	}
	m := &member{f: f, ifp: ifp, role: r, claim: claim, ctr: &f.ctr[r]}
	added, err := f.syncMember(m)
	if err == nil {
		m.ovr, err = ifp.OverrideInput(m.input)
	}
	if err != nil {
		for _, a := range added {
			_ = claim.Ioctl(&ifnet.DelMulti{Addr: a})
		}
		_ = claim.Release()
		return fmt.Errorf("failover %s: add %s as %s: %w", f.cfg.Name, ifp, r, err)
	}
	f.slots[r].Store(m)
	delete(f.excluded, ifp)
	m.ctr.joins.Add(1)
	f.recomputeLocked()
	f.log.Debug("failover: member joined", "aggregate", f.cfg.Name, "member", ifp.Name(), "role", r)
	return nil
}

// syncMember gives a joining member the aggregate's MTU, multicast list
// and user flags (net_failover pushes the MTU and rx mode to its slaves).
// It returns the multicast addresses it added. mu held.
func (f *Failover) syncMember(m *member) ([]net.HardwareAddr, error) {
	if m.ifp.MTU() != f.mtu {
		if err := m.claim.Ioctl(&ifnet.SetMTU{MTU: f.mtu}); err != nil {
			return nil, err
		}
	}
	var added []net.HardwareAddr
	for _, a := range f.multi {
		if err := m.claim.Ioctl(&ifnet.AddMulti{Addr: a}); err != nil {
			return added, err
		}
		added = append(added, a)
	}
	if m.ifp.Flags()&ifnet.UserFlags != f.flags {
		if err := m.claim.Ioctl(&ifnet.SetFlags{Flags: f.flags}); err != nil {
			return added, err
		}
	}
	return added, nil
}

// removeLocked gives m back. mu held.
func (f *Failover) removeLocked(m *member) {
	if !f.slots[m.role].CompareAndSwap(m, nil) {
		return
	}
	if err := m.ovr.Restore(); err != nil {
		f.log.Debug("failover: restore input", "member", m.ifp.Name(), "err", err)
	}
	if err := m.claim.Release(); err != nil {
		f.log.Debug("failover: release claim", "member", m.ifp.Name(), "err", err)
	}
	m.ctr.leaves.Add(1)
	f.recomputeLocked()
	f.log.Debug("failover: member left", "aggregate", f.cfg.Name, "member", m.ifp.Name(), "role", m.role)
}

// recomputeLocked publishes the aggregate's capabilities (intersection),
// TSO limits (smaller of each), link (up if any member has link) and
// media. mu held.
func (f *Failover) recomputeLocked() {
	var cs ifnet.CapState
	var tso ifnet.TSOLimits
	link := ifnet.LinkDown
	n := 0
	for r := range f.slots {
		m := f.slots[r].Load()
		if m == nil {
			continue
		}
		caps, en, hw, t := m.ifp.Capabilities(), m.ifp.CapEnabled(), m.ifp.HWAssist(), m.ifp.TSOLimits()
		if n == 0 {
			cs, tso = ifnet.CapState{Capabilities: caps, Enabled: en, HWAssist: hw}, t
		} else {
			cs.Capabilities &= caps
			cs.Enabled &= en
			cs.HWAssist &= hw
			tso = tso.Intersect(t)
		}
		n++
		if !m.ifp.Detached() && m.ifp.LinkState() == ifnet.LinkUp {
			link = ifnet.LinkUp
		}
	}
	cs.Enabled &= cs.Capabilities
	if err := f.ifp.SetCapState(cs); err != nil {
		f.log.Debug("failover: capabilities", "aggregate", f.cfg.Name, "err", err)
	}
	f.ifp.SetTSOLimits(tso)
	media := ifnet.MediaState{Status: ifnet.MediaValid}
	if link == ifnet.LinkUp {
		media.Status |= ifnet.MediaActive
		media.Active = ifnet.Media{Type: ifnet.MediaEthernet}
	}
	f.ifp.SetMediaState(media)
	f.ifp.SetLinkState(link)
}

// memberOfLocked returns the member whose interface is ifp. mu held.
func (f *Failover) memberOfLocked(ifp *ifnet.Interface) *member {
	for r := range f.slots {
		if m := f.slots[r].Load(); m != nil && m.ifp == ifp {
			return m
		}
	}
	return nil
}

// event follows the registry (runs on its dispatcher).
func (f *Failover) event(ev ifnet.Event) {
	if ev.Interface == nil || ev.Interface == f.ifp {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if m := f.memberOfLocked(ev.Interface); m != nil {
		if ev.Type == ifnet.EventDetach {
			f.removeLocked(m)
		} else {
			f.recomputeLocked()
		}
		return
	}
	if ev.Type == ifnet.EventDetach {
		delete(f.excluded, ev.Interface)
		return
	}
	f.autoJoinLocked(ev.Interface)
}

// autoJoin is autoJoinLocked for the initial scan.
func (f *Failover) autoJoin(ifp *ifnet.Interface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed && f.memberOfLocked(ifp) == nil {
		f.autoJoinLocked(ifp)
	}
}

// autoJoinLocked enslaves ifp if it has the aggregate's MAC, is a plain
// Ethernet interface (primary) or a synthetic one (standby), and that slot
// is free. A refused claim is retried on the interface's next event (its
// owner may let go); any other failure is counted. mu held.
func (f *Failover) autoJoinLocked(ifp *ifnet.Interface) {
	if ifp == f.ifp || ifp.Detached() || f.excluded[ifp] {
		return
	}
	var r Role
	switch ifp.Kind() {
	case ifnet.KindEthernet:
		r = Primary
	case ifnet.KindSynthetic:
		r = Standby
	default:
		return
	}
	if f.slots[r].Load() != nil || !bytes.Equal(ifp.MAC(), f.mac) {
		return
	}
	if _, claimed := ifp.ClaimedBy(); claimed {
		return
	}
	if err := f.addLocked(ifp, r); err != nil {
		f.ctr[r].joinErrors.Add(1)
		f.log.Debug("failover: automatic join failed", "aggregate", f.cfg.Name, "member", ifp.Name(), "err", err)
	}
}

// membersLocked returns the members, primary first. mu held.
func (f *Failover) membersLocked() []*member {
	var ms []*member
	for r := range f.slots {
		if m := f.slots[r].Load(); m != nil {
			ms = append(ms, m)
		}
	}
	return ms
}

// forwardLocked runs do on every member in order; if one fails, undo runs
// on the members already done (in reverse) and the error is returned.
func forwardLocked(ms []*member, do func(*member) error, undo func(*member)) error {
	for i, m := range ms {
		if err := do(m); err != nil {
			for j := i - 1; j >= 0; j-- {
				undo(ms[j])
			}
			return fmt.Errorf("member %s: %w", m.ifp, err)
		}
	}
	return nil
}

// driver is the aggregate's ifnet.Driver.
type driver Failover

// Transmit implements ifnet.Driver.
func (d *driver) Transmit(b *packet.Batch) (int, error) { return (*Failover)(d).transmit(b) }

// Ioctl implements ifnet.Driver: configuration goes to both members
// through their claims.
func (d *driver) Ioctl(req ifnet.Request) error {
	f := (*Failover)(d)
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := f.membersLocked()
	switch r := req.(type) {
	case *ifnet.SetFlags:
		want := r.Flags & ifnet.UserFlags
		err := forwardLocked(ms,
			func(m *member) error { return m.claim.Ioctl(&ifnet.SetFlags{Flags: want}) },
			func(m *member) { _ = m.claim.Ioctl(&ifnet.SetFlags{Flags: f.flags}) })
		if err != nil {
			return err
		}
		f.flags = want
		f.ifp.SetRunning(want&ifnet.FlagUp != 0)
	case *ifnet.SetMTU:
		err := forwardLocked(ms,
			func(m *member) error { return m.claim.Ioctl(&ifnet.SetMTU{MTU: r.MTU}) },
			func(m *member) { _ = m.claim.Ioctl(&ifnet.SetMTU{MTU: f.mtu}) })
		if err != nil {
			return err
		}
		f.mtu = r.MTU
	case *ifnet.AddMulti:
		err := forwardLocked(ms,
			func(m *member) error { return m.claim.Ioctl(&ifnet.AddMulti{Addr: r.Addr}) },
			func(m *member) { _ = m.claim.Ioctl(&ifnet.DelMulti{Addr: r.Addr}) })
		if err != nil {
			return err
		}
		f.multi = append(f.multi, slices.Clone(r.Addr))
	case *ifnet.DelMulti:
		err := forwardLocked(ms,
			func(m *member) error { return m.claim.Ioctl(&ifnet.DelMulti{Addr: r.Addr}) },
			func(m *member) { _ = m.claim.Ioctl(&ifnet.AddMulti{Addr: r.Addr}) })
		if err != nil {
			return err
		}
		f.multi = slices.DeleteFunc(f.multi, func(a net.HardwareAddr) bool { return bytes.Equal(a, r.Addr) })
	case *ifnet.SetCapabilities:
		if len(ms) == 0 {
			return nil
		}
		old := make([]ifnet.Cap, len(ms))
		for i, m := range ms {
			old[i] = m.ifp.CapEnabled()
		}
		err := forwardLocked(ms,
			func(m *member) error {
				return m.claim.Ioctl(&ifnet.SetCapabilities{Enable: r.Enable & m.ifp.Capabilities()})
			},
			func(m *member) { _ = m.claim.Ioctl(&ifnet.SetCapabilities{Enable: old[slices.Index(ms, m)]}) })
		if err != nil {
			return err
		}
		en, hw := ^ifnet.Cap(0), ^ifnet.HWAssist(0)
		for _, m := range ms {
			en &= m.ifp.CapEnabled()
			hw &= m.ifp.HWAssist()
		}
		r.Enable, r.HWAssist = r.Enable&en, hw
	case *ifnet.GetMedia:
		if m := f.pick(); m != nil {
			q := &ifnet.GetMedia{}
			if err := m.claim.Ioctl(q); err == nil {
				r.State = q.State
			}
		}
	default:
		return fmt.Errorf("failover %s: %s: %w", f.cfg.Name, req.RequestName(), ifnet.ErrNotSupported)
	}
	return nil
}
