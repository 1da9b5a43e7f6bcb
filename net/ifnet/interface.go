package ifnet

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/net/packet"
)

// MaxNameLen is the longest interface name (IFNAMSIZ - 1).
const MaxNameLen = 15

// MTU bounds used when a Config leaves them zero.
const (
	DefaultMTU      = 1500
	DefaultMinMTU   = 72 // FreeBSD IF_MINMTU
	DefaultJumboMTU = 9000
	AbsoluteMaxMTU  = 65535
)

// Driver is what a NIC driver implements for its interface. Both methods may
// be called from any goroutine; Ioctl calls are serialized per interface.
type Driver interface {
	// Transmit sends packets from the front of b. It takes ownership of the
	// packets it accepts and removes them from b (b.Consume(n), or b.Clear()
	// if it took all); it frees them when the hardware is done. It returns how
	// many it took. Packets left in b still belong to the caller. A driver
	// that takes fewer than b.Len() packets (a full ring) should say why with
	// an error wrapping ErrBusy or ErrDown.
	Transmit(b *packet.Batch) (int, error)
	// Ioctl carries out a request. It returns nil to accept it (ifnet then
	// commits the state change, see each request type), an error wrapping
	// ErrNotSupported for a request it does not implement, or another error
	// wrapping an ifnet sentinel. It runs with no ifnet lock held except the
	// interface's ioctl serialization, so it may call the interface's
	// getters and driver-side setters and forward requests to other
	// interfaces (hn to its VF through a Claim).
	Ioctl(req Request) error
}

// Config is an interface's initial configuration.
type Config struct {
	// Name is unique within a registry, 1..MaxNameLen bytes, and never
	// changes.
	Name string
	// MAC is the 6-byte link-layer address.
	MAC net.HardwareAddr
	// MTU is the initial MTU (default DefaultMTU). MinMTU and MaxMTU bound
	// SetMTU (defaults: DefaultMinMTU; DefaultJumboMTU with CapJumboMTU,
	// else max(MTU, DefaultMTU)).
	MTU, MinMTU, MaxMTU int
	// Flags are the initial driver-owned flags (typically
	// FlagBroadcast|FlagMulticast); user flags start clear.
	Flags Flags
	// Capabilities the hardware supports and those enabled at start
	// (Enabled is used as given; zero enables nothing). The hardware-assist
	// flags start as DeriveHWAssist(Enabled).
	Capabilities, Enabled Cap
	// TSO limits, media state and RSS configuration as published by the
	// driver; they can change later through the driver-side setters.
	TSO   TSOLimits
	Media MediaState
	RSS   RSSConfig
	// Kind says what sort of interface this is (default KindEthernet);
	// hn pairs only with a plain Ethernet interface (spec/vf-modes.md §3).
	Kind Kind
	// BusSerial is the bus-level identity of the device behind the
	// interface, when it has one: for a VF on the Hyper-V vPCI bus, the
	// function's serial number (the value netvsc's VF association names).
	// HasBusSerial says whether BusSerial is meaningful.
	BusSerial    uint32
	HasBusSerial bool
}

// Kind is the sort of an interface.
type Kind uint8

// Interface kinds.
const (
	// KindEthernet is a NIC driven by its own hardware driver.
	KindEthernet Kind = iota
	// KindSynthetic is a Hyper-V synthetic NIC (hn).
	KindSynthetic
	// KindAggregate is a link aggregate or failover group (lagg, bond,
	// net_failover).
	KindAggregate
	// KindVLAN is an 802.1Q sub-interface.
	KindVLAN
	// KindLoopback is a loopback or software pair.
	KindLoopback
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindEthernet:
		return "ethernet"
	case KindSynthetic:
		return "synthetic"
	case KindAggregate:
		return "aggregate"
	case KindVLAN:
		return "vlan"
	case KindLoopback:
		return "loopback"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Interface is one network interface: its configuration and state, its
// driver, its input hook and its counters. Create it with New, let the
// driver finish setting it up, then Registry.Attach it.
//
// Methods are grouped by side. Stack side: getters, Ioctl, Claim, SetInput,
// OverrideInput, Transmit. Driver side (only the interface's own driver
// calls them): Input, SetRunning, SetLinkState, SetCapState, SetTSOLimits,
// SetMediaState, SetRSS, CountDrops, CountInErrors, CountOutErrors.
//
// Concurrency: name, drv and the MTU bounds are immutable. ioctlMu
// serializes ioctls and is held while the driver's Ioctl runs. mu guards the
// fields marked below and is the only lock that writes the atomic fields; it
// is never held across a call into a driver or a subscriber. The data path
// (Transmit, Input) takes no lock: it reads the atomics and the input chain
// pointer. Lock order: ioctlMu before mu before Registry.mu.
type Interface struct {
	name           string
	drv            Driver
	minMTU, maxMTU int
	kind           Kind
	busSerial      uint32
	hasBusSerial   bool

	// Lock-free readable state, written only with mu held.
	index      atomic.Uint32 // set at Attach; 0 before
	flags      atomic.Uint32 // Flags
	mtu        atomic.Int64
	capEnabled atomic.Uint32 // Cap
	hwassist   atomic.Uint32 // HWAssist
	link       atomic.Uint32 // LinkState
	detached   atomic.Bool
	input      atomic.Pointer[inputNode] // current input chain, never nil
	observer   atomic.Pointer[Observer]  // capture tap (observe.go), nil if none
	txByDriver atomic.Bool               // the driver shows transmitted batches (driverhooks.go)

	ioctlMu sync.Mutex

	mu         sync.Mutex
	mac        net.HardwareAddr // guarded by mu; replaced, never mutated
	caps       Cap              // guarded by mu
	tso        TSOLimits        // guarded by mu
	multi      []multiEntry     // guarded by mu
	media      MediaState       // guarded by mu
	rss        RSSConfig        // guarded by mu; Key replaced, never mutated
	claim      *Claim           // guarded by mu; the current owner, if any
	reg        *Registry        // guarded by mu; set while attached
	baseInput  InputFunc        // guarded by mu; the stack's input (nil: drop)
	overrides  []*InputOverride // guarded by mu; installed overrides, innermost last
	everAttach bool             // guarded by mu

	counters counters
}

type multiEntry struct {
	addr net.HardwareAddr
	refs int
}

// New creates an interface driven by drv. It is not visible to anyone until
// it is attached to a Registry.
func New(cfg Config, drv Driver) (*Interface, error) {
	if drv == nil {
		return nil, wrapf(ErrInvalid, cfg.Name, "nil driver")
	}
	if cfg.Name == "" || len(cfg.Name) > MaxNameLen {
		return nil, wrapf(ErrInvalid, "", "interface name %q must be 1..%d bytes", cfg.Name, MaxNameLen)
	}
	if err := checkUnicastMAC(cfg.MAC); err != nil {
		return nil, wrapf(ErrInvalid, cfg.Name, "%v", err)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MinMTU == 0 {
		cfg.MinMTU = DefaultMinMTU
	}
	if cfg.MaxMTU == 0 {
		cfg.MaxMTU = max(cfg.MTU, DefaultMTU)
		if cfg.Capabilities&CapJumboMTU != 0 {
			cfg.MaxMTU = max(cfg.MTU, DefaultJumboMTU)
		}
	}
	if cfg.MinMTU < 0 || cfg.MinMTU > cfg.MTU || cfg.MTU > cfg.MaxMTU || cfg.MaxMTU > AbsoluteMaxMTU {
		return nil, wrapf(ErrInvalid, cfg.Name, "MTU %d outside [%d, %d] (limit %d)", cfg.MTU, cfg.MinMTU, cfg.MaxMTU, AbsoluteMaxMTU)
	}
	if cfg.Enabled&^cfg.Capabilities != 0 {
		return nil, wrapf(ErrInvalid, cfg.Name, "enabled capabilities %v not supported", cfg.Enabled&^cfg.Capabilities)
	}
	if cfg.Kind > KindLoopback {
		return nil, wrapf(ErrInvalid, cfg.Name, "unknown interface kind %d", cfg.Kind)
	}
	if err := checkRSS(cfg.RSS); err != nil {
		return nil, wrapf(ErrInvalid, cfg.Name, "%v", err)
	}
	ifp := &Interface{
		name: cfg.Name, drv: drv, minMTU: cfg.MinMTU, maxMTU: cfg.MaxMTU,
		kind: cfg.Kind, busSerial: cfg.BusSerial, hasBusSerial: cfg.HasBusSerial,
		mac:   slices.Clone(cfg.MAC),
		caps:  cfg.Capabilities,
		tso:   cfg.TSO,
		media: cfg.Media,
		rss:   RSSConfig{Func: cfg.RSS.Func, Key: slices.Clone(cfg.RSS.Key), Types: cfg.RSS.Types},
	}
	ifp.flags.Store(uint32(cfg.Flags &^ UserFlags &^ FlagRunning))
	ifp.mtu.Store(int64(cfg.MTU))
	ifp.capEnabled.Store(uint32(cfg.Enabled))
	ifp.hwassist.Store(uint32(DeriveHWAssist(cfg.Enabled)))
	ifp.link.Store(uint32(LinkUnknown))
	ifp.input.Store(&inputNode{fn: dropInput})
	return ifp, nil
}

// Name returns the interface name.
func (ifp *Interface) Name() string { return ifp.name }

// Kind returns the interface's kind (immutable).
func (ifp *Interface) Kind() Kind { return ifp.kind }

// BusSerial returns the bus-level serial of the device behind the
// interface (the vPCI serial of a VF) and whether it has one (immutable).
func (ifp *Interface) BusSerial() (uint32, bool) { return ifp.busSerial, ifp.hasBusSerial }

// Index returns the interface index assigned at Attach (0 before). Indexes
// are never reused within a registry.
func (ifp *Interface) Index() uint32 { return ifp.index.Load() }

// String returns the name.
func (ifp *Interface) String() string { return ifp.name }

// Flags returns the current flags.
func (ifp *Interface) Flags() Flags { return Flags(ifp.flags.Load()) }

// MTU returns the current MTU.
func (ifp *Interface) MTU() int { return int(ifp.mtu.Load()) }

// MTURange returns the MTU bounds that SetMTU accepts.
func (ifp *Interface) MTURange() (minMTU, maxMTU int) { return ifp.minMTU, ifp.maxMTU }

// CapEnabled returns the enabled capabilities.
func (ifp *Interface) CapEnabled() Cap { return Cap(ifp.capEnabled.Load()) }

// HWAssist returns the hardware-assist flags the stack may use per packet.
func (ifp *Interface) HWAssist() HWAssist { return HWAssist(ifp.hwassist.Load()) }

// LinkState returns the link state.
func (ifp *Interface) LinkState() LinkState { return LinkState(ifp.link.Load()) }

// Detached reports whether the interface has been detached.
func (ifp *Interface) Detached() bool { return ifp.detached.Load() }

// MAC returns a copy of the link-layer address.
func (ifp *Interface) MAC() net.HardwareAddr {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	return slices.Clone(ifp.mac)
}

// Capabilities returns the supported capabilities.
func (ifp *Interface) Capabilities() Cap {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	return ifp.caps
}

// TSOLimits returns the TSO limits.
func (ifp *Interface) TSOLimits() TSOLimits {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	return ifp.tso
}

// Multicast returns a copy of the multicast address list in the order the
// addresses were added.
func (ifp *Interface) Multicast() []net.HardwareAddr {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	out := make([]net.HardwareAddr, len(ifp.multi))
	for i, m := range ifp.multi {
		out[i] = slices.Clone(m.addr)
	}
	return out
}

// Media returns the media state the driver published (no driver call; use
// a GetMedia request to ask the driver, e.g. hn forwarding to its VF).
func (ifp *Interface) Media() MediaState {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	return ifp.media
}

// RSS returns a copy of the published RSS configuration.
func (ifp *Interface) RSS() RSSConfig {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	return RSSConfig{Func: ifp.rss.Func, Key: slices.Clone(ifp.rss.Key), Types: ifp.rss.Types}
}

// ClaimedBy returns the owner name of the current claim, if any.
func (ifp *Interface) ClaimedBy() (owner string, claimed bool) {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if ifp.claim == nil {
		return "", false
	}
	return ifp.claim.owner, true
}

// setFlagsLocked stores new flags and announces a change. mu must be held.
func (ifp *Interface) setFlagsLocked(f Flags) {
	old := Flags(ifp.flags.Swap(uint32(f)))
	if old != f {
		ifp.postLocked(Event{Type: EventFlags, OldFlags: old, Flags: f})
	}
}

// SetRunning sets or clears FlagRunning (driver side): the driver has (or no
// longer has) the resources to move packets.
func (ifp *Interface) SetRunning(running bool) {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	f := ifp.Flags()
	if running {
		f |= FlagRunning
	} else {
		f &^= FlagRunning
	}
	ifp.setFlagsLocked(f)
}

// SetLinkState publishes the link state (driver side) and announces a
// change to registry subscribers.
func (ifp *Interface) SetLinkState(s LinkState) {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	old := LinkState(ifp.link.Swap(uint32(s)))
	if old != s {
		ifp.postLocked(Event{Type: EventLink, OldLink: old, Link: s})
	}
}

// SetHardwareAddr publishes a link-layer address the device changed by
// itself (driver side: a hypervisor set the VF's MAC, mlx NIC_VPORT_CHANGE)
// and announces it to registry subscribers as EventMAC, as a SetMAC ioctl
// does. A malformed address is refused with ErrInvalid.
func (ifp *Interface) SetHardwareAddr(mac net.HardwareAddr) error {
	if err := checkUnicastMAC(mac); err != nil {
		return wrapf(ErrInvalid, ifp.name, "SetHardwareAddr: %v", err)
	}
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if !bytes.Equal(ifp.mac, mac) {
		ifp.mac = slices.Clone(mac)
		ifp.postLocked(Event{Type: EventMAC, MAC: slices.Clone(mac)})
	}
	return nil
}

// CapState is a complete capability state, for SetCapState.
type CapState struct {
	Capabilities Cap
	Enabled      Cap
	HWAssist     HWAssist
}

// SetCapState replaces the supported and enabled capabilities and the
// hardware-assist flags at once (driver side; hn uses it when it adopts or
// gives back a VF's offloads). Enabled must be a subset of Capabilities.
func (ifp *Interface) SetCapState(cs CapState) error {
	if cs.Enabled&^cs.Capabilities != 0 {
		return wrapf(ErrInvalid, ifp.name, "enabled capabilities %v not supported", cs.Enabled&^cs.Capabilities)
	}
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	ifp.setCapsLocked(cs)
	return nil
}

func (ifp *Interface) setCapsLocked(cs CapState) {
	old := CapState{ifp.caps, ifp.CapEnabled(), ifp.HWAssist()}
	ifp.caps = cs.Capabilities
	ifp.capEnabled.Store(uint32(cs.Enabled))
	ifp.hwassist.Store(uint32(cs.HWAssist))
	if old != cs {
		ifp.postLocked(Event{Type: EventCaps, Caps: cs})
	}
}

// SetTSOLimits publishes the TSO limits (driver side).
func (ifp *Interface) SetTSOLimits(t TSOLimits) {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	ifp.tso = t
}

// SetMediaState publishes the media state (driver side).
func (ifp *Interface) SetMediaState(m MediaState) {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	ifp.media = m
}

// SetRSS publishes the RSS configuration (driver side).
func (ifp *Interface) SetRSS(c RSSConfig) error {
	if err := checkRSS(c); err != nil {
		return wrapf(ErrInvalid, ifp.name, "%v", err)
	}
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	ifp.rss = RSSConfig{Func: c.Func, Key: slices.Clone(c.Key), Types: c.Types}
	return nil
}

// postLocked queues an event for the registry's subscribers, if attached.
// mu must be held, which orders an interface's events after its attach and
// before its detach.
func (ifp *Interface) postLocked(ev Event) {
	if ifp.reg == nil {
		return
	}
	ev.Interface = ifp
	ev.Index = ifp.Index()
	ev.Name = ifp.name
	ifp.reg.enqueue(ev)
}

func checkUnicastMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return errorString("MAC address must be 6 bytes, got " + itoa(len(mac)))
	case mac[0]&1 != 0:
		return errorString("MAC address " + mac.String() + " is multicast")
	case bytes.Equal(mac, make([]byte, 6)):
		return errorString("MAC address is all zero")
	}
	return nil
}

func checkRSS(c RSSConfig) error {
	if len(c.Key) > MaxRSSKeyLen {
		return errorString("RSS key longer than " + itoa(MaxRSSKeyLen) + " bytes")
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func itoa(v int) string { return strconv.Itoa(v) }
