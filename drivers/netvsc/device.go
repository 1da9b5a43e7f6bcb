package netvsc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Device is one hn NIC: an ifnet interface over a synthetic attachment.
//
// Concurrency: cfgMu serializes reconfiguration (ioctls that re-attach or
// set the packet filter, and Close); it is never held while waiting for
// ifnet (Registry.Detach runs before it is taken). dataMu guards syn: the
// data path holds it shared for one Transmit; a re-attach or detach takes
// it exclusively to swap syn, so no Transmit uses a synth being torn
// down. ifpp is set once before the interface is attached and never
// changes (atomic: the receive goroutine may already run).
type Device struct {
	cfg   *Config
	log   *slog.Logger // rate-limited: the host can trigger these at will
	offer *vmbus.Offer
	name  string
	unit  int
	ifpp  atomic.Pointer[ifnet.Interface] // set once, before Registry.Attach

	cfgMu  sync.Mutex
	dataMu sync.RWMutex
	syn    *synth

	vfm    vfMgr     // VF pairing and modes (vfmode.go)
	netchg netChange // NETWORK_CHANGE's carrier cycle (netchange.go)
}

// attachDevice attaches the synthetic NIC and its interface. publish (if
// not nil) runs once the device is ready and before its interface is
// attached to the registry, so whoever lists devices (Driver.Devices)
// already has it when a registry subscriber or a lookup sees the
// interface; if the registry attach then fails, the caller withdraws it.
func attachDevice(ctx context.Context, cfg *Config, o *vmbus.Offer, name string, publish func(*Device)) (*Device, error) {
	d := &Device{cfg: cfg, offer: o, name: name,
		log: slog.New(kernel.RateLimit(cfg.Logger.Handler(), 20, time.Second, cfg.Clock)).With("if", name)}
	d.vfm.init(d)
	s, err := attachSynth(ctx, d, cfg.MTU)
	if err != nil {
		return nil, err
	}
	mtu := cfg.MTU
	if s.frameMTU > 0 {
		mtu = s.frameMTU
	}
	cs := d.capState(s)
	ifp, err := ifnet.New(ifnet.Config{
		Name: name, MAC: s.mac, MTU: mtu, MaxMTU: maxConfigMTU,
		Flags:        ifnet.FlagBroadcast | ifnet.FlagMulticast,
		Capabilities: cs.Capabilities, Enabled: cs.Enabled,
		TSO: s.off.tsoLimits(cfg.BounceSlots), Media: media(s.linkUp, s.speedBps), RSS: s.rssConfig(),
		Kind: ifnet.KindSynthetic,
	}, d)
	if err == nil {
		err = ifp.SetCapState(cs)
	}
	if err != nil {
		s.detach(ctx)
		return nil, fmt.Errorf("netvsc: %s: %w", name, err)
	}
	d.syn = s
	ifp.SetTxObservedByDriver(d.vfm.captureAfter.Load())
	d.ifpp.Store(ifp)
	d.publishLink(s.linkUp)
	if publish != nil {
		publish(d)
	}
	if err := cfg.Registry.Attach(ifp); err != nil {
		d.dataMu.Lock()
		d.syn = nil
		d.dataMu.Unlock()
		s.detach(ctx)
		return nil, fmt.Errorf("netvsc: %s: %w", name, err)
	}
	d.vfm.start()
	return d, nil
}

// capState is the capability state for s, without TSO when there is no
// bounce slot to carry a large frame.
func (d *Device) capState(s *synth) ifnet.CapState {
	o := s.off
	if d.cfg.BounceSlots == 0 {
		o.tso4, o.tso6 = false, false
	}
	return o.capState()
}

func media(up bool, bps uint64) ifnet.MediaState {
	m := ifnet.Media{Type: ifnet.MediaEthernet, Auto: true, Speed: bps, FullDuplex: true}
	st := ifnet.MediaState{Current: ifnet.Media{Type: ifnet.MediaEthernet, Auto: true}, Active: m, Status: ifnet.MediaValid}
	if up {
		st.Status |= ifnet.MediaActive
	}
	return st
}

// Interface returns the device's interface.
func (d *Device) Interface() *ifnet.Interface { return d.iface() }

func (d *Device) iface() *ifnet.Interface { return d.ifpp.Load() }

// Name returns the interface name (hn0, ...).
func (d *Device) Name() string { return d.name }

func (d *Device) synth() *synth {
	d.dataMu.RLock()
	defer d.dataMu.RUnlock()
	return d.syn
}

// Close detaches the interface from the registry and the synthetic NIC
// from the host, and frees everything. It is idempotent.
func (d *Device) Close(ctx context.Context) {
	if d.iface() != nil && !d.iface().Detached() {
		_ = d.cfg.Registry.Detach(d.iface())
	}
	d.vfm.stopWorker() // gives the VF back while the synthetic path still works
	d.netchg.stop()
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	d.dataMu.Lock()
	s := d.syn
	d.syn = nil
	d.dataMu.Unlock()
	if s != nil {
		s.detach(ctx)
	}
}

// Transmit implements ifnet.Driver. While a transparent VF is enabled the
// batch goes to the VF with no lock taken (one atomic load); what a
// departed VF did not take goes synthetic.
func (d *Device) Transmit(b *packet.Batch) (int, error) {
	if vf := d.vfm.tx.Load(); vf != nil {
		sent, err, rest := d.vfm.vfTransmit(vf, b)
		if !rest {
			return sent, err
		}
		n, err := d.synthTransmit(b)
		return sent + n, err
	}
	return d.synthTransmit(b)
}

func (d *Device) synthTransmit(b *packet.Batch) (int, error) {
	if d.vfm.captureAfter.Load() {
		if ifp := d.iface(); ifp != nil {
			ifp.ObserveTx(b) // the synthetic path is always shown before sending
		}
	}
	d.dataMu.RLock()
	defer d.dataMu.RUnlock()
	if d.syn == nil {
		return 0, errTxDown
	}
	return d.syn.transmit(b)
}

// input hands a received synthetic batch up. Non-transparent with an
// active VF: counted on hn, then relabelled as the VF's (FreeBSD hn_rxpkt
// with RXVF, §2.3). Otherwise hn's, also while a transparent VF is enabled
// (broadcast, multicast and TCP SYN still come this way on Azure, §1.8).
func (d *Device) input(b *packet.Batch) {
	ifp := d.iface()
	if ifp == nil {
		b.Free()
		return
	}
	if vf := d.vfm.rxvf.Load(); vf != nil {
		d.vfm.st.rxToVF.Add(uint64(b.Len()))
		ifp.AccountInput(b)
		vf.Input(b)
		return
	}
	if d.vfm.tx.Load() != nil {
		d.vfm.st.synthRxWhileVF.Add(uint64(b.Len()))
	}
	ifp.Input(b)
}

func (d *Device) countDrop(r ifnet.DropReason) {
	if d.iface() != nil {
		d.iface().CountDrops(r, 1)
	}
}

func (d *Device) hostLog(msg string, args ...any) { d.log.Warn(msg, args...) }

// publishLink publishes the host's link state, unless hn's link follows
// its transparent VF or is held down for a non-transparent one (then it
// is only remembered, for when that ends).
func (d *Device) publishLink(up bool) {
	d.vfm.synthLink.Store(up)
	if d.iface() == nil || d.vfm.linkFromVF.Load() || d.vfm.linkHeldDown.Load() {
		return
	}
	if up {
		d.iface().SetLinkState(ifnet.LinkUp)
	} else {
		d.iface().SetLinkState(ifnet.LinkDown)
	}
	m := d.iface().Media()
	m.Status = ifnet.MediaValid
	if up {
		m.Status |= ifnet.MediaActive
	}
	d.iface().SetMediaState(m)
}

// indicate handles a status indication (receive goroutine; Linux
// rndis_filter_receive → netvsc_linkstatus_callback).
func (d *Device) indicate(ind *rndis.IndicateStatus) {
	switch ind.Status {
	case rndis.StatusMediaConnect:
		d.netchg.settle(func() { d.publishLink(true) })
	case rndis.StatusMediaDisconnect:
		d.netchg.settle(func() { d.publishLink(false) })
	case rndis.StatusLinkSpeedChange:
		if v, ok := ind.U32(); ok && d.iface() != nil && !d.vfm.linkFromVF.Load() { // media follow a transparent VF
			m := d.iface().Media()
			m.Active.Speed = uint64(v) * rndis.LinkSpeedUnit
			d.iface().SetMediaState(m)
		}
	case rndis.StatusNetworkChange:
		// Linux netvsc_link_change: the carrier goes down and comes back
		// NetworkChangeDelay later, so DHCP renews. Only when the host's
		// link is up (a change while down waits for MEDIA_CONNECT); a
		// link that follows a transparent VF is the VF's to report.
		if d.iface() != nil && !d.vfm.linkFromVF.Load() && (d.vfm.synthLink.Load() || d.netchg.pending()) {
			d.netchg.start(d.cfg.Clock, func() { d.publishLink(false) }, func() { d.publishLink(true) })
		}
	}
}

// filterFor computes the RNDIS packet filter for interface flags and a
// multicast list length (Linux rndis_set_multicast).
func filterFor(f ifnet.Flags, nmulti int) rndis.PacketFilter {
	if f&ifnet.FlagUp == 0 {
		return rndis.PacketTypeNone
	}
	if f&ifnet.FlagPromisc != 0 {
		return rndis.PacketTypePromiscuous
	}
	filter := rndis.PacketTypeDirected
	if f&ifnet.FlagAllMulti != 0 || nmulti > 0 {
		filter |= rndis.PacketTypeAllMulticast
	}
	if f&ifnet.FlagBroadcast != 0 {
		filter |= rndis.PacketTypeBroadcast
	}
	return filter
}

// applyFilter sets the packet filter if it changed (with cfgMu held).
func (d *Device) applyFilter(f ifnet.Flags, nmulti int) error {
	s := d.syn
	if s == nil {
		return fmt.Errorf("netvsc: %s: %w", d.name, ifnet.ErrDown)
	}
	want := filterFor(f, nmulti)
	if d.vfm.w.ntActive {
		want = rndis.PacketTypePromiscuous // the VF's filter is unknown (§2.2)
	}
	if want == s.filter {
		return nil
	}
	if err := s.setFilter(context.Background(), want); err != nil {
		return fmt.Errorf("netvsc: %s: packet filter: %w", d.name, err)
	}
	return nil
}

// Ioctl implements ifnet.Driver.
func (d *Device) Ioctl(req ifnet.Request) error {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	if d.vfm.w.vf != nil {
		defer d.vfm.publishStatus()
	}
	if d.vfm.w.ready {
		if handled, err := d.vfm.xpntIoctl(req); handled {
			return err
		}
	}
	switch r := req.(type) {
	case *ifnet.GetRSSKey, *ifnet.GetRSSHash:
		return nil // answered from the published (VF-aligned) state
	case *ifnet.SetFlags:
		f := d.iface().Flags()&^ifnet.UserFlags | r.Flags&ifnet.UserFlags
		if err := d.applyFilter(f, len(d.iface().Multicast())); err != nil {
			return err
		}
		d.iface().SetRunning(f&ifnet.FlagUp != 0)
		return nil
	case *ifnet.AddMulti:
		return d.applyFilter(d.iface().Flags(), len(d.iface().Multicast())+1)
	case *ifnet.DelMulti:
		return d.applyFilter(d.iface().Flags(), len(d.iface().Multicast())-1)
	case *ifnet.SetMTU:
		return d.reattach(r.MTU)
	case *ifnet.SetCapabilities:
		s := d.syn
		if s == nil {
			return fmt.Errorf("netvsc: %s: %w", d.name, ifnet.ErrDown)
		}
		r.HWAssist &= d.capState(s).HWAssist
		return nil
	case *ifnet.SetMAC:
		return d.setSynthMAC(r.MAC)
	case *ifnet.GetMedia:
		r.State = d.iface().Media()
		return nil
	}
	return fmt.Errorf("netvsc: %s: %s: %w", d.name, req.RequestName(), ifnet.ErrNotSupported)
}

// setSynthMAC gives the synthetic NIC a new address (Linux
// rndis_filter_set_device_mac: the "NetworkAddress" config parameter, 12
// lowercase hex digits in UTF-16). cfgMu held.
func (d *Device) setSynthMAC(addr net.HardwareAddr) error {
	s := d.syn
	if s == nil {
		return fmt.Errorf("netvsc: %s: %w", d.name, ifnet.ErrDown)
	}
	var mac [6]byte
	copy(mac[:], addr)
	if err := s.set(context.Background(), rndis.OIDGenRNDISConfigParameter, rndis.NewMACAddressParameter(mac).Encode()); err != nil {
		return fmt.Errorf("netvsc: %s: set MAC: %w", d.name, err)
	}
	return nil
}

// reattach rebuilds the synthetic attachment with a new MTU (Linux
// netvsc_change_mtu): detach, attach with the new MTU, and on failure
// attach again with the old one. Called with cfgMu held.
func (d *Device) reattach(mtu int) error {
	ctx := context.Background()
	old := d.iface().MTU()
	d.dataMu.Lock()
	s := d.syn
	d.syn = nil
	d.dataMu.Unlock()
	running := d.iface().Flags()&ifnet.FlagRunning != 0
	d.iface().SetRunning(false)
	if s != nil {
		s.detach(ctx)
	}
	ns, err := attachSynth(ctx, d, mtu)
	if err != nil {
		var err2 error
		if ns, err2 = attachSynth(ctx, d, old); err2 != nil {
			d.publishLink(false)
			return fmt.Errorf("netvsc: %s: MTU %d: %w (and re-attach at %d: %w)", d.name, mtu, err, old, err2)
		}
	}
	if f := d.iface().Flags(); f&ifnet.FlagUp != 0 {
		if ferr := ns.setFilter(ctx, filterFor(f, len(d.iface().Multicast()))); ferr != nil {
			d.log.Warn("netvsc: packet filter after re-attach", "err", ferr)
		}
	}
	if mac := d.iface().MAC(); mac.String() != ns.mac.String() { // a SetMAC the new attachment forgot
		var m [6]byte
		copy(m[:], mac)
		if merr := ns.set(ctx, rndis.OIDGenRNDISConfigParameter, rndis.NewMACAddressParameter(m).Encode()); merr != nil {
			d.log.Warn("netvsc: MAC address after re-attach", "err", merr)
		}
	}
	_ = d.iface().SetCapState(d.capState(ns))
	d.iface().SetTSOLimits(ns.off.tsoLimits(d.cfg.BounceSlots))
	_ = d.iface().SetRSS(ns.rssConfig())
	d.dataMu.Lock()
	d.syn = ns
	d.dataMu.Unlock()
	d.publishLink(ns.linkUp)
	d.vfm.afterReattach()
	d.iface().SetRunning(running)
	if err != nil {
		return fmt.Errorf("netvsc: %s: MTU %d refused, kept %d: %w", d.name, mtu, old, err)
	}
	if ns.frameMTU > 0 && ns.frameMTU < mtu {
		return fmt.Errorf("netvsc: %s: host takes at most MTU %d: %w", d.name, ns.frameMTU, ifnet.ErrInvalid)
	}
	return nil
}

// Info is what the device negotiated with the host.
type Info struct {
	NVSP         nvsp.Version
	NDIS         nvsp.NDISVersion
	MAC          net.HardwareAddr
	MTU          int
	RecvBuffer   int    // bytes
	RecvSlotSize uint32 // host sub-allocation size
	RecvSlots    uint32
	SendBuffer   int
	SectionSize  uint32
	Sections     uint32
	MaxPackets   uint32 // RNDIS max packets per message
	Alignment    int
	Offload      *rndis.Offload // the host's hardware capabilities
	Caps         ifnet.CapState
	TSO          ifnet.TSOLimits
}

// Info returns the negotiated parameters (zero when detached).
func (d *Device) Info() Info {
	d.dataMu.RLock()
	defer d.dataMu.RUnlock()
	s := d.syn
	if s == nil {
		return Info{}
	}
	return Info{NVSP: s.ver, NDIS: s.ndis, MAC: append(net.HardwareAddr(nil), s.mac...), MTU: s.mtu,
		RecvBuffer: len(s.rxRegion.Bytes), RecvSlotSize: s.rxSlot, RecvSlots: s.rxSlots,
		SendBuffer: len(s.txRegion.Bytes), SectionSize: s.secSize, Sections: s.secCount,
		MaxPackets: s.maxPkts, Alignment: s.align, Offload: s.hw,
		Caps: d.capState(s), TSO: s.off.tsoLimits(d.cfg.BounceSlots)}
}
