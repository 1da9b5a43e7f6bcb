package netvsc_test

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

var genMAC = vswitch.MAC{0x02, 0, 0, 0, 0, 0x77}

// Benchmarks run the whole stack in one process (hn driver, VMBus rings,
// netvsp, vswitch), so ns/op and allocs/op are per packet for guest and
// host together; one op is one packet, sent in batches of 32.

func BenchmarkTransmit(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchTransmit(b, size) })
	}
}

func BenchmarkReceive(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchReceive(b, size) })
	}
}

func benchTransmit(b *testing.B, size int) {
	w := newWorld(b, worldOpts{})
	w.up()
	toHN := udpFrame(b, net.HardwareAddr(genMAC[:]), net.HardwareAddr(hnMAC[:]), stationIP.AsSlice(), hnIP, 40000, 100)
	gen, err := vswitch.NewGenerator(w.sw, "gen", vswitch.Trunk(1), toHN, packet.Meta{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	gen.Generate(1) // the switch learns the generator's address
	w.recv(1)[0].Free()
	frame := udpFrame(b, net.HardwareAddr(hnMAC[:]), net.HardwareAddr(genMAC[:]), hnIP, stationIP.AsSlice(), 40001, size-42)
	pool := packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 256})
	batch := packet.NewBatch(32)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		for !batch.Full() && sent+batch.Len() < b.N {
			p := pool.Get()
			_ = p.SetBytes(frame)
			batch.Add(p)
		}
		n, _ := w.ifp.Transmit(batch)
		sent += n
		if n == 0 {
			runtime.Gosched()
		}
	}
	for gen.Frames() < uint64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	if st := w.dev.Stats(); st.TxPackets < uint64(b.N) {
		b.Fatalf("sent %d", st.TxPackets)
	}
}

func benchReceive(b *testing.B, size int) {
	w := newWorld(b, worldOpts{})
	var got atomic.Int64
	w.ifp.SetInput(func(_ *ifnet.Interface, bt *packet.Batch) {
		got.Add(int64(bt.Len()))
		bt.Free()
	})
	w.up()
	toHN := udpFrame(b, net.HardwareAddr(genMAC[:]), net.HardwareAddr(hnMAC[:]), stationIP.AsSlice(), hnIP, 40000, size-42)
	gen, err := vswitch.NewGenerator(w.sw, "gen", vswitch.Trunk(1), toHN, packet.Meta{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	generated := 0
	const window = 512 // keep within the receive slots so the host does not drop
	for generated < b.N {
		for int64(generated)-got.Load()-int64(w.nic.Stats().RxDropped) > window {
			runtime.Gosched()
		}
		generated += gen.Generate(min(32, b.N-generated))
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load()+int64(w.nic.Stats().RxDropped) < int64(generated) && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	b.StopTimer()
	if d := w.nic.Stats().RxDropped; d > 0 {
		b.ReportMetric(float64(d)/float64(b.N), "drops/op")
	}
}
