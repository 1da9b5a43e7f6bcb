package vswitch

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
)

var (
	macA = MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = MAC{0x02, 0, 0, 0, 0, 0xb}
	macC = MAC{0x02, 0, 0, 0, 0, 0xc}
	mcst = MAC{0x01, 0x00, 0x5e, 0, 0, 1}
)

func frame(dst, src MAC, payload string) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x88b5)
	return append(f, payload...)
}

// recorder is a Port that keeps what it gets.
type recorder struct {
	mu      sync.Mutex
	frames  []Frame
	batches int
}

func (r *recorder) Deliver(b *packet.Batch) {
	r.mu.Lock()
	r.batches++
	for _, p := range b.Packets() {
		r.frames = append(r.frames, Frame{Data: append([]byte(nil), p.Bytes()...), Meta: p.Meta})
	}
	r.mu.Unlock()
	b.Free()
}

func (r *recorder) take() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.frames
	r.frames = nil
	return f
}

var testPool = packet.MustPool(packet.PoolConfig{})

func send(t testing.TB, p *SwitchPort, meta packet.Meta, frames ...[]byte) {
	t.Helper()
	b := packet.NewBatch(len(frames))
	for _, f := range frames {
		pk := testPool.Get()
		if err := pk.SetBytes(f); err != nil {
			t.Fatal(err)
		}
		pk.Meta = meta
		b.Add(pk)
	}
	p.Input(b)
	if b.Len() != 0 {
		t.Fatalf("Input left %d packets in the batch", b.Len())
	}
}

type rig struct {
	sw    *Switch
	clock *kernel.FakeClock
	rec   []*recorder
	port  []*SwitchPort
}

func newRig(t *testing.T, vlans ...VLANConfig) *rig {
	t.Helper()
	clock := kernel.NewFakeClock(time.Unix(1000, 0))
	r := &rig{clock: clock, sw: New(Config{Clock: clock, NoAger: true})}
	t.Cleanup(r.sw.Close)
	for i, vc := range vlans {
		rec := &recorder{}
		p, err := r.sw.Attach(string(rune('a'+i)), rec, vc)
		if err != nil {
			t.Fatal(err)
		}
		r.rec = append(r.rec, rec)
		r.port = append(r.port, p)
	}
	return r
}

func (r *rig) counts() []int {
	n := make([]int, len(r.rec))
	for i, rec := range r.rec {
		n[i] = len(rec.take())
	}
	return n
}

func eqInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLearnAndForward(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{})
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "1"))
	if got := r.counts(); !eqInts(got, []int{0, 1, 1}) {
		t.Fatalf("unknown unicast: deliveries %v, want flood to b and c", got)
	}
	send(t, r.port[1], packet.Meta{}, frame(macA, macB, "2"))
	if got := r.counts(); !eqInts(got, []int{1, 0, 0}) {
		t.Fatalf("known unicast: deliveries %v", got)
	}
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "3"), frame(macB, macA, "4"))
	fb := r.rec[1].take()
	if len(fb) != 2 || string(fb[0].Data[14:]) != "3" || string(fb[1].Data[14:]) != "4" {
		t.Fatalf("b got %v", fb)
	}
	if got := r.counts(); !eqInts(got, []int{0, 0, 0}) {
		t.Fatalf("stray deliveries %v", got)
	}
	tab := r.sw.Table()
	if len(tab) != 2 || tab[0].MAC != macA || tab[0].Port != r.port[0] || tab[1].MAC != macB || tab[1].Port != r.port[1] || tab[0].VLAN != DefaultVLAN {
		t.Fatalf("table %+v", tab)
	}
	st := r.sw.Stats()
	if st.Learned != 2 || st.Flooded != 1 || st.Switched != 3 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
	pa, pb, pc := r.port[0].Stats(), r.port[1].Stats(), r.port[2].Stats()
	if pa.RxFrames != 3 || pa.RxBytes != 3*15 || pa.TxFrames != 1 || pb.TxFrames != 3 || pb.Flooded != 1 || pc.TxFrames != 1 || pc.TxBytes != 15 {
		t.Fatalf("port stats a=%+v b=%+v c=%+v", pa, pb, pc)
	}
	// Moving A to port c.
	send(t, r.port[2], packet.Meta{}, frame(macB, macA, "5"))
	if p, _ := r.sw.Lookup(macA, DefaultVLAN); p != r.port[2] || r.sw.Stats().Moves != 1 {
		t.Fatalf("after move: A on %v, moves %d", p, r.sw.Stats().Moves)
	}
}

func TestFloodBroadcastMulticast(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{}, VLANConfig{})
	send(t, r.port[1], packet.Meta{}, frame(Broadcast, macB, "b"), frame(mcst, macB, "m"))
	if got := r.counts(); !eqInts(got, []int{2, 0, 2, 2}) {
		t.Fatalf("deliveries %v", got)
	}
	if r.rec[0].batches != 1 {
		t.Fatalf("two flooded frames reached port a in %d batches, want 1", r.rec[0].batches)
	}
	if st := r.sw.Stats(); st.Flooded != 2 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHairpinRuntBadSource(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{})
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "x"))
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "x")) // B unknown yet: flooded again
	send(t, r.port[1], packet.Meta{}, frame(Broadcast, macB, "x"))
	r.counts()
	// B moves next to A behind port a (a hub): A to B is now hairpin.
	send(t, r.port[0], packet.Meta{}, frame(macA, macB, "x"))
	send(t, r.port[0], packet.Meta{}, []byte{1, 2, 3}, frame(macB, Broadcast, "x"), frame(macB, MAC{}, "x"))
	if got := r.counts(); !eqInts(got, []int{0, 0}) {
		t.Fatalf("deliveries %v", got)
	}
	d := r.port[0].Stats().Drops
	if d[DropHairpin] != 1 || d[DropRunt] != 1 || d[DropBadSource] != 2 {
		t.Fatalf("drops %v", d)
	}
}

func TestAging(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{})
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "x"))
	r.sw.AddStatic(macC, DefaultVLAN, r.port[2])
	r.clock.Advance(DefaultAgingTime - time.Second)
	if _, ok := r.sw.Lookup(macA, DefaultVLAN); !ok {
		t.Fatal("A aged too early")
	}
	send(t, r.port[0], packet.Meta{}, frame(macC, macA, "refresh"))
	r.clock.Advance(DefaultAgingTime - time.Second)
	if _, ok := r.sw.Lookup(macA, DefaultVLAN); !ok {
		t.Fatal("refreshed A aged")
	}
	r.clock.Advance(2 * time.Second)
	if _, ok := r.sw.Lookup(macA, DefaultVLAN); ok {
		t.Fatal("A did not age")
	}
	r.counts()
	send(t, r.port[1], packet.Meta{}, frame(macA, macB, "x"))
	if got := r.counts(); !eqInts(got, []int{1, 0, 1}) {
		t.Fatalf("aged destination not flooded: %v", got)
	}
	// A is still in the table (aged, not swept); B was just learned.
	if n := r.sw.Age(); n != 1 {
		t.Fatalf("Age removed %d, want 1", n)
	}
	tab := r.sw.Table()
	if len(tab) != 2 || tab[0].MAC != macB || tab[1].MAC != macC || !tab[1].Static {
		t.Fatalf("table %+v", tab)
	}
	if r.sw.Stats().Aged != 1 {
		t.Fatalf("stats %+v", r.sw.Stats())
	}
}

func TestAgerGoroutine(t *testing.T) {
	clock := kernel.NewFakeClock(time.Unix(1000, 0))
	sw := New(Config{Clock: clock, AgingTime: 10 * time.Second})
	defer sw.Close()
	p, _ := sw.Attach("a", &Sink{}, VLANConfig{})
	if _, err := sw.Attach("b", &Sink{}, VLANConfig{}); err != nil {
		t.Fatal(err)
	}
	send(t, p, packet.Meta{}, frame(Broadcast, macA, "x"))
	deadline := time.Now().Add(5 * time.Second)
	for sw.Stats().Entries != 0 {
		if time.Now().After(deadline) {
			t.Fatal("ager did not remove the entry")
		}
		clock.WaitForTimers(1)
		clock.Advance(5 * time.Second)
		time.Sleep(time.Millisecond)
	}
}

func TestLinkDownAndDetach(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{})
	send(t, r.port[1], packet.Meta{}, frame(Broadcast, macB, "x"))
	r.counts()
	r.port[1].SetLink(false)
	if _, ok := r.sw.Lookup(macB, DefaultVLAN); ok {
		t.Fatal("link down kept B's address")
	}
	r.sw.AddStatic(macB, DefaultVLAN, r.port[1])
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "x"), frame(Broadcast, macA, "x"))
	send(t, r.port[1], packet.Meta{}, frame(Broadcast, macB, "x"))
	if got := r.counts(); !eqInts(got, []int{0, 0, 1}) {
		t.Fatalf("deliveries %v", got)
	}
	if d := r.port[1].Stats().Drops[DropLinkDown]; d != 2 {
		t.Fatalf("link-down drops %d, want 2 (one egress, one ingress)", d)
	}
	r.port[1].SetLink(true)
	r.port[2].Detach()
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "x"))
	if got := r.counts(); !eqInts(got, []int{0, 1, 0}) {
		t.Fatalf("after detach: %v", got)
	}
	if len(r.sw.Ports()) != 2 {
		t.Fatal("detached port still listed")
	}
	r.port[1].Detach()
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "x"))
	if d := r.port[0].Stats().Drops[DropNoRoute]; d != 1 {
		t.Fatalf("no-route drops %d", d)
	}
}

func TestTableFull(t *testing.T) {
	clock := kernel.NewFakeClock(time.Unix(0, 0))
	sw := New(Config{Clock: clock, MaxEntries: 2, NoAger: true})
	a, _ := sw.Attach("a", &Sink{}, VLANConfig{})
	sw.Attach("b", &Sink{}, VLANConfig{})
	send(t, a, packet.Meta{}, frame(Broadcast, macA, ""), frame(Broadcast, macB, ""), frame(Broadcast, macC, ""))
	if st := sw.Stats(); st.Entries != 2 || st.TableFull != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLargeFloodCopy(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{})
	big := frame(Broadcast, macA, string(make([]byte, 9000)))
	pk := packet.New(0, len(big))
	pk.SetBytes(big)
	b := packet.NewBatch(1)
	b.Add(pk)
	r.port[0].Input(b)
	for i, rec := range r.rec[1:] {
		f := rec.take()
		if len(f) != 1 || len(f[0].Data) != len(big) {
			t.Fatalf("port %d got %d frames", i+1, len(f))
		}
	}
}

func TestConfigErrors(t *testing.T) {
	sw := New(Config{NoAger: true})
	for _, vc := range []VLANConfig{Access(4095), Trunk(5000), Trunk(1, 0), Trunk(1, 4095)} {
		if _, err := sw.Attach("x", &Sink{}, vc); err == nil {
			t.Errorf("%+v accepted", vc)
		}
	}
	sw.Close()
	if _, err := sw.Attach("x", &Sink{}, VLANConfig{}); err == nil {
		t.Error("attach after close")
	}
	if DropVLAN.String() != "vlan" || DropReason(99).String() == "" {
		t.Error("drop names")
	}
}
