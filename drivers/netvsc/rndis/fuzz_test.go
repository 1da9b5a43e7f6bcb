package rndis

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

var sentinels = []error{ErrShort, ErrLength, ErrOffset, ErrUnknownType, ErrWrongDirection, ErrNotPacket, ErrPPI, ErrObject, ErrBuffer}

func sentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without a sentinel: %v", err)
}

func FuzzDecodeMessage(f *testing.F) {
	for _, g := range goldens() {
		f.Add(g.wire)
	}
	buf := make([]byte, 512)
	info := fullInfo()
	n, _ := PutPacket(buf, &info, seq(100, 1), 8)
	f.Add(buf[:n])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			sentinel(t, err)
			return
		}
		enc := m.Encode()
		if len(enc) != m.EncodedLen() {
			t.Fatalf("%s: %d bytes, EncodedLen %d", m.Type(), len(enc), m.EncodedLen())
		}
		m2, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("%s: re-encoded message refused: %v\n%x", m.Type(), err, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s: round trip differs\n %+v\n %+v", m.Type(), m, m2)
		}
	})
}

func FuzzPPI(f *testing.F) {
	b := AppendPPI(nil, PPIChecksum, 1)
	b = AppendPPI(b, PPIVLAN, 2)
	b = AppendPPIData(b, PPIOriginal, []byte{1, 2, 3})
	f.Add(b)
	f.Add(AppendPPI(nil, PPIPacketID, 0x00050601))
	f.Add([]byte{16, 0, 0, 0, 6, 0, 0, 0, 16, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		it := NewPPIIter(b)
		var again []byte
		var recs []PPI
		for p, ok := it.Next(); ok; p, ok = it.Next() {
			recs = append(recs, p)
			again = AppendPPIData(again, p.Type, p.Data)
		}
		if err := it.Err(); err != nil {
			sentinel(t, err)
		} else if it.off != len(b) {
			t.Fatalf("stopped at %d of %d without an error", it.off, len(b))
		}
		var info PacketInfo
		if err := parseInfo(b, &info); err != nil {
			sentinel(t, err)
		}
		// Re-appended records read back the same, up to padding.
		it2 := NewPPIIter(again)
		for i := 0; ; i++ {
			p, ok := it2.Next()
			if !ok {
				if it2.Err() != nil || i != len(recs) {
					t.Fatalf("re-read %d of %d: %v", i, len(recs), it2.Err())
				}
				break
			}
			if p.Type != recs[i].Type || !bytes.HasPrefix(p.Data, recs[i].Data) || len(p.Data) != (len(recs[i].Data)+3)&^3 {
				t.Fatalf("record %d: %+v vs %+v", i, p, recs[i])
			}
		}
	})
}

func FuzzParsePackets(f *testing.F) {
	buf := make([]byte, 1024)
	info := fullInfo()
	n, _ := PutPacket(buf, &info, seq(100, 1), 8)
	m, _ := PutPacket(buf[n:], &PacketInfo{Present: HasVLAN, VLAN: 5}, seq(60, 2), 8)
	f.Add(buf[:n+m])
	f.Add(buf[:n-1])
	f.Add(goldens()[len(goldens())-1].wire)
	f.Fuzz(func(t *testing.T, b []byte) {
		it := NewPacketIter(b)
		var info, info2 PacketInfo
		out := make([]byte, len(b)+PacketHeaderLen(&PacketInfo{Present: 0x3F}))
		for frame, ok := it.Next(&info); ok; frame, ok = it.Next(&info) {
			if it.Offset() > len(b) {
				t.Fatalf("offset %d past %d", it.Offset(), len(b))
			}
			n, err := PutPacket(out, &info, frame, 8)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			f2, n2, err := ParsePacket(out[:n], &info2)
			if err != nil || n2 != n || !bytes.Equal(f2, frame) || info2 != info {
				t.Fatalf("rebuilt packet differs: %v\n%+v\n%+v", err, info, info2)
			}
		}
		if err := it.Err(); err != nil {
			sentinel(t, err)
		} else if it.Offset() != len(b) {
			t.Fatalf("stopped at %d of %d without an error", it.Offset(), len(b))
		}
	})
}

// ndisKinds are the objects FuzzNDISObjects picks from with its first
// byte: decode, encode, decode again, compare.
var ndisKinds = []func(b []byte) (any, func() []byte, error){
	func(b []byte) (any, func() []byte, error) {
		o, err := DecodeOffloadParameters(b)
		return o, o.Encode, err
	},
	func(b []byte) (any, func() []byte, error) { o, err := DecodeOffload(b); return o, o.Encode, err },
	func(b []byte) (any, func() []byte, error) {
		o, err := DecodeRSSCapabilities(b)
		return o, o.Encode, err
	},
	func(b []byte) (any, func() []byte, error) { o, err := DecodeRSSParameters(b); return o, o.Encode, err },
	func(b []byte) (any, func() []byte, error) {
		o, err := DecodeConfigParameter(b)
		return o, o.Encode, err
	},
}

func FuzzNDISObjects(f *testing.F) {
	off := Offload{Header: OffloadHeader(3), Flags: 1}
	rss := NewRSSParameters(4)
	rss.KeyFirst = true
	for i, b := range [][]byte{
		NewOffloadParameters(3).Encode(), off.Encode(), (&RSSCapabilities{RSSCapabilitiesHeader, 0x301, 1, 8, 128}).Encode(),
		rss.Encode(), NewMACAddressParameter([6]byte{1, 2, 3, 4, 5, 6}).Encode(),
	} {
		f.Add(append([]byte{byte(i)}, b...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		dec := ndisKinds[int(b[0])%len(ndisKinds)]
		o, enc, err := dec(b[1:])
		if err != nil {
			sentinel(t, err)
			return
		}
		e := enc()
		o2, _, err := dec(e)
		if err != nil {
			t.Fatalf("re-encoded object refused: %v\n%x", err, e)
		}
		if !reflect.DeepEqual(o, o2) {
			t.Fatalf("round trip differs\n %+v\n %+v", o, o2)
		}
	})
}
