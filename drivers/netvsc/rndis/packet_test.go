package rndis

import (
	"bytes"
	"errors"
	"testing"
)

func fullInfo() PacketInfo {
	return PacketInfo{
		Present:   HasChecksum | HasVLAN | HasLSO | HasHashValue | HasHashInfo | HasPacketID,
		Checksum:  uint32(NewTxChecksumInfo(TxChecksumIPv4|TxChecksumTCP, 34)),
		VLAN:      NewVLANInfo(100, 5),
		LSO:       NewLSOv2Info(1448, 34, false),
		HashValue: 0xDEADBEEF,
		HashInfo:  HashFunctionToeplitz | HashTCPIPv4,
		PacketID:  PacketID{PacketIDVersion1, PacketIDSubAllocation | PacketIDFirstFragment, 77},
	}
}

// TestPutPacketGolden builds the expected bytes from the rndis_packet
// offsets (spec §3.3): records at 44 in the fixed order hash value, VLAN,
// checksum, LSO, hash info, packet id; frame after them.
func TestPutPacketGolden(t *testing.T) {
	info := fullInfo()
	frame := seq(64, 0x10)
	const hl = 44 + 6*16
	want := msg(hl+64+4, MsgPacket, // 204 bytes padded to 8: 208
		fld{8, uint32(hl - 8)}, fld{12, uint32(64)}, fld{28, uint32(36)}, fld{32, uint32(96)},
		fld{44, uint32(16)}, fld{48, uint32(8)}, fld{52, uint32(12)}, fld{56, uint32(0xDEADBEEF)},
		fld{60, uint32(16)}, fld{64, uint32(6)}, fld{68, uint32(12)}, fld{72, uint32(100<<4 | 5)},
		fld{76, uint32(16)}, fld{80, uint32(0)}, fld{84, uint32(12)}, fld{88, uint32(0x1 | 0x4 | 34<<16)},
		fld{92, uint32(16)}, fld{96, uint32(2)}, fld{100, uint32(12)}, fld{104, uint32(1448 | 34<<20 | 1<<30)},
		fld{108, uint32(16)}, fld{112, uint32(9)}, fld{116, uint32(12)}, fld{120, uint32(0x201)},
		fld{124, uint32(16)}, fld{128, uint32(0x80000001)}, fld{132, uint32(12)}, fld{136, []byte{1, 3, 77, 0}},
		fld{140, frame})
	dst := bytes.Repeat([]byte{0xFF}, 300)
	n, err := PutPacket(dst, &info, frame, 8)
	if err != nil || n != len(want) || !bytes.Equal(dst[:n], want) {
		t.Fatalf("PutPacket %d %v\n got %x\nwant %x", n, err, dst[:n], want)
	}
	var got PacketInfo
	f, m, err := ParsePacket(dst[:n], &got)
	if err != nil || m != n || !bytes.Equal(f, frame) || got != info {
		t.Fatalf("ParsePacket: %v %d %+v", err, m, got)
	}
	// The header alone, for a frame sent in separate pages.
	h := make([]byte, 200)
	hn, err := PutPacketHeader(h, &info, 64)
	if err != nil || hn != hl || !bytes.Equal(h[:hn], put(append([]byte(nil), want[:hl]...), fld{4, uint32(hl + 64)})) {
		t.Fatalf("PutPacketHeader %d %v", hn, err)
	}
	// No PPIs: Linux still sets per_pkt_info_offset 36.
	n, _ = PutPacket(dst, nil, frame[:3], 0)
	if !bytes.Equal(dst[:n], msg(47, MsgPacket, fld{8, uint32(36)}, fld{12, uint32(3)}, fld{28, uint32(36)}, fld{44, frame[:3]})) {
		t.Fatalf("bare %x", dst[:n])
	}
	if _, err := PutPacket(dst[:100], &info, frame, 0); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	if _, err := PutPacketHeader(dst[:50], &info, 0); !errors.Is(err, ErrBuffer) {
		t.Fatal(err)
	}
	if _, err := PutPacket(dst, nil, nil, 6); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
}

// TestPacketIter walks a send section holding three aligned packets, as
// a guest batches them (max_pkt_per_msg, 8-byte alignment).
func TestPacketIter(t *testing.T) {
	buf := make([]byte, 1024)
	var off int
	infos := []PacketInfo{{}, fullInfo(), {Present: HasVLAN, VLAN: VLANInfoFromTCI(0xA00A)}}
	frames := [][]byte{seq(61, 1), seq(14, 2), seq(100, 3)}
	for i := range infos {
		n, err := PutPacket(buf[off:], &infos[i], frames[i], 8)
		if err != nil || n%8 != 0 {
			t.Fatal(n, err)
		}
		off += n
	}
	it := NewPacketIter(buf[:off])
	var info PacketInfo
	i := 0
	for f, ok := it.Next(&info); ok; f, ok = it.Next(&info) {
		if !bytes.Equal(f, frames[i]) || info != infos[i] {
			t.Fatalf("packet %d: %x %+v", i, f, info)
		}
		i++
	}
	if it.Err() != nil || i != 3 || it.Offset() != off {
		t.Fatal(it.Err(), i, it.Offset())
	}
	// A stray tail is an error, reported after the good packets.
	it = NewPacketIter(buf[:off+4])
	for _, ok := it.Next(&info); ok; _, ok = it.Next(&info) {
	}
	if !errors.Is(it.Err(), ErrShort) {
		t.Fatal(it.Err())
	}
	// A control message in a data range.
	it = NewPacketIter(msg(16, MsgSetComplete))
	if _, ok := it.Next(&info); ok || !errors.Is(it.Err(), ErrNotPacket) {
		t.Fatal(it.Err())
	}
}

// TestParsePacketHostLayout reads the layout OpenVMM delivers: data at
// offset 248 (frame at byte 256), PPIs at 36, msg_len the whole slot.
func TestParsePacketHostLayout(t *testing.T) {
	slot := msg(1806, MsgPacket, fld{8, uint32(248)}, fld{12, uint32(42)}, fld{28, uint32(36)}, fld{32, uint32(32)},
		fld{44, AppendPPI(nil, PPIChecksum, uint32(RxChecksumTCPSucceeded|RxChecksumIPSucceeded))},
		fld{60, AppendPPI(nil, PPIHashValue, 0x1234)}, fld{256, seq(42, 0x40)})
	var info PacketInfo
	f, n, err := ParsePacket(slot, &info)
	if err != nil || n != 1806 || !bytes.Equal(f, seq(42, 0x40)) {
		t.Fatal(err, n, f)
	}
	if !info.Has(HasChecksum|HasHashValue) || info.Has(HasVLAN) || RxChecksumInfo(info.Checksum)&RxChecksumTCPSucceeded == 0 || info.HashValue != 0x1234 {
		t.Fatalf("%+v", info)
	}
}

func TestParsePacketErrors(t *testing.T) {
	good := func() []byte {
		return msg(80, MsgPacket, fld{8, uint32(52)}, fld{12, uint32(20)}, fld{28, uint32(36)}, fld{32, uint32(16)},
			fld{44, AppendPPI(nil, PPIVLAN, 1)})
	}
	var info PacketInfo
	if _, _, err := ParsePacket(good(), &info); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"header", good()[:7], ErrShort},
		{"type", put(good(), fld{0, uint32(MsgQuery)}), ErrNotPacket},
		{"msg_len small", put(good(), fld{4, uint32(43)}), ErrLength},
		{"msg_len big", put(good(), fld{4, uint32(81)}), ErrLength},
		{"data offset in header", put(good(), fld{8, uint32(32)}), ErrOffset},
		{"data past end", put(good(), fld{12, uint32(21)}), ErrOffset},
		{"data offset wraps", put(good(), fld{8, uint32(0xFFFFFFF8)}), ErrOffset},
		{"ppi past end", put(good(), fld{32, uint32(0x7FFFFFFF)}), ErrOffset},
		{"ppi offset in header", put(good(), fld{28, uint32(4)}), ErrOffset},
		{"oob past end", put(good(), fld{16, uint32(60)}, fld{20, uint32(40)}), ErrOffset},
		{"ppi size 0", put(good(), fld{44, uint32(0)}), ErrPPI},
		{"ppi size odd", put(good(), fld{44, uint32(14)}), ErrPPI},
		{"ppi size beyond", put(good(), fld{44, uint32(20)}), ErrPPI},
		{"ppi offset beyond", put(good(), fld{52, uint32(20)}), ErrPPI},
		{"ppi offset in header", put(good(), fld{52, uint32(8)}), ErrPPI},
		{"known ppi without value", put(good(), fld{52, uint32(16)}), ErrPPI},
	} {
		if _, _, err := ParsePacket(c.b, &info); !errors.Is(err, c.err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// An empty area's offset is ignored; an unknown record is skipped;
	// the first of two records counts.
	b := put(good(), fld{16, uint32(0xFFFFFFFF)}, fld{32, uint32(32)})
	copy(b[60:], AppendPPI(nil, PPIVLAN, 2))
	if _, _, err := ParsePacket(b, &info); err != nil || info.VLAN != 1 {
		t.Fatal(err, info)
	}
	copy(b[44:], AppendPPIData(nil, PPISGList, []byte{9}))
	if _, _, err := ParsePacket(b, &info); err != nil || info.VLAN != 2 {
		t.Fatal(err, info)
	}
}

func TestPPIIter(t *testing.T) {
	b := AppendPPI(nil, PPIChecksum, 7)
	b = AppendPPIData(b, PPIOriginal, []byte{1, 2, 3, 4, 5})
	b = AppendPPIData(b, PPIPacketID, nil)
	it := NewPPIIter(b)
	var got []PPI
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		got = append(got, p)
	}
	if it.Err() != nil || len(got) != 3 || got[0].Type != PPIChecksum || !bytes.Equal(got[1].Data, []byte{1, 2, 3, 4, 5, 0, 0, 0}) ||
		got[2].Type != PPIPacketID || len(got[2].Data) != 0 {
		t.Fatalf("%v %+v", it.Err(), got)
	}
	if v, ok := got[0].U32(); !ok || v != 7 {
		t.Fatal(v)
	}
	if _, ok := got[2].U32(); ok {
		t.Fatal("empty record has a value")
	}
	if err := ValidatePPIs(b[:20]); !errors.Is(err, ErrPPI) {
		t.Fatal(err)
	}
}

func TestBitLayouts(t *testing.T) {
	v := VLANInfoFromTCI(0xB064) // PCP 5, DEI 1, VID 0x064
	if v.ID() != 0x64 || v.Priority() != 5 || !v.CFI() || v.TCI() != 0xB064 || uint32(v) != 0x64<<4|8|5 {
		t.Fatalf("%#x", uint32(v))
	}
	l := NewLSOv2Info(9000, 54, true)
	if l.MSS() != 9000 || l.TCPHeaderOffset() != 54 || !l.IsV2() || !l.IPv6() || uint32(l) != 9000|54<<20|3<<30 {
		t.Fatalf("%#x", uint32(l))
	}
	c := NewTxChecksumInfo(TxChecksumIPv6|TxChecksumUDP, 54)
	if c.L4Offset() != 54 || uint32(c) != 0x2|0x8|54<<16 {
		t.Fatalf("%#x", uint32(c))
	}
	if p := packetIDFrom(PacketID{1, 6, 0xBEEF}.u32()); p != (PacketID{1, 6, 0xBEEF}) {
		t.Fatal(p)
	}
}
