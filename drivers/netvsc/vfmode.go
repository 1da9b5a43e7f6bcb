package netvsc

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
)

// VFMode selects how hn uses the SR-IOV VF paired with it
// (spec/vf-modes.md §2, §3).
type VFMode uint8

const (
	// VFTransparent (the zero value, FreeBSD's default since 2019): hn
	// claims the VF, takes over its receive path, sends through it and
	// passes its own configuration on; users see only hn (§3).
	VFTransparent VFMode = iota
	// VFNonTransparent: the VF stays a visible interface; while it is up,
	// the host's data path is the VF, hn forces its packet filter
	// promiscuous, relabels what still arrives on the synthetic path as
	// the VF's and reports its own link down, so a failover aggregate over
	// hn and the VF moves to the VF (§2).
	VFNonTransparent
)

func (m VFMode) String() string {
	switch m {
	case VFTransparent:
		return "transparent"
	case VFNonTransparent:
		return "non-transparent"
	}
	return fmt.Sprintf("vfmode(%d)", uint8(m))
}

// Attach-wait bounds (FreeBSD hw.hn.vf_xpnt_attwait, default 2 s, and
// HN_XPNT_VF_ATTWAIT_MIN = 2 s, §5, §6): shorter settings are raised to the
// minimum, as hn_sysinit does.
const (
	DefaultVFAttachWait = 2 * time.Second
	MinVFAttachWait     = 2 * time.Second
)

// Retry intervals of the VF worker (on Config.Clock): how often a VF that
// has not reported ready is asked again, and how soon a failed data-path
// switch is retried (FreeBSD V2026 re-queues after hz, 1 s).
const (
	vfReadyPoll = 100 * time.Millisecond
	vfRetry     = time.Second
)

// Sentinel errors of the VF plumbing (wrapped with context).
var (
	// ErrVFAssociation: the host's VF association changed or was withdrawn
	// while hn was switching to the VF.
	ErrVFAssociation = errors.New("netvsc: VF association changed")
	// ErrVFRefused: a candidate VF was not paired (not this hn's, or a
	// second one).
	ErrVFRefused = errors.New("netvsc: VF refused")
)

// VFState is where the VF plumbing of one hn stands.
type VFState string

// VF states, as VFStatus reports them.
const (
	VFNone          VFState = "none"           // no VF paired
	VFWaiting       VFState = "waiting"        // transparent: attach wait running
	VFNotReady      VFState = "not-ready"      // the VF has not reported ready
	VFNoAssociation VFState = "no-association" // the host has not said "allocated" (or names another serial)
	VFReady         VFState = "ready"          // transparent: adopted; hn is down or not switched yet
	VFAttached      VFState = "attached"       // non-transparent: paired, VF not up
	VFActive        VFState = "active"         // the host's data path is the VF
)

// VFStatus is the state of hn's VF plumbing (FreeBSD dev.hn.N.vf,
// vf_xpnt_enabled, rxvf, vf_xpnt_accbpf; hw.hn.vf_xpnt_attwait).
type VFStatus struct {
	Mode  VFMode
	State VFState
	// VF is the paired VF's name ("" if none); Serial its vPCI serial
	// when it has one.
	VF        string
	Serial    uint32
	HasSerial bool
	// Ready: transparent hn adopted the VF's limits (capabilities, TSO,
	// MTU; link and media follow the VF).
	Ready bool
	// Enabled: transmit and the host's data path are on the VF
	// (transparent vf_xpnt_enabled; non-transparent: the VF is active).
	Enabled bool
	// Association is the host's last VF association; its Generation
	// counts association messages.
	Association VFAssociation
	// DataPath is the data path the host was last told to use.
	DataPath DataPath
	// TxTarget is where hn's transmit goes: "synthetic" or the VF's name.
	TxTarget string
	// RxVF names the VF that synthetic receive is relabelled to
	// (non-transparent, FreeBSD rxvf), "" if none.
	RxVF string
	// AttachWait and CaptureAfter are the current tunables.
	AttachWait   time.Duration
	CaptureAfter bool
	// Refused counts VF candidates that were not paired because hn already
	// had one (one VF per hn).
	Refused uint64
	// LastError is the last failure of the VF plumbing ("" if none).
	LastError string
}

// vfCounters are the per-path counters (Linux vf_rx_*/vf_tx_*): atomics,
// written on the data path, kept across synthetic re-attaches.
type vfCounters struct {
	txPackets, txBytes, txBusy, txFallback atomic.Uint64
	rxPackets, rxBytes                     atomic.Uint64
	synthRxWhileVF, rxToVF                 atomic.Uint64
}

// vfMgr is the VF plumbing of one Device: the pairing, the worker, and
// the data-path switches.
//
// Ownership: tx, rxvf, cur and the flags below them are atomics read by
// the data path and the registry callback without a lock, and written
// under Device.cfgMu (tx and rxvf may also be cleared by the callback when
// the VF departs: clearing is always safe). mu guards pending and status.
// w belongs to whoever holds Device.cfgMu: the worker goroutine, or hn's
// Ioctl (ifnet serializes hn's ioctls; cfgMu serializes them with the
// worker). Lock order: hn's ifnet ioctl lock, Device.cfgMu, the VF's ifnet
// ioctl lock (through the claim), mu.
type vfMgr struct {
	d *Device

	tx           atomic.Pointer[ifnet.Interface] // transmit target; nil: synthetic
	rxvf         atomic.Pointer[ifnet.Interface] // non-transparent: synthetic receive relabelled as this VF's
	cur          atomic.Pointer[ifnet.Interface] // the paired VF, for the registry callback
	linkFromVF   atomic.Bool                     // transparent ready: hn's link and media follow the VF
	linkHeldDown atomic.Bool                     // non-transparent active: hn reports link down
	synthLink    atomic.Bool                     // the link state the host last reported
	captureAfter atomic.Bool
	attachWait   atomic.Int64  // time.Duration
	mode         atomic.Uint32 // VFMode; written under the device's cfgMu (SetVFMode)
	hashOff      atomic.Uint32 // 1<<packet.HashType: hash types not delivered on synthetic receive (vfrss.go)
	st           vfCounters

	kick     chan struct{} // capacity 1: wakes the worker
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	sub      *ifnet.Subscription
	started  bool // set before the worker starts, read by stopWorker (both under the device's attach/Close order)

	mu      sync.Mutex
	pending []*ifnet.Interface // candidates announced, for the worker
	status  VFStatus

	w vfWork // guarded by Device.cfgMu
}

// vfWork is the worker-side state of the paired VF (guarded by
// Device.cfgMu).
type vfWork struct {
	vf        *ifnet.Interface
	serial    uint32
	hasSerial bool
	claim     *ifnet.Claim         // transparent
	ov        *ifnet.InputOverride // transparent
	readyAt   time.Time            // end of the attach wait
	phase     VFState              // transparent, before ready: what adoption waits for
	ready     bool
	enabled   bool // transparent: transmit and data path on the VF
	ntActive  bool // non-transparent: data path on the VF
	activeGen uint64

	saved    ifnet.CapState  // hn's capability state before adoption
	savedTSO ifnet.TSOLimits // hn's TSO limits before adoption
	inter    ifnet.Cap       // hn caps ∩ VF caps while ready

	rssOrig *rndis.RSSParameters // the synthetic RSS parameters before fixup
	rssSyn  *synth               // the synth rssOrig belongs to

	// settingMAC is the address an hn SetMAC gave the VF while hn's own
	// interface has yet to commit it (ifnet commits after the driver
	// returns, outside cfgMu): the pair is not broken meanwhile.
	settingMAC net.HardwareAddr

	parked  []*ifnet.Interface // candidates whose serial the host has not associated
	refused uint64
	lastErr string
}

func (m *vfMgr) init(d *Device) {
	m.d = d
	wait := d.cfg.VFAttachWait
	if wait <= 0 {
		wait = DefaultVFAttachWait
	}
	m.attachWait.Store(int64(max(wait, MinVFAttachWait)))
	m.mode.Store(uint32(d.cfg.VFMode))
	m.kick = make(chan struct{}, 1)
	m.stop = make(chan struct{})
	m.done = make(chan struct{})
	m.status = VFStatus{Mode: d.cfg.VFMode, State: VFNone, TxTarget: "synthetic", AttachWait: wait}
	if d.cfg.VFCaptureAfter {
		m.captureAfter.Store(true)
	}
}

// VFStatus returns the state of the device's VF plumbing.
func (d *Device) VFStatus() VFStatus {
	m := &d.vfm
	m.mu.Lock()
	st := m.status
	m.mu.Unlock()
	st.Mode = m.vfMode()
	st.Association = d.VFAssociation()
	st.DataPath = d.DataPath()
	st.TxTarget = "synthetic"
	if vf := m.tx.Load(); vf != nil {
		st.TxTarget = vf.Name()
	}
	st.RxVF = ""
	if vf := m.rxvf.Load(); vf != nil {
		st.RxVF = vf.Name()
	}
	st.AttachWait = time.Duration(m.attachWait.Load())
	st.CaptureAfter = m.captureAfter.Load()
	return st
}

// SetVFAttachWait changes the attach wait for VFs that attach from now on
// (FreeBSD's hw.hn.vf_xpnt_attwait is writable at run time). Values below
// MinVFAttachWait are raised to it; the value in effect is returned.
func (d *Device) SetVFAttachWait(w time.Duration) time.Duration {
	w = max(w, MinVFAttachWait)
	d.vfm.attachWait.Store(int64(w))
	return w
}

func (m *vfMgr) vfMode() VFMode { return VFMode(m.mode.Load()) }

// SetVFMode switches how the device uses its VF at run time (FreeBSD has
// it as a boot tunable only, hw.hn.vf_transparent). A paired VF is handed
// back whole first (everything undone as on its detach), then paired
// again in the new mode; the attach wait starts over.
func (d *Device) SetVFMode(mode VFMode) error {
	if mode > VFNonTransparent {
		return fmt.Errorf("netvsc: %s: unknown VF mode %d", d.name, mode)
	}
	m := &d.vfm
	d.cfgMu.Lock()
	if m.vfMode() == mode {
		d.cfgMu.Unlock()
		return nil
	}
	vf := m.w.vf
	if vf != nil {
		m.release("VF mode changed")
	}
	m.mode.Store(uint32(mode))
	m.d.log.Info("netvsc: VF mode changed", "mode", mode.String())
	if vf != nil && !vf.Detached() {
		m.mu.Lock()
		m.pending = append(m.pending, vf)
		m.mu.Unlock()
	}
	m.publishStatus()
	d.cfgMu.Unlock()
	m.wake()
	return nil
}

// SetVFCaptureAfter chooses whether a capture on hn sees a packet sent
// through the VF before the VF takes it (false, the default) or only once
// the VF accepted it (true; FreeBSD's dev.hn.N.vf_xpnt_accbpf). The
// synthetic path is always shown before sending.
func (d *Device) SetVFCaptureAfter(after bool) {
	d.vfm.captureAfter.Store(after)
	if ifp := d.iface(); ifp != nil {
		ifp.SetTxObservedByDriver(after)
	}
}

// publishStatus refreshes the status snapshot (cfgMu held).
func (m *vfMgr) publishStatus() {
	w := &m.w
	st := VFStatus{State: VFNone, Ready: w.ready, Refused: w.refused, LastError: w.lastErr}
	if w.vf != nil {
		st.VF, st.Serial, st.HasSerial = w.vf.Name(), w.serial, w.hasSerial
		st.State = m.stateLocked()
	}
	st.Enabled = w.enabled || w.ntActive
	m.mu.Lock()
	m.status = st
	m.mu.Unlock()
}

func (m *vfMgr) stateLocked() VFState {
	w := &m.w
	switch {
	case w.enabled || w.ntActive:
		return VFActive
	case m.vfMode() == VFNonTransparent:
		return VFAttached
	case w.ready:
		return VFReady
	case w.phase != "":
		return w.phase
	}
	return VFWaiting
}

// fail records and logs a failure of the VF plumbing (cfgMu held). Both
// names are taken from live interfaces, never from a cleared pointer
// (FreeBSD's nil-VF log line, §3.3).
func (m *vfMgr) fail(msg string, vf *ifnet.Interface, err error) {
	name := ""
	if vf != nil {
		name = vf.Name()
	}
	m.w.lastErr = fmt.Sprintf("%s %s: %v", msg, name, err)
	m.d.log.Warn("netvsc: "+msg, "vf", name, "err", err)
}
