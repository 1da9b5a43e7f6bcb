package netvsc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Transparent VF mode (spec/vf-modes.md §3): hn adopts the VF after the
// attach wait, sends through it, receives from it through an input
// override, and passes its configuration on. Every function here except
// the data path (vfInput, vfTransmit) runs with Device.cfgMu held.

// reconcileXpnt: the attach wait, readiness and the association gate
// before adoption; then enable when hn is up, disable when the host took
// the VF away; the link follows the VF.
func (m *vfMgr) reconcileXpnt() time.Duration {
	w := &m.w
	if !w.ready {
		if rem := w.readyAt.Sub(m.d.cfg.Clock.Now()); rem > 0 {
			w.phase = VFWaiting
			return rem
		}
		if !m.vfReady() {
			w.phase = VFNotReady
			return vfReadyPoll
		}
		if !m.assocOK() {
			w.phase = VFNoAssociation
			return 0 // the association message wakes us
		}
		m.setReady()
	}
	hn := m.d.iface()
	if w.enabled && !m.stillActive() {
		m.disable(false, hn.Flags())
	}
	if !w.enabled && m.hnUp() && m.assocOK() {
		if err := m.enable(hn.Flags()); err != nil {
			return vfRetry
		}
	}
	m.syncLink()
	return 0
}

func (m *vfMgr) hnUp() bool { return m.d.iface().Flags()&ifnet.FlagUp != 0 }

// stillActive: the association hn switched under is still the host's and
// the host's data path is still the VF.
func (m *vfMgr) stillActive() bool {
	a := m.d.VFAssociation()
	return a.Allocated && a.Generation == m.w.activeGen && m.d.DataPath() == nvsp.DataPathVF
}

// vfIoctl sends a request to the VF: through the claim in transparent
// mode, directly in non-transparent mode (the VF is the user's there).
func (m *vfMgr) vfIoctl(req ifnet.Request) error {
	if m.w.claim != nil {
		return m.w.claim.Ioctl(req)
	}
	return m.w.vf.Ioctl(req)
}

// vfReady asks the VF whether its attach finished; a VF driver that does
// not answer GetReady is ready.
func (m *vfMgr) vfReady() bool {
	var r ifnet.GetReady
	err := m.vfIoctl(&r)
	if errors.Is(err, ifnet.ErrNotSupported) {
		return true
	}
	return err == nil && r.Ready
}

// vfFlags are the flags hn gives its VF: hn's user flags, plus ALLMULTI
// when hn has multicast filters (FreeBSD hn_xpnt_vf_saveifflags; the list
// itself is never copied, §3.7 item 4).
func (m *vfMgr) vfFlags(hn ifnet.Flags, nmulti int) ifnet.Flags {
	f := hn & ifnet.UserFlags
	if nmulti > 0 {
		f |= ifnet.FlagAllMulti
	}
	return f
}

// assistFor derives hn's hardware-assist flags while a VF is adopted: each
// class the enabled set allows, as far as both the VF and the synthetic
// path assist it (so a packet that falls back to synthetic during a
// surprise removal still gets its offloads).
func assistFor(en ifnet.Cap, vf, synth ifnet.HWAssist) ifnet.HWAssist {
	return ifnet.DeriveHWAssist(en) & vf & synth
}

// fixCapDeps drops enabled capabilities whose base is not enabled (TSO
// needs its checksum, VLAN offloads need tagging), as ifnet insists.
func fixCapDeps(en ifnet.Cap) ifnet.Cap {
	if en&ifnet.CapTxCsum == 0 {
		en &^= ifnet.CapTSO4
	}
	if en&ifnet.CapTxCsumIPv6 == 0 {
		en &^= ifnet.CapTSO6
	}
	if en&ifnet.CapVLANHWTagging == 0 {
		en &^= ifnet.CapVLANHWCsum | ifnet.CapVLANHWTSO
	}
	return en
}

// setReady adopts the VF's limits (FreeBSD hn_xpnt_vf_setready, §3.4):
// capabilities become the intersection, hn's enabled set is pushed to the
// VF and what the VF then has enabled comes back (V2017/V2019, the true
// intersection, not VIFAPI's clearing slip); TSO limits the minimum; hn's
// MTU goes to the VF, with the fallback to 1500 when a VF refuses a
// larger one; link and media follow the VF from now on.
func (m *vfMgr) setReady() {
	w := &m.w
	hn, vf := m.d.iface(), w.vf
	w.saved = ifnet.CapState{Capabilities: hn.Capabilities(), Enabled: hn.CapEnabled(), HWAssist: hn.HWAssist()}
	w.savedTSO = hn.TSOLimits()
	w.inter = w.saved.Capabilities & vf.Capabilities()
	want := fixCapDeps(vf.CapEnabled()&^w.inter | w.saved.Enabled&w.inter)
	if want != vf.CapEnabled() {
		if err := m.vfIoctl(&ifnet.SetCapabilities{Enable: want}); err != nil {
			m.fail("set VF capabilities", vf, err)
		}
	}
	m.syncCaps()
	hn.SetTSOLimits(w.savedTSO.Intersect(vf.TSOLimits()))
	if mtu := hn.MTU(); mtu != vf.MTU() {
		if err := m.vfIoctl(&ifnet.SetMTU{MTU: mtu}); err != nil {
			m.fail(fmt.Sprintf("VF refused MTU %d", mtu), vf, err)
			if mtu > ifnet.DefaultMTU {
				// FreeBSD: "change MTU to 1500"; the synthetic attachment is
				// not rebuilt (its frames stay larger, which is harmless).
				if err := hn.ForceMTU(ifnet.DefaultMTU); err != nil {
					m.fail("fall back to MTU 1500", vf, err)
				}
				if vf.MTU() != ifnet.DefaultMTU {
					_ = m.vfIoctl(&ifnet.SetMTU{MTU: ifnet.DefaultMTU})
				}
			}
		}
	}
	m.linkFromVF.Store(true)
	w.ready = true
	m.syncLink()
	m.d.log.Info("netvsc: VF ready", "vf", vf.Name(), "caps", w.inter.String(), "tso", hn.TSOLimits())
}

// syncCaps sets hn's enabled capabilities and hardware assist from what
// the VF has enabled, within the intersection (FreeBSD
// hn_xpnt_vf_iocsetcaps / V2026 hn_xpnt_vf_synccaps).
func (m *vfMgr) syncCaps() {
	w := &m.w
	en := m.w.vf.CapEnabled() & w.inter
	_ = m.d.iface().SetCapState(ifnet.CapState{Capabilities: w.inter, Enabled: en,
		HWAssist: assistFor(en, w.vf.HWAssist(), m.synthAssist())})
}

// synthAssist is what the synthetic path can assist (all classes when
// detached, so nothing is narrowed for a path that does not exist).
func (m *vfMgr) synthAssist() ifnet.HWAssist {
	if s := m.d.syn; s != nil {
		return m.d.capState(s).HWAssist
	}
	return ^ifnet.HWAssist(0)
}

// restoreHN gives hn back its own limits after the VF went away, onto
// hn (FreeBSD VIFAPI restored onto the departing VF; V2026 fixed it).
// Enabled bits inside the intersection keep what the user chose while
// the VF was there; the others return to what hn had before.
func (m *vfMgr) restoreHN() {
	w := &m.w
	hn := m.d.iface()
	en := w.saved.Enabled&^w.inter | hn.CapEnabled()&w.inter
	en = fixCapDeps(en & w.saved.Capabilities)
	_ = hn.SetCapState(ifnet.CapState{Capabilities: w.saved.Capabilities, Enabled: en,
		HWAssist: ifnet.DeriveHWAssist(en) & m.synthAssist()})
	hn.SetTSOLimits(w.savedTSO)
	m.linkFromVF.Store(false)
	if s := m.d.syn; s != nil {
		hn.SetMediaState(media(s.linkUp, s.speedBps))
	}
	m.d.publishLink(m.synthLink.Load())
	w.ready = false
}

// resyncMTU rebuilds the synthetic attachment when hn's MTU changed while
// the VF carried the traffic (only the VF was told, V2026 §3.7 item 1),
// so the synthetic path the traffic now falls back to carries hn's MTU.
// On failure hn keeps the MTU the synthetic path has.
func (m *vfMgr) resyncMTU() {
	d := m.d
	hn := d.iface()
	s := d.syn
	if s == nil || s.mtu == hn.MTU() {
		return
	}
	want := hn.MTU()
	if err := d.reattach(want); err != nil {
		m.d.log.Warn("netvsc: synthetic MTU after VF departure", "mtu", want, "err", err)
		if ns := d.syn; ns != nil {
			_ = hn.ForceMTU(ns.mtu)
		}
	}
}

// syncLink copies the VF's link state and media to hn while hn's link
// follows the VF (§3.8).
func (m *vfMgr) syncLink() {
	if !m.linkFromVF.Load() || m.w.vf == nil {
		return
	}
	hn, vf := m.d.iface(), m.w.vf
	hn.SetMediaState(vf.Media())
	hn.SetLinkState(vf.LinkState())
}

// enable brings the VF up with hn's flags, switches the host's data path
// to it and waits for the host's completion, aligns RSS, and only then
// moves transmit (FreeBSD hn_xpnt_vf_init, §3.4; Linux waits for the
// switch completion, A.4).
func (m *vfMgr) enable(hnFlags ifnet.Flags) error {
	w := &m.w
	hn, vf := m.d.iface(), w.vf
	f := m.vfFlags(hnFlags, len(hn.Multicast())) | ifnet.FlagUp
	if err := m.vfIoctl(&ifnet.SetFlags{Flags: f}); err != nil {
		m.fail("bringing up VF failed", vf, err)
		return err
	}
	m.syncCaps() // some VFs settle their offloads only when up
	gen := m.d.VFAssociation().Generation
	if err := m.d.SwitchDataPath(context.Background(), true); err != nil {
		m.fail("switch data path to VF", vf, err)
		_ = m.d.SwitchDataPath(context.Background(), false)
		return err
	}
	if a := m.d.VFAssociation(); a.Generation != gen || !a.Allocated {
		_ = m.d.SwitchDataPath(context.Background(), false)
		err := fmt.Errorf("%w during the switch", ErrVFAssociation)
		m.fail("switch data path to VF", vf, err)
		return err
	}
	m.rssFixup()
	w.activeGen, w.enabled = gen, true
	m.tx.Store(vf)
	m.d.log.Info("netvsc: data path switched to VF", "vf", vf.Name())
	return nil
}

// disable moves transmit back to synthetic first, then the host's data
// path (waiting for the completion), then, if hn is going down, takes the
// VF down (FreeBSD hn_stop: "datapath=SYNTH before bringing the VF down").
func (m *vfMgr) disable(down bool, hnFlags ifnet.Flags) {
	w := &m.w
	m.tx.Store(nil)
	w.enabled = false
	if err := m.d.SwitchDataPath(context.Background(), false); err != nil {
		m.fail("switch data path to synthetic", w.vf, err)
	}
	m.rssRestore()
	if down {
		f := m.vfFlags(hnFlags, len(m.d.iface().Multicast())) &^ ifnet.FlagUp
		if err := m.vfIoctl(&ifnet.SetFlags{Flags: f}); err != nil {
			m.fail("bringing down VF failed", w.vf, err)
		}
	}
}

// vfInput is installed as the VF's input: every batch is relabelled as
// received by hn (counted on the VF by its Input, on hn by hn's) and
// goes up hn's stack (FreeBSD hn_xpnt_vf_input, §3.5). Data path: no
// lock, no allocation.
func (m *vfMgr) vfInput(_ *ifnet.Interface, b *packet.Batch) {
	m.st.rxPackets.Add(uint64(b.Len()))
	m.st.rxBytes.Add(uint64(b.Bytes()))
	hn := m.d.iface()
	if hn == nil {
		b.Free()
		return
	}
	hn.Input(b)
}

// vfTransmit sends b through the VF. It returns rest=true when the VF
// has gone (detached, or no longer the target) and the packets left in b
// must go synthetic: nothing is lost in the handoff. Data path: no lock;
// it allocates only to copy packets for a capture that wants to see what
// the VF accepted.
func (m *vfMgr) vfTransmit(vf *ifnet.Interface, b *packet.Batch) (sent int, err error, rest bool) {
	n, bytes := b.Len(), uint64(b.Bytes())
	var cp *packet.Batch
	hn := m.d.iface()
	after := m.captureAfter.Load()
	if after && hn.Observed() {
		cp = copyBatch(b)
	}
	_, err = vf.Transmit(b)
	left := b.Len()
	sent = n - left
	m.st.txPackets.Add(uint64(sent))
	m.st.txBytes.Add(bytes - uint64(b.Bytes()))
	if cp != nil {
		for _, p := range cp.Packets()[sent:] {
			p.Free()
		}
		cp.Truncate(sent)
		hn.ObserveTx(cp)
		cp.Free()
	}
	if left > 0 && err != nil {
		if errors.Is(err, ifnet.ErrDetached) || m.tx.Load() != vf {
			m.tx.CompareAndSwap(vf, nil)
			m.st.txFallback.Add(uint64(left))
			return sent, nil, true
		}
		m.st.txBusy.Add(1)
	}
	return sent, err, false
}

func copyBatch(b *packet.Batch) *packet.Batch {
	cp := packet.NewBatch(b.Len())
	for _, p := range b.Packets() {
		q := packet.New(0, p.Len())
		_ = q.SetBytes(p.Bytes())
		q.Meta = p.Meta
		cp.Add(q)
	}
	return cp
}
