package ring

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// TestCorruptRing damages a valid ring in one way each and checks that the
// reader reports the specific error, wrapped in ErrCorrupt, and keeps
// reporting it.
func TestCorruptRing(t *testing.T) {
	put16 := func(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
	put32 := func(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
	inband := func(w *Writer) { must(t, w.WriteInBand(1, true, make([]byte, 40))) }
	gpaPkt := func(w *Writer) {
		must(t, w.WriteGPADirect(1, true, []gpa.Range{{ByteCount: 100, ByteOffset: 8, PFNs: []uint64{7}}}, []byte("p")))
	}
	xferPkt := func(w *Writer) {
		must(t, w.WriteXferPages(1, true, 1, false, []XferRange{{1, 2}, {3, 4}}, []byte("p")))
	}
	cases := []struct {
		name   string
		write  func(*Writer)
		damage func(c Control, data []byte)
		want   error
	}{
		{"write index out of range", inband, func(c Control, d []byte) { c.SetWriteIndex(uint32(len(d))) }, ErrIndex},
		{"write index huge", inband, func(c Control, d []byte) { c.SetWriteIndex(0xFFFFFFF8) }, ErrIndex},
		{"write index misaligned", inband, func(c Control, d []byte) { c.SetWriteIndex(20) }, ErrIndex},
		{"less than a descriptor published", inband, func(c Control, d []byte) { c.SetWriteIndex(16) }, ErrTruncated},
		{"packet longer than published", inband, func(c Control, d []byte) { c.SetWriteIndex(56) }, ErrTruncated},
		{"trailer not published", inband, func(c Control, d []byte) { put16(d, 4, 9) }, ErrTruncated},
		{"offset8 below descriptor", inband, func(c Control, d []byte) { put16(d, 2, 1) }, ErrDescriptor},
		{"offset8 zero", inband, func(c Control, d []byte) { put16(d, 2, 0) }, ErrDescriptor},
		{"len8 below offset8", inband, func(c Control, d []byte) { put16(d, 2, 5); put16(d, 4, 4) }, ErrDescriptor},
		{"len8 huge", inband, func(c Control, d []byte) { put16(d, 2, 2); put16(d, 4, 0xFFFF) }, ErrTruncated},
		{"type invalid", inband, func(c Control, d []byte) { put16(d, 0, 0) }, ErrType},
		{"type synch", inband, func(c Control, d []byte) { put16(d, 0, 1) }, ErrType},
		{"type using gpadl", inband, func(c Control, d []byte) { put16(d, 0, 8) }, ErrType},
		{"type unknown", inband, func(c Control, d []byte) { put16(d, 0, 0x99) }, ErrType},
		{"reserved flag", inband, func(c Control, d []byte) { put16(d, 6, 3) }, ErrFlags},
		{"high flag", inband, func(c Control, d []byte) { put16(d, 6, 0x8000) }, ErrFlags},
		{"gpa rangecount zero", gpaPkt, func(c Control, d []byte) { put32(d, 20, 0) }, ErrRangeCount},
		{"gpa rangecount too large", gpaPkt, func(c Control, d []byte) { put32(d, 20, 2) }, ErrRangeCount},
		{"gpa rangecount huge", gpaPkt, func(c Control, d []byte) { put32(d, 20, 0xFFFFFFFF) }, ErrRangeCount},
		{"gpa range zero bytes", gpaPkt, func(c Control, d []byte) { put32(d, 24, 0) }, ErrRange},
		{"gpa range offset past page", gpaPkt, func(c Control, d []byte) { put32(d, 28, 4096) }, ErrRange},
		{"gpa range needs more pfns", gpaPkt, func(c Control, d []byte) { put32(d, 24, 5000) }, ErrRange},
		{"gpa header cut off", gpaPkt, func(c Control, d []byte) { put16(d, 2, 2) }, ErrDescriptor},
		{"xfer rangecount too large", xferPkt, func(c Control, d []byte) { put32(d, 20, 3) }, ErrRangeCount},
		{"xfer rangecount huge", xferPkt, func(c Control, d []byte) { put32(d, 20, 0x20000000) }, ErrRangeCount},
		{"xfer header cut off", xferPkt, func(c Control, d []byte) { put16(d, 2, 2) }, ErrDescriptor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, r, data := newPair(t, 4096)
			tc.write(w)
			w.Commit()
			tc.damage(r.Control(), data)
			var p Packet
			err := r.Next(&p)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want %v wrapped in %v", err, tc.want, ErrCorrupt)
			}
			// The ring is dead: the same error again, and after repair too.
			w.Commit()
			if err2 := r.Next(&p); err2 != err || r.Err() != err {
				t.Fatalf("second Next = %v, want the persistent %v", err2, err)
			}
			if r.Commit() {
				t.Fatal("dead ring signalled")
			}
		})
	}
}

// TestCorruptReadIndexSeenByWriter: a bad read_index from the reader kills
// the writer with a persistent ErrIndex.
func TestCorruptReadIndexSeenByWriter(t *testing.T) {
	w, _, _ := newPair(t, 256)
	for w.WriteInBand(0, false, make([]byte, 40)) == nil {
	}
	w.Control().SetReadIndex(4)
	err := w.WriteInBand(0, false, make([]byte, 40))
	if !errors.Is(err, ErrIndex) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
	w.Control().SetReadIndex(0)
	if err2 := w.WriteInBand(0, false, nil); err2 != err || w.Err() != err {
		t.Fatalf("writer error not persistent: %v", err2)
	}
	if _, err3 := w.ArmPendingSend(64); err3 != err {
		t.Fatalf("ArmPendingSend on a dead ring: %v", err3)
	}
}

// TestRangeChangedAfterValidation: the peer rewrites a range in shared
// memory after the reader accepted the packet; the iterator reports it.
func TestRangeChangedAfterValidation(t *testing.T) {
	w, r, data := newPair(t, 4096)
	must(t, w.WriteGPADirect(1, true, []gpa.Range{{ByteCount: 100, PFNs: []uint64{7}}}, nil))
	w.Commit()
	var p Packet
	must(t, r.Next(&p))
	binary.LittleEndian.PutUint32(data[24:], 0)
	it := p.GPARanges()
	var rg gpa.Range
	if it.Next(&rg) || !errors.Is(it.Err(), ErrRange) {
		t.Fatalf("iterator over a changed range: %v", it.Err())
	}
}
