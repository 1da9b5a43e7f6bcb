package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/failover"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/pci/hvpci"
)

// Mode is how the guest uses its VF.
type Mode string

const (
	// ModeTransparent: hn hides the VF (FreeBSD hn(4) transparent mode,
	// spec/vf-modes.md §3); the stack runs on hn0.
	ModeTransparent Mode = "transparent"
	// ModeFailover: a failover aggregate over hn0 (standby) and the VF
	// (primary) carries the stack (spec/vf-modes.md A.10).
	ModeFailover Mode = "failover"
)

// Addresses of the simulated network.
var (
	GuestMAC  = vswitch.MAC{0x00, 0x15, 0x5d, 0x00, 0x00, 0x01}
	RemoteMAC = vswitch.MAC{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	GuestIP   = netip.MustParseAddr("192.0.2.1")
	RemoteIP  = netip.MustParseAddr("192.0.2.2")
)

// VFSerial is the vPCI serial number of the VF the host offers (the value
// its VF association names, spec/vf-modes.md §1.5).
const VFSerial = 0x5eed

// Package errors.
var (
	ErrConfig  = errors.New("testbed: bad configuration")
	ErrBoot    = errors.New("testbed: the guest did not come up")
	ErrMigrate = errors.New("testbed: migration step failed")
)

// Config configures a testbed and its run.
type Config struct {
	Mode       Mode          // default ModeTransparent
	Rate       int           // stream frames per second, each direction (default 5000)
	Duration   time.Duration // traffic time (default 3 s)
	Migrations int           // live migrations during the run (default 2; 0: none)
	Surprise   bool          // surprise-remove the VF instead of a planned eject
	AttachWait time.Duration // hn's VF attach wait (default and minimum 2 s, as FreeBSD)
	// SkipAttachWait runs hn on a clock that jumps over its attach wait
	// (the wait still happens in the guest's time, not in real time).
	SkipAttachWait bool
	// EjectDelay is how long the host waits between switching the data
	// path back (and withdrawing the association) and ejecting the VF
	// (default 100 ms; negative: none). Azure shows about a second
	// (spec/vf-modes.md A.9); the guest's VF may still hold received
	// frames in its rings right after the switch.
	EjectDelay time.Duration
	Seed       uint64       // drives payloads and migration timing jitter
	FrameSize  int          // stream frame size in bytes (default 256)
	TCPBytes   int64        // bytes per TCP transfer direction (default 2 MiB)
	Logger     *slog.Logger // default: discard
}

func (c *Config) defaults() error {
	if c.Mode == "" {
		c.Mode = ModeTransparent
	}
	if c.Rate == 0 {
		c.Rate = 5000
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.AttachWait == 0 {
		c.AttachWait = netvsc.DefaultVFAttachWait
	}
	if c.EjectDelay == 0 {
		c.EjectDelay = 100 * time.Millisecond
	} else if c.EjectDelay < 0 {
		c.EjectDelay = 0
	}
	if c.FrameSize == 0 {
		c.FrameSize = 256
	}
	if c.TCPBytes == 0 {
		c.TCPBytes = 2 << 20
	}
	c.Logger = kernel.LoggerOr(c.Logger)
	switch {
	case c.Mode != ModeTransparent && c.Mode != ModeFailover:
		return fmt.Errorf("%w: mode %q (transparent or failover)", ErrConfig, c.Mode)
	case c.Rate < 0 || c.Rate > 200000:
		return fmt.Errorf("%w: rate %d frames/s (1..200000)", ErrConfig, c.Rate)
	case c.Duration < 100*time.Millisecond || c.Duration > 10*time.Minute:
		return fmt.Errorf("%w: duration %v (100ms..10m)", ErrConfig, c.Duration)
	case c.Migrations < 0 || c.Migrations > 1000:
		return fmt.Errorf("%w: migrations %d (0..1000)", ErrConfig, c.Migrations)
	case c.FrameSize < minStreamFrame || c.FrameSize > 1514:
		return fmt.Errorf("%w: frame size %d (%d..1514)", ErrConfig, c.FrameSize, minStreamFrame)
	case c.TCPBytes < 0:
		return fmt.Errorf("%w: TCP bytes %d", ErrConfig, c.TCPBytes)
	case c.AttachWait < 0:
		return fmt.Errorf("%w: attach wait %v", ErrConfig, c.AttachWait)
	}
	return nil
}

// Testbed is the simulated Hyper-V host and the guest stack in one process:
// the VMBus server with netvsp and the vPCI bus, a switch with the remote
// station, and the guest's VMBus client, hn driver, vPCI bus driver and a
// gVisor stack.
//
// Ownership: New builds everything and Close tears it down in reverse; the
// fields are set by New and not changed after, except vf (the migration
// driver's goroutine) and curVF (atomic).
type Testbed struct {
	cfg   Config
	log   *slog.Logger
	epoch time.Time

	// Host side.
	ram  *kernel.SimRAM
	srv  *host.Server
	sw   *vswitch.Switch
	nic  *netvsp.Device
	vbus *vpci.Bus
	vf   *hostVF // the VF offered now (the migration driver's)
	// curVF is the VF whose BAR the guest maps (atomic: read by hvpci).
	curVF      atomic.Pointer[hostVF]
	vfErr      atomic.Value // string: the last VF attach failure the guest reported
	vfAttached atomic.Int64 // VFs the guest's bus driver attached

	dropMu    sync.Mutex
	hostDrops map[string]uint64  // VF models' drops by reason, summed at release (dropMu)
	guestIfs  []*ifnet.Interface // guest VF interfaces seen (dropMu)

	// Guest side.
	reg    *ifnet.Registry
	drv    *netvsc.Driver
	pciDrv *hvpci.Driver
	mlxBus *mlx.BusDriver
	fo     *failover.Failover // failover mode only
	clock  *skipClock         // hn's clock with SkipAttachWait, else nil
	bus    *vmbus.Bus
	hn     *netvsc.Device
	gif    *ifnet.Interface // the interface the guest stack and stream use
	gstack *ipStack
	guest  *guestStream

	// The remote station.
	remote *remote
	rstack *ipStack

	toGuest, toStation *streamRx

	ran       atomic.Bool // Run was called
	closeOnce sync.Once
}

const (
	ramPages   = 16384
	windowBase = 0xF000_0000
)

// guestMMIO are the VMBus MMIO ranges the guest places VF BARs in (a
// Hyper-V generation 2 VM's shape: one below 4 GiB, above the config
// window, and one above).
var guestMMIO = []hvpci.MMIORange{{Base: 0xF800_0000, Size: 64 << 20}, {Base: 0x10_0000_0000, Size: 1 << 30}}

// runTime estimates the longest a run's traffic can last: Duration, or
// the migrations back to back with their waits if they take longer.
func (c *Config) runTime() time.Duration {
	per := baseHold*3/2 + settle + c.EjectDelay + 200*time.Millisecond
	if !c.SkipAttachWait && c.Mode == ModeTransparent {
		per += max(c.AttachWait, netvsc.MinVFAttachWait)
	}
	return max(c.Duration, leadIn+time.Duration(c.Migrations)*per+tail)
}

// expectedRunTime is how long a run's traffic should last: Duration, or
// the migrations with their typical waits if they take longer.
func (c *Config) expectedRunTime() time.Duration {
	per := baseHold + settle + c.EjectDelay + 20*time.Millisecond
	if !c.SkipAttachWait && c.Mode == ModeTransparent {
		per += max(c.AttachWait, netvsc.MinVFAttachWait)
	}
	return max(c.Duration, leadIn+time.Duration(c.Migrations)*per+tail)
}

// maxFrames is the most frames one direction can send in a run; a
// sender that reaches it stops (Report.SequenceExhausted).
func (c *Config) maxFrames() int {
	return int(float64(c.Rate)*c.runTime().Seconds()*1.5) + 4096
}

// New boots the host and the guest: when it returns hn0 is up, the host
// has offered the first VF and the guest's data path is on it.
func New(ctx context.Context, cfg Config) (tb *Testbed, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	tb = &Testbed{cfg: cfg, log: cfg.Logger, epoch: time.Now(), hostDrops: map[string]uint64{}}
	defer func() {
		if err != nil {
			tb.Close()
			tb = nil
		}
	}()
	frames := cfg.maxFrames()
	tb.toGuest = newStreamRx(ToGuest, frames)
	tb.toStation = newStreamRx(ToStation, frames)

	tb.ram = kernel.NewSimRAM(ramPages)
	if tb.srv, err = host.NewServer(host.Config{Memory: tb.ram, Logger: tb.log.With("side", "host")}); err != nil {
		return tb, err
	}
	pair := synic.NewPair(tb.srv)
	if err = tb.srv.Attach(pair.Host()); err != nil {
		return tb, err
	}
	tb.sw = vswitch.New(vswitch.Config{NoAger: true})
	if tb.nic, err = netvsp.New(netvsp.Config{MAC: GuestMAC, Switch: tb.sw, Logger: tb.log.With("side", "host", "dev", "netvsp")}); err != nil {
		return tb, err
	}
	if err = tb.srv.AddDevice(tb.nic); err != nil {
		return tb, err
	}
	tb.vbus = vpci.New(vpci.Config{EjectTimeout: 10 * time.Second, Logger: tb.log.With("side", "host", "dev", "vpci")})
	if err = tb.srv.AddDevice(tb.vbus); err != nil {
		return tb, err
	}
	if tb.remote, err = newRemote(tb.sw, RemoteMAC, tb.toStation, tb.now); err != nil {
		return tb, err
	}

	tb.reg = ifnet.NewRegistry()
	if cfg.SkipAttachWait {
		tb.clock = newSkipClock()
	}
	if tb.drv, err = netvsc.NewDriver(tb.netvscConfig()); err != nil {
		return tb, err
	}
	if tb.pciDrv, err = hvpci.NewDriver(hvpci.Config{
		Window: func(tlfs.GUID) (hvpci.Window, error) {
			return hvpci.MMIOWindow(windowBase, tb.vbus.Window(windowBase)), nil
		},
		MapBAR: tb.mapBAR,
		MMIO:   guestMMIO,
		Logger: tb.log.With("side", "guest", "dev", "hvpci"),
	}); err != nil {
		return tb, err
	}
	if err = tb.attachVFDriver(); err != nil {
		return tb, err
	}
	if tb.bus, err = vmbus.Connect(ctx, vmbus.Config{Port: pair.Guest(), Memory: tb.ram, Logger: tb.log.With("side", "guest")},
		map[tlfs.GUID]vmbus.Driver{netvsc.Class: tb.drv, hvpci.Class: tb.pciDrv}); err != nil {
		return tb, err
	}
	if err = tb.waitHN(ctx); err != nil {
		return tb, err
	}
	if err = tb.hn.Interface().Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		return tb, fmt.Errorf("%w: hn0 up: %v", ErrBoot, err)
	}
	if tb.gif, err = tb.stackInterface(); err != nil {
		return tb, err
	}
	if tb.guest, err = newGuestStream(tb.gif, tb.toGuest, tb.now); err != nil {
		return tb, err
	}
	if tb.gstack, err = newIPStack(tb.gif, GuestIP); err != nil {
		return tb, err
	}
	if err = tb.remote.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		return tb, err
	}
	if tb.rstack, err = newIPStack(tb.remote.ifp, RemoteIP); err != nil {
		return tb, err
	}
	// The VF the host offers at boot.
	if tb.vf, err = tb.offerVF(0); err != nil {
		return tb, err
	}
	if err = tb.waitVFTaken(ctx, 0); err != nil {
		return tb, err
	}
	return tb, nil
}

func (tb *Testbed) netvscConfig() netvsc.Config {
	c := netvsc.Config{Memory: tb.ram, Registry: tb.reg, RecvBufferSize: 4 << 20, SendBufferSize: 1 << 20,
		RingPages: 64, Timeout: 5 * time.Second, Logger: tb.log.With("side", "guest", "dev", "hn"),
		VFAttachWait: tb.cfg.AttachWait}
	if tb.cfg.Mode == ModeFailover {
		c.VFMode = netvsc.VFNonTransparent
	}
	if tb.clock != nil {
		c.Clock = tb.clock
	}
	return c
}

// waitHN waits for hn0 in the registry and in the driver's devices.
func (tb *Testbed) waitHN(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if errs := tb.drv.Errors(); len(errs) > 0 {
			return fmt.Errorf("%w: hn attach: %v", ErrBoot, errs[0])
		}
		if ifp, err := tb.reg.ByName("hn0"); err == nil {
			for _, d := range tb.drv.Devices() {
				if d.Interface() == ifp {
					tb.hn = d
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: hn0 did not appear", ErrBoot)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// now is the time since the epoch in ns (the streams' clock).
func (tb *Testbed) now() int64 { return int64(time.Since(tb.epoch)) }

// Close stops everything and releases the host and guest.
func (tb *Testbed) Close() {
	tb.closeOnce.Do(func() {
		ctx := context.Background()
		if tb.gstack != nil {
			tb.gstack.close()
		}
		if tb.rstack != nil {
			tb.rstack.close()
		}
		if tb.guest != nil {
			tb.guest.close()
		}
		if tb.fo != nil {
			tb.fo.Close()
		}
		if tb.mlxBus != nil {
			tb.mlxBus.Close(ctx)
		}
		if tb.bus != nil {
			tb.bus.Close(ctx)
		}
		if tb.reg != nil {
			tb.reg.Close()
		}
		if tb.remote != nil {
			tb.remote.close()
		}
		if tb.vf != nil {
			tb.vf.release(tb)
		}
		if tb.clock != nil {
			tb.clock.close()
		}
		if tb.srv != nil {
			tb.srv.Close()
		}
		if tb.sw != nil {
			tb.sw.Close()
		}
	})
}
