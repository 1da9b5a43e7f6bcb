package vswitch

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

// steerRig: port 0 a remote station (macA), port 1 the synthetic NIC and
// port 2 the VF of the guest NIC macB, steered.
type steerRig struct {
	*rig
	st *Steering
}

func newSteerRig(t *testing.T) *steerRig {
	t.Helper()
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{})
	st, err := r.sw.Steer(macB, r.port[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetVFPort(r.port[2]); err != nil {
		t.Fatal(err)
	}
	return &steerRig{rig: r, st: st}
}

func (r *steerRig) expect(t *testing.T, what string, want ...int) {
	t.Helper()
	if got := r.counts(); !eqInts(got, want) {
		t.Fatalf("%s: deliveries %v, want %v", what, got, want)
	}
}

func TestSteeringForwarding(t *testing.T) {
	r := newSteerRig(t)
	// Path synthetic: unicast to the guest reaches the synthetic port.
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "1"))
	r.expect(t, "synthetic path", 0, 1, 0)
	if p, _ := r.sw.Lookup(macB, DefaultVLAN); p != r.port[1] {
		t.Fatalf("lookup %v", p)
	}
	if !r.st.SetPath(true) || r.st.SetPath(true) || !r.st.Active() {
		t.Fatal("SetPath(true) did not change the path once")
	}
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "2"), frame(macB, macA, "3"))
	vf := r.rec[2].take()
	if len(vf) != 2 || string(vf[0].Data[14:]) != "2" || string(vf[1].Data[14:]) != "3" {
		t.Fatalf("VF got %v", vf)
	}
	r.expect(t, "VF path", 0, 0, 0)
	if p, _ := r.sw.Lookup(macB, DefaultVLAN); p != r.port[2] {
		t.Fatalf("lookup %v", p)
	}
	// Broadcast and multicast stay on the synthetic port.
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "b"), frame(mcst, macA, "m"))
	r.expect(t, "broadcast/multicast on VF path", 0, 2, 0)
	// Unknown unicast floods, but never into the VF.
	send(t, r.port[0], packet.Meta{}, frame(macC, macA, "u"))
	r.expect(t, "unknown unicast", 0, 1, 0)
	// The VF's link goes down: unicast falls back to synthetic.
	r.port[2].SetLink(false)
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "4"))
	r.expect(t, "VF link down", 0, 1, 0)
	r.port[2].SetLink(true)
	// Switch back.
	if !r.st.SetPath(false) {
		t.Fatal("SetPath(false) did not change the path")
	}
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "5"))
	r.expect(t, "after switch-back", 0, 1, 0)
	// Path VF again, then the VF port is removed: synthetic.
	r.st.SetPath(true)
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "6"))
	r.expect(t, "VF again", 0, 0, 1)
	r.port[2].Detach()
	if r.st.VFPort() != nil || r.st.Active() {
		t.Fatal("detached VF still bound")
	}
	send(t, r.port[0], packet.Meta{}, frame(macB, macA, "7"))
	r.expect(t, "after VF removal", 0, 1, 0)
	s := r.st.Stats()
	want := SteeringStats{Synthetic: 7, VF: 3, SteeredVF: 3, Fallbacks: 2, Switches: 3}
	if s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
}

func TestSteeringGuestTransmit(t *testing.T) {
	r := newSteerRig(t)
	r.st.SetPath(true)
	// Frames the guest sends on either path enter the switch; a broadcast
	// is not reflected to the other member.
	send(t, r.port[2], packet.Meta{}, frame(Broadcast, macB, "vf-b"))
	r.expect(t, "broadcast from VF", 1, 0, 0)
	send(t, r.port[1], packet.Meta{}, frame(Broadcast, macB, "syn-b"))
	r.expect(t, "broadcast from synthetic", 1, 0, 0)
	send(t, r.port[0], packet.Meta{}, frame(macC, macA, "learn-a"))
	r.expect(t, "flood from a", 0, 1, 0)
	send(t, r.port[2], packet.Meta{}, frame(macA, macB, "vf-u"))
	send(t, r.port[1], packet.Meta{}, frame(macA, macB, "syn-u"))
	r.expect(t, "unicast from both paths", 2, 0, 0)
	// A member sending to its own address is a hairpin.
	send(t, r.port[2], packet.Meta{}, frame(macB, macB, "self"))
	r.expect(t, "hairpin", 0, 0, 0)
	if r.port[2].Stats().Drops[DropHairpin] != 1 {
		t.Fatalf("VF port stats %+v", r.port[2].Stats())
	}
	// The shared address is never learned (it would flap).
	for _, e := range r.sw.Table() {
		if e.MAC == macB {
			t.Fatalf("steered address learned on %s", e.Port.Name())
		}
	}
	if r.sw.Stats().Moves != 0 {
		t.Fatalf("moves %d", r.sw.Stats().Moves)
	}
}

func TestSteeringVLAN(t *testing.T) {
	r := newRig(t, Trunk(0, 5), Access(5), Access(6))
	st, err := r.sw.Steer(macB, r.port[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetVFPort(r.port[2]); err != nil {
		t.Fatal(err)
	}
	st.SetPath(true)
	var m packet.Meta
	m.SetVLAN(5)
	send(t, r.port[0], m, frame(macB, macA, "v5"))
	if got := r.counts(); !eqInts(got, []int{0, 1, 0}) {
		t.Fatalf("VF outside the VLAN: deliveries %v", got)
	}
	if st.Stats().Fallbacks != 1 {
		t.Fatalf("stats %+v", st.Stats())
	}
}

func TestSteeringErrors(t *testing.T) {
	r := newRig(t, VLANConfig{}, VLANConfig{}, VLANConfig{})
	st, err := r.sw.Steer(macB, r.port[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sw.Steer(macB, r.port[0]); !errors.Is(err, ErrSteered) {
		t.Fatalf("second steering of the address: %v", err)
	}
	if _, err := r.sw.Steer(macC, r.port[1]); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("port in two steerings: %v", err)
	}
	if _, err := r.sw.Steer(Broadcast, r.port[0]); err == nil {
		t.Fatal("broadcast address steered")
	}
	other := New(Config{NoAger: true})
	defer other.Close()
	op, _ := other.Attach("x", &Sink{}, VLANConfig{})
	if err := st.SetVFPort(op); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("foreign VF port: %v", err)
	}
	if err := st.SetVFPort(r.port[1]); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("synthetic port as VF: %v", err)
	}
	// Rebinding: the old VF port is released and may join again.
	if err := st.SetVFPort(r.port[2]); err != nil {
		t.Fatal(err)
	}
	if err := st.SetVFPort(r.port[0]); err != nil {
		t.Fatal(err)
	}
	if r.port[2].member.Load() != nil {
		t.Fatal("old VF port still a member")
	}
	// Close: the address is learned normally again.
	st.Close()
	if err := st.SetVFPort(r.port[2]); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetVFPort after Close: %v", err)
	}
	if st.SetPath(true) {
		t.Fatal("path switched on a closed steering")
	}
	send(t, r.port[2], packet.Meta{}, frame(macC, macB, "x"))
	if p, ok := r.sw.Lookup(macB, DefaultVLAN); !ok || p != r.port[2] {
		t.Fatalf("address not learned after Close: %v", p)
	}
	if _, err := r.sw.Steer(macB, r.port[1]); err != nil {
		t.Fatalf("steer again: %v", err)
	}
}

// tcpFrame builds an Ethernet frame with a TCP header with flags.
func tcpFrame(dst, src MAC, v6 bool, flags byte) []byte {
	f := make([]byte, 14)
	copy(f, dst[:])
	copy(f[6:], src[:])
	if v6 {
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], 20)
		ip[6], ip[7] = 6, 64
		f = append(f, ip...)
	} else {
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 40)
		ip[8], ip[9] = 64, 6
		f = append(f, ip...)
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	tcp[12] = 5 << 4
	tcp[13] = flags
	return append(f, tcp...)
}

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

func TestSteeringSYNToSynthetic(t *testing.T) {
	r := newSteerRig(t)
	r.st.SetPath(true)
	for _, v6 := range []bool{false, true} {
		// Knob off (default): SYNs follow the data path.
		send(t, r.port[0], packet.Meta{}, tcpFrame(macB, macA, v6, tcpSYN))
		r.expect(t, "SYN, knob off", 0, 0, 1)
		r.st.SetSYNToSynthetic(true)
		send(t, r.port[0], packet.Meta{}, tcpFrame(macB, macA, v6, tcpSYN), tcpFrame(macB, macA, v6, tcpSYN|tcpACK))
		r.expect(t, "SYN and SYN|ACK, knob on", 0, 2, 0)
		send(t, r.port[0], packet.Meta{}, tcpFrame(macB, macA, v6, tcpACK))
		r.expect(t, "ACK, knob on", 0, 0, 1)
		r.st.SetSYNToSynthetic(false)
	}
	if s := r.st.Stats(); s.SYNs != 4 || s.SteeredVF != 4 {
		t.Fatalf("stats %+v", s)
	}
	// A fragment or a non-TCP frame is not a SYN.
	f := tcpFrame(macB, macA, false, tcpSYN)
	binary.BigEndian.PutUint16(f[14+6:], 1)
	if isTCPSYN(f) || isTCPSYN(frame(macB, macA, "not ip")) || isTCPSYN(f[:30]) {
		t.Fatal("non-SYN classified as SYN")
	}
}

// seqPort records the sequence numbers of the frames it gets.
type seqPort struct {
	mu   sync.Mutex
	seen map[uint32]int
	n    atomic.Int64
}

func (s *seqPort) Deliver(b *packet.Batch) {
	s.mu.Lock()
	for _, p := range b.Packets() {
		s.seen[binary.BigEndian.Uint32(p.Bytes()[14:])]++
	}
	s.mu.Unlock()
	s.n.Add(int64(b.Len()))
	b.Free()
}

// While the path flips back and forth under load, every unicast frame
// reaches exactly one of the two ports, and once SetPath(false) has
// returned the VF gets nothing more until the next SetPath(true).
func TestSteeringSwitchUnderLoad(t *testing.T) {
	sw := New(Config{NoAger: true})
	defer sw.Close()
	synth, vf := &seqPort{seen: map[uint32]int{}}, &seqPort{seen: map[uint32]int{}}
	sp, _ := sw.Attach("synth", synth, VLANConfig{})
	vp, _ := sw.Attach("vf", vf, VLANConfig{})
	st, err := sw.Steer(macB, sp)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetVFPort(vp); err != nil {
		t.Fatal(err)
	}
	const senders, perSender, batch = 2, 4000, 16
	var wg sync.WaitGroup
	var stop atomic.Bool
	for s := range senders {
		src, _ := sw.Attach("src", &Sink{}, VLANConfig{})
		wg.Go(func() {
			pool := packet.MustPool(packet.PoolConfig{})
			b := packet.NewBatch(batch)
			for i := 0; i < perSender; i += batch {
				for j := range batch {
					p := pool.Get()
					f := frame(macB, MAC{0x02, 9, 0, 0, 0, byte(s)}, "seq.")
					binary.BigEndian.PutUint32(f[14:], uint32(s*perSender+i+j))
					_ = p.SetBytes(f)
					b.Add(p)
				}
				src.Input(b)
			}
		})
	}
	var violations atomic.Int64
	toggles := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			st.SetPath(true)
			for start := vf.n.Load(); vf.n.Load() == start && !stop.Load(); {
				runtime.Gosched() // let some frames take the VF path
			}
			st.SetPath(false)
			before := vf.n.Load()
			for range 50 {
				if vf.n.Load() != before {
					violations.Add(1)
				}
			}
			toggles++
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-done
	if violations.Load() != 0 {
		t.Fatalf("VF got frames after SetPath(false) returned (%d times)", violations.Load())
	}
	total := synth.n.Load() + vf.n.Load()
	if total != senders*perSender {
		t.Fatalf("delivered %d (synthetic %d, VF %d), sent %d", total, synth.n.Load(), vf.n.Load(), senders*perSender)
	}
	for i := range uint32(senders * perSender) {
		if n := synth.seen[i] + vf.seen[i]; n != 1 {
			t.Fatalf("frame %d delivered %d times", i, n)
		}
	}
	s := st.Stats()
	if s.Synthetic+s.VF != senders*perSender || s.VF != uint64(vf.n.Load()) {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("%d toggles: synthetic %d, VF %d", toggles, s.Synthetic, s.VF)
}

func steerBenchRig(tb testing.TB) (*Generator, *Sink, *Steering) {
	sw := New(Config{NoAger: true})
	tb.Cleanup(sw.Close)
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 256})
	g, err := NewGenerator(sw, "gen", VLANConfig{}, frame(macB, macA, string(make([]byte, 50))), packet.Meta{}, pool)
	if err != nil {
		tb.Fatal(err)
	}
	synth, vf := &Sink{}, &Sink{}
	sp, _ := sw.Attach("synth", synth, VLANConfig{})
	vp, _ := sw.Attach("vf", vf, VLANConfig{})
	st, err := sw.Steer(macB, sp)
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.SetVFPort(vp); err != nil {
		tb.Fatal(err)
	}
	st.SetPath(true)
	return g, vf, st
}

func TestZeroAllocSteered(t *testing.T) {
	g, vf, _ := steerBenchRig(t)
	g.Generate(1024)
	if allocs := testing.AllocsPerRun(100, func() { g.Generate(64) }); allocs != 0 {
		t.Fatalf("%.1f allocations per 64-frame batch", allocs)
	}
	if vf.Frames() != 1024+101*64 {
		t.Fatalf("VF got %d", vf.Frames())
	}
}

func BenchmarkSteeredToVF(b *testing.B) {
	g, _, _ := steerBenchRig(b)
	g.Generate(1024)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		n += g.Generate(min(64, b.N-n))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
	b.ReportMetric(float64(testing.AllocsPerRun(10, func() { g.Generate(64) }))/64, "allocs/frame")
}

func FuzzIsTCPSYN(f *testing.F) {
	f.Add(tcpFrame(macB, macA, false, tcpSYN))
	f.Add(tcpFrame(macB, macA, true, tcpSYN|tcpACK))
	f.Add(frame(macB, macA, "x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := isTCPSYN(b)
		if got && len(b) < 14+20+14 {
			t.Fatalf("SYN in a %d-byte frame", len(b))
		}
	})
}
