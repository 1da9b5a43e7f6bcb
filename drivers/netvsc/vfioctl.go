package netvsc

import (
	"slices"

	"github.com/hvguest/hvguest/net/ifnet"
)

// xpntIoctl passes an ioctl on hn through to its adopted VF and updates
// hn's own state (FreeBSD hn_ioctl with a ready transparent VF,
// spec/vf-modes.md §3.7). It reports whether it handled the request;
// requests it does not handle stay hn's own (§3.7 item 7). SetMAC is
// Linux's netvsc_set_mac_addr rather than FreeBSD's (where hn's new MAC
// stays hn's and the pair silently breaks): the VF takes the address
// first, and if the synthetic NIC then refuses it the VF gets its old one
// back.
// cfgMu held; hn's ifnet commits the request's state when it returns nil.
func (m *vfMgr) xpntIoctl(req ifnet.Request) (bool, error) {
	w := &m.w
	d := m.d
	hn, vf := d.iface(), w.vf
	switch r := req.(type) {
	case *ifnet.SetFlags:
		f := hn.Flags()&^ifnet.UserFlags | r.Flags&ifnet.UserFlags
		nm := len(hn.Multicast())
		// hn's synthetic filter follows hn's flags too (§3.7 item 2).
		if err := d.applyFilter(f, nm); err != nil {
			return true, err
		}
		hn.SetRunning(f&ifnet.FlagUp != 0)
		up := f&ifnet.FlagUp != 0
		switch {
		case up && !w.enabled:
			if m.assocOK() {
				if err := m.enable(f); err != nil {
					m.wake() // the worker retries
				}
			}
		case up:
			m.setVFFlags(m.vfFlags(f, nm) | ifnet.FlagUp)
		case w.enabled:
			m.disable(true, f)
		default:
			m.setVFFlags(m.vfFlags(f, nm) &^ ifnet.FlagUp)
		}
		return true, nil
	case *ifnet.SetMAC:
		old := hn.MAC()
		if err := m.vfIoctl(&ifnet.SetMAC{MAC: r.MAC}); err != nil {
			return true, err
		}
		if err := d.setSynthMAC(r.MAC); err != nil {
			if rerr := m.vfIoctl(&ifnet.SetMAC{MAC: old}); rerr != nil {
				m.fail("restore VF MAC", vf, rerr)
			}
			return true, err
		}
		w.settingMAC = slices.Clone(r.MAC)
		return true, nil
	case *ifnet.SetMTU:
		// V2026: only the VF changes; the synthetic attachment keeps its
		// MTU while the VF carries the traffic.
		return true, m.vfIoctl(&ifnet.SetMTU{MTU: r.MTU})
	case *ifnet.SetCapabilities:
		want := fixCapDeps(vf.CapEnabled()&^w.inter | r.Enable&w.inter)
		err := m.vfIoctl(&ifnet.SetCapabilities{Enable: want})
		en := vf.CapEnabled() & w.inter
		r.Enable, r.HWAssist = en, assistFor(en, vf.HWAssist(), m.synthAssist())
		return true, err
	case *ifnet.AddMulti, *ifnet.DelMulti:
		nm := len(hn.Multicast()) + 1
		if _, del := r.(*ifnet.DelMulti); del {
			nm -= 2
		}
		if err := d.applyFilter(hn.Flags(), nm); err != nil {
			return true, err
		}
		// The list is not copied: the VF gets ALLMULTI while hn has one.
		if w.enabled || vf.Flags()&ifnet.FlagUp != 0 {
			m.setVFFlags(m.vfFlags(hn.Flags(), nm) | vf.Flags()&ifnet.FlagUp)
		}
		return true, nil
	case *ifnet.GetMedia:
		var g ifnet.GetMedia
		err := m.vfIoctl(&g)
		if err == nil {
			r.State = g.State
		}
		return true, err
	case *ifnet.SetMedia:
		return true, m.vfIoctl(&ifnet.SetMedia{Media: r.Media})
	}
	return false, nil
}

// setVFFlags sets the VF's user flags if they differ.
func (m *vfMgr) setVFFlags(f ifnet.Flags) {
	vf := m.w.vf
	if vf.Flags()&ifnet.UserFlags == f&ifnet.UserFlags {
		return
	}
	if err := m.vfIoctl(&ifnet.SetFlags{Flags: f}); err != nil {
		m.fail("set VF flags", vf, err)
	}
}
