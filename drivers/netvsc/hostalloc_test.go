package netvsc_test

import (
	"net"
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/packet"
)

// TestTransmitAllocatesNothingPerPacket holds the zero-allocation rule for
// the whole transmit path, host included (netvsp's NVSP decode and
// completion, RNDIS parsing, offload, the switch): a batch of 32 frames,
// with and without checksum offload, must cost fewer allocations than
// packets once pools are warm (one allocation per packet anywhere would
// make it 32). What remains is per interrupt, not per packet: the guest's
// vmbus.(*Bus).dispatch passes the method value b.onEvent to ScanEvents,
// which allocates once per event scan.
func TestTransmitAllocatesNothingPerPacket(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("whole-stack measurement; the race detector allocates on its own")
	}
	w := newWorld(t, worldOpts{})
	w.up()
	toHN := udpFrame(t, net.HardwareAddr(genMAC[:]), net.HardwareAddr(hnMAC[:]), stationIP.AsSlice(), hnIP, 40000, 100)
	gen, err := vswitch.NewGenerator(w.sw, "gen", vswitch.Trunk(1), toHN, packet.Meta{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen.Generate(1) // the switch learns the generator's address
	w.recv(1)[0].Free()
	frame := udpFrame(t, net.HardwareAddr(hnMAC[:]), net.HardwareAddr(genMAC[:]), hnIP, stationIP.AsSlice(), 40001, 1000)
	pool := packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 256})
	batch := packet.NewBatch(32)
	var want uint64
	round := func(m packet.Meta) {
		for !batch.Full() {
			p := pool.Get()
			_ = p.SetBytes(frame)
			p.Meta = m
			batch.Add(p)
		}
		want += uint64(batch.Len())
		for batch.Len() > 0 {
			if n, _ := w.ifp.Transmit(batch); n == 0 {
				runtime.Gosched()
			}
		}
		for gen.Frames() < want {
			runtime.Gosched()
		}
	}
	for _, m := range []packet.Meta{{}, {Csum: packet.CsumTxUDPv4}} {
		for range 20 {
			round(m) // warm the pools on both sides
		}
		if a := testing.AllocsPerRun(100, func() { round(m) }); a >= 4 {
			t.Errorf("csum %s: %.0f allocs per batch of 32", m.Csum, a)
		}
	}
}
