package netvsp

import (
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

// offloadBench runs frame with m through the offloader b.N times, on a
// pooled input packet and pooled segments; it reports ns and allocs per
// input frame and, for LSO, per segment.
func offloadBench(b *testing.B, frame []byte, m packet.Meta) {
	r := newRig()
	in := packet.MustPool(packet.PoolConfig{Size: 70000})
	free := func(bt *packet.Batch) { bt.Free() }
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		pk := in.Get()
		_ = pk.SetBytes(frame)
		pk.Meta = m
		r.o.tx(pk, r.b, free)
		r.b.Free()
	}
	if m.Csum&packet.CsumTxTSO != 0 {
		b.ReportMetric(float64(r.st.txSegs.Load())/float64(b.N), "segments/frame")
	}
}

func BenchmarkChecksumFillTCP4(b *testing.B) {
	f, _ := buildFrame(b, frameOpts{payload: 1448, zeroIP: true})
	offloadBench(b, f, packet.Meta{Csum: packet.CsumTxIPv4 | packet.CsumTxTCPv4})
}

func BenchmarkChecksumFillUDP6(b *testing.B) {
	f, _ := buildFrame(b, frameOpts{v6: true, udp: true, payload: 1452})
	offloadBench(b, f, packet.Meta{Csum: packet.CsumTxUDPv6})
}

func BenchmarkLSO64KiB(b *testing.B) {
	f, _ := buildFrame(b, frameOpts{payload: 65536 - 14 - 20 - 32, lso: true})
	offloadBench(b, f, packet.Meta{Csum: packet.CsumTxTSOv4 | packet.CsumTxTCPv4, MSS: 1448})
}

func BenchmarkRxVerifyTCP4(b *testing.B) {
	f, _ := buildFrame(b, frameOpts{payload: 1448})
	r := newRig()
	frames, _, _ := r.run(f, packet.Meta{Csum: packet.CsumTxIPv4 | packet.CsumTxTCPv4})
	p := allRx()
	b.SetBytes(int64(len(frames[0])))
	b.ReportAllocs()
	for b.Loop() {
		var m packet.Meta
		r.o.rxChecksum(p, frames[0], &m)
	}
}

// The offload paths allocate nothing per frame once pools are warm.
func TestOffloadAllocs(t *testing.T) {
	r := newRig()
	in := packet.MustPool(packet.PoolConfig{Size: 70000})
	free := func(bt *packet.Batch) { bt.Free() }
	lso, _ := buildFrame(t, frameOpts{payload: 65536 - 14 - 20 - 32, lso: true})
	small, _ := buildFrame(t, frameOpts{v6: true, payload: 1000})
	run := func(f []byte, m packet.Meta) {
		pk := in.Get()
		_ = pk.SetBytes(f)
		pk.Meta = m
		r.o.tx(pk, r.b, free)
		r.b.Free()
	}
	p := allRx()
	for name, fn := range map[string]func(){
		"lso":  func() { run(lso, packet.Meta{Csum: packet.CsumTxTSOv4, MSS: 1448}) },
		"csum": func() { run(small, packet.Meta{Csum: packet.CsumTxTCPv6}) },
		"rx": func() {
			var m packet.Meta
			r.o.rxChecksum(p, small, &m)
		},
	} {
		fn()
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs per frame", name, n)
		}
	}
}
