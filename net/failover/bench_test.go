package failover

import (
	"testing"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

func TestZeroAllocDataPath(t *testing.T) {
	r := newRig(t, nicOpts{}, nicOpts{})
	b := packet.NewBatch(64)
	tx := testing.AllocsPerRun(200, func() {
		testPool.GetBatch(b, 64)
		r.agg.Transmit(b)
		b.Free()
	})
	rx := testing.AllocsPerRun(200, func() {
		testPool.GetBatch(b, 64)
		r.hn.ifp.Input(b)
	})
	if tx != 0 || rx != 0 {
		t.Fatalf("allocations per 64-packet batch: transmit %.1f, input %.1f", tx, rx)
	}
}

func benchRig(b *testing.B) *rigT {
	r := &rigT{reg: ifnet.NewRegistry()}
	b.Cleanup(func() { _ = r.reg.Close() })
	r.hn = newNIC(b, r.reg, "hn0", ifnet.KindSynthetic, nicOpts{})
	r.vf = newNIC(b, r.reg, "mce0", ifnet.KindEthernet, nicOpts{})
	f, err := New(Config{Name: "failover0", MAC: nicMAC, Registry: r.reg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	r.f, r.agg = f, f.Interface()
	r.agg.SetInput(func(_ *ifnet.Interface, bt *packet.Batch) { bt.Free() })
	if err := r.agg.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		b.Fatal(err)
	}
	return r
}

func benchPerPacket(b *testing.B, op func(*packet.Batch)) {
	const size = 64
	bt := packet.NewBatch(size)
	for range 4 {
		testPool.GetBatch(bt, size)
		op(bt)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		k := min(size, b.N-n)
		testPool.GetBatch(bt, k)
		op(bt)
		n += k
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
	b.ReportMetric(testing.AllocsPerRun(10, func() { testPool.GetBatch(bt, size); op(bt) })/size, "allocs/packet")
}

func BenchmarkAggregateTransmit(b *testing.B) {
	r := benchRig(b)
	benchPerPacket(b, func(bt *packet.Batch) {
		r.agg.Transmit(bt)
		bt.Free()
	})
}

func BenchmarkAggregateInput(b *testing.B) {
	r := benchRig(b)
	benchPerPacket(b, func(bt *packet.Batch) { r.vf.ifp.Input(bt) })
}
