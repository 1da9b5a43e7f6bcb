package ring

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// unhex decodes a hex string that may contain spaces, '|' and newlines.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newTestRing returns one ring's memory in a single allocation (control
// page first, so it is page aligned) with an initialized control page.
func newTestRing(t testing.TB, dsize int) (ctl, data []byte) {
	t.Helper()
	buf := make([]byte, ControlSize+dsize)
	for i := range buf {
		buf[i] = 0xAA // InitControl must clear the whole page
	}
	if err := InitControl(buf[:ControlSize]); err != nil {
		t.Fatal(err)
	}
	clear(buf[ControlSize:])
	return buf[:ControlSize], buf[ControlSize:]
}

// TestGoldenControlPage checks the control page against struct
// hv_ring_buffer (Linux include/linux/hyperv.h): write_index @0,
// read_index @4, interrupt_mask @8, pending_send_sz @12, reserved1[12]
// @16..63, feature_bits @64, reserved2 to 4096.
func TestGoldenControlPage(t *testing.T) {
	ctl, _ := newTestRing(t, 4096)
	want := make([]byte, ControlSize)
	want[64] = 1 // feat_pending_send_sz, set at init as Linux hv_ringbuffer_init does
	if !bytes.Equal(ctl, want) {
		t.Fatalf("initialized control page differs:\n%s", hex.Dump(ctl[:80]))
	}
	c, err := NewControl(ctl)
	if err != nil {
		t.Fatal(err)
	}
	c.SetWriteIndex(0x11223348)
	c.SetReadIndex(0x55667708)
	c.SetInterruptMask(1)
	c.SetPendingSendSize(0x400)
	copy(want[0:], unhex(t, "48332211 08776655 01000000 00040000"))
	if !bytes.Equal(ctl, want) {
		t.Fatalf("control page fields at wrong offsets:\n%s", hex.Dump(ctl[:80]))
	}
	if c.WriteIndex() != 0x11223348 || c.ReadIndex() != 0x55667708 || c.InterruptMask() != 1 ||
		c.PendingSendSize() != 0x400 || c.FeatureBits() != FeaturePendingSendSize {
		t.Fatal("control accessors do not read back the stored values")
	}
}

// goldenRing is the data area after the four golden packets, each at the
// offset its predecessors leave. Layouts:
//
//	vmpacket_descriptor: +0 u16 type, +2 u16 offset8, +4 u16 len8,
//	  +6 u16 flags, +8 u64 trans_id (Linux struct vmpacket_descriptor)
//	gpa-direct: +16 u32 reserved, +20 u32 range_cnt, +24 gpa_range[]
//	  {u32 byte_count, u32 byte_offset, u64 pfn_array[]} (Linux struct
//	  vmbus_channel_packet_multipage_buffer / FreeBSD vmbus_chanpkt_prplist)
//	xfer-pages: +16 u16 xfer_pageset_id, +18 u8 sender_owns_set,
//	  +19 u8 reserved, +20 u32 range_cnt, +24 {u32 byte_count,
//	  u32 byte_offset}[] (Linux struct vmtransfer_page_packet_header)
//	trailer: u64 = packet start << 32 (Linux hv_ringbuffer_write,
//	  FreeBSD vmbus_txbr_write)
const goldenRing = `
06000200 03000100 8877665544332211 | 68656c6c6f000000 | 0000000000000000
0b000200 03000000 0500000000000000 | 0102030405060708 | 0000000020000000
09000600 07000100 0700000000000000 | 00000000 01000000 | 00180000 00080000
  3412000000000000 3512000000000000 | 6162636400000000 | 0000000040000000
07000500 06000100 0900000000000000 | feca0100 02000000 | 64000000 00020000
  c8000000 00100000 | 7a7a7a0000000000 | 0000000080000000
`

var goldenGPA = []gpa.Range{{ByteCount: 0x1800, ByteOffset: 0x800, PFNs: []uint64{0x1234, 0x1235}}}
var goldenXfer = []XferRange{{ByteCount: 100, ByteOffset: 0x200}, {ByteCount: 200, ByteOffset: 0x1000}}

func writeGolden(t *testing.T, w *Writer) {
	t.Helper()
	must(t, w.WriteInBand(0x1122334455667788, true, []byte("hello")))
	must(t, w.WriteCompletion(5, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	must(t, w.WriteGPADirect(7, true, goldenGPA, []byte("abcd")))
	must(t, w.WriteXferPages(9, true, 0xCAFE, true, goldenXfer, []byte("zzz")))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestGoldenPackets(t *testing.T) {
	ctl, data := newTestRing(t, 4096)
	w, err := NewWriter(ctl, data)
	must(t, err)
	writeGolden(t, w)
	want := unhex(t, goldenRing)
	if w.Control().WriteIndex() != 0 {
		t.Fatal("write index published before Commit")
	}
	w.Commit()
	if got := data[:len(want)]; !bytes.Equal(got, want) {
		t.Fatalf("ring bytes differ\n got:\n%s\nwant:\n%s", hex.Dump(got), hex.Dump(want))
	}
	if wi := w.Control().WriteIndex(); wi != uint32(len(want)) {
		t.Fatalf("write index %d, want %d", wi, len(want))
	}

	// Decode, check every field, and re-encode into a second ring.
	r, err := NewReader(ctl, data, nil)
	must(t, err)
	ctl2, data2 := newTestRing(t, 4096)
	w2, err := NewWriter(ctl2, data2)
	must(t, err)
	var p Packet
	var rg gpa.Range

	must(t, r.Next(&p))
	if p.Type != TypeInBand || p.Offset8 != 2 || p.Len8 != 3 || p.Flags != 1 || p.TransID != 0x1122334455667788 ||
		string(p.Payload) != "hello\x00\x00\x00" || p.Offset != 0 || len(p.Raw) != 24 || p.Wrapped {
		t.Fatalf("inband decoded as %+v", p)
	}
	must(t, w2.WriteInBand(p.TransID, p.CompletionRequested(), p.Payload[:5]))

	must(t, r.Next(&p))
	if p.Type != TypeCompletion || p.Flags != 0 || p.TransID != 5 || !bytes.Equal(p.Payload, []byte{1, 2, 3, 4, 5, 6, 7, 8}) || p.Offset != 32 {
		t.Fatalf("completion decoded as %+v", p)
	}
	must(t, w2.WriteCompletion(p.TransID, p.Payload))

	must(t, r.Next(&p))
	if p.Type != TypeGPADirect || p.Offset8 != 6 || p.Len8 != 7 || p.RangeCount != 1 || string(p.Payload) != "abcd\x00\x00\x00\x00" {
		t.Fatalf("gpa-direct decoded as %+v", p)
	}
	it := p.GPARanges()
	var ranges []gpa.Range
	for it.Next(&rg) {
		ranges = append(ranges, gpa.Range{ByteCount: rg.ByteCount, ByteOffset: rg.ByteOffset, PFNs: append([]uint64(nil), rg.PFNs...)})
	}
	must(t, it.Err())
	if len(ranges) != 1 || ranges[0].ByteCount != 0x1800 || ranges[0].ByteOffset != 0x800 ||
		len(ranges[0].PFNs) != 2 || ranges[0].PFNs[0] != 0x1234 || ranges[0].PFNs[1] != 0x1235 {
		t.Fatalf("gpa ranges decoded as %+v", ranges)
	}
	must(t, w2.WriteGPADirect(p.TransID, p.CompletionRequested(), ranges, p.Payload[:4]))

	must(t, r.Next(&p))
	xr := p.AppendXferRanges(nil)
	if p.Type != TypeXferPages || p.XferSetID != 0xCAFE || p.SenderOwnsSet != 1 || p.RangeCount != 2 ||
		len(xr) != 2 || xr[0] != goldenXfer[0] || xr[1] != goldenXfer[1] || string(p.Payload[:3]) != "zzz" {
		t.Fatalf("xfer-pages decoded as %+v ranges %+v", p, xr)
	}
	must(t, w2.WriteXferPages(p.TransID, p.CompletionRequested(), p.XferSetID, p.SenderOwnsSet != 0, xr, p.Payload[:3]))

	if err := r.Next(&p); err != ErrEmpty {
		t.Fatalf("after the last packet: %v, want ErrEmpty", err)
	}
	w2.Commit()
	if !bytes.Equal(data2[:len(want)], want) {
		t.Fatalf("re-encoded ring differs\n%s", hex.Dump(data2[:len(want)]))
	}
	if d := ParseDescriptor(want[32:]); d != (Descriptor{Type: TypeCompletion, Offset8: 2, Len8: 3, TransID: 5}) {
		t.Fatalf("ParseDescriptor = %+v", d)
	}
	var b [DescriptorSize]byte
	d := ParseDescriptor(want)
	d.Put(b[:])
	if !bytes.Equal(b[:], want[:16]) {
		t.Fatal("Descriptor.Put does not round-trip")
	}
	if sz := InBandSize(5) + InBandSize(8) + GPADirectSize(goldenGPA, 4) + XferPagesSize(2, 3); sz != len(want) {
		t.Fatalf("size helpers sum to %d, want %d", sz, len(want))
	}
}
