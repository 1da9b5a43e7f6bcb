package mlx

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Data path benchmarks through the device model, without the bus: the
// VF is attached straight to an mlxdev.Device whose wire counts and frees.
// They report ns/pkt and allocs/pkt (the device model's own work
// included).

type countWire struct{ n atomic.Uint64 }

func (w *countWire) Transmit(b *packet.Batch) {
	w.n.Add(uint64(b.Len()))
	b.Free()
}

type benchRig struct {
	dev  *mlxdev.Device
	vf   *VF
	wire *countWire
	rx   atomic.Uint64
	reg  *ifnet.Registry
}

func newBenchRig(tb testing.TB) *benchRig {
	tb.Helper()
	ram := kernel.NewSimRAM(16384)
	br := &benchRig{wire: &countWire{}, reg: ifnet.NewRegistry()}
	var vfp atomic.Pointer[VF]
	dev, err := mlxdev.New(mlxdev.Config{Mem: ram, MAC: vfMAC, Serial: 1, Wire: br.wire,
		Interrupt: func(v int) {
			if vf := vfp.Load(); vf != nil {
				vf.Interrupt(v)
			}
		}})
	if err != nil {
		tb.Fatal(err)
	}
	br.dev = dev
	vf, err := Attach(context.Background(), Config{Name: "mlxb", Registry: br.reg, Memory: ram, RQSize: 1024},
		Device{Config: dev.Config(), BAR0: dev.BAR(0), Serial: 1, OnCreate: func(v *VF) { vfp.Store(v) }})
	if err != nil {
		tb.Fatal(err)
	}
	br.vf = vf
	vf.Interface().SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		br.rx.Add(uint64(b.Len()))
		b.Free()
	})
	if err := vf.Interface().Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = vf.Detach(context.Background())
		_ = dev.Close()
		_ = br.reg.Close()
	})
	return br
}

func benchFrame(size int, dst, src net.HardwareAddr) []byte {
	f := make([]byte, size)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = 0x88, 0xb5
	return f
}

// sendBatch fills batch with 32 copies of f from pool and transmits them
// all through ifp, yielding while the SQ is full.
func sendBatch(ifp *ifnet.Interface, pool *packet.Pool, batch *packet.Batch, f []byte) {
	pool.GetBatch(batch, 32)
	for _, p := range batch.Packets() {
		_ = p.SetBytes(f)
	}
	for batch.Len() > 0 {
		if n, _ := ifp.Transmit(batch); n == 0 {
			runtime.Gosched()
		}
	}
}

func allocsPerPkt(b *testing.B, before runtime.MemStats, pkts int) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(pkts), "allocs/pkt")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pkts), "ns/pkt")
}

func BenchmarkVFTransmit(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			br := newBenchRig(b)
			ifp := br.vf.Interface()
			f := benchFrame(size, net.HardwareAddr(stationMAC[:]), net.HardwareAddr(vfMAC[:]))
			pool := packet.MustPool(packet.PoolConfig{Prealloc: 64})
			batch := packet.NewBatch(32)
			send := func() { sendBatch(ifp, pool, batch, f) }
			for range 100 { // warm up pools and rings
				send()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			start := br.wire.n.Load()
			b.ResetTimer()
			for range b.N {
				send()
			}
			for br.wire.n.Load() < start+uint64(32*b.N) {
				runtime.Gosched()
			}
			b.StopTimer()
			allocsPerPkt(b, ms, 32*b.N)
		})
	}
}

func BenchmarkVFReceive(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			br := newBenchRig(b)
			f := benchFrame(size, net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:]))
			pool := packet.MustPool(packet.PoolConfig{Prealloc: 64})
			batch := packet.NewBatch(32)
			var sent uint64
			deliver := func() {
				// Pace to half the RQ so the device never runs out of buffers.
				for sent-br.rx.Load() > 512 {
					runtime.Gosched()
				}
				pool.GetBatch(batch, 32)
				for _, p := range batch.Packets() {
					_ = p.SetBytes(f)
				}
				br.dev.Deliver(batch)
				batch.Clear()
				sent += 32
			}
			for range 100 {
				deliver()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ResetTimer()
			for range b.N {
				deliver()
			}
			deadline := time.Now().Add(10 * time.Second)
			for br.rx.Load() < sent && time.Now().Before(deadline) {
				runtime.Gosched()
			}
			b.StopTimer()
			ds := br.dev.Stats()
			if d := ds.RxDropped(); d != 0 || br.rx.Load() != sent {
				b.Fatalf("received %d of %d, device dropped %d", br.rx.Load(), sent, d)
			}
			allocsPerPkt(b, ms, 32*b.N)
		})
	}
}

// TestVFDataPathAllocs: in steady state a batch of 32 frames sent through
// the VF and 32 received by it (doorbells, CQEs, interrupts, refills, the
// input hook) allocate nothing, in the driver or the device model.
func TestVFDataPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	br := newBenchRig(t)
	ifp := br.vf.Interface()
	txf := benchFrame(1500, net.HardwareAddr(stationMAC[:]), net.HardwareAddr(vfMAC[:]))
	rxf := benchFrame(1500, net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:]))
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 128})
	batch := packet.NewBatch(32)
	var sent, received uint64
	wait := func(what string, c *atomic.Uint64, want uint64) {
		for deadline := time.Now().Add(10 * time.Second); c.Load() < want; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d", what, c.Load(), want)
			}
		}
	}
	step := func() {
		sendBatch(ifp, pool, batch, txf)
		sent += 32
		pool.GetBatch(batch, 32)
		for _, p := range batch.Packets() {
			_ = p.SetBytes(rxf)
		}
		br.dev.Deliver(batch)
		batch.Clear()
		received += 32
		wait("transmitted", &br.wire.n, sent)
		wait("received", &br.rx, received)
	}
	for range 50 { // warm the pools, rings and free lists
		step()
	}
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Fatalf("%v allocations per batch of 32 TX + 32 RX", a)
	}
	if ds := br.dev.Stats(); ds.RxDropped() != 0 || ds.TxDropped() != 0 || br.rx.Load() != received || br.wire.n.Load() != sent {
		t.Fatalf("device dropped rx %v tx %v; received %d of %d, wire %d of %d", ds.RxDrops, ds.TxDrops, br.rx.Load(), received, br.wire.n.Load(), sent)
	}
}
