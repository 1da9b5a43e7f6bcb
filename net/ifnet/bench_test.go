package ifnet

import (
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

const benchBatch = 32

// perPacket runs op (which moves benchBatch packets) b.N times and reports
// ns/pkt and allocs/pkt.
func perPacket(b *testing.B, op func()) {
	b.Helper()
	op() // warm pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		op()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	pkts := float64(b.N * benchBatch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pkts, "ns/pkt")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/pkts, "allocs/pkt")
}

func benchSetup(b *testing.B) (hn, vf *Interface, pool *packet.Pool, bt *packet.Batch) {
	hn, _ = upIf(b, "hn0")
	vf, _ = upIf(b, "vf0")
	free := func(_ *Interface, b *packet.Batch) { b.Free() }
	hn.SetInput(free)
	vf.SetInput(free)
	pool = packet.MustPool(packet.PoolConfig{Prealloc: 2 * benchBatch})
	return hn, vf, pool, packet.NewBatch(benchBatch)
}

func fillBench(pool *packet.Pool, bt *packet.Batch) {
	pool.GetBatch(bt, benchBatch)
	for _, p := range bt.Packets() {
		_, _ = p.Append(64)
	}
}

// BenchmarkTransmit: stack -> ifnet -> driver (which frees), 32 per batch.
func BenchmarkTransmit(b *testing.B) {
	_, vf, pool, bt := benchSetup(b)
	perPacket(b, func() {
		fillBench(pool, bt)
		if n, _ := vf.Transmit(bt); n != benchBatch {
			b.Fatal("short transmit")
		}
	})
}

// BenchmarkInputDirect: driver -> ifnet -> stack input.
func BenchmarkInputDirect(b *testing.B) {
	_, vf, pool, bt := benchSetup(b)
	perPacket(b, func() {
		fillBench(pool, bt)
		vf.Input(bt)
	})
}

// BenchmarkInputOverridden: VF driver -> VF ifnet -> hn's override ->
// hn ifnet (relabel, count) -> hn's stack input: the transparent VF path.
func BenchmarkInputOverridden(b *testing.B) {
	hn, vf, pool, bt := benchSetup(b)
	ov, err := vf.OverrideInput(func(_ *Interface, b *packet.Batch) { hn.Input(b) })
	if err != nil {
		b.Fatal(err)
	}
	defer ov.Restore()
	perPacket(b, func() {
		fillBench(pool, bt)
		vf.Input(bt)
	})
}

// BenchmarkInputParallel: several receive goroutines into one interface
// (counter contention).
func BenchmarkInputParallel(b *testing.B) {
	_, vf, pool, _ := benchSetup(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		bt := packet.NewBatch(benchBatch)
		for pb.Next() {
			fillBench(pool, bt)
			vf.Input(bt)
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/pkt")
}
