package gpa

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Golden: a 5000-byte buffer starting 0x100 into pfn 0x1234 touches two
// pages; bytes laid out as struct gpa_range in Linux include/linux/hyperv.h.
func TestGoldenRange(t *testing.T) {
	want, _ := hex.DecodeString("88130000" + "00010000" + "3412000000000000" + "9a78560000000000")
	r := Range{ByteCount: 5000, ByteOffset: 0x100, PFNs: []uint64{0x1234, 0x56789a}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	got := r.Append(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	put := make([]byte, r.EncodedLen())
	if n := r.Put(put); n != len(want) || !bytes.Equal(put, want) {
		t.Fatalf("put %d %x", n, put)
	}
	var d Range
	n, err := Decode(want, &d, 0)
	if err != nil || n != len(want) {
		t.Fatalf("decode n=%d err=%v", n, err)
	}
	if d.ByteCount != 5000 || d.ByteOffset != 0x100 || len(d.PFNs) != 2 || d.PFNs[0] != 0x1234 || d.PFNs[1] != 0x56789a {
		t.Fatalf("decoded %+v", d)
	}
	if !bytes.Equal(d.Append(nil), want) {
		t.Fatal("re-encode differs")
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		hex  string
		max  int
		err  error
	}{
		{"short header", "0100", 0, ErrShort},
		{"zero count", "00000000" + "00000000" + "0100000000000000", 0, ErrZeroLength},
		{"offset past page", "01000000" + "00100000" + "0100000000000000", 0, ErrOffset},
		{"missing pfn", "01100000" + "00000000" + "0100000000000000", 0, ErrShort},
		{"too many pages", "00300000" + "00000000", 2, ErrTooManyPFNs},
	}
	for _, c := range cases {
		b, _ := hex.DecodeString(c.hex)
		var r Range
		if _, err := Decode(b, &r, c.max); !errors.Is(err, c.err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
	}
}

func TestValidateAndSpan(t *testing.T) {
	r := Range{ByteCount: 8192, ByteOffset: 10, PFNs: []uint64{7, 9}}
	if !errors.Is(r.Validate(), ErrPageCount) {
		t.Fatal("3 pages needed, 2 given: want ErrPageCount")
	}
	r.PFNs = append(r.PFNs, 11)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		off  uint32
		gpa  uint64
		cont uint32
	}{
		{0, 7<<12 | 10, 4086},
		{4086, 9 << 12, 4096},
		{8182, 11 << 12, 10},
		{8191, 11<<12 | 9, 1},
	}
	for _, c := range cases {
		g, n := r.Span(c.off)
		if g != c.gpa || n != c.cont {
			t.Errorf("Span(%d) = %#x,%d want %#x,%d", c.off, g, n, c.gpa, c.cont)
		}
	}
}

func TestDecodeReusesPFNs(t *testing.T) {
	b := (&Range{ByteCount: 100, PFNs: []uint64{42}}).Append(nil)
	r := Range{PFNs: make([]uint64, 0, 4)}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Decode(b, &r, 4); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("decode allocates %.1f times", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Range{ByteCount: 5000, ByteOffset: 0x100, PFNs: []uint64{1, 2}}).Append(nil))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Range
		n, err := Decode(b, &r, 64)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded range fails Validate: %v", err)
		}
		if n != r.EncodedLen() || !bytes.Equal(r.Append(nil), b[:n]) {
			t.Fatal("round trip differs")
		}
		for off := uint32(0); off < r.ByteCount; {
			_, c := r.Span(off)
			if c == 0 {
				t.Fatal("zero-length span")
			}
			off += c
		}
	})
}
