package netvsc_test

// The real guest driver against the simulated host: hyperv/host's VMBus
// server, hyperv/host/netvsp (the host side of the synthetic NIC) and a
// vswitch with a recording station, all in one process.

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

var (
	hnMAC      = vswitch.MAC{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}
	stationMAC = vswitch.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	stationIP  = netip.MustParseAddr("192.0.2.2")
)

type world struct {
	t       testing.TB
	ram     *kernel.SimRAM
	srv     *host.Server
	sw      *vswitch.Switch
	nic     *netvsp.Device
	station *vswitch.Station
	reg     *ifnet.Registry
	drv     *netvsc.Driver
	bus     *vmbus.Bus
	dev     *netvsc.Device
	ifp     *ifnet.Interface
	in      chan *packet.Packet // frames hn0 received
	once    sync.Once

	unlisted atomic.Int32 // hn interfaces announced before Driver.Devices listed them
}

// deviceFor returns the driver's device for ifp, or nil.
func (w *world) deviceFor(ifp *ifnet.Interface) *netvsc.Device {
	for _, d := range w.drv.Devices() {
		if d.Interface() == ifp {
			return d
		}
	}
	return nil
}

type worldOpts struct {
	versions []nvsp.Version // host NVSP versions (nil: all)
	maxNDIS  nvsp.NDISVersion
	cfg      func(*netvsc.Config)
	hostCfg  func(*netvsp.Config)
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	w := &world{t: t, ram: kernel.NewSimRAM(8192), in: make(chan *packet.Packet, 4096)}
	var err error
	if w.srv, err = host.NewServer(host.Config{Memory: w.ram}); err != nil {
		t.Fatal(err)
	}
	pair := synic.NewPair(w.srv)
	if err := w.srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	w.sw = vswitch.New(vswitch.Config{NoAger: true})
	hc := netvsp.Config{MAC: hnMAC, Switch: w.sw, Versions: o.versions, MaxNDIS: o.maxNDIS, VLAN: vswitch.Trunk(1)}
	if o.hostCfg != nil {
		o.hostCfg(&hc)
	}
	if w.nic, err = netvsp.New(hc); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.AddDevice(w.nic); err != nil {
		t.Fatal(err)
	}
	if w.station, err = vswitch.NewStation(w.sw, vswitch.StationConfig{Name: "st", MAC: stationMAC, IP: stationIP,
		Record: true, MaxRecord: 1 << 16, VLAN: vswitch.Trunk(1)}); err != nil {
		t.Fatal(err)
	}
	w.reg = ifnet.NewRegistry()
	cfg := netvsc.Config{Memory: w.ram, Registry: w.reg, RecvBufferSize: 2 << 20, SendBufferSize: 512 << 10,
		RingPages: 32, Timeout: 5 * time.Second}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if w.drv, err = netvsc.NewDriver(cfg); err != nil {
		t.Fatal(err)
	}
	// The driver must list a device before its interface is attached:
	// check that on every attach event, as a registry subscriber (hn's own
	// VF matching among them) would look.
	if _, err := w.reg.Subscribe(func(ev ifnet.Event) {
		if ev.Type == ifnet.EventAttach && ev.Interface.Kind() == ifnet.KindSynthetic && w.deviceFor(ev.Interface) == nil {
			w.unlisted.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	w.bus, err = vmbus.Connect(context.Background(), vmbus.Config{Port: pair.Guest(), Memory: w.ram},
		map[tlfs.GUID]vmbus.Driver{netvsc.Class: w.drv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	deadline := time.Now().Add(10 * time.Second)
	for w.ifp == nil {
		if errs := w.drv.Errors(); len(errs) > 0 {
			t.Fatalf("attach failed: %v", errs)
		}
		if ifp, err := w.reg.ByName("hn0"); err == nil {
			w.ifp = ifp
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hn0 did not appear")
		}
		time.Sleep(time.Millisecond)
	}
	if w.dev = w.deviceFor(w.ifp); w.dev == nil {
		t.Fatal("hn0 is in the registry but not in Driver.Devices")
	}
	w.ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		for _, p := range b.Packets() {
			select {
			case w.in <- p:
			default:
				p.Free()
			}
		}
		b.Clear()
	})
	return w
}

func (w *world) close() {
	if n := w.unlisted.Load(); n > 0 {
		w.t.Errorf("%d interface(s) attached before Driver.Devices listed their device", n)
	}
	w.once.Do(func() {
		if w.bus != nil {
			w.bus.Close(context.Background())
		}
		w.reg.Close()
		w.srv.Close()
		w.sw.Close()
	})
}

func (w *world) up() {
	w.t.Helper()
	if err := w.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		w.t.Fatal(err)
	}
}

// send transmits frames (with metadata) through hn0, retrying on
// back-pressure.
func (w *world) send(frames [][]byte, metas []packet.Meta) {
	w.t.Helper()
	b := packet.NewBatch(len(frames))
	for i, f := range frames {
		p := packet.New(packet.DefaultHeadroom, len(f))
		if err := p.SetBytes(f); err != nil {
			w.t.Fatal(err)
		}
		if metas != nil {
			p.Meta = metas[i]
		}
		b.Add(p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Len() > 0 {
		if _, err := w.ifp.Transmit(b); err != nil && time.Now().After(deadline) {
			w.t.Fatalf("transmit: %v", err)
		}
		if b.Len() > 0 {
			runtime.Gosched()
		}
	}
}

// recv waits for n frames on hn0.
func (w *world) recv(n int) []*packet.Packet {
	w.t.Helper()
	out := make([]*packet.Packet, 0, n)
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case p := <-w.in:
			out = append(out, p)
		case <-timeout:
			w.t.Fatalf("received %d of %d frames", len(out), n)
		}
	}
	return out
}

// stationFrames waits until the station recorded n frames.
func (w *world) stationFrames(n int) []vswitch.Frame {
	w.t.Helper()
	var out []vswitch.Frame
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n {
		out = append(out, w.station.Frames()...)
		if len(out) >= n {
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("station recorded %d of %d frames", len(out), n)
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
