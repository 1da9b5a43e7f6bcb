package netvsc_test

import (
	"net"
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// VF data-path benchmarks: hn0 with an active transparent VF (the fake
// VF frees what it is given). One op is one packet, in batches of 32;
// ns/packet and allocs/packet cover hn's and ifnet's work on the path.

func reportPerPacket(b *testing.B, before *runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/packet")
}

func activeVFWorld(b *testing.B) (*vfWorld, *fakeVF) {
	w := newVFWorld(b, vfWorldOpts{})
	w.up()
	vf := newFakeVF(b, fakeVFOpts{})
	vf.discard = true
	w.attach(vf, netvsc.VFActive)
	return w, vf
}

// BenchmarkVFTransmit: hn0's Transmit with the VF as target (one atomic
// load, no lock in hn).
func BenchmarkVFTransmit(b *testing.B) {
	w, _ := activeVFWorld(b)
	frame := frame(stationHW, 1, 64)
	pool := packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 64})
	batch := packet.NewBatch(32)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		for !batch.Full() && sent+batch.Len() < b.N {
			p := pool.Get()
			_ = p.SetBytes(frame)
			batch.Add(p)
		}
		n, err := w.ifp.Transmit(batch)
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	b.StopTimer()
	reportPerPacket(b, &ms)
	if s := w.dev.Stats(); s.VFTxPackets != uint64(b.N) {
		b.Fatalf("VF sent %d of %d", s.VFTxPackets, b.N)
	}
}

// BenchmarkVFInput: the VF's receive relabelled as hn0's through the
// input override.
func BenchmarkVFInput(b *testing.B) {
	w, vf := activeVFWorld(b)
	got := 0
	w.ifp.SetInput(func(_ *ifnet.Interface, bt *packet.Batch) {
		got += bt.Len()
		bt.Free()
	})
	fr := frame(net.HardwareAddr(hnMAC[:]), 1, 64)
	pool := packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 64})
	batch := packet.NewBatch(32)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	for done := 0; done < b.N; {
		for !batch.Full() && done+batch.Len() < b.N {
			p := pool.Get()
			_ = p.SetBytes(fr)
			batch.Add(p)
		}
		done += batch.Len()
		vf.ifp.Input(batch)
	}
	b.StopTimer()
	reportPerPacket(b, &ms)
	if got != b.N || w.dev.Stats().VFRxPackets != uint64(b.N) {
		b.Fatalf("hn got %d of %d", got, b.N)
	}
}

// BenchmarkVFSwitchOver: one op is hn down and up again with the VF
// active: transmit to synthetic, SWITCH_DATA_PATH synthetic (completion
// awaited), VF down; VF up, SWITCH_DATA_PATH VF (awaited), RSS check,
// transmit to the VF. Reported per data-path switch.
func BenchmarkVFSwitchOver(b *testing.B) {
	w, vf := activeVFWorld(b)
	b.ResetTimer()
	for range b.N {
		if err := w.ifp.Ioctl(&ifnet.SetFlags{}); err != nil {
			b.Fatal(err)
		}
		if err := w.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/switch")
	if st := w.dev.VFStatus(); st.TxTarget != vf.ifp.Name() {
		b.Fatalf("not back on the VF: %+v", st)
	}
}
