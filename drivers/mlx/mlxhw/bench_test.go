package mlxhw

import "testing"

// BenchmarkPutSendWQE builds a SEND with 18 inline header bytes, checksum
// flags and one gather segment: the steady-state transmit path.
func BenchmarkPutSendWQE(b *testing.B) {
	ring := make([]byte, 64*WQEBBSize)
	hdr := seq(MinInline, 0)
	segs := []DataSeg{{ByteCount: 1496, LKey: 0x10042, Addr: 0x7000_0000}}
	w := SendWQE{Opcode: WQEOpSend, SQN: 0x800, FmCeSe: CECQEAlways, CSFlags: CSL3 | CSL4, Inline: hdr}
	b.ReportAllocs()
	pc := 0
	for b.Loop() {
		w.WQEIndex = uint16(pc)
		n, err := PutSendWQE(ring[(pc&63)*WQEBBSize:], &w, segs)
		if err != nil {
			b.Fatal(err)
		}
		pc += n
	}
}

// BenchmarkPutLSOWQE builds an LSO WQE with 66 inline header bytes and
// three gather segments.
func BenchmarkPutLSOWQE(b *testing.B) {
	buf := make([]byte, 4*WQEBBSize)
	segs := []DataSeg{{ByteCount: 4096, LKey: 1, Addr: 0x1000}, {ByteCount: 4096, LKey: 1, Addr: 0x2000},
		{ByteCount: 1000, LKey: 1, Addr: 0x3000}}
	w := SendWQE{Opcode: WQEOpLSO, SQN: 0x800, FmCeSe: CECQEAlways, CSFlags: CSL3 | CSL4, MSS: 1448, Inline: seq(66, 0)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PutSendWQE(buf, &w, segs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCQE polls one owned RX CQE: the steady-state receive
// path.
func BenchmarkParseCQE(b *testing.B) {
	buf := make([]byte, CQESize)
	_ = PutCQE(buf, &CQE{Opcode: CQERespSend, ByteCnt: 1514, HdsIPExt: 7, L4L3HdrType: 0x48, RSSHash: 0x1234,
		SopDropQPN: 0xc00, WQECounter: 5, Owner: 1})
	var c CQE
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseCQE(buf, 1<<10, 10, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutCQE is the device model's completion write.
func BenchmarkPutCQE(b *testing.B) {
	buf := make([]byte, CQESize)
	c := CQE{Opcode: CQEReq, SopDropQPN: 0x800, WQECounter: 5, ByteCnt: 1514}
	b.ReportAllocs()
	for b.Loop() {
		if err := PutCQE(buf, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSendWQE is the device model's WQE fetch.
func BenchmarkParseSendWQE(b *testing.B) {
	buf := make([]byte, 4*WQEBBSize)
	_, _ = PutSendWQE(buf, &SendWQE{Opcode: WQEOpSend, SQN: 0x800, Inline: seq(18, 0)},
		[]DataSeg{{ByteCount: 1496, LKey: 1, Addr: 0x1000}})
	var w SendWQE
	segs := make([]DataSeg, 4)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSendWQE(buf, &w, segs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEQE polls one owned COMP EQE.
func BenchmarkParseEQE(b *testing.B) {
	buf := make([]byte, EQESize)
	e := EQEComp(0x400)
	_ = PutEQE(buf, &e)
	var d EQE
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseEQE(buf, 0, 7, &d); err != nil || d.CompCQN() != 0x400 {
			b.Fatal(err)
		}
	}
}
