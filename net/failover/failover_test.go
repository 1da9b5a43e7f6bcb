package failover

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

var (
	nicMAC   = net.HardwareAddr{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	mcastMAC = net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}
)

// fakeNIC is a minimal ifnet driver: it counts what it transmits, records
// the ioctls it is given, follows SetFlags with FlagRunning and can be
// told to fail a request.
type fakeNIC struct {
	ifp     *ifnet.Interface
	txPkts  atomic.Int64
	txBytes atomic.Int64

	mu   sync.Mutex
	reqs []string
	fail map[string]error
}

func (d *fakeNIC) Transmit(b *packet.Batch) (int, error) {
	n := b.Len()
	d.txPkts.Add(int64(n))
	d.txBytes.Add(int64(b.Bytes()))
	b.Free()
	return n, nil
}

func (d *fakeNIC) Ioctl(req ifnet.Request) error {
	d.mu.Lock()
	d.reqs = append(d.reqs, req.RequestName())
	err := d.fail[req.RequestName()]
	d.mu.Unlock()
	if err != nil {
		return err
	}
	switch r := req.(type) {
	case *ifnet.SetFlags:
		d.ifp.SetRunning(r.Flags&ifnet.FlagUp != 0)
	case *ifnet.SetMTU, *ifnet.AddMulti, *ifnet.DelMulti, *ifnet.SetCapabilities:
	case *ifnet.GetMedia:
		r.State.Status |= ifnet.MediaActive
		r.State.Active = ifnet.Media{Type: ifnet.MediaEthernet, Speed: uint64(len(d.ifp.Name())) * 1e9}
	default:
		return fmt.Errorf("fake: %w", ifnet.ErrNotSupported)
	}
	return nil
}

func (d *fakeNIC) failOn(name string, err error) {
	d.mu.Lock()
	if d.fail == nil {
		d.fail = map[string]error{}
	}
	d.fail[name] = err
	d.mu.Unlock()
}

func (d *fakeNIC) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.reqs)
}

type nicOpts struct {
	caps, enabled ifnet.Cap
	tso           ifnet.TSOLimits
	mac           net.HardwareAddr
}

func newNIC(t testing.TB, reg *ifnet.Registry, name string, kind ifnet.Kind, o nicOpts) *fakeNIC {
	t.Helper()
	if o.mac == nil {
		o.mac = nicMAC
	}
	d := &fakeNIC{}
	ifp, err := ifnet.New(ifnet.Config{Name: name, MAC: o.mac, Kind: kind, MaxMTU: 9000,
		Flags: ifnet.FlagBroadcast | ifnet.FlagMulticast, Capabilities: o.caps, Enabled: o.enabled, TSO: o.tso}, d)
	if err != nil {
		t.Fatal(err)
	}
	d.ifp = ifp
	ifp.SetLinkState(ifnet.LinkUp)
	if reg != nil {
		if err := reg.Attach(ifp); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// eventually polls cond until it holds (registry events are asynchronous).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var testPool = packet.MustPool(packet.PoolConfig{})

func batchOf(t testing.TB, n int, size int) *packet.Batch {
	b := packet.NewBatch(n)
	if testPool.GetBatch(b, n) != n {
		t.Fatal("pool empty")
	}
	for _, p := range b.Packets() {
		if err := p.SetBytes(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

type rigT struct {
	reg     *ifnet.Registry
	hn, vf  *fakeNIC
	f       *Failover
	agg     *ifnet.Interface
	gotIn   atomic.Int64
	rcvIf   atomic.Uint32
	inBytes atomic.Int64
}

// newRig: hn (synthetic) and the VF attached, then the failover, which
// finds both; the aggregate is up.
func newRig(t *testing.T, vfOpts, hnOpts nicOpts) *rigT {
	t.Helper()
	r := &rigT{reg: ifnet.NewRegistry()}
	t.Cleanup(func() { _ = r.reg.Close() })
	r.hn = newNIC(t, r.reg, "hn0", ifnet.KindSynthetic, hnOpts)
	r.vf = newNIC(t, r.reg, "mce0", ifnet.KindEthernet, vfOpts)
	f, err := New(Config{Name: "failover0", MAC: nicMAC, Registry: r.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	r.f, r.agg = f, f.Interface()
	if f.Member(Primary) != r.vf.ifp || f.Member(Standby) != r.hn.ifp {
		t.Fatalf("members %v %v", f.Member(Primary), f.Member(Standby))
	}
	r.agg.SetInput(func(ifp *ifnet.Interface, b *packet.Batch) {
		r.gotIn.Add(int64(b.Len()))
		r.inBytes.Add(int64(b.Bytes()))
		for _, p := range b.Packets() {
			r.rcvIf.Store(p.Meta.RcvIf)
		}
		b.Free()
	})
	if err := r.agg.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rigT) send(t *testing.T, n int) error {
	t.Helper()
	b := batchOf(t, n, 100)
	_, err := r.agg.Transmit(b)
	b.Free()
	return err
}

func TestMembersJoinAndKind(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	if r.agg.Kind() != ifnet.KindAggregate || r.agg.MAC().String() != nicMAC.String() {
		t.Fatalf("aggregate kind %v MAC %v", r.agg.Kind(), r.agg.MAC())
	}
	// Joining members were claimed and brought up with the aggregate.
	for _, n := range []*fakeNIC{r.hn, r.vf} {
		if owner, ok := n.ifp.ClaimedBy(); !ok || owner != "failover:failover0" {
			t.Fatalf("%s claimed by %q", n.ifp, owner)
		}
		if n.ifp.Flags()&(ifnet.FlagUp|ifnet.FlagRunning) != ifnet.FlagUp|ifnet.FlagRunning {
			t.Fatalf("%s flags %v", n.ifp, n.ifp.Flags())
		}
		if err := n.ifp.Ioctl(&ifnet.SetMTU{MTU: 1400}); !errors.Is(err, ifnet.ErrClaimed) {
			t.Fatalf("direct ioctl on %s: %v", n.ifp, err)
		}
		if n.ifp.Overridden() != 1 {
			t.Fatalf("%s has %d input overrides", n.ifp, n.ifp.Overridden())
		}
	}
	// Interfaces of the wrong kind or MAC are left alone.
	vlan := newNIC(t, r.reg, "vlan0", ifnet.KindVLAN, nicOpts{})
	other := newNIC(t, r.reg, "mce1", ifnet.KindEthernet, nicOpts{mac: otherMAC})
	r.f.Remove(r.vf.ifp)
	eth2 := newNIC(t, r.reg, "mce2", ifnet.KindEthernet, nicOpts{})
	eventually(t, "mce2 joins the free primary slot", func() bool { return r.f.Member(Primary) == eth2.ifp })
	for _, n := range []*fakeNIC{vlan, other, r.vf} {
		if _, claimed := n.ifp.ClaimedBy(); claimed || n.ifp.Overridden() != 0 {
			t.Fatalf("%s was touched", n.ifp)
		}
	}
}

func TestTransmitFollowsMembers(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	expect := func(what string, vf, hn int64) {
		t.Helper()
		if r.vf.txPkts.Load() != vf || r.hn.txPkts.Load() != hn {
			t.Fatalf("%s: VF sent %d, hn %d; want %d, %d", what, r.vf.txPkts.Load(), r.hn.txPkts.Load(), vf, hn)
		}
	}
	if err := r.send(t, 4); err != nil {
		t.Fatal(err)
	}
	expect("primary up", 4, 0)
	// hn pretends link down while the VF is active (§2.2); no effect.
	r.hn.ifp.SetLinkState(ifnet.LinkDown)
	r.send(t, 1)
	expect("standby link down", 5, 0)
	r.hn.ifp.SetLinkState(ifnet.LinkUp)
	r.vf.ifp.SetLinkState(ifnet.LinkDown)
	r.send(t, 2)
	expect("primary link down", 5, 2)
	r.vf.ifp.SetLinkState(ifnet.LinkUp)
	r.send(t, 1)
	expect("primary link back", 6, 2)
	r.vf.ifp.SetRunning(false)
	r.send(t, 1)
	expect("primary not running", 6, 3)
	r.vf.ifp.SetRunning(true)
	r.send(t, 1)
	expect("primary running", 7, 3)
	// Both gone: ErrDown, nothing sent.
	r.vf.ifp.SetLinkState(ifnet.LinkDown)
	r.hn.ifp.SetLinkState(ifnet.LinkDown)
	if err := r.send(t, 3); !errors.Is(err, ifnet.ErrDown) {
		t.Fatalf("no member: %v", err)
	}
	expect("no member", 7, 3)
	r.vf.ifp.SetLinkState(ifnet.LinkUp)
	r.hn.ifp.SetLinkState(ifnet.LinkUp)
	// The VF detaches (hot removal): hn carries everything.
	if err := r.reg.Detach(r.vf.ifp); err != nil {
		t.Fatal(err)
	}
	r.send(t, 2)
	expect("VF detached", 7, 5)
	eventually(t, "the detached VF leaves", func() bool { return r.f.Member(Primary) == nil })
	if _, claimed := r.vf.ifp.ClaimedBy(); claimed || r.vf.ifp.Overridden() != 0 {
		t.Fatal("detached VF still claimed or overridden")
	}
	// It comes back (same MAC): re-added as primary, brought up, used.
	vf2 := newNIC(t, r.reg, "mce1", ifnet.KindEthernet, nicOpts{})
	eventually(t, "the new VF joins", func() bool { return r.f.Member(Primary) == vf2.ifp })
	if vf2.ifp.Flags()&ifnet.FlagUp == 0 {
		t.Fatal("rejoined VF not brought up")
	}
	r.send(t, 3)
	if vf2.txPkts.Load() != 3 || r.hn.txPkts.Load() != 5 {
		t.Fatalf("after re-add: VF %d, hn %d", vf2.txPkts.Load(), r.hn.txPkts.Load())
	}
	s := r.f.Stats()
	if s.Primary.TxPackets != 10 || s.Standby.TxPackets != 5 || s.Primary.TxBytes != 1000 ||
		s.Primary.Joins != 2 || s.Primary.Leaves != 1 || s.Primary.Name != "mce1" || !s.Primary.Active ||
		s.TxNoMember != 3 || s.Failovers != 6 {
		t.Fatalf("stats %+v", s)
	}
	if as := r.agg.Stats(); as.OutPackets != 15 {
		t.Fatalf("aggregate stats %+v", as)
	}
}

func TestInputRelabelled(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	for _, n := range []*fakeNIC{r.vf, r.hn} {
		b := batchOf(t, 3, 60)
		n.ifp.Input(b)
		if b.Len() != 0 {
			t.Fatal("input left packets in the batch")
		}
	}
	if r.gotIn.Load() != 6 || r.rcvIf.Load() != r.agg.Index() || r.inBytes.Load() != 360 {
		t.Fatalf("aggregate input got %d packets, rcvif %d (aggregate %d)", r.gotIn.Load(), r.rcvIf.Load(), r.agg.Index())
	}
	s := r.f.Stats()
	if s.Primary.RxPackets != 3 || s.Standby.RxPackets != 3 || s.Primary.RxBytes != 180 {
		t.Fatalf("stats %+v", s)
	}
	if as := r.agg.Stats(); as.InPackets != 6 {
		t.Fatalf("aggregate stats %+v", as)
	}
	// A member given back no longer feeds the aggregate.
	if err := r.f.Remove(r.hn.ifp); err != nil {
		t.Fatal(err)
	}
	if err := r.f.Remove(r.hn.ifp); !errors.Is(err, ErrNotMember) {
		t.Fatalf("second remove: %v", err)
	}
	var direct atomic.Int64
	r.hn.ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) { direct.Add(int64(b.Len())); b.Free() })
	r.hn.ifp.Input(batchOf(t, 2, 60))
	if direct.Load() != 2 || r.gotIn.Load() != 6 {
		t.Fatalf("after remove: hn input %d, aggregate %d", direct.Load(), r.gotIn.Load())
	}
}

func TestIoctlsReachBoth(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	if err := r.agg.Ioctl(&ifnet.SetMTU{MTU: 4000}); err != nil {
		t.Fatal(err)
	}
	if err := r.agg.Ioctl(&ifnet.AddMulti{Addr: mcastMAC}); err != nil {
		t.Fatal(err)
	}
	if err := r.agg.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagPromisc}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*fakeNIC{r.vf, r.hn} {
		if n.ifp.MTU() != 4000 || len(n.ifp.Multicast()) != 1 || n.ifp.Flags()&ifnet.FlagPromisc == 0 {
			t.Fatalf("%s: MTU %d multicast %v flags %v", n.ifp, n.ifp.MTU(), n.ifp.Multicast(), n.ifp.Flags())
		}
	}
	// A failing member undoes the other: the VF's MTU is rolled back.
	r.hn.failOn("SetMTU", fmt.Errorf("fake: %w", ifnet.ErrInvalid))
	if err := r.agg.Ioctl(&ifnet.SetMTU{MTU: 6000}); !errors.Is(err, ifnet.ErrInvalid) {
		t.Fatalf("failing SetMTU: %v", err)
	}
	if r.vf.ifp.MTU() != 4000 || r.agg.MTU() != 4000 || r.hn.ifp.MTU() != 4000 {
		t.Fatalf("after rollback: VF %d agg %d hn %d", r.vf.ifp.MTU(), r.agg.MTU(), r.hn.ifp.MTU())
	}
	if got := r.vf.requests(); slices.Compare(got[len(got)-2:], []string{"SetMTU", "SetMTU"}) != 0 {
		t.Fatalf("VF requests %v", got)
	}
	if err := r.agg.Ioctl(&ifnet.DelMulti{Addr: mcastMAC}); err != nil {
		t.Fatal(err)
	}
	if len(r.vf.ifp.Multicast())+len(r.hn.ifp.Multicast()) != 0 {
		t.Fatal("multicast not removed from both")
	}
	// A VF that joins later gets the aggregate's configuration.
	r.agg.Ioctl(&ifnet.AddMulti{Addr: mcastMAC})
	r.reg.Detach(r.vf.ifp)
	eventually(t, "VF leaves", func() bool { return r.f.Member(Primary) == nil })
	vf2 := newNIC(t, r.reg, "mce1", ifnet.KindEthernet, nicOpts{})
	eventually(t, "VF rejoins", func() bool { return r.f.Member(Primary) == vf2.ifp })
	if vf2.ifp.MTU() != 4000 || len(vf2.ifp.Multicast()) != 1 || vf2.ifp.Flags()&ifnet.UserFlags != ifnet.FlagUp|ifnet.FlagPromisc {
		t.Fatalf("rejoined VF: MTU %d multicast %v flags %v", vf2.ifp.MTU(), vf2.ifp.Multicast(), vf2.ifp.Flags())
	}
	// GetMedia answers for the transmitting member; SetMAC is refused.
	gm := &ifnet.GetMedia{}
	if err := r.agg.Ioctl(gm); err != nil || gm.State.Active.Speed != 4e9 {
		t.Fatalf("media %+v %v", gm.State, err)
	}
	if err := r.agg.Ioctl(&ifnet.SetMAC{MAC: otherMAC}); !errors.Is(err, ifnet.ErrNotSupported) {
		t.Fatalf("SetMAC: %v", err)
	}
}

func TestCapabilitiesAndLink(t *testing.T) {
	full := ifnet.CapHWCsum | ifnet.CapHWCsumIPv6 | ifnet.CapTSO | ifnet.CapLRO | ifnet.CapJumboMTU
	r := newRig(t,
		nicOpts{caps: full, enabled: full, tso: ifnet.TSOLimits{MaxBytes: 65536, MaxSegments: 32}},
		nicOpts{caps: ifnet.CapHWCsum | ifnet.CapTSO4, enabled: ifnet.CapHWCsum | ifnet.CapTSO4,
			tso: ifnet.TSOLimits{MaxBytes: 62780, MaxSegments: 64, MaxSegmentSize: 4096}})
	want := ifnet.CapHWCsum | ifnet.CapTSO4
	if r.agg.Capabilities() != want || r.agg.CapEnabled() != want || r.agg.HWAssist() != ifnet.DeriveHWAssist(want) {
		t.Fatalf("caps %v enabled %v assist %v", r.agg.Capabilities(), r.agg.CapEnabled(), r.agg.HWAssist())
	}
	if tl := r.agg.TSOLimits(); tl != (ifnet.TSOLimits{MaxBytes: 62780, MaxSegments: 32, MaxSegmentSize: 4096}) {
		t.Fatalf("TSO %+v", tl)
	}
	// Turning TSO off reaches both.
	if err := r.agg.Ioctl(&ifnet.SetCapabilities{Enable: ifnet.CapHWCsum}); err != nil {
		t.Fatal(err)
	}
	if r.vf.ifp.CapEnabled()&ifnet.CapTSO4 != 0 || r.hn.ifp.CapEnabled() != ifnet.CapHWCsum || r.agg.CapEnabled() != ifnet.CapHWCsum {
		t.Fatalf("VF %v hn %v agg %v", r.vf.ifp.CapEnabled(), r.hn.ifp.CapEnabled(), r.agg.CapEnabled())
	}
	// Link: up while any member has link.
	if r.agg.LinkState() != ifnet.LinkUp {
		t.Fatal("aggregate link down")
	}
	r.vf.ifp.SetLinkState(ifnet.LinkDown)
	r.hn.ifp.SetLinkState(ifnet.LinkDown)
	eventually(t, "aggregate link down", func() bool { return r.agg.LinkState() == ifnet.LinkDown })
	r.hn.ifp.SetLinkState(ifnet.LinkUp)
	eventually(t, "aggregate link up", func() bool { return r.agg.LinkState() == ifnet.LinkUp })
	// The VF leaves: capabilities are hn's alone.
	r.reg.Detach(r.vf.ifp)
	eventually(t, "caps follow hn", func() bool {
		return r.agg.Capabilities() == ifnet.CapHWCsum|ifnet.CapTSO4 && r.agg.TSOLimits().MaxSegments == 64
	})
}

func TestManualAndErrors(t *testing.T) {
	reg := ifnet.NewRegistry()
	defer reg.Close()
	if _, err := New(Config{Name: "f", MAC: mcastMAC, Registry: reg}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("multicast MAC: %v", err)
	}
	hn := newNIC(t, reg, "hn0", ifnet.KindSynthetic, nicOpts{})
	vf := newNIC(t, reg, "mce0", ifnet.KindEthernet, nicOpts{})
	other := newNIC(t, reg, "mce1", ifnet.KindEthernet, nicOpts{mac: otherMAC})
	f, err := New(Config{Name: "lagg0", MAC: nicMAC, Registry: reg, Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.Member(Primary) != nil || f.Member(Standby) != nil {
		t.Fatal("manual failover enslaved on its own")
	}
	if err := f.Add(other.ifp, Primary); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other MAC: %v", err)
	}
	if err := f.Add(f.Interface(), Primary); !errors.Is(err, ErrMismatch) {
		t.Fatalf("self: %v", err)
	}
	if err := f.Add(vf.ifp, Primary); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(hn.ifp, Primary); !errors.Is(err, ErrSlotTaken) {
		t.Fatalf("taken slot: %v", err)
	}
	if err := f.Add(vf.ifp, Standby); !errors.Is(err, ErrSlotTaken) {
		t.Fatalf("same interface twice: %v", err)
	}
	// A member claimed by someone else cannot join.
	c, _ := hn.ifp.Claim("hn-transparent")
	if err := f.Add(hn.ifp, Standby); !errors.Is(err, ifnet.ErrClaimed) {
		t.Fatalf("claimed standby: %v", err)
	}
	c.Release()
	// A member whose configuration fails is given back untouched.
	if err := f.Interface().Ioctl(&ifnet.SetMTU{MTU: 3000}); err != nil {
		t.Fatal(err)
	}
	hn.failOn("SetMTU", fmt.Errorf("fake: %w", ifnet.ErrBusy))
	if err := f.Add(hn.ifp, Standby); !errors.Is(err, ifnet.ErrBusy) {
		t.Fatalf("failing join: %v", err)
	}
	if _, claimed := hn.ifp.ClaimedBy(); claimed || hn.ifp.Overridden() != 0 {
		t.Fatal("failed member left claimed")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(hn.ifp, Standby); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if _, claimed := vf.ifp.ClaimedBy(); claimed || !f.Interface().Detached() {
		t.Fatal("Close left the VF claimed or the aggregate attached")
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		reg := ifnet.NewRegistry()
		newNIC(t, reg, "hn0", ifnet.KindSynthetic, nicOpts{})
		f, err := New(Config{Name: "f0", MAC: nicMAC, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		vf := newNIC(t, reg, "mce0", ifnet.KindEthernet, nicOpts{})
		eventually(t, "VF joins", func() bool { return f.Member(Primary) == vf.ifp })
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		reg.Close()
	}
	eventually(t, "goroutines to finish", func() bool { return runtime.NumGoroutine() <= before })
}

// Members flapping while batches flow: every batch is sent by exactly one
// member or refused as a whole.
func TestConcurrentFlap(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			r.vf.ifp.SetLinkState([]ifnet.LinkState{ifnet.LinkDown, ifnet.LinkUp}[i%2])
		}
	})
	sent := int64(0)
	for range 2000 {
		b := batchOf(t, 8, 64)
		n, _ := r.agg.Transmit(b)
		sent += int64(n)
		b.Free()
	}
	stop.Store(true)
	wg.Wait()
	s := r.f.Stats()
	if got := r.vf.txPkts.Load() + r.hn.txPkts.Load(); got != sent || uint64(got) != s.Primary.TxPackets+s.Standby.TxPackets {
		t.Fatalf("members sent %d, aggregate counted %d + %d, accepted %d", got, s.Primary.TxPackets, s.Standby.TxPackets, sent)
	}
}

// The VF detaches and comes back (hot removal, servicing) while batches
// flow: nothing is lost or counted twice, and each new VF rejoins.
func TestConcurrentReattach(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		b := packet.NewBatch(8)
		for !stop.Load() {
			testPool.GetBatch(b, 8)
			n, _ := r.agg.Transmit(b)
			sent.Add(int64(n))
			b.Free()
		}
	})
	vfs := []*fakeNIC{r.vf}
	for i := range 20 {
		cur := vfs[len(vfs)-1]
		if err := r.reg.Detach(cur.ifp); err != nil {
			t.Fatal(err)
		}
		eventually(t, "VF leaves", func() bool { return r.f.Member(Primary) != cur.ifp })
		nv := newNIC(t, r.reg, fmt.Sprintf("mce%d", i+1), ifnet.KindEthernet, nicOpts{})
		eventually(t, "VF rejoins", func() bool { return r.f.Member(Primary) == nv.ifp })
		vfs = append(vfs, nv)
	}
	stop.Store(true)
	wg.Wait()
	total := r.hn.txPkts.Load()
	for _, v := range vfs {
		total += v.txPkts.Load()
	}
	s := r.f.Stats()
	if total != sent.Load() || uint64(total) != s.Primary.TxPackets+s.Standby.TxPackets || s.Primary.Joins != 21 || s.Primary.Leaves != 20 {
		t.Fatalf("sent %d, members got %d, stats %+v", sent.Load(), total, s)
	}
}
