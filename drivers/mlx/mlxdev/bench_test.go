package mlxdev

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/packet"
)

type discardWire struct{}

func (discardWire) Transmit(b *packet.Batch) { b.Free() }

const benchBatch = 32

// report adds ns/packet and allocs/packet for n packets.
func report(b *testing.B, n int, ms0 *runtime.MemStats) {
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/packet")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/packet")
}

// BenchmarkTxSend: batches of 32 SEND WQEs (14 inline header bytes, one
// data segment, a CQE each) behind one doorbell, through the offloads to a
// discarding wire; the CQ is drained each batch.
func BenchmarkTxSend(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			x := newTxEnv(b, func(c *Config) { c.Wire = discardWire{}; c.Strict = false })
			cq := x.createCQ(10, x.eq.n)
			sq := x.createSQ(cq, 8)
			frame := tcpFrame(b, peerMAC, 1, 2, make([]byte, size-54), false)
			copy(x.data, frame[14:])
			seg := []mlxhw.DataSeg{{ByteCount: uint32(size - 14), LKey: x.lkey, Addr: x.base}}
			w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, FmCeSe: mlxhw.CECQEAlways, CSFlags: mlxhw.CSL3 | mlxhw.CSL4,
				Inline: frame[:14], SQN: sq.n}
			uar := mlxhw.UAROffset(x.uar) + mlxhw.UARBFOffset
			mask := uint32(1)<<sq.logSize - 1
			cqMask := uint32(1)<<cq.logSize - 1
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for range b.N {
				var last uint16
				for range benchBatch {
					last = sq.pc
					w.WQEIndex = sq.pc
					off := int(uint32(sq.pc)&mask) * 64
					n, _ := mlxhw.PutSendWQE(sq.buf.Bytes[off:], &w, seg)
					sq.pc += uint16(n)
				}
				storeBE32(sq.dbr[4:], uint32(sq.pc))
				off := int(uint32(last)&mask) * 64
				dw0, dw1 := mlxhw.SQDoorbellWords(sq.buf.Bytes[off:])
				x.bar.Write64(uar, uint64(dw0)<<32|uint64(dw1))
				for range benchBatch {
					i := cq.cc & cqMask
					if !mlxhw.SWOwned(cq.buf.Bytes[i*64+63], cq.cc, cq.logSize) {
						b.Fatal("missing CQE")
					}
					cq.cc++
				}
				storeBE32(cq.dbr, cq.cc&0xffffff)
			}
			b.StopTimer()
			report(b, b.N*benchBatch, &ms0)
			b.SetBytes(int64(size * benchBatch))
		})
	}
}

// BenchmarkRxDeliver: batches of 32 frames from a packet pool delivered
// through the vport filter, a DIRECT TIR and one RQ, with RX checksum
// verification; the CQ is drained and the RQ replenished each batch.
func BenchmarkRxDeliver(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			e := newEnv(newHarness(b, func(c *Config) { c.Strict = false }))
			eq := e.createEQ(7, mlxhw.EventComp.Bit(), 1)
			cq := e.createCQ(10, eq.n)
			rq := e.createRQ(cq, 10, false)
			rq.fill(1 << 10)
			e.directTIR(rq.n)
			frame := tcpFrame(b, mac(testMAC[:]...), 1, 2, make([]byte, size-54), true)
			pool := packet.MustPool(packet.PoolConfig{Size: 2048})
			batch := packet.NewBatch(benchBatch)
			cqMask := uint32(1)<<cq.logSize - 1
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for range b.N {
				pool.GetBatch(batch, benchBatch)
				for _, p := range batch.Packets() {
					_ = p.SetBytes(frame)
				}
				e.dev.Deliver(batch)
				for range benchBatch {
					i := cq.cc & cqMask
					if !mlxhw.SWOwned(cq.buf.Bytes[i*64+63], cq.cc, cq.logSize) || cq.buf.Bytes[i*64+63]>>4 != mlxhw.CQERespSend {
						b.Fatal("missing CQE")
					}
					cq.cc++
				}
				storeBE32(cq.dbr, cq.cc&0xffffff)
				rq.pc += benchBatch
				storeBE32(rq.dbr, uint32(rq.pc))
			}
			b.StopTimer()
			report(b, b.N*benchBatch, &ms0)
			b.SetBytes(int64(size * benchBatch))
		})
	}
}

// TestDataPathAllocs: steady-state transmit and receive of a batch
// allocate nothing.
func TestDataPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	x := newTxEnv(t, func(c *Config) { c.Wire = discardWire{}; c.Strict = false })
	rcq := x.createCQ(10, x.eq.n)
	rq := x.createRQ(rcq, 10, false)
	rq.fill(1 << 10)
	x.directTIR(rq.n)
	frame := tcpFrame(t, peerMAC, 1, 2, make([]byte, 1000), false)
	copy(x.data, frame[14:])
	seg := []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - 14), LKey: x.lkey, Addr: x.base}}
	w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, FmCeSe: mlxhw.CECQEAlways, CSFlags: mlxhw.CSL3 | mlxhw.CSL4, Inline: frame[:14], SQN: x.sq.n}
	uar := mlxhw.UAROffset(x.uar) + mlxhw.UARBFOffset
	rx := tcpFrame(t, mac(testMAC[:]...), 1, 2, make([]byte, 1000), true)
	pool := packet.MustPool(packet.PoolConfig{Size: 2048})
	batch := packet.NewBatch(benchBatch)
	mask := uint32(1)<<x.sq.logSize - 1
	step := func() {
		var last uint16
		for range benchBatch {
			last = x.sq.pc
			w.WQEIndex = x.sq.pc
			n, _ := mlxhw.PutSendWQE(x.sq.buf.Bytes[int(uint32(x.sq.pc)&mask)*64:], &w, seg)
			x.sq.pc += uint16(n)
		}
		storeBE32(x.sq.dbr[4:], uint32(x.sq.pc))
		dw0, dw1 := mlxhw.SQDoorbellWords(x.sq.buf.Bytes[int(uint32(last)&mask)*64:])
		x.bar.Write64(uar, uint64(dw0)<<32|uint64(dw1))
		x.cq.cc += benchBatch
		storeBE32(x.cq.dbr, x.cq.cc&0xffffff)
		pool.GetBatch(batch, benchBatch)
		for _, p := range batch.Packets() {
			_ = p.SetBytes(rx)
		}
		x.dev.Deliver(batch)
		rcq.cc += benchBatch
		storeBE32(rcq.dbr, rcq.cc&0xffffff)
		rq.pc += benchBatch
		storeBE32(rq.dbr, uint32(rq.pc))
	}
	step() // warm the pools and free lists
	if a := testing.AllocsPerRun(50, step); a != 0 {
		t.Fatalf("%v allocations per batch of %d TX + %d RX", a, benchBatch, benchBatch)
	}
	if s := x.dev.Stats(); s.TxPackets != 52*benchBatch || s.RxPackets != 52*benchBatch {
		t.Fatalf("tx %d rx %d", s.TxPackets, s.RxPackets)
	}
}
