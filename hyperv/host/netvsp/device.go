package netvsp

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
)

// Defaults and host constants.
const (
	DefaultMTU       = 1514           // L2 frame size without FCS
	DefaultLinkSpeed = 10_000_000_000 // bit/s
	// ControlSlots receive slots are kept for control messages
	// (OpenVMM reserves 16).
	ControlSlots = 16
	// DefaultMaxRangesPerPacket bounds the frames in one transfer-page
	// packet (Linux NVSP_MAX_PACKETS_PER_RECEIVE is 375).
	DefaultMaxRangesPerPacket = 64
	// MaxGather bounds the bytes one guest SEND_RNDIS_PKT may make the
	// host read (send section plus GPA ranges).
	MaxGather = 256 << 10
	// slotHeadroom is the RNDIS header room of a receive slot and
	// slotFooter the tail OpenVMM adds (256 + MTU + 36).
	slotHeadroom = 256
	slotFooter   = 36
	// Transaction ids of host-initiated requests (OpenVMM).
	transVFAssociation = 0x8000000000000000
	transSwitchPath    = 0x8000000000000001
)

// ErrNoSwitch: the device has no switch port (Config.Switch unset or the
// MAC not a unicast address), so it has nothing to steer.
var ErrNoSwitch = errors.New("netvsp: no switch steering for the NIC")

// Config configures a Device.
type Config struct {
	// Instance is the instance GUID; zero derives one from the MAC.
	Instance tlfs.GUID
	// MAC is the NIC's permanent address.
	MAC vswitch.MAC
	// Versions are the NVSP versions the host accepts (exact match); nil:
	// all six. An old host is e.g. {nvsp.Version2}.
	Versions []nvsp.Version
	// MaxNDIS is the highest NDIS version the host supports; a guest
	// announcing more is recorded and counted as an error (nil: 6.30).
	MaxNDIS nvsp.NDISVersion
	// LinkSpeed in bit/s (default DefaultLinkSpeed).
	LinkSpeed uint64
	// LinkDown starts the link down.
	LinkDown bool
	// MaxQueues is what RSS capabilities report and bounds SUBCHANNEL
	// requests: at most MaxQueues - 1 subchannels (default 1: none).
	MaxQueues int
	// MaxRangesPerPacket bounds frames per transfer-page packet.
	MaxRangesPerPacket int
	// Switch, if set, gets a port for the NIC with VLAN mode VLAN.
	Switch *vswitch.Switch
	VLAN   vswitch.VLANConfig
	// Pool provides transmitted frames (default: a pool sized for 9 KiB
	// frames); LargePool LSO frames bigger than Pool's buffers (default
	// 64 KiB buffers).
	Pool, LargePool *packet.Pool
	// PassOffload leaves checksum/LSO work to whatever is behind the
	// switch: transmit requests travel in packet.Meta and receive
	// checksum results come from it (default: emulated, see offload.go).
	PassOffload bool
	// SYNToSynthetic keeps TCP segments with SYN set (the SYN of an
	// inbound connection, the SYN|ACK answering an outbound one) on the
	// synthetic NIC while the data path is the VF, as Azure does
	// (spec/vf-modes.md §1.8: hn "only receives broadcast, multicast and
	// TCP SYN / SYN|ACK" then). Default off: every unicast frame follows
	// the data path.
	SYNToSynthetic bool
	// FriendlyName answers OID_GEN_FRIENDLY_NAME (default "Network Adapter").
	FriendlyName string
	// BeforeSwitchPath, if set, runs on the channel's goroutine when a
	// SWITCH_DATA_PATH arrives, before the host applies and completes it:
	// a slow host (Hyper-V programs the vSwitch first), or a test holding
	// the completion to see what the guest does meanwhile.
	BeforeSwitchPath func(toVF bool)
	Clock            kernel.Clock
	Logger           *slog.Logger
}

// Stats are a device's counters.
type Stats struct {
	TxFrames, TxBytes uint64 // guest to switch
	RxFrames, RxBytes uint64 // switch to guest
	RxPackets         uint64 // transfer-page packets carrying frames
	RxDropped         uint64 // frames not delivered (not ready, filtered out, no slot, ring full)
	RxFiltered        uint64 // of those, refused by the packet filter
	TxDropped         uint64 // frames from the guest not switched
	Control           uint64 // RNDIS control messages handled
	Errors            uint64 // invalid guest input
	Opens, Closes     uint64

	// Per-path delivery (vswitch.Steering of the NIC's MAC): frames the
	// switch handed to the synthetic NIC and to the VF port, unicast
	// kept synthetic because a SYN (Config.SYNToSynthetic) or because the
	// VF port was unusable while the path was VF, and host data-path
	// switches. Zero without a switch.
	PathSynthetic, PathVF uint64
	PathSYNs              uint64
	PathFallbacks         uint64
	PathSwitches          uint64
	PathRefused           uint64 // guest switches to the VF while none was advertised (ignored)
}

type counters struct {
	txFrames, txBytes, rxFrames, rxBytes, rxPackets, rxDropped, rxFiltered, txDropped atomic.Uint64
	control, errs, opens, closes, pathRefused                                         atomic.Uint64
}

// Device is the synthetic NIC; it implements host.Device and
// vswitch.Port.
type Device struct {
	cfg    Config
	log    *slog.Logger
	port   *vswitch.SwitchPort
	pool   *packet.Pool
	large  *packet.Pool
	stats  counters
	off    offloadCounters
	cur    atomic.Pointer[conn] // the open primary channel
	linkUp atomic.Bool
	// steer moves unicast for the MAC between the NIC's port and the VF's
	// port (nil without a switch). Its path changes happen under pathMu.
	steer *vswitch.Steering
	// pathMu serializes data-path decisions (guest SWITCH_DATA_PATH, host
	// SetVF, channel close) with the steering change they imply; it is
	// never taken by the receive path. Lock order: pathMu, conn.mu, vfMu.
	pathMu sync.Mutex
	vfMu   sync.Mutex // guards vf
	vf     vfConfig
}

type vfConfig struct {
	present bool
	serial  uint32
}

// New returns a device; with Config.Switch set it is attached to the switch.
func New(cfg Config) (*Device, error) {
	if cfg.LinkSpeed == 0 {
		cfg.LinkSpeed = DefaultLinkSpeed
	}
	if cfg.MaxNDIS == 0 {
		cfg.MaxNDIS = nvsp.NDIS630
	}
	if cfg.MaxQueues <= 0 {
		cfg.MaxQueues = 1
	}
	if cfg.MaxRangesPerPacket <= 0 {
		cfg.MaxRangesPerPacket = DefaultMaxRangesPerPacket
	}
	if cfg.FriendlyName == "" {
		cfg.FriendlyName = "Network Adapter"
	}
	if cfg.Versions == nil {
		cfg.Versions = []nvsp.Version{nvsp.Version1, nvsp.Version2, nvsp.Version4, nvsp.Version5, nvsp.Version6, nvsp.Version61}
	}
	if cfg.Instance.IsZero() {
		cfg.Instance = tlfs.GUIDNetwork
		copy(cfg.Instance[10:16], cfg.MAC[:])
		cfg.Instance[0] ^= 0x5a
	}
	d := &Device{cfg: cfg, log: kernel.LoggerOr(cfg.Logger), pool: cfg.Pool, large: cfg.LargePool}
	if d.pool == nil {
		d.pool = packet.MustPool(packet.PoolConfig{Size: 9216 + 4})
	}
	if d.large == nil {
		d.large = packet.MustPool(packet.PoolConfig{Size: 65536 + 256})
	}
	d.linkUp.Store(!cfg.LinkDown)
	if cfg.Switch != nil {
		p, err := cfg.Switch.Attach("netvsp-"+cfg.MAC.String(), d, cfg.VLAN)
		if err != nil {
			return nil, err
		}
		p.SetLink(!cfg.LinkDown)
		d.port = p
		if !cfg.MAC.IsZero() && !cfg.MAC.IsMulticast() {
			st, err := cfg.Switch.Steer(cfg.MAC, p)
			if err != nil {
				p.Detach()
				return nil, err
			}
			st.SetSYNToSynthetic(cfg.SYNToSynthetic)
			d.steer = st
		}
	}
	return d, nil
}

// Steering returns the switch's steering of the NIC's MAC (nil without a
// switch), for its counters and state.
func (d *Device) Steering() *vswitch.Steering { return d.steer }

// SetVFPort names the switch port of the VF that shares the NIC's MAC
// (for instance a drivers/mlx/mlxdev device attached to the same switch);
// nil unbinds it. While the guest's data path is the VF and SetVF says a
// VF is present, unicast for the MAC goes to that port.
func (d *Device) SetVFPort(p *vswitch.SwitchPort) error {
	if d.steer == nil {
		return ErrNoSwitch
	}
	d.pathMu.Lock()
	defer d.pathMu.Unlock()
	return d.steer.SetVFPort(p)
}

// setPath applies a data-path decision to the switch; pathMu held, conn.mu
// not held (switching back waits for frames in flight, whose delivery to
// the synthetic NIC takes conn.mu).
func (d *Device) setPath(vf bool) {
	if d.steer != nil {
		d.steer.SetPath(vf)
	}
}

// SwitchPort returns the NIC's switch port (nil without a switch).
func (d *Device) SwitchPort() *vswitch.SwitchPort { return d.port }

// MAC returns the permanent address.
func (d *Device) MAC() vswitch.MAC { return d.cfg.MAC }

// Offer implements host.Device.
func (d *Device) Offer() host.Offer {
	return host.Offer{Class: tlfs.GUIDNetwork, Instance: d.cfg.Instance}
}

// Open implements host.Device. A subchannel joins the open primary
// (subchan.go); a second concurrent primary is refused.
func (d *Device) Open(ch *host.Channel) (host.Handler, error) {
	d.stats.opens.Add(1)
	c := newConn(d, ch)
	if ch.SubchannelIndex() != 0 {
		if err := d.openSub(c); err != nil {
			d.stats.errs.Add(1)
			return nil, err
		}
		return c, nil
	}
	if !d.cur.CompareAndSwap(nil, c) {
		d.stats.errs.Add(1)
		return nil, host.ErrDevice
	}
	return c, nil
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() Stats {
	s := &d.stats
	st := Stats{
		TxFrames: s.txFrames.Load(), TxBytes: s.txBytes.Load(),
		RxFrames: s.rxFrames.Load(), RxBytes: s.rxBytes.Load(), RxPackets: s.rxPackets.Load(),
		RxDropped: s.rxDropped.Load(), RxFiltered: s.rxFiltered.Load(), TxDropped: s.txDropped.Load(),
		Control: s.control.Load(), Errors: s.errs.Load(), Opens: s.opens.Load(), Closes: s.closes.Load(),
		PathRefused: s.pathRefused.Load(),
	}
	if d.steer != nil {
		ps := d.steer.Stats()
		st.PathSynthetic, st.PathVF, st.PathSYNs = ps.Synthetic, ps.VF, ps.SYNs
		st.PathFallbacks, st.PathSwitches = ps.Fallbacks, ps.Switches
	}
	return st
}

// State returns a snapshot of what the guest negotiated on the open
// channel (the zero State if none is open).
func (d *Device) State() State {
	c := d.cur.Load()
	if c == nil {
		return State{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st.snapshot()
	if c.recv != nil {
		st.RecvInFlight = c.slots.inFlight()
	}
	return st
}

// SetLink changes the link state: the switch port follows, and a guest
// whose RNDIS is initialized gets MEDIA_CONNECT or MEDIA_DISCONNECT.
func (d *Device) SetLink(up bool) {
	if d.linkUp.Swap(up) == up {
		return
	}
	if d.port != nil {
		d.port.SetLink(up)
	}
	if c := d.cur.Load(); c != nil {
		c.indicateLink(up)
	}
}

// NetworkChange tells a guest whose RNDIS is initialized that its network
// changed (RNDIS NETWORK_CHANGE with type t): what Hyper-V sends after a
// live migration or a virtual-switch change, so the guest renews its
// address (spec/nvsp-rndis.md, status indications).
func (d *Device) NetworkChange(t rndis.NetworkChangeType) {
	if c := d.cur.Load(); c != nil {
		c.indicateNetworkChange(t)
	}
}

// LinkUp reports the link state.
func (d *Device) LinkUp() bool { return d.linkUp.Load() }

// SetVF says whether a VF with vPCI serial number serial is present. The
// guest gets SEND_VF_ASSOCIATION when it advertised SR-IOV at NVSP ≥ 4
// and RNDIS is initialized (OpenVMM). When the VF goes away (or is
// replaced by one with another serial), the host first moves the switch's
// data path back to the synthetic NIC, waiting for frames already on their
// way to the VF, and only then tells the guest: SWITCH_DATA_PATH
// (synthetic) if its path was the VF, then SEND_VF_ASSOCIATION with
// allocated 0 and the old serial (spec/openvmm-notes.md §2.3-2.4 C). When
// SetVF(false, ...) returns, no more unicast is delivered to the VF port,
// so the VF may be revoked.
func (d *Device) SetVF(present bool, serial uint32) {
	d.pathMu.Lock()
	defer d.pathMu.Unlock()
	d.vfMu.Lock()
	old := d.vf
	d.vf = vfConfig{present: present, serial: serial}
	d.vfMu.Unlock()
	if old.present == present && old.serial == serial {
		return
	}
	if old.present {
		d.setPath(false)
	}
	if c := d.cur.Load(); c != nil {
		c.vfChanged(old, d.vfConfig())
	}
}

func (d *Device) vfConfig() vfConfig {
	d.vfMu.Lock()
	defer d.vfMu.Unlock()
	return d.vf
}

// Deliver implements vswitch.Port: frames for the guest.
func (d *Device) Deliver(b *packet.Batch) {
	c := d.cur.Load()
	if c == nil {
		d.stats.rxDropped.Add(uint64(b.Len()))
		b.Free()
		return
	}
	c.deliver(b)
}

// transmit hands frames from the guest to the switch; it takes b's packets.
func (d *Device) transmit(b *packet.Batch) {
	n := b.Len()
	if n == 0 {
		return
	}
	d.stats.txFrames.Add(uint64(n))
	d.stats.txBytes.Add(uint64(b.Bytes()))
	if d.port == nil || !d.linkUp.Load() {
		d.stats.txDropped.Add(uint64(n))
		b.Free()
		return
	}
	d.port.Input(b)
}
