package netstack

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// ethHdrLen is the Ethernet header the endpoint adds and parses.
const ethHdrLen = header.EthernetMinimumSize

// maxGSOSize is the largest GSO packet the endpoint accepts from the stack
// (the IPv4 total length limit).
const maxGSOSize = 65535

// Options configure an Endpoint. The zero value is usable.
type Options struct {
	// Pool supplies transmit buffers for frames up to the MTU (default: a
	// new unbounded pool of packet.DefaultSize buffers).
	Pool *packet.Pool
	// GSOPool supplies transmit buffers for TSO frames and for frames too
	// big for Pool (default: created on first use, buffers of 64 KiB plus
	// an Ethernet header).
	GSOPool *packet.Pool
	// BatchSize is the capacity of a transmit batch (default
	// packet.DefaultBatchSize).
	BatchSize int
	// SoftwareGSO lets gVisor build large TCP segments and split them
	// itself (stack.GVisorGSOSupported) while the interface has no TSO.
	SoftwareGSO bool
}

// Endpoint is a gVisor stack.LinkEndpoint (and stack.GSOEndpoint) over an
// ifnet interface. Create it with New and pass it to stack.CreateNIC (or
// CreateNICWithOptions with a fifo queueing discipline for batching).
//
// Concurrency: all methods are safe for concurrent use. The data path
// (WritePackets, input) reads atomics only: the dispatcher pointer, the
// interface's flags, link state and capabilities, and a cached MAC.
type Endpoint struct {
	ifp         *ifnet.Interface
	pool        *packet.Pool
	batchSize   int
	softwareGSO bool

	gsoOnce sync.Once
	gsoPool *packet.Pool // set by gsoOnce unless given in Options

	disp atomic.Pointer[dispatcher] // nil: not attached
	mac  atomic.Pointer[[6]byte]    // cached interface MAC (refreshed on mismatch)

	batches sync.Pool // *txBatch

	mu      sync.Mutex
	onClose func() // guarded by mu
	closed  bool   // guarded by mu
}

type dispatcher struct{ d stack.NetworkDispatcher }

var (
	_ stack.LinkEndpoint = (*Endpoint)(nil)
	_ stack.GSOEndpoint  = (*Endpoint)(nil)
)

// New returns an endpoint for ifp. It does not touch the interface until
// the stack attaches it (CreateNIC calls Attach).
func New(ifp *ifnet.Interface, opts Options) (*Endpoint, error) {
	if ifp == nil {
		return nil, errors.New("netstack: nil interface")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = packet.DefaultBatchSize
	}
	if opts.Pool == nil {
		opts.Pool = packet.MustPool(packet.PoolConfig{})
	}
	if opts.Pool.Size() < ethHdrLen+header.IPv4MinimumSize {
		return nil, fmt.Errorf("netstack: pool buffers of %d bytes are too small", opts.Pool.Size())
	}
	e := &Endpoint{ifp: ifp, pool: opts.Pool, gsoPool: opts.GSOPool, batchSize: opts.BatchSize,
		softwareGSO: opts.SoftwareGSO}
	e.batches.New = func() any { return newTxBatch(e.batchSize) }
	e.refreshMAC()
	return e, nil
}

// Interface returns the interface the endpoint drives.
func (e *Endpoint) Interface() *ifnet.Interface { return e.ifp }

// largePool returns the pool for TSO and oversized frames.
func (e *Endpoint) largePool() *packet.Pool {
	e.gsoOnce.Do(func() {
		if e.gsoPool == nil {
			e.gsoPool = packet.MustPool(packet.PoolConfig{Size: maxGSOSize + ethHdrLen, Headroom: packet.DefaultHeadroom})
		}
	})
	return e.gsoPool
}

// MTU implements stack.LinkEndpoint: the interface's MTU (the IP MTU; the
// Ethernet header comes on top).
func (e *Endpoint) MTU() uint32 { return uint32(e.ifp.MTU()) }

// SetMTU implements stack.LinkEndpoint by asking the interface to change
// its MTU. gVisor cannot take an error here: an MTU the interface refuses
// (out of range, claimed interface) leaves the MTU unchanged, which MTU
// then reports.
func (e *Endpoint) SetMTU(mtu uint32) {
	_ = e.ifp.Ioctl(&ifnet.SetMTU{MTU: int(mtu)})
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (e *Endpoint) MaxHeaderLength() uint16 { return ethHdrLen }

// LinkAddress implements stack.LinkEndpoint: the interface's MAC.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress {
	m := e.refreshMAC()
	return tcpip.LinkAddress(m[:])
}

// SetLinkAddress implements stack.LinkEndpoint by asking the interface to
// change its MAC (an invalid or refused address leaves it unchanged).
func (e *Endpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	_ = e.ifp.Ioctl(&ifnet.SetMAC{MAC: net.HardwareAddr(addr)})
	e.refreshMAC()
}

// refreshMAC reloads the cached MAC from the interface.
func (e *Endpoint) refreshMAC() *[6]byte {
	var m [6]byte
	copy(m[:], e.ifp.MAC())
	if old := e.mac.Load(); old != nil && *old == m {
		return old
	}
	e.mac.Store(&m)
	return &m
}

// Capabilities implements stack.LinkEndpoint from the interface's enabled
// capabilities (see the package documentation). It is read per packet by
// the stack, so it only loads an atomic.
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities {
	c := stack.CapabilityResolutionRequired
	en := e.ifp.CapEnabled()
	if en&(ifnet.CapRxCsum|ifnet.CapRxCsumIPv6) != 0 {
		c |= stack.CapabilityRXChecksumOffload
	}
	if en&(ifnet.CapTxCsum|ifnet.CapTxCsumIPv6) != 0 {
		c |= stack.CapabilityTXChecksumOffload
	}
	return c
}

// SupportedGSO implements stack.GSOEndpoint: host GSO while the interface
// has TSO enabled (frames the hardware cannot segment are segmented by the
// endpoint), else gVisor's software GSO if Options.SoftwareGSO.
func (e *Endpoint) SupportedGSO() stack.SupportedGSO {
	switch {
	case e.ifp.CapEnabled()&ifnet.CapTSO != 0:
		return stack.HostGSOSupported
	case e.softwareGSO:
		return stack.GVisorGSOSupported
	}
	return stack.GSONotSupported
}

// GSOMaxSize implements stack.GSOEndpoint: the interface's TSO byte limit
// (without the Ethernet header), at most 64 KiB - 1.
func (e *Endpoint) GSOMaxSize() uint32 {
	switch e.SupportedGSO() {
	case stack.HostGSOSupported:
		limit := maxGSOSize
		if t := e.ifp.TSOLimits(); t.MaxBytes > 0 {
			limit = min(limit, t.MaxBytes-ethHdrLen)
		}
		if p := e.largePool(); p.Size()-ethHdrLen < limit {
			limit = p.Size() - ethHdrLen
		}
		return uint32(max(limit, 0))
	case stack.GVisorGSOSupported:
		return stack.GVisorGSOMaxSize
	}
	return 0
}

// Attach implements stack.LinkEndpoint. A non-nil dispatcher installs the
// endpoint as the interface's input (behind any input overrides); nil (the
// NIC is being removed) uninstalls it, after which received packets are
// dropped as DropNoInput.
func (e *Endpoint) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		e.disp.Store(nil)
		e.ifp.SetInput(nil)
		return
	}
	e.disp.Store(&dispatcher{d})
	e.ifp.SetInput(e.input)
}

// IsAttached implements stack.LinkEndpoint: a dispatcher is attached and
// the link can carry packets (interface up and running, link not down).
func (e *Endpoint) IsAttached() bool { return e.disp.Load() != nil && e.linkUsable() }

// linkUsable reports whether the interface is up, running and its link not
// reported down (LinkUnknown counts as usable: not every driver reports).
func (e *Endpoint) linkUsable() bool {
	const upRunning = ifnet.FlagUp | ifnet.FlagRunning
	return e.ifp.Flags()&upRunning == upRunning && e.ifp.LinkState() != ifnet.LinkDown
}

// Wait implements stack.LinkEndpoint. The endpoint starts no goroutines:
// input runs on the driver's receive goroutine.
func (*Endpoint) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: it pushes the Ethernet header.
func (e *Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	src := pkt.EgressRoute.LocalLinkAddress
	if src == "" {
		m := e.mac.Load()
		src = tcpip.LinkAddress(m[:])
	}
	eth := header.Ethernet(pkt.LinkHeader().Push(ethHdrLen))
	eth.Encode(&header.EthernetFields{
		SrcAddr: src,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint: it consumes the Ethernet
// header.
func (*Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(ethHdrLen)
	return ok
}

// Close implements stack.LinkEndpoint (the stack calls it when the NIC is
// removed): it runs the SetOnCloseAction action once and uninstalls the
// endpoint's input.
func (e *Endpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	fn := e.onClose
	e.mu.Unlock()
	if fn != nil {
		fn()
	}
	if e.disp.Swap(nil) != nil {
		e.ifp.SetInput(nil)
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *Endpoint) SetOnCloseAction(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = fn
}
