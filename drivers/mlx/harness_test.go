package mlx

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// The in-process rig: simulated guest RAM, the VMBus server with the vPCI
// server on it, an mlx-lite device model on the vPCI bus and on a port of
// the virtual switch, a station on another port; on the guest side the
// VMBus client, the hvpci bus driver and this package's BusDriver.

var (
	vfMAC      = [6]byte{0x00, 0x15, 0x5d, 0x11, 0x22, 0x33}
	stationMAC = vswitch.MAC{0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc}
)

const vfSerial = 0x4711

type rig struct {
	t      testing.TB
	ram    *kernel.SimRAM
	srv    *host.Server
	vbus   *vpci.Bus
	slot   vpciwire.Slot
	sw     *vswitch.Switch
	st     *vswitch.Station
	reg    *ifnet.Registry
	hv     *hvpci.Driver
	guest  *vmbus.Bus
	bd     *BusDriver
	events chan BusEvent

	mu      sync.Mutex
	dev     *mlxdev.Device // current device model
	devPort *vswitch.SwitchPort
	// unplugged is the last port unplugPort took off the switch, with
	// its counters at that moment.
	unplugged vswitch.PortStats
	devCfg    mlxdev.Config
	wire      *portWire
	bdp       atomic.Pointer[BusDriver]
	preAdd    func(*mlxdev.Device) // configures a new device before it is plugged
}

// portWire is the device's Wire: the switch port it sits on.
type portWire struct {
	p atomic.Pointer[vswitch.SwitchPort]
}

func (w *portWire) Transmit(b *packet.Batch) {
	if p := w.p.Load(); p != nil {
		p.Input(b)
		return
	}
	b.Free()
}

type rigOpts struct {
	vf      Config
	devCfg  func(*mlxdev.Config)
	station bool
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	r := &rig{t: t, ram: kernel.NewSimRAM(32768), events: make(chan BusEvent, 64), wire: &portWire{}}
	srv, err := host.NewServer(host.Config{Memory: r.ram})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	pair := synic.NewPair(srv)
	srv.Attach(pair.Host())
	r.vbus = vpci.New(vpci.Config{EjectTimeout: 10 * time.Second})
	r.sw = vswitch.New(vswitch.Config{})
	r.st, err = vswitch.NewStation(r.sw, vswitch.StationConfig{Name: "peer", MAC: stationMAC, Record: true, MaxRecord: 1 << 16,
		Pool: packet.MustPool(packet.PoolConfig{Size: 16384})})
	if err != nil {
		t.Fatal(err)
	}
	r.devCfg = mlxdev.Config{Mem: r.ram, MAC: vfMAC, Serial: vfSerial, Wire: r.wire, Strict: true,
		Interrupt: func(vec int) {
			if bd := r.bdp.Load(); bd != nil {
				bd.Interrupt(vfSerial, vec)
			}
		}}
	if o.devCfg != nil {
		o.devCfg(&r.devCfg)
	}
	r.plugDevice(true)
	if err := srv.AddDevice(r.vbus); err != nil {
		t.Fatal(err)
	}
	const base = 0xF000_0000
	r.hv, err = hvpci.NewDriver(hvpci.Config{
		Window: func(tlfs.GUID) (hvpci.Window, error) { return hvpci.MMIOWindow(base, r.vbus.Window(base)), nil },
		MapBAR: func(f *hvpci.Function, bar int, gpa, size uint64) (pci.BAR, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			// The guest placed the BAR (Config.MMIO); the device decodes it
			// there, as a mapping by guest-physical address would find it.
			if at := pci.MemBARAddress(r.dev.Config(), bar); gpa < 1<<32 || at != gpa {
				return nil, fmt.Errorf("BAR%d asked for at %#x, the device decodes it at %#x", bar, gpa, at)
			}
			return r.dev.BAR(bar), nil
		},
		MMIO:         []hvpci.MMIORange{{Base: 0xF800_0000, Size: 64 << 20}, {Base: 0x10_0000_0000, Size: 1 << 30}},
		EjectTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.reg = ifnet.NewRegistry()
	vf := o.vf
	vf.Name, vf.Registry, vf.Memory = "mlx", r.reg, r.ram
	if vf.CommandTimeout == 0 {
		vf.CommandTimeout = 2 * time.Second
	}
	r.bd, err = NewBusDriver(BusConfig{VF: vf, Bus: r.hv, Events: func(e BusEvent) { r.events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	r.bdp.Store(r.bd)
	r.guest, err = vmbus.Connect(context.Background(), vmbus.Config{Port: pair.Guest(), Memory: r.ram},
		map[tlfs.GUID]vmbus.Driver{hvpci.Class: r.hv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// plugDevice makes a fresh device model and puts it on the switch and
// (unless first, which happens before the bus is offered) the vPCI bus.
func (r *rig) plugDevice(first bool) *mlxdev.Device {
	r.t.Helper()
	dev, err := mlxdev.New(r.devCfg)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.preAdd != nil {
		r.preAdd(dev)
	}
	port, err := r.sw.Attach("vf", dev, vswitch.Access(vswitch.DefaultVLAN))
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.dev, r.devPort = dev, port
	r.mu.Unlock()
	r.wire.p.Store(port)
	if first {
		r.slot, err = r.vbus.AddFunction(dev)
	} else {
		err = r.vbus.AddFunctionAt(r.slot, dev)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return dev
}

// unplugPort takes the old device off the switch.
func (r *rig) unplugPort() {
	r.mu.Lock()
	p := r.devPort
	r.devPort = nil
	r.mu.Unlock()
	r.wire.p.Store(nil)
	if p != nil {
		p.Detach()
		r.mu.Lock()
		r.unplugged = p.Stats()
		r.mu.Unlock()
	}
}

func (r *rig) device() *mlxdev.Device {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dev
}

func (r *rig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.bd.Close(ctx)
	_ = r.guest.Close(ctx)
	r.srv.Close()
	r.sw.Close()
	_ = r.reg.Close()
}

// waitVF waits for the next bus event, which must be an attach.
func (r *rig) waitVF() *VF {
	r.t.Helper()
	e := r.nextEvent("attach")
	if !e.Attached || e.Err != nil || e.VF == nil {
		r.t.Fatalf("bus event %+v", e)
	}
	return e.VF
}

func (r *rig) nextEvent(what string) BusEvent {
	r.t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(20 * time.Second):
		r.t.Fatalf("no %s event", what)
		panic("unreachable")
	}
}

// up brings the interface up and installs an input that records frames.
func (r *rig) up(vf *VF) *sink {
	r.t.Helper()
	s := &sink{}
	ifp := vf.Interface()
	ifp.SetInput(s.input)
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		r.t.Fatal(err)
	}
	return s
}

// sink records what the stack receives.
type sink struct {
	mu     sync.Mutex
	frames []vswitch.Frame
	n      atomic.Uint64
	keep   bool
}

func (s *sink) input(_ *ifnet.Interface, b *packet.Batch) {
	s.n.Add(uint64(b.Len()))
	if s.keep {
		s.mu.Lock()
		for _, p := range b.Packets() {
			s.frames = append(s.frames, vswitch.Frame{Data: append([]byte(nil), p.Bytes()...), Meta: p.Meta})
		}
		s.mu.Unlock()
	}
	b.Free()
}

func (s *sink) got() []vswitch.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]vswitch.Frame(nil), s.frames...)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func noViolations(t testing.TB, d *mlxdev.Device) {
	t.Helper()
	if v := d.Violations(); len(v) != 0 {
		for _, x := range v {
			t.Errorf("violation: %+v", x)
		}
		t.FailNow()
	}
}
