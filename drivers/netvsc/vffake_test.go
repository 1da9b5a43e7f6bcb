package netvsc_test

// A fake Ethernet VF driver for the VF-mode tests, and helpers that bring
// hn0 up against the simulated host with a fake clock, attach the VF and
// snapshot the state of both interfaces.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// vfKey is the fake VF's Toeplitz key (differs from hn's default).
var vfKey = bytes.Repeat([]byte{0x5a, 0xa5, 0x3c, 0xc3}, 10)

// fakeVF is an Ethernet VF driver: configurable capabilities, TSO limits,
// MTU refusal, readiness, link and media, RSS; it records what it sent
// and what was asked of it, and lets the test inject received frames.
type fakeVF struct {
	ifp *ifnet.Interface

	mu        sync.Mutex
	ready     bool
	refuseMTU int                 // refuse SetMTU above this (0: accept all)
	refuseMAC bool                // refuse SetMAC
	busy      bool                // Transmit takes nothing (ring full)
	discard   bool                // Transmit frees without recording (benchmarks)
	failUp    int                 // refuse this many SetFlags that bring the VF up
	nsent     int                 // frames taken by Transmit
	port      *vswitch.SwitchPort // wired: Transmit goes into the switch (set before attach)
	assist    ifnet.HWAssist
	rssTypes  ifnet.RSSTypes
	sent      [][]byte
	reqs      []string
	hook      func(ifnet.Request) // runs at the start of every Ioctl (no lock held)
}

type fakeVFOpts struct {
	name      string
	mac       net.HardwareAddr
	kind      ifnet.Kind
	serial    uint32
	hasSerial bool
	notReady  bool
	refuseMTU int
}

// vfCaps are the fake VF's capabilities: IPv4 checksums and TSO4, LRO,
// VLAN tagging, jumbo frames, link state; no IPv6 offloads.
const vfCaps = ifnet.CapRxCsum | ifnet.CapTxCsum | ifnet.CapTSO4 | ifnet.CapLRO | ifnet.CapVLANHWTagging |
	ifnet.CapJumboMTU | ifnet.CapLinkState

var vfTSO = ifnet.TSOLimits{MaxBytes: 65535, MaxSegments: 16, MaxSegmentSize: 2048}

var vfMedia = ifnet.MediaState{
	Current: ifnet.Media{Type: ifnet.MediaEthernet, Auto: true},
	Active:  ifnet.Media{Type: ifnet.MediaEthernet, Auto: true, Speed: 25_000_000_000, FullDuplex: true},
	Status:  ifnet.MediaValid | ifnet.MediaActive,
}

func newFakeVF(t testing.TB, o fakeVFOpts) *fakeVF {
	t.Helper()
	if o.name == "" {
		o.name = "mce0"
	}
	if o.mac == nil {
		o.mac = net.HardwareAddr(hnMAC[:])
	}
	f := &fakeVF{ready: !o.notReady, refuseMTU: o.refuseMTU, assist: ^ifnet.HWAssist(0),
		rssTypes: ifnet.RSSIPv4 | ifnet.RSSTCPv4 | ifnet.RSSIPv6 | ifnet.RSSTCPv6}
	ifp, err := ifnet.New(ifnet.Config{Name: o.name, MAC: o.mac, Flags: ifnet.FlagBroadcast | ifnet.FlagMulticast,
		Capabilities: vfCaps, Enabled: vfCaps, TSO: vfTSO, Media: vfMedia, Kind: o.kind,
		BusSerial: o.serial, HasBusSerial: o.hasSerial,
		RSS: ifnet.RSSConfig{Func: ifnet.RSSFuncToeplitz, Key: vfKey, Types: f.rssTypes}}, f)
	if err != nil {
		t.Fatal(err)
	}
	ifp.SetLinkState(ifnet.LinkUp)
	f.ifp = ifp
	return f
}

func (f *fakeVF) Transmit(b *packet.Batch) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busy {
		return 0, fmt.Errorf("fakevf: ring full: %w", ifnet.ErrBusy)
	}
	n := b.Len()
	f.nsent += n
	if f.port != nil {
		for _, p := range b.Packets() {
			f.sent = append(f.sent, bytes.Clone(p.Bytes()))
		}
		f.port.Input(b) // takes every packet
		return n, nil
	}
	for _, p := range b.Packets() {
		if f.discard {
			break
		}
		f.sent = append(f.sent, bytes.Clone(p.Bytes()))
	}
	b.Free()
	return n, nil
}

func (f *fakeVF) Ioctl(req ifnet.Request) error {
	f.mu.Lock()
	hook := f.hook
	f.reqs = append(f.reqs, req.RequestName())
	f.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r := req.(type) {
	case *ifnet.GetReady:
		r.Ready = f.ready
	case *ifnet.SetFlags:
		if r.Flags&ifnet.FlagUp != 0 && f.failUp > 0 {
			f.failUp--
			return fmt.Errorf("fakevf: firmware not ready: %w", ifnet.ErrBusy)
		}
		f.ifp.SetRunning(r.Flags&ifnet.FlagUp != 0)
	case *ifnet.SetMTU:
		if f.refuseMTU > 0 && r.MTU > f.refuseMTU {
			return fmt.Errorf("fakevf: MTU %d: %w", r.MTU, ifnet.ErrInvalid)
		}
	case *ifnet.SetCapabilities:
		r.HWAssist &= f.assist
	case *ifnet.SetMAC:
		if f.refuseMAC {
			return fmt.Errorf("fakevf: MAC %v: %w", r.MAC, ifnet.ErrNotSupported)
		}
	case *ifnet.GetMedia, *ifnet.SetMedia, *ifnet.AddMulti, *ifnet.DelMulti:
	case *ifnet.GetRSSKey:
		r.Func, r.Key = ifnet.RSSFuncToeplitz, bytes.Clone(vfKey)
	case *ifnet.GetRSSHash:
		r.Func, r.Types = ifnet.RSSFuncToeplitz, f.rssTypes
	default:
		return fmt.Errorf("fakevf: %s: %w", req.RequestName(), ifnet.ErrNotSupported)
	}
	return nil
}

func (f *fakeVF) setReady(r bool) { f.mu.Lock(); f.ready = r; f.mu.Unlock() }
func (f *fakeVF) setBusy(b bool)  { f.mu.Lock(); f.busy = b; f.mu.Unlock() }
func (f *fakeVF) setHook(h func(ifnet.Request)) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeVF) sentFrames() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.sent...)
}

func (f *fakeVF) sentCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nsent
}

func (f *fakeVF) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// inject delivers frames as received by the VF's hardware.
func (f *fakeVF) inject(t testing.TB, frames ...[]byte) {
	t.Helper()
	b := packet.NewBatch(len(frames))
	for _, fr := range frames {
		p := packet.New(packet.DefaultHeadroom, len(fr))
		if err := p.SetBytes(fr); err != nil {
			t.Fatal(err)
		}
		b.Add(p)
	}
	f.ifp.Input(b)
}

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	sb strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.String()
}

// vfWorld is the harness world with a fake clock and a log.
type vfWorld struct {
	*world
	clk *kernel.FakeClock
	log *logBuf
}

type vfWorldOpts struct {
	mode      netvsc.VFMode
	wait      time.Duration
	mtu       int
	queues    int
	noSetVF   bool
	serial    uint32
	captureAf bool
	// beforeSwitch runs in the host before it applies a SWITCH_DATA_PATH
	// (netvsp.Config.BeforeSwitchPath).
	beforeSwitch func(toVF bool)
}

func newVFWorld(t testing.TB, o vfWorldOpts) *vfWorld {
	t.Helper()
	checkNoLeaks(t)
	vw := &vfWorld{clk: kernel.NewFakeClock(time.Unix(1_700_000_000, 0)), log: &logBuf{}}
	wo := worldOpts{cfg: func(c *netvsc.Config) {
		c.Clock = vw.clk
		c.Logger = slog.New(slog.NewTextHandler(vw.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.VFMode, c.VFAttachWait, c.VFCaptureAfter = o.mode, o.wait, o.captureAf
		if o.mtu != 0 {
			c.MTU = o.mtu
		}
		if o.queues > 1 {
			c.MaxQueues = o.queues
		}
	}}
	wo.hostCfg = func(c *netvsp.Config) {
		if o.queues > 1 {
			c.MaxQueues = o.queues
		}
		c.BeforeSwitchPath = o.beforeSwitch
	}
	vw.world = newWorld(t, wo)
	if !o.noSetVF {
		vw.setVF(true, o.serial)
	}
	return vw
}

// setVF makes the host offer (or withdraw) a VF and waits until hn0 has
// the association.
func (vw *vfWorld) setVF(present bool, serial uint32) {
	vw.t.Helper()
	gen := vw.dev.VFAssociation().Generation
	vw.nic.SetVF(present, serial)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		a, err := vw.dev.WaitVFAssociation(ctx, gen)
		if err != nil {
			vw.t.Fatalf("VF association: %v", err)
		}
		if a.Allocated == present {
			return
		}
		gen = a.Generation
	}
}

// waitState waits for hn0's VF plumbing to reach a state.
func (vw *vfWorld) waitState(s netvsc.VFState) netvsc.VFStatus {
	vw.t.Helper()
	var st netvsc.VFStatus
	waitFor(vw.t, "VF state "+string(s), func() bool { st = vw.dev.VFStatus(); return st.State == s })
	return st
}

// attach attaches the VF to the registry and lets the attach wait pass.
func (vw *vfWorld) attach(vf *fakeVF, want netvsc.VFState) netvsc.VFStatus {
	vw.t.Helper()
	if err := vw.reg.Attach(vf.ifp); err != nil {
		vw.t.Fatal(err)
	}
	if vw.dev.VFStatus().Mode == netvsc.VFNonTransparent {
		return vw.waitState(want)
	}
	vw.waitState(netvsc.VFWaiting)
	vw.clk.Advance(netvsc.DefaultVFAttachWait)
	return vw.waitState(want)
}

func (vw *vfWorld) hostPath() nvsp.DataPath { return vw.nic.State().DataPath }

// ifState is what the tests compare on both interfaces.
type ifState struct {
	Caps, Enabled ifnet.Cap
	Assist        ifnet.HWAssist
	TSO           ifnet.TSOLimits
	Flags         ifnet.Flags
	MTU           int
	Media         ifnet.MediaState
	Link          ifnet.LinkState
	Overrides     int
	Claimed       string
}

func stateOf(ifp *ifnet.Interface) ifState {
	owner, _ := ifp.ClaimedBy()
	return ifState{Caps: ifp.Capabilities(), Enabled: ifp.CapEnabled(), Assist: ifp.HWAssist(), TSO: ifp.TSOLimits(),
		Flags: ifp.Flags(), MTU: ifp.MTU(), Media: ifp.Media(), Link: ifp.LinkState(), Overrides: ifp.Overridden(), Claimed: owner}
}

// frame builds a unicast frame from hn0's MAC to the station (or dst).
func frame(dst net.HardwareAddr, tag byte, size int) []byte {
	f := make([]byte, size)
	copy(f, dst)
	copy(f[6:], hnMAC[:])
	f[12], f[13] = 0x08, 0x00
	f[14] = tag
	return f
}

var stationHW = net.HardwareAddr(stationMAC[:])

// checkNoLeaks fails the test if goroutines outlive it (after the world
// closed).
func checkNoLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

var _ = rndis.PacketTypePromiscuous

// minStated is the smaller of two TSO limits where 0 means "none stated".
func minStated(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// wire attaches the VF to the host's switch as the NIC's VF port: the
// switch delivers into the VF's Input, the VF transmits into the switch,
// and netvsp steers hn's unicast to it while the data path is the VF.
func (vw *vfWorld) wire(f *fakeVF) {
	vw.t.Helper()
	p, err := vw.sw.Attach(f.ifp.Name(), vfPortOf{f}, vswitch.Trunk(1))
	if err != nil {
		vw.t.Fatal(err)
	}
	f.port = p
	if err := vw.nic.SetVFPort(p); err != nil {
		vw.t.Fatal(err)
	}
}

// unwire removes the VF's switch port (the device is gone).
func (vw *vfWorld) unwire(f *fakeVF) {
	_ = vw.nic.SetVFPort(nil)
	f.mu.Lock()
	p := f.port
	f.port = nil
	f.mu.Unlock()
	if p != nil {
		p.Detach()
	}
}

type vfPortOf struct{ f *fakeVF }

func (v vfPortOf) Deliver(b *packet.Batch) { v.f.ifp.Input(b) }
