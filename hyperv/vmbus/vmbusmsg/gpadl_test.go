package vmbusmsg

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

func pfns(n int, base uint64) []uint64 {
	p := make([]uint64, n)
	for i := range p {
		p[i] = base + uint64(i)*3
	}
	return p
}

// 128 pages: header 26 + bodies 28, 28, 28, 18 (spec §4).
func TestSplitGPADL128(t *testing.T) {
	r := PageRange(pfns(128, 0x10000))
	h, bodies, err := SplitGPADL(5, 0xe1e10, []gpa.Range{r})
	if err != nil {
		t.Fatal(err)
	}
	if h.RangeBufLen != 8+8*128 || h.RangeCount != 1 || len(h.Data) != 8+8*26 || h.ChildRelID != 5 || h.GPADL != 0xe1e10 {
		t.Fatalf("header %+v", h)
	}
	if h.EncodedLen() != 236 {
		t.Fatalf("header is %d bytes", h.EncodedLen())
	}
	want := []int{28, 28, 28, 18}
	if len(bodies) != len(want) {
		t.Fatalf("%d bodies", len(bodies))
	}
	for i, b := range bodies {
		if len(b.Data) != 8*want[i] || b.GPADL != 0xe1e10 || b.EncodedLen() > MaxMessageSize {
			t.Fatalf("body %d: %d bytes", i, len(b.Data))
		}
	}
	// Through the wire and an Assembler.
	a := NewAssembler(0)
	m, err := DecodeFromGuest(h.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if g, err := a.Add(m); g != nil || err != nil {
		t.Fatal(g, err)
	}
	var done *GPADL
	for i, b := range bodies {
		m, err := DecodeFromGuest(b.Encode())
		if err != nil {
			t.Fatal(err)
		}
		done, err = a.Add(m)
		if err != nil || (done != nil) != (i == len(bodies)-1) {
			t.Fatalf("body %d: %v %v", i, done, err)
		}
	}
	if done.ChildRelID != 5 || done.ID != 0xe1e10 || done.PageCount() != 128 || !reflect.DeepEqual(done.Ranges, []gpa.Range{r}) {
		t.Fatalf("%+v", done)
	}
	if a.Pending() != 0 || a.PendingWords() != 0 {
		t.Fatal("assembler kept state")
	}
}

func TestSplitGPADLSmall(t *testing.T) {
	for _, n := range []int{1, 26, 27, 54, 55} {
		h, bodies, err := SplitGPADL(1, 2, []gpa.Range{PageRange(pfns(n, 7))})
		if err != nil {
			t.Fatal(err)
		}
		wantBodies := 0
		if n > 26 {
			wantBodies = (n - 26 + 27) / 28
		}
		if len(bodies) != wantBodies || h.Complete() != (n <= 26) {
			t.Fatalf("%d pages: %d bodies", n, len(bodies))
		}
		if h.Complete() {
			rs, err := h.Ranges()
			if err != nil || len(rs[0].PFNs) != n {
				t.Fatal(err)
			}
		} else if _, err := h.Ranges(); !errors.Is(err, ErrInconsistent) {
			t.Fatal(err)
		}
	}
}

// Several ranges, one with an unaligned buffer, some range headers landing
// in bodies.
func TestSplitGPADLMultiRange(t *testing.T) {
	ranges := []gpa.Range{
		PageRange(pfns(20, 0x100)),
		{ByteCount: 5000, ByteOffset: 0x100, PFNs: pfns(2, 0x900)},
		PageRange(pfns(40, 0x2000)),
		PageRange(pfns(1, 0x5000)),
	}
	h, bodies, err := SplitGPADL(3, 9, ranges)
	if err != nil {
		t.Fatal(err)
	}
	if h.RangeCount != 4 || int(h.RangeBufLen) != 4*8+8*(20+2+40+1) {
		t.Fatalf("%+v", h)
	}
	a := NewAssembler(0)
	if g, err := a.Header(h); g != nil || err != nil {
		t.Fatal(err)
	}
	var g *GPADL
	for _, b := range bodies {
		if g, err = a.Body(b); err != nil {
			t.Fatal(err)
		}
	}
	if g == nil || !reflect.DeepEqual(g.Ranges, ranges) {
		t.Fatalf("%+v", g)
	}
}

func TestSplitGPADLErrors(t *testing.T) {
	if _, _, err := SplitGPADL(1, 1, nil); !errors.Is(err, ErrInconsistent) {
		t.Fatal(err)
	}
	if _, _, err := SplitGPADL(1, 1, []gpa.Range{{ByteCount: 4096}}); !errors.Is(err, ErrInconsistent) {
		t.Fatal(err)
	}
	if _, _, err := SplitGPADL(1, 1, []gpa.Range{PageRange(pfns(8190, 0))}); err != nil {
		t.Fatalf("largest single range: %v", err)
	}
	if _, _, err := SplitGPADL(1, 1, []gpa.Range{PageRange(pfns(8191, 0))}); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
}

func TestGPADLHeaderInconsistent(t *testing.T) {
	for name, b := range map[string][]byte{
		"no ranges":           lay(36, MsgGPADLHeader, fld{16, uint16(16)}, fld{18, uint16(0)}, fld{20, uint32(4096)}),
		"buflen not words":    lay(36, MsgGPADLHeader, fld{16, uint16(17)}, fld{18, uint16(1)}, fld{20, uint32(4096)}),
		"buflen below ranges": lay(36, MsgGPADLHeader, fld{16, uint16(24)}, fld{18, uint16(2)}, fld{20, uint32(4096)}),
		"data past buflen":    lay(44, MsgGPADLHeader, fld{16, uint16(16)}, fld{18, uint16(1)}, fld{20, uint32(4096)}),
		"ragged data":         lay(40, MsgGPADLHeader, fld{16, uint16(24)}, fld{18, uint16(1)}, fld{20, uint32(4096)}),
		"zero byte count":     lay(36, MsgGPADLHeader, fld{16, uint16(16)}, fld{18, uint16(1)}),
		"offset past page":    lay(36, MsgGPADLHeader, fld{16, uint16(16)}, fld{18, uint16(1)}, fld{20, uint32(1)}, fld{24, uint32(4096)}),
		// 3 pages announced in byte_count, 1 PFN in buflen.
		"pfns disagree": lay(36, MsgGPADLHeader, fld{16, uint16(16)}, fld{18, uint16(1)}, fld{20, uint32(3 * 4096)}),
		// Complete array, 1 page, but buflen leaves 8 bytes unused.
		"short of buflen": lay(44, MsgGPADLHeader, fld{16, uint16(24)}, fld{18, uint16(1)}, fld{20, uint32(4096)}),
		// Two ranges counted, complete array holds one.
		"missing range": lay(52, MsgGPADLHeader, fld{16, uint16(32)}, fld{18, uint16(2)}, fld{20, uint32(3 * 4096)}),
		// A second range header where rangecount says one.
		"extra range": lay(52, MsgGPADLHeader, fld{16, uint16(32)}, fld{18, uint16(1)}, fld{20, uint32(4096)}, fld{36, uint32(4096)}),
	} {
		if _, err := DecodeFromGuest(b); !errors.Is(err, ErrInconsistent) {
			t.Errorf("%s: %v", name, err)
		}
	}
	h := &GPADLHeader{RangeBufLen: 16, RangeCount: 1}
	if err := h.Validate(); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	h.Data = make([]byte, 224)
	if err := h.Validate(); !errors.Is(err, ErrTooLong) {
		t.Fatal(err)
	}
}
