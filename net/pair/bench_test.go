package pair

import (
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

const benchBatch = 32

// benchPair measures stack -> A.Transmit -> wire -> B.Input -> stack, and
// reports ns/pkt and allocs/pkt. With overridden, B's input is overridden to
// relabel into a third interface (hn's transparent VF path).
func benchPair(b *testing.B, queueLen int, overridden bool) {
	p, err := New(Config{QueueLen: queueLen, Capabilities: ifnet.CapHWCsum})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	up(b, p)
	free := func(_ *ifnet.Interface, b *packet.Batch) { b.Free() }
	p.B.SetInput(free)
	if overridden {
		hn, err := New(Config{NameA: "hn0", NameB: "hn0peer"})
		if err != nil {
			b.Fatal(err)
		}
		hn.A.SetInput(free)
		ov, err := p.B.OverrideInput(func(_ *ifnet.Interface, b *packet.Batch) { hn.A.Input(b) })
		if err != nil {
			b.Fatal(err)
		}
		defer ov.Restore()
	}
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 4 * benchBatch})
	bt := packet.NewBatch(benchBatch)
	op := func() {
		pool.GetBatch(bt, benchBatch)
		for _, pk := range bt.Packets() {
			_, _ = pk.Append(64)
			pk.Meta.Csum = packet.CsumTxIPv4 | packet.CsumTxTCPv4
		}
		for bt.Len() > 0 {
			if _, err := p.A.Transmit(bt); err != nil {
				runtime.Gosched() // async queue full: let the receiver run
			}
		}
	}
	op()
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

func BenchmarkPairSync(b *testing.B)           { benchPair(b, 0, false) }
func BenchmarkPairSyncOverridden(b *testing.B) { benchPair(b, 0, true) }
func BenchmarkPairAsync(b *testing.B)          { benchPair(b, 8, false) }
