package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// within reports whether s lies inside b's memory.
func within(s, b []byte) bool {
	if len(s) == 0 {
		return true
	}
	sp := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	bp := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return sp >= bp && sp+uintptr(len(s)) <= bp+uintptr(len(b))
}

// FuzzReadPackets feeds an arbitrary control page and data area to a
// reader. It must never panic or loop, and every packet it accepts must
// lie within the published bytes and be self-consistent.
func FuzzReadPackets(f *testing.F) {
	// Seeds: the golden ring, and one that wraps.
	golden := unhex(f, goldenRing)
	f.Add(uint32(len(golden)), uint32(0), uint32(0), uint8(0), golden)
	ctl, data := newTestRing(f, 256)
	w, _ := NewWriter(ctl, data)
	r, _ := NewReader(ctl, data, nil)
	for i := 0; i < 5; i++ {
		w.WriteXferPages(uint64(i), true, 1, true, []XferRange{{1, 2}}, make([]byte, 30))
		w.Commit()
		r.Drain(0, func(*Packet) error { return nil })
	}
	w.WriteGPADirect(1, true, goldenGPA, []byte("wrapping"))
	w.Commit()
	c := w.Control()
	f.Add(c.WriteIndex(), c.ReadIndex(), uint32(64), uint8(1), append([]byte(nil), data...))

	f.Fuzz(func(t *testing.T, wi, ri, pss uint32, flags uint8, body []byte) {
		n := len(body) &^ 7
		if n > 1<<14 {
			n = 1 << 14
		}
		if n < MinDataSize {
			n = MinDataSize
		}
		buf := make([]byte, ControlSize+n)
		ctl, data := buf[:ControlSize], buf[ControlSize:]
		copy(data, body)
		if flags&1 != 0 { // steer towards valid indices
			wi, ri = wi%uint32(n)&^7, ri%uint32(n)&^7
		}
		c, _ := NewControl(ctl)
		c.SetWriteIndex(wi)
		c.SetReadIndex(ri)
		c.SetPendingSendSize(pss)
		c.SetFeatureBits(uint32(flags>>1) & 1)
		r, err := NewReader(ctl, data, nil)
		if err != nil {
			if !errors.Is(err, ErrIndex) {
				t.Fatalf("NewReader: unexpected %v", err)
			}
			return
		}
		avail := r.Available()
		consumed := 0
		var p Packet
		rg := gpa.Range{PFNs: make([]uint64, 0, 8)}
		// Each packet takes at least 24 bytes, so this bounds any loop.
		for i := 0; ; i++ {
			if i > n/24+1 {
				t.Fatalf("reader returned %d packets from %d bytes", i, n)
			}
			err := r.Next(&p)
			if err == ErrEmpty {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("non-corruption error from peer data: %v", err)
				}
				if r.Next(&p) != err {
					t.Fatal("corruption not persistent")
				}
				break
			}
			checkAccepted(t, &p, data, r.scratch, &rg)
			consumed += len(p.Raw) + TrailerSize
			if consumed > avail {
				t.Fatalf("consumed %d of %d available bytes", consumed, avail)
			}
			if flags&8 != 0 && i%3 == 2 {
				r.Commit()
			}
		}
		r.Commit()
		r.BeginRead()
		r.EndRead()
	})
}

func checkAccepted(t *testing.T, p *Packet, data, scratch []byte, rg *gpa.Range) {
	t.Helper()
	if len(p.Raw) != int(p.Len8)*8 || p.Offset8 < 2 || p.Offset8 > p.Len8 ||
		len(p.Payload) != len(p.Raw)-int(p.Offset8)*8 {
		t.Fatalf("inconsistent packet %+v", p.Descriptor)
	}
	if p.Wrapped && !within(p.Raw, scratch) || !p.Wrapped && !within(p.Raw, data) || !within(p.Payload, p.Raw) {
		t.Fatal("packet view outside its memory")
	}
	if p.Flags&^FlagCompletionRequested != 0 {
		t.Fatalf("accepted flags %#x", p.Flags)
	}
	switch p.Type {
	case TypeInBand, TypeCompletion:
	case TypeGPADirect:
		it := p.GPARanges()
		got := 0
		for it.Next(rg) {
			if err := rg.Validate(); err != nil {
				t.Fatal(err)
			}
			got++
		}
		if it.Err() != nil || got != int(p.RangeCount) || got == 0 {
			t.Fatalf("accepted gpa-direct: %d of %d ranges, %v", got, p.RangeCount, it.Err())
		}
	case TypeXferPages:
		if 24+8*int(p.RangeCount) > int(p.Offset8)*8 {
			t.Fatalf("xfer range count %d beyond header", p.RangeCount)
		}
		if p.RangeCount > 0 {
			_ = p.XferRange(int(p.RangeCount) - 1)
		}
	default:
		t.Fatalf("accepted type %v", p.Type)
	}
}

// publishRaw places raw packet bytes (without trailer) at offset start of
// a fresh ring and publishes them, returning a reader positioned there.
func publishRaw(t *testing.T, dsize int, start uint32, raw []byte) *Reader {
	ctl, data := newTestRing(t, dsize)
	g, err := newRing(ctl, data)
	must(t, err)
	start = start % g.size &^ 7
	end := g.copyIn(start, raw)
	var tr [8]byte
	binary.LittleEndian.PutUint64(tr[:], uint64(start)<<32)
	end = g.copyIn(end, tr[:])
	g.ctl.SetReadIndex(start)
	g.ctl.SetWriteIndex(end)
	r, err := NewReader(ctl, data, nil)
	must(t, err)
	return r
}

// extPacket builds a packet of type typ with the 8-byte extension header
// hdr, the range bytes ext (padded to 8) and an 8-byte payload.
func extPacket(typ PacketType, hdr uint64, ext []byte) []byte {
	ext = ext[:len(ext)&^7]
	off8 := (DescriptorSize + ExtHeaderSize + len(ext)) / 8
	d := Descriptor{Type: typ, Offset8: uint16(off8), Len8: uint16(off8 + 1), Flags: 1, TransID: 77}
	raw := make([]byte, off8*8+8)
	d.Put(raw)
	binary.LittleEndian.PutUint64(raw[16:], hdr)
	copy(raw[24:], ext)
	copy(raw[off8*8:], "PAYLOAD!")
	return raw
}

// FuzzGPADirect checks GPA-direct range parsing against an independent
// sequential gpa.Decode, and that accepted ranges re-encode identically.
func FuzzGPADirect(f *testing.F) {
	f.Add(uint32(1), uint32(0), unhex(f, "00180000 00080000 3412000000000000 3512000000000000"), uint16(0))
	f.Add(uint32(2), uint32(0xdead), unhex(f, "10000000 00000000 0100000000000000 00100000 ff0f0000 0200000000000000 0300000000000000"), uint16(4000))
	f.Add(uint32(0), uint32(0), []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, count, reserved uint32, ext []byte, start uint16) {
		if len(ext) > 4096 {
			ext = ext[:4096]
		}
		raw := extPacket(TypeGPADirect, uint64(reserved)|uint64(count)<<32, ext)
		ext = ext[:len(ext)&^7]
		r := publishRaw(t, 8192, uint32(start), raw)
		var p Packet
		err := r.Next(&p)

		// Independent expectation.
		var want []gpa.Range
		ok := count > 0
		rest := ext
		for i := uint32(0); ok && i < count; i++ {
			var rg gpa.Range
			k, derr := gpa.Decode(rest, &rg, 0)
			if derr != nil {
				ok = false
				break
			}
			want = append(want, rg)
			rest = rest[k:]
		}
		if (err == nil) != ok {
			t.Fatalf("reader err %v, independent parse ok=%v", err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrRangeCount) && !errors.Is(err, ErrRange) {
				t.Fatalf("unexpected error kind %v", err)
			}
			return
		}
		if p.RangeCount != count || string(p.Payload) != "PAYLOAD!" || p.TransID != 77 {
			t.Fatalf("packet %+v", p)
		}
		it := p.GPARanges()
		var got []gpa.Range
		var rg gpa.Range
		for it.Next(&rg) {
			got = append(got, gpa.Range{ByteCount: rg.ByteCount, ByteOffset: rg.ByteOffset, PFNs: append([]uint64(nil), rg.PFNs...)})
		}
		if it.Err() != nil || len(got) != len(want) {
			t.Fatalf("iterated %d ranges, want %d: %v", len(got), len(want), it.Err())
		}
		// Re-encode: the range bytes must come out identical.
		ctl, data := newTestRing(t, 16384)
		w, err := NewWriter(ctl, data)
		must(t, err)
		must(t, w.WriteGPADirect(77, true, got, []byte("PAYLOAD!")))
		used := len(ext) - len(rest)
		if !bytes.Equal(data[24:24+used], ext[:used]) || binary.LittleEndian.Uint32(data[20:]) != count {
			t.Fatal("ranges do not re-encode to the same bytes")
		}
	})
}

// FuzzXferPages checks transfer-page header and range parsing, and that
// accepted packets re-encode identically.
func FuzzXferPages(f *testing.F) {
	f.Add(uint16(0xCAFE), uint8(1), uint8(0), uint32(2), unhex(f, "64000000 00020000 c8000000 00100000"), uint16(0))
	f.Add(uint16(1), uint8(0), uint8(9), uint32(0), []byte{}, uint16(8184))
	f.Fuzz(func(t *testing.T, setID uint16, owns, reserved uint8, count uint32, ext []byte, start uint16) {
		if len(ext) > 4096 {
			ext = ext[:4096]
		}
		hdr := uint64(setID) | uint64(owns)<<16 | uint64(reserved)<<24 | uint64(count)<<32
		raw := extPacket(TypeXferPages, hdr, ext)
		ext = ext[:len(ext)&^7]
		r := publishRaw(t, 8192, uint32(start), raw)
		var p Packet
		err := r.Next(&p)
		ok := uint64(count)*8 <= uint64(len(ext))
		if (err == nil) != ok {
			t.Fatalf("reader err %v, want ok=%v", err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrRangeCount) {
				t.Fatalf("unexpected error kind %v", err)
			}
			return
		}
		if p.XferSetID != setID || p.SenderOwnsSet != owns || p.RangeCount != count || string(p.Payload) != "PAYLOAD!" {
			t.Fatalf("header decoded as %+v", p)
		}
		xr := p.AppendXferRanges(nil)
		for i, x := range xr {
			if x.ByteCount != binary.LittleEndian.Uint32(ext[8*i:]) || x.ByteOffset != binary.LittleEndian.Uint32(ext[8*i+4:]) {
				t.Fatalf("range %d decoded as %+v", i, x)
			}
		}
		ctl, data := newTestRing(t, 16384)
		w, err := NewWriter(ctl, data)
		must(t, err)
		must(t, w.WriteXferPages(77, true, setID, owns != 0, xr, []byte("PAYLOAD!")))
		if !bytes.Equal(data[24:24+8*len(xr)], ext[:8*len(xr)]) || binary.LittleEndian.Uint16(data[16:]) != setID {
			t.Fatal("xfer packet does not re-encode to the same bytes")
		}
	})
}
