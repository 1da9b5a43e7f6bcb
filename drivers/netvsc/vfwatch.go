package netvsc

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
)

// The VF watcher: a registry subscription that notices candidate VFs and
// their changes, and one worker goroutine per hn that does the slow work
// (claims, ioctls on the VF, data-path switches that wait for the host)
// under Device.cfgMu. The callback only records and wakes: it runs on the
// registry's dispatcher, shared by everyone (spec/vf-modes.md §4: V2026
// moved this work out of event callbacks for the same reason).

// start subscribes to the registry and starts the worker. It runs once,
// after hn's interface is attached.
func (m *vfMgr) start() {
	sub, err := m.d.cfg.Registry.Subscribe(m.event)
	if err != nil {
		m.d.log.Warn("netvsc: no VF watcher", "err", err)
		close(m.done)
		return
	}
	m.sub = sub
	m.started = true
	// Interfaces attached before the subscription (the VF may come first):
	// one attached in between shows up twice; the worker ignores repeats.
	m.mu.Lock()
	for _, ifp := range m.d.cfg.Registry.Interfaces() {
		if m.candidate(ifp) {
			m.pending = append(m.pending, ifp)
		}
	}
	m.mu.Unlock()
	go m.run()
	m.wake()
}

// stopWorker stops the subscription and the worker; the worker gives the
// VF back first (FreeBSD hn_detach runs hn_ifnet_detevent itself). It must
// not be called from a registry callback.
func (m *vfMgr) stopWorker() {
	if !m.started {
		return
	}
	m.stopOnce.Do(func() {
		_ = m.sub.Unsubscribe()
		close(m.stop)
	})
	<-m.done
	<-m.sub.Done()
}

func (m *vfMgr) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// candidate is the cheap part of the pairing rule (FreeBSD hn_ismyvf,
// §1.1; Linux check_dev_is_matching_vf, A.2): not hn itself, a plain
// Ethernet interface (so no aggregate, VLAN, loopback or other hn), the
// same MAC. The serial rule needs the association and is checked by the
// worker (match).
func (m *vfMgr) candidate(ifp *ifnet.Interface) bool {
	hn := m.d.iface()
	if ifp == nil || hn == nil || ifp == hn || ifp.Kind() != ifnet.KindEthernet {
		return false
	}
	a, b := ifp.MAC(), hn.MAC()
	return len(a) == 6 && bytes.Equal(a, b)
}

// event is the registry callback (dispatcher goroutine; no lock held).
func (m *vfMgr) event(ev ifnet.Event) {
	ifp := ev.Interface
	switch ev.Type {
	case ifnet.EventAttach:
		if m.candidate(ifp) {
			m.mu.Lock()
			m.pending = append(m.pending, ifp)
			m.mu.Unlock()
			m.wake()
		}
	case ifnet.EventDetach:
		if ifp == m.cur.Load() {
			// Transmit leaves the departing VF at once; the worker undoes
			// the rest (§3.9; Linux clears data_path_is_vf first).
			m.tx.CompareAndSwap(ifp, nil)
			m.rxvf.CompareAndSwap(ifp, nil)
			m.wake()
		}
	case ifnet.EventMAC:
		// A MAC change can unmake the pair (the VF's, by its host) or
		// make one (hn's, or a candidate's): the worker re-checks under
		// cfgMu. hn's own SetMAC moves its VF's MAC first (vfioctl.go),
		// so between the two events the pair only looks broken; the
		// worker runs after both.
		cur := m.cur.Load()
		var add []*ifnet.Interface
		switch {
		case ifp == m.d.iface():
			for _, c := range m.d.cfg.Registry.Interfaces() {
				if c != cur && m.candidate(c) {
					add = append(add, c)
				}
			}
		case ifp != cur && m.candidate(ifp):
			add = append(add, ifp)
		}
		if len(add) > 0 {
			m.mu.Lock()
			m.pending = append(m.pending, add...)
			m.mu.Unlock()
		}
		if ifp == cur || ifp == m.d.iface() || m.candidate(ifp) {
			m.wake()
		}
	case ifnet.EventLink, ifnet.EventFlags, ifnet.EventCaps, ifnet.EventMTU:
		if ifp == m.cur.Load() || (ifp == m.d.iface() && m.cur.Load() != nil) {
			m.wake()
		}
	}
}

// hostChanged is called by the receive goroutine after a VF association or
// a host-ordered data-path switch. If the host took the data path away
// from the VF, or withdrew the association, transmit goes synthetic at
// once (the host now carries everything there); the worker does the rest.
func (m *vfMgr) hostChanged() {
	if vf := m.tx.Load(); vf != nil && !m.stillActiveNoLock() {
		m.tx.CompareAndSwap(vf, nil)
	}
	m.wake()
}

// stillActiveNoLock checks the host's side of an active VF without
// cfgMu: the association is allocated and the data path is the VF.
func (m *vfMgr) stillActiveNoLock() bool {
	a := m.d.VFAssociation()
	return a.Allocated && m.d.DataPath() == nvsp.DataPathVF
}

func (m *vfMgr) run() {
	defer close(m.done)
	var timer kernel.Timer
	var tc <-chan time.Time
	for {
		select {
		case <-m.stop:
			if timer != nil {
				timer.Stop()
			}
			m.d.cfgMu.Lock()
			if m.w.vf != nil {
				m.release("hn detached")
			}
			m.publishStatus()
			m.d.cfgMu.Unlock()
			return
		case <-m.kick:
		case <-tc:
			timer, tc = nil, nil
		}
		m.d.cfgMu.Lock()
		next := m.reconcile()
		if next > 0 {
			// Armed before the status is published, so whoever sees
			// "waiting" can advance a fake clock past it.
			if timer != nil {
				timer.Stop()
			}
			timer = m.d.cfg.Clock.NewTimer(next)
			tc = timer.C()
		}
		m.publishStatus()
		m.d.cfgMu.Unlock()
	}
}

func (m *vfMgr) takePending() []*ifnet.Interface {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending
	m.pending = nil
	return p
}

// match is the full pairing rule for a candidate (cfgMu held): the
// candidate test, and when both the VF's vPCI serial and the host's
// association are known, they agree (Linux's stricter rule, A.2).
func (m *vfMgr) match(ifp *ifnet.Interface) error {
	if ifp.Detached() || !m.candidate(ifp) {
		return fmt.Errorf("%w: %s is not %s's VF", ErrVFRefused, ifp.Name(), m.d.name)
	}
	if serial, ok := ifp.BusSerial(); ok {
		if a := m.d.VFAssociation(); a.Allocated && a.Serial != serial {
			return fmt.Errorf("%w: %s has vPCI serial %d, the host associated serial %d", ErrVFRefused, ifp.Name(), serial, a.Serial)
		}
	}
	return nil
}

// assocOK: the host says a VF is allocated, and it is this one when the
// serial is known (cfgMu held).
func (m *vfMgr) assocOK() bool {
	a := m.d.VFAssociation()
	return a.Allocated && (!m.w.hasSerial || a.Serial == m.w.serial)
}

// reconcile moves the VF plumbing toward what the current state asks for
// and returns when it wants to be woken again (0: on the next event).
// cfgMu held.
func (m *vfMgr) reconcile() time.Duration {
	w := &m.w
	if w.vf != nil && w.vf.Detached() {
		m.release("VF detached")
	}
	if w.settingMAC != nil && bytes.Equal(m.d.iface().MAC(), w.settingMAC) {
		w.settingMAC = nil // hn committed the address its VF already has
	}
	if w.vf != nil && !m.candidate(w.vf) && !(w.settingMAC != nil && bytes.Equal(w.vf.MAC(), w.settingMAC)) {
		// Its MAC (or hn's) changed: not hn's VF any more. It pairs
		// again when an EventMAC brings the addresses back together.
		vf := w.vf
		m.d.log.Warn("netvsc: VF released: its MAC no longer matches", "vf", vf.Name(), "vf_mac", vf.MAC().String(),
			"mac", m.d.iface().MAC().String())
		m.release("MAC mismatch")
	}
	parked := w.parked
	w.parked = nil
	for i, c := range append(parked, m.takePending()...) {
		if c == w.vf || slices.Contains(w.parked, c) {
			continue
		}
		if err := m.match(c); err != nil {
			if c.Detached() || !m.candidate(c) {
				continue
			}
			// A serial the host has not associated (yet): kept, and looked
			// at again on every event, since the association may follow
			// the device (Linux 365e1ececb29, A.4).
			w.parked = append(w.parked, c)
			if i >= len(parked) {
				m.d.log.Info("netvsc: VF candidate not paired", "candidate", c.Name(), "err", err)
			}
			continue
		}
		if w.vf != nil {
			if a := m.d.VFAssociation(); w.hasSerial && a.Allocated && a.Serial != w.serial {
				if serial, ok := c.BusSerial(); ok && serial == a.Serial {
					// hn paired a VF before the host said which one it
					// allocated, and the host names this one: hand the
					// first back (parked, in case the host returns to it).
					old := w.vf
					m.d.log.Warn("netvsc: VF replaced: the host associated another serial", "vf", old.Name(),
						"serial", w.serial, "candidate", c.Name(), "host_serial", a.Serial)
					m.release("host associated another VF")
					w.parked = append(w.parked, old)
					m.adopt(c)
					continue
				}
			}
			// One VF per hn. The candidate is kept, so it pairs if the
			// current VF leaves; it is counted and logged once.
			w.parked = append(w.parked, c)
			if i >= len(parked) {
				w.refused++
				m.d.log.Warn("netvsc: VF candidate refused: one VF per hn", "candidate", c.Name(), "vf", w.vf.Name())
			}
			continue
		}
		m.adopt(c)
	}
	if w.vf == nil {
		return 0
	}
	if m.vfMode() == VFNonTransparent {
		return m.reconcileNT()
	}
	return m.reconcileXpnt()
}

// adopt pairs a VF (FreeBSD hn_ifnet_attevent, §3.3). Transparent: claim
// it, override its input, start the attach wait. cfgMu held.
func (m *vfMgr) adopt(vf *ifnet.Interface) {
	w := &m.w
	serial, has := vf.BusSerial()
	if m.vfMode() == VFTransparent {
		c, err := vf.Claim(m.d.name)
		if err != nil {
			m.fail("claim VF", vf, err)
			return
		}
		ov, err := vf.OverrideInput(m.vfInput)
		if err != nil {
			_ = c.Release()
			m.fail("override VF input", vf, err)
			return
		}
		w.claim, w.ov = c, ov
	}
	w.vf, w.serial, w.hasSerial = vf, serial, has
	w.readyAt = m.d.cfg.Clock.Now().Add(time.Duration(m.attachWait.Load()))
	w.lastErr = ""
	m.cur.Store(vf)
	m.d.log.Info("netvsc: VF attached", "vf", vf.Name(), "mode", m.vfMode().String())
}

// release undoes everything for the paired VF, whether it departed, the
// host withdrew it, or hn is detaching (FreeBSD hn_ifnet_detevent, §3.9,
// with V2026's restore onto hn itself). Order: transmit synthetic first,
// then the host's data path, then the VF's input, hn's capabilities, TSO
// limits, RSS, link and media, then the claim. cfgMu held.
func (m *vfMgr) release(reason string) {
	w := &m.w
	vf := w.vf
	m.tx.CompareAndSwap(vf, nil)
	m.rxvf.CompareAndSwap(vf, nil)
	switch {
	case w.ntActive:
		m.ntDeactivate()
	case w.enabled && !m.d.offer.Rescinded(): // a rescinded channel takes no switch
		if err := m.d.SwitchDataPath(context.Background(), false); err != nil && m.d.synth() != nil {
			m.fail("switch data path to synthetic", vf, err)
		}
	}
	w.enabled, w.ntActive = false, false
	if w.ov != nil {
		if err := w.ov.Restore(); err != nil {
			m.d.log.Warn("netvsc: restore VF input", "vf", vf.Name(), "err", err)
		}
	}
	wasReady := w.ready
	if w.ready {
		m.restoreHN()
	}
	m.rssRestore()
	if wasReady && reason != "hn detached" {
		m.resyncMTU()
	}
	if w.claim != nil {
		if !vf.Detached() && reason == "hn detached" {
			// hn going away takes the VF down (FreeBSD hn_stop) before
			// handing it back to its users.
			f := vf.Flags() &^ ifnet.FlagUp
			if err := w.claim.Ioctl(&ifnet.SetFlags{Flags: f}); err != nil {
				m.d.log.Warn("netvsc: bring VF down", "vf", vf.Name(), "err", err)
			}
		}
		if err := w.claim.Release(); err != nil {
			m.d.log.Warn("netvsc: release VF claim", "vf", vf.Name(), "err", err)
		}
	}
	m.cur.Store(nil)
	m.d.log.Info("netvsc: VF released", "vf", vf.Name(), "reason", reason)
	*w = vfWork{refused: w.refused, lastErr: w.lastErr, parked: w.parked}
}
