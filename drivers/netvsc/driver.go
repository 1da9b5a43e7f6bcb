package netvsc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Defaults (Linux hyperv_net.h, netvsc_drv.c).
const (
	// DefaultRecvBufferSize is Linux's receive buffer: 16 MiB / 1728-byte
	// sections, that many sections times 1728, rounded up to a page.
	DefaultRecvBufferSize = (16 << 20) / recvSectionSize * recvSectionSize
	// LegacyRecvBufferMax caps the receive buffer when NVSP ≤ 2 is
	// negotiated (Linux NETVSC_RECEIVE_BUFFER_SIZE_LEGACY, FreeBSD).
	LegacyRecvBufferMax = 15 << 20
	// DefaultSendBufferSize is Linux's send buffer (1 MiB).
	DefaultSendBufferSize = 1 << 20
	// DefaultBounceSlots is how many GPA-direct bounce slots a device keeps
	// for frames that do not fit a send section (TSO) or when every
	// section is busy.
	DefaultBounceSlots = 16
	// BounceSlotSize is the size of one bounce slot: the largest LSO
	// packet Hyper-V takes (62780) plus RNDIS header room, in whole pages.
	BounceSlotSize = 16 * kernel.PageSize
	// DefaultRingPages is the VMBus ring size each way, in 4 KiB pages
	// (Linux netvsc_drv.c ring_size = 128, i.e. 512 KiB).
	DefaultRingPages = 128
	// DefaultTimeout bounds each wait for the host during attach and for
	// control requests.
	DefaultTimeout = 10 * time.Second

	recvSectionSize = 1728 // Linux NETVSC_RECV_SECTION_SIZE
	maxConfigMTU    = nvsp.MaxConfigMTU - nvsp.EthernetHeaderSz
)

// Config configures the hn driver. Memory and Registry are required.
type Config struct {
	Memory   kernel.Memory   // DMA memory: rings, receive/send buffers, bounce slots
	Registry *ifnet.Registry // hn interfaces are attached here
	Clock    kernel.Clock    // default kernel.RealClock
	Logger   *slog.Logger    // default: discard (host-triggerable logs are rate-limited)

	// NamePrefix names the interfaces (default "hn": hn0, hn1, ...).
	NamePrefix string
	// MTU is the initial MTU (default 1500). The host's frame size may
	// lower it.
	MTU int
	// RecvBufferSize and SendBufferSize size the buffers in bytes
	// (defaults DefaultRecvBufferSize, DefaultSendBufferSize; rounded up
	// to whole pages).
	RecvBufferSize, SendBufferSize int
	// BounceSlots is the number of GPA-direct slots (default
	// DefaultBounceSlots; negative: none, large frames are dropped).
	BounceSlots int
	// MaxVersion is the newest NVSP version offered (default 6.1); older
	// ones are tried in turn (Linux order).
	MaxVersion nvsp.Version
	// Isolated: a confidential VM (no SR-IOV advertised; Linux refuses
	// NVSP below 6.1 there).
	Isolated bool
	// RingPages sizes each ring of the channel (default DefaultRingPages).
	RingPages int
	// MaxQueues bounds the channels (queues) the device uses: with NVSP ≥ 5
	// and a host that reports several receive queues, min(host queues,
	// 64, MaxQueues) channels; 0 stands for the number of CPUs (Linux's
	// default); 1: one channel.
	MaxQueues int
	// RxPool supplies receive packets (default: a pool sized for jumbo
	// frames, bounded).
	RxPool *packet.Pool
	// RxBatch is the most packets handed to ifnet Input at once
	// (default 32).
	RxBatch int
	// Timeout bounds each wait for the host (default DefaultTimeout).
	Timeout time.Duration
	// SwitchRetries is how often SWITCH_DATA_PATH is retried after a
	// timeout or a full ring (default 3).
	SwitchRetries int

	// VFMode is how a paired SR-IOV VF is used (zero value:
	// VFTransparent, FreeBSD's default; spec/vf-modes.md §2, §3).
	VFMode VFMode
	// VFAttachWait is how long after a VF attaches hn waits before
	// adopting it, on Clock (default DefaultVFAttachWait; values below
	// MinVFAttachWait are raised to it, as FreeBSD does).
	VFAttachWait time.Duration
	// VFCaptureAfter: a capture on hn sees a packet sent through the VF
	// only after the VF accepted it (FreeBSD vf_xpnt_accbpf); default:
	// before, so packets the VF then refuses are seen too.
	VFCaptureAfter bool
}

func (c *Config) setDefaults() error {
	if c.Memory == nil || c.Registry == nil {
		return errors.New("netvsc: Config.Memory and Config.Registry are required")
	}
	if c.Clock == nil {
		c.Clock = kernel.RealClock{}
	}
	c.Logger = kernel.LoggerOr(c.Logger)
	if c.NamePrefix == "" {
		c.NamePrefix = "hn"
	}
	if c.MTU == 0 {
		c.MTU = ifnet.DefaultMTU
	}
	if c.MTU < ifnet.DefaultMinMTU || c.MTU > maxConfigMTU {
		return fmt.Errorf("netvsc: MTU %d outside [%d, %d]", c.MTU, ifnet.DefaultMinMTU, maxConfigMTU)
	}
	if c.RecvBufferSize <= 0 {
		c.RecvBufferSize = DefaultRecvBufferSize
	}
	if c.SendBufferSize <= 0 {
		c.SendBufferSize = DefaultSendBufferSize
	}
	if c.BounceSlots == 0 {
		c.BounceSlots = DefaultBounceSlots
	} else if c.BounceSlots < 0 {
		c.BounceSlots = 0
	}
	if c.MaxVersion == 0 {
		c.MaxVersion = nvsp.Version61
	}
	if c.RingPages <= 0 {
		c.RingPages = DefaultRingPages
	}
	if c.RxPool == nil {
		c.RxPool = packet.MustPool(packet.PoolConfig{Size: maxConfigMTU + 32, Max: 8192, Prealloc: 256})
	}
	if c.RxBatch <= 0 {
		c.RxBatch = 32
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.SwitchRetries <= 0 {
		c.SwitchRetries = 3
	}
	if c.VFMode > VFNonTransparent {
		return fmt.Errorf("netvsc: unknown VF mode %d", c.VFMode)
	}
	if c.VFAttachWait <= 0 {
		c.VFAttachWait = DefaultVFAttachWait
	}
	c.VFAttachWait = max(c.VFAttachWait, MinVFAttachWait)
	return nil
}

// Driver attaches every synthetic NIC offer as an hn interface. Register it
// with vmbus.Connect or Bus.RegisterDriver under tlfs.GUIDNetwork (Class).
//
// Concurrency: mu guards devs and units. Add and Remove run on the bus
// worker, one at a time; Devices may be called from anywhere.
type Driver struct {
	cfg Config

	mu    sync.Mutex
	devs  map[*vmbus.Offer]*Device
	units map[int]bool
	errs  []error // attach failures, for Errors
}

// Class is the device class the driver serves.
var Class = tlfs.GUIDNetwork

// NewDriver returns a driver with the given configuration.
func NewDriver(cfg Config) (*Driver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, devs: make(map[*vmbus.Offer]*Device), units: make(map[int]bool)}, nil
}

// Add implements vmbus.Driver: it attaches the offer as the next hn unit.
// A failed attach is logged, remembered (Errors) and leaves nothing behind.
func (drv *Driver) Add(o *vmbus.Offer) {
	if o.SubChannelIndex() != 0 {
		return
	}
	drv.mu.Lock()
	unit := 0
	for drv.units[unit] {
		unit++
	}
	drv.units[unit] = true
	drv.mu.Unlock()

	name := fmt.Sprintf("%s%d", drv.cfg.NamePrefix, unit)
	// The device joins devs before its interface is attached to the
	// registry: anyone who sees hn<unit> (a lookup, an attach event) finds
	// it in Devices().
	_, err := attachDevice(context.Background(), &drv.cfg, o, name, func(d *Device) {
		d.unit = unit
		drv.mu.Lock()
		drv.devs[o] = d
		drv.mu.Unlock()
	})
	drv.mu.Lock()
	defer drv.mu.Unlock()
	if err != nil {
		delete(drv.devs, o)
		delete(drv.units, unit)
		drv.errs = append(drv.errs, err)
		drv.cfg.Logger.Error("netvsc: attach failed", "name", name, "err", err)
		return
	}
}

// Remove implements vmbus.Driver: it detaches the offer's interface and
// releases everything the device held. The device leaves devs only after
// its interface has left the registry (the mirror of Add).
func (drv *Driver) Remove(o *vmbus.Offer) {
	drv.mu.Lock()
	d := drv.devs[o]
	drv.mu.Unlock()
	if d == nil {
		return
	}
	d.Close(context.Background())
	drv.mu.Lock()
	delete(drv.devs, o)
	delete(drv.units, d.unit)
	drv.mu.Unlock()
}

// Devices returns the attached devices.
func (drv *Driver) Devices() []*Device {
	drv.mu.Lock()
	defer drv.mu.Unlock()
	out := make([]*Device, 0, len(drv.devs))
	for _, d := range drv.devs {
		out = append(out, d)
	}
	return out
}

// Errors returns the attach failures seen so far.
func (drv *Driver) Errors() []error {
	drv.mu.Lock()
	defer drv.mu.Unlock()
	return append([]error(nil), drv.errs...)
}
