package vswitch

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

// unicastRig has a generator sending to a sink whose address is static.
func unicastRig(tb testing.TB, nSinks int, dst MAC) (*Switch, *Generator, []*Sink) {
	sw := New(Config{NoAger: true})
	tb.Cleanup(sw.Close)
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 256})
	g, err := NewGenerator(sw, "gen", VLANConfig{}, frame(dst, macA, string(make([]byte, 50))), packet.Meta{}, pool)
	if err != nil {
		tb.Fatal(err)
	}
	var sinks []*Sink
	for i := 0; i < nSinks; i++ {
		s := &Sink{}
		p, err := sw.Attach("sink", s, VLANConfig{})
		if err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			sw.AddStatic(macB, DefaultVLAN, p)
		}
		sinks = append(sinks, s)
	}
	return sw, g, sinks
}

func TestZeroAllocUnicast(t *testing.T) {
	_, g, sinks := unicastRig(t, 3, macB)
	g.Generate(1024)
	allocs := testing.AllocsPerRun(100, func() { g.Generate(64) })
	if allocs != 0 {
		t.Fatalf("%.1f allocations per 64-frame batch", allocs)
	}
	if sinks[0].Frames() != 1024+101*64 || sinks[1].Frames() != 0 {
		t.Fatalf("sinks got %d, %d", sinks[0].Frames(), sinks[1].Frames())
	}
}

func TestZeroAllocFlood(t *testing.T) {
	_, g, sinks := unicastRig(t, 4, Broadcast)
	g.Generate(1024)
	allocs := testing.AllocsPerRun(100, func() { g.Generate(64) })
	if allocs != 0 {
		t.Fatalf("%.1f allocations per 64-frame batch", allocs)
	}
	for _, s := range sinks {
		if s.Frames() != 1024+101*64 {
			t.Fatalf("sink got %d", s.Frames())
		}
	}
}

func TestConcurrent(t *testing.T) {
	sw := New(Config{})
	defer sw.Close()
	ipA, ipB := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a, _ := NewStation(sw, StationConfig{Name: "a", MAC: macA, IP: ipA, VLAN: Access(2)})
	b, _ := NewStation(sw, StationConfig{Name: "b", MAC: macB, IP: ipB, VLAN: Access(2)})
	sinkPort, _ := sw.Attach("sink", &Sink{}, VLANConfig{})
	sw.AddStatic(macC, DefaultVLAN, sinkPort)
	var gens []*Generator
	for i := 0; i < 4; i++ {
		src := MAC{0x02, 1, 0, 0, 0, byte(i)}
		g, err := NewGenerator(sw, "g", VLANConfig{}, frame(macC, src, "payload"), packet.Meta{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
	}
	var wg sync.WaitGroup
	for _, g := range gens {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				g.Generate(64)
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < 200; i++ {
			a.Ping(macB, ipB, 1, uint16(i), nil, packet.Meta{})
			a.SendARPRequest(ipB, packet.Meta{})
		}
	})
	wg.Go(func() {
		for i := 0; i < 200; i++ {
			b.Ping(macA, ipA, 2, uint16(i), nil, packet.Meta{})
		}
	})
	wg.Go(func() {
		for i := 0; i < 100; i++ {
			sw.Age()
			sw.Table()
			_ = sinkPort.Stats()
		}
	})
	wg.Go(func() {
		for i := 0; i < 20; i++ {
			p, _ := sw.Attach("late", &Sink{}, VLANConfig{})
			p.SetLink(false)
			p.SetLink(true)
			p.Detach()
		}
	})
	wg.Wait()
	if a.Stats().EchoSeen != 200 || b.Stats().EchoSeen != 200 || a.Stats().ARPSeen != 200 {
		t.Fatalf("a %+v b %+v", a.Stats(), b.Stats())
	}
	if got := sinkPort.Stats().TxFrames; got != 4*50*64 {
		t.Fatalf("sink got %d frames", got)
	}
}

func benchSwitch(b *testing.B, nSinks int, dst MAC) {
	_, g, _ := unicastRig(b, nSinks, dst)
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

func BenchmarkUnicast(b *testing.B) { benchSwitch(b, 2, macB) }
func BenchmarkFlood4(b *testing.B)  { benchSwitch(b, 4, Broadcast) }
