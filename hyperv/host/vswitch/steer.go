package vswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// Steering errors.
var (
	ErrSteered     = errors.New("vswitch: address already steered")
	ErrPortInUse   = errors.New("vswitch: port already belongs to a steering")
	ErrNotAttached = errors.New("vswitch: port not attached to this switch")
)

// SteeringStats are a steering's counters. Synthetic and VF count the
// frames the switch handed to each member port (floods included);
// SteeredVF, SYNs and Fallbacks count unicast decisions for the address.
type SteeringStats struct {
	Synthetic, VF uint64 // frames delivered to the synthetic / the VF port
	SteeredVF     uint64 // unicast frames for the address sent to the VF
	SYNs          uint64 // TCP SYN segments kept on the synthetic port (SYNToSynthetic)
	Fallbacks     uint64 // unicast for the address sent synthetic while the path is VF but the VF port is unusable
	Switches      uint64 // data-path changes (SetPath calls that changed it)
}

// Steering binds one MAC address to a synthetic NIC's port and, optionally,
// a VF port: the two ends of one guest NIC in SR-IOV mode, which share the
// address on the switch as on Hyper-V/Azure (spec/vf-modes.md §1.8, A.9;
// spec/openvmm-notes.md §2.2, where the host moves the MAC filter between
// the synthetic path and the guest VF).
//
// Forwarding rules for the address, whatever the learning table says:
//   - unicast goes to the VF port while the path is VF (SetPath(true)), a
//     VF port is bound, attached, up and a member of the frame's VLAN;
//     otherwise to the synthetic port;
//   - with SYNToSynthetic, TCP segments with SYN set go to the synthetic
//     port even while the path is VF (Azure delivers the SYN and SYN|ACK
//     of a connection on the synthetic channel, §1.8);
//   - broadcast, multicast and unknown unicast flooded by the switch reach
//     the synthetic port only, never the VF port;
//   - frames from either member enter the switch normally, but are never
//     delivered back to the other member (hairpin / no reflection), and the
//     address is not learned from them (it would flap between the two).
//
// Concurrency: the path, the VF binding and the SYN knob are atomics read
// by the forwarding path without locks. SetPath(false), SetVFPort and
// Close wait until no Input call still holds a decision to use the old VF
// port, so when they return no further unicast is delivered to it; they
// must therefore not be called from inside a Port's Deliver.
type Steering struct {
	sw    *Switch
	mac   MAC
	key   uint64
	synth *SwitchPort

	vf     atomic.Pointer[SwitchPort] // bound VF port; nil: none
	toVF   atomic.Bool                // host data path is the VF
	syn    atomic.Bool                // SYNToSynthetic
	users  atomic.Int64               // Input calls holding a VF decision
	closed atomic.Bool

	synthFrames, vfFrames, steered, syns, fallbacks, switches atomic.Uint64
}

// membership records which steering a port belongs to and in which role.
// It is immutable; SwitchPort.member points at it.
type membership struct {
	st *Steering
	vf bool
}

// Steer makes synth the synthetic port of mac. The path starts synthetic
// with no VF port bound.
func (s *Switch) Steer(mac MAC, synth *SwitchPort) (*Steering, error) {
	if mac.IsMulticast() || mac.IsZero() {
		return nil, fmt.Errorf("steer %s: %w", mac, errBadSteerMAC)
	}
	if synth == nil || synth.sw != s || synth.slot.Load() < 0 {
		return nil, fmt.Errorf("steer %s: %w", mac, ErrNotAttached)
	}
	st := &Steering{sw: s, mac: mac, key: fdbKey(mac[:], 0), synth: synth}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.steer.Load()
	if _, ok := old[st.key]; ok {
		return nil, fmt.Errorf("steer %s: %w", mac, ErrSteered)
	}
	if !synth.member.CompareAndSwap(nil, &membership{st: st}) {
		return nil, fmt.Errorf("steer %s: synthetic port %s: %w", mac, synth.name, ErrPortInUse)
	}
	m := make(map[uint64]*Steering, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[st.key] = st
	s.steer.Store(&m)
	return st, nil
}

var errBadSteerMAC = errors.New("vswitch: steered address must be unicast and non-zero")

// MAC returns the steered address.
func (st *Steering) MAC() MAC { return st.mac }

// SyntheticPort returns the synthetic NIC's port.
func (st *Steering) SyntheticPort() *SwitchPort { return st.synth }

// VFPort returns the bound VF port, or nil.
func (st *Steering) VFPort() *SwitchPort { return st.vf.Load() }

// SetVFPort binds p (attached to the same switch) as the VF port, or
// unbinds the current one if p is nil. Replacing or unbinding a port waits
// until no frame is still on its way to the old one. Give p the synthetic
// port's VLAN mode: a frame on a VLAN the VF port is not a member of stays
// on the synthetic port (counted as a fallback). Detaching p unbinds it.
func (st *Steering) SetVFPort(p *SwitchPort) error {
	if st.closed.Load() {
		return fmt.Errorf("steer %s: %w", st.mac, ErrClosed)
	}
	return st.setVF(p)
}

func (st *Steering) setVF(p *SwitchPort) error {
	if p != nil {
		if p.sw != st.sw || p.slot.Load() < 0 {
			return fmt.Errorf("steer %s: VF port: %w", st.mac, ErrNotAttached)
		}
		if m := p.member.Load(); m != nil && m.st == st && m.vf {
			return nil // already bound
		}
		if !p.member.CompareAndSwap(nil, &membership{st: st, vf: true}) {
			return fmt.Errorf("steer %s: VF port %s: %w", st.mac, p.name, ErrPortInUse)
		}
		// Frames the VF sent before it was bound may have taught the
		// table its address; the steering decides from now on.
		p.sw.fdb.flush(p, false)
	}
	old := st.vf.Swap(p)
	if old != nil && old != p {
		st.quiesce()
		old.member.Store(nil)
	}
	return nil
}

// SetPath sets the host's data path for the address: true steers unicast
// to the VF port (when usable), false back to the synthetic port. Switching
// back waits until no frame is still on its way to the VF. It reports
// whether the path changed.
func (st *Steering) SetPath(vf bool) bool {
	if vf && st.closed.Load() {
		return false
	}
	if st.toVF.Swap(vf) == vf {
		return false
	}
	st.switches.Add(1)
	if !vf {
		st.quiesce()
	}
	return true
}

// Path reports whether the host data path is the VF.
func (st *Steering) Path() bool { return st.toVF.Load() }

// Active reports whether unicast for the address goes to the VF now: the
// path is VF and the bound VF port is attached and up.
func (st *Steering) Active() bool {
	return st.toVF.Load() && usableVF(st.vf.Load())
}

// SetSYNToSynthetic keeps TCP SYN segments for the address on the
// synthetic port while the path is VF (Azure behaviour, off by default).
func (st *Steering) SetSYNToSynthetic(on bool) { st.syn.Store(on) }

// Stats returns a snapshot of the counters.
func (st *Steering) Stats() SteeringStats {
	return SteeringStats{
		Synthetic: st.synthFrames.Load(), VF: st.vfFrames.Load(),
		SteeredVF: st.steered.Load(), SYNs: st.syns.Load(),
		Fallbacks: st.fallbacks.Load(), Switches: st.switches.Load(),
	}
}

// Close removes the steering: the path goes synthetic, the VF port is
// unbound and the address is learned normally again.
func (st *Steering) Close() {
	if st.closed.Swap(true) {
		return
	}
	if st.toVF.Swap(false) {
		st.switches.Add(1)
		st.quiesce()
	}
	_ = st.setVF(nil)
	s := st.sw
	s.mu.Lock()
	old := *s.steer.Load()
	m := make(map[uint64]*Steering, len(old))
	for k, v := range old {
		if v != st {
			m[k] = v
		}
	}
	s.steer.Store(&m)
	s.mu.Unlock()
	st.synth.member.Store(nil)
}

// quiesce waits until no Input call holds a VF decision of st. Decisions
// are short (one batch), so yielding is enough.
func (st *Steering) quiesce() {
	for st.users.Load() != 0 {
		runtime.Gosched()
	}
}

func usableVF(p *SwitchPort) bool {
	return p != nil && p.slot.Load() >= 0 && p.up.Load()
}

// steering returns the steering of the unicast destination mac, if any.
func (s *Switch) steering(mac []byte) *Steering {
	m := *s.steer.Load()
	if len(m) == 0 {
		return nil
	}
	return m[fdbKey(mac, 0)]
}

// steerTarget picks the member port for a unicast frame to st's address
// on VLAN vid; nil if neither member is a member of vid. It registers w as
// a user of st when it picks the VF.
func (s *Switch) steerTarget(w *work, st *Steering, data []byte, vid uint16) *SwitchPort {
	if st.toVF.Load() {
		vf := st.vf.Load()
		switch {
		case !usableVF(vf) || !vf.vlan.Load().member(vid):
			st.fallbacks.Add(1)
		case st.syn.Load() && isTCPSYN(data):
			st.syns.Add(1)
		case w.hold(st) && st.vf.Load() == vf:
			st.steered.Add(1)
			return vf
		default: // switched back or rebound meanwhile
			st.fallbacks.Add(1)
		}
	}
	if st.synth.vlan.Load().member(vid) {
		return st.synth
	}
	return nil
}

// hold registers w as a user of st (once per Input call) and re-checks the
// path: a SetPath(false) that ran before the registration is seen here,
// one that runs after it waits for release.
func (w *work) hold(st *Steering) bool {
	for _, h := range w.held {
		if h == st {
			return st.toVF.Load()
		}
	}
	st.users.Add(1)
	w.held = append(w.held, st)
	return st.toVF.Load()
}

// release ends w's VF decisions; the frames have been delivered.
func (w *work) release() {
	for i, st := range w.held {
		st.users.Add(-1)
		w.held[i] = nil
	}
	w.held = w.held[:0]
}

// isTCPSYN reports whether an untagged Ethernet frame (the switch keeps
// tags in Meta) carries a TCP segment with SYN set: IPv4 (first fragment)
// or IPv6 whose next header is TCP (extension headers are not walked).
func isTCPSYN(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	var tcp []byte
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[14:]
		if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 6 || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return false
		}
		ihl := int(ip[0]&0xf) * 4
		if ihl < 20 || len(ip) < ihl+14 {
			return false
		}
		tcp = ip[ihl:]
	case 0x86dd:
		ip := f[14:]
		if len(ip) < 40+14 || ip[0]>>4 != 6 || ip[6] != 6 {
			return false
		}
		tcp = ip[40:]
	default:
		return false
	}
	return tcp[13]&0x02 != 0
}
