package netvsc

import (
	"context"
	"fmt"
	"time"

	"github.com/hvguest/hvguest/net/ifnet"
)

// Non-transparent VF mode (spec/vf-modes.md §2): the VF stays the user's
// interface. While it is up (and the host's association says allocated),
// the host's data path is the VF, hn's packet filter is promiscuous,
// synthetic receive is relabelled as the VF's, and hn reports its link
// down so a failover aggregate over hn and the VF (net/failover) moves to
// the VF. When the VF goes down or departs, everything returns to hn.
// cfgMu held throughout.

func (m *vfMgr) reconcileNT() time.Duration {
	w := &m.w
	want := w.vf.Flags()&ifnet.FlagUp != 0 && m.assocOK()
	if w.ntActive && (!want || !m.stillActive()) {
		m.ntDeactivate()
	}
	if !w.ntActive && want {
		if err := m.ntActivate(); err != nil {
			return vfRetry
		}
	}
	return 0
}

// ntActivate follows FreeBSD V2026 hn_rxvf_change_locked: promiscuous
// filter, receive routing prepared before the host switches, the switch
// (waiting for the completion), RSS alignment, hn's link held down.
func (m *vfMgr) ntActivate() error {
	w := &m.w
	d, vf := m.d, w.vf
	w.ntActive = true // applyFilter now forces promiscuous
	if err := d.applyFilter(d.iface().Flags(), len(d.iface().Multicast())); err != nil {
		w.ntActive = false
		m.fail("promiscuous filter for VF", vf, err)
		return err
	}
	m.rxvf.Store(vf)
	gen := d.VFAssociation().Generation
	err := d.SwitchDataPath(context.Background(), true)
	if a := d.VFAssociation(); err == nil && (a.Generation != gen || !a.Allocated) {
		err = fmt.Errorf("%w during the switch", ErrVFAssociation)
	}
	if err != nil {
		m.fail("switch data path to VF", vf, err)
		m.ntUndo()
		return err
	}
	w.activeGen = gen
	m.rssFixup()
	m.linkHeldDown.Store(true)
	hn := d.iface()
	hn.SetLinkState(ifnet.LinkDown)
	med := hn.Media()
	med.Status = ifnet.MediaValid
	hn.SetMediaState(med)
	d.log.Info("netvsc: data path switched to VF", "vf", vf.Name(), "mode", "non-transparent")
	return nil
}

// ntDeactivate is the reverse: filter back to hn's own, data path
// synthetic, routing cleared, RSS restored, hn's link resumed.
func (m *vfMgr) ntDeactivate() {
	if m.d.offer.Rescinded() {
		m.ntUndo()
		return
	}
	if err := m.d.SwitchDataPath(context.Background(), false); err != nil && m.d.synth() != nil {
		m.fail("switch data path to synthetic", m.w.vf, err)
	}
	m.ntUndo()
}

// ntUndo clears everything activation set up (also the safety net of
// V2026 hn_ifnet_detevent: never leave routing pointing at a departing
// VF).
func (m *vfMgr) ntUndo() {
	w := &m.w
	d := m.d
	w.ntActive = false
	if d.syn != nil {
		if err := d.applyFilter(d.iface().Flags(), len(d.iface().Multicast())); err != nil {
			m.fail("restore packet filter", w.vf, err)
		}
	}
	m.rxvf.Store(nil)
	m.rssRestore()
	if m.linkHeldDown.Swap(false) {
		d.publishLink(m.synthLink.Load())
	}
}

// afterReattach forgets what belonged to the old synthetic attachment:
// the new one starts on the synthetic data path with a fresh association
// (FreeBSD V2026 hn_synth_attach), so an active VF is re-activated by the
// worker once the host associates it again. cfgMu held.
func (m *vfMgr) afterReattach() {
	w := &m.w
	if w.vf == nil {
		return
	}
	m.tx.Store(nil)
	m.rxvf.Store(nil)
	w.enabled, w.ntActive = false, false
	w.rssOrig, w.rssSyn = nil, nil
	if m.linkHeldDown.Swap(false) {
		m.d.publishLink(m.synthLink.Load())
	}
	m.wake()
}
