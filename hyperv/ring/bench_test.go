package ring

import (
	"fmt"
	"runtime"
	"testing"
)

const benchRing = 256 << 10

// perPacket reports ns/pkt and allocs/pkt for a benchmark that handled
// b.N*per packets since before was sampled.
func perPacket(b *testing.B, per int, before *runtime.MemStats) {
	b.StopTimer()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	pkts := float64(b.N) * float64(per)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pkts, "ns/pkt")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/pkts, "allocs/pkt")
}

func startPerPacket(b *testing.B) *runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportAllocs()
	b.ResetTimer()
	return &m
}

var benchCases = []struct{ batch, size int }{{32, 64}, {32, 1500}, {1, 64}, {1, 1500}}

// BenchmarkSend measures the writer: stage batch packets, publish once.
// The reader is emulated by releasing all space with one atomic store.
func BenchmarkSend(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(fmt.Sprintf("batch%d/%dB", bc.batch, bc.size), func(b *testing.B) {
			ctl, data := newTestRing(b, benchRing)
			w, err := NewWriter(ctl, data)
			must(b, err)
			payload := make([]byte, bc.size)
			b.SetBytes(int64(bc.batch * bc.size))
			m := startPerPacket(b)
			for i := 0; i < b.N; i++ {
				for k := 0; k < bc.batch; k++ {
					if err := w.WriteInBand(uint64(k), false, payload); err != nil {
						b.Fatal(err)
					}
				}
				w.Commit()
				w.ctl.SetReadIndex(w.committed)
			}
			perPacket(b, bc.batch, m)
		})
	}
}

// BenchmarkReceive measures the reader: drain batch packets through a
// visitor that reads the payload, commit once. The same published packets
// are replayed each iteration by rewinding the reader.
func BenchmarkReceive(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(fmt.Sprintf("batch%d/%dB", bc.batch, bc.size), func(b *testing.B) {
			ctl, data := newTestRing(b, benchRing)
			w, err := NewWriter(ctl, data)
			must(b, err)
			r, err := NewReader(ctl, data, nil)
			must(b, err)
			payload := make([]byte, bc.size)
			for k := 0; k < bc.batch; k++ {
				must(b, w.WriteInBand(uint64(k), false, payload))
			}
			w.Commit()
			var sum byte
			visit := func(p *Packet) error {
				sum += p.Payload[0] + p.Payload[len(p.Payload)-1]
				return nil
			}
			b.SetBytes(int64(bc.batch * bc.size))
			m := startPerPacket(b)
			for i := 0; i < b.N; i++ {
				n, _, err := r.Drain(bc.batch, visit)
				if n != bc.batch || err != nil {
					b.Fatal(n, err)
				}
				r.next, r.committed = 0, 0
				r.ctl.SetReadIndex(0)
			}
			perPacket(b, bc.batch, m)
			_ = sum
		})
	}
}

// BenchmarkRoundTrip runs both ends over one ring in one goroutine, so the
// packets move around the ring and some wrap into the scratch buffer.
func BenchmarkRoundTrip(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(fmt.Sprintf("batch%d/%dB", bc.batch, bc.size), func(b *testing.B) {
			ctl, data := newTestRing(b, benchRing)
			w, err := NewWriter(ctl, data)
			must(b, err)
			r, err := NewReader(ctl, data, nil)
			must(b, err)
			payload := make([]byte, bc.size)
			batch := make([]Packet, bc.batch)
			b.SetBytes(int64(bc.batch * bc.size))
			m := startPerPacket(b)
			for i := 0; i < b.N; i++ {
				for k := 0; k < bc.batch; k++ {
					if err := w.WriteInBand(uint64(k), false, payload); err != nil {
						b.Fatal(err)
					}
				}
				w.Commit()
				if n, err := r.ReadBatch(batch); n != bc.batch || err != nil {
					b.Fatal(n, err)
				}
				r.Commit()
			}
			perPacket(b, bc.batch, m)
		})
	}
}
