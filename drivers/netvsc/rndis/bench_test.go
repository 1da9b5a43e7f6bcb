package rndis

import "testing"

var txInfo = PacketInfo{
	Present:   HasChecksum | HasVLAN | HasHashValue,
	Checksum:  uint32(NewTxChecksumInfo(TxChecksumIPv4|TxChecksumTCP, 34)),
	VLAN:      NewVLANInfo(10, 0),
	HashValue: 0x12345678,
}

// BenchmarkPutPacket builds header, three PPIs and a 1500-byte frame
// into a send section, as the guest's copy path does.
func BenchmarkPutPacket(b *testing.B) {
	section := make([]byte, 6144)
	frame := seq(1500, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := PutPacket(section, &txInfo, frame, 8); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutPacketHeader builds only the header and PPIs (GPA-direct
// and partial-copy sends).
func BenchmarkPutPacketHeader(b *testing.B) {
	hdr := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PutPacketHeader(hdr, &txInfo, 1500); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParsePacket parses one received packet with three PPIs.
func BenchmarkParsePacket(b *testing.B) {
	buf := make([]byte, 2048)
	n, _ := PutPacket(buf, &txInfo, seq(1500, 0), 0)
	var info PacketInfo
	b.ReportAllocs()
	b.SetBytes(1500)
	for b.Loop() {
		if _, _, err := ParsePacket(buf[:n], &info); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPacketIter walks 8 batched 64-byte packets (one send section
// at max_pkt_per_msg); ns/op is per batch.
func BenchmarkPacketIter(b *testing.B) {
	buf := make([]byte, 4096)
	off := 0
	for range 8 {
		n, _ := PutPacket(buf[off:], &txInfo, seq(64, 0), 8)
		off += n
	}
	var info PacketInfo
	b.ReportAllocs()
	for b.Loop() {
		it := NewPacketIter(buf[:off])
		k := 0
		for _, ok := it.Next(&info); ok; _, ok = it.Next(&info) {
			k++
		}
		if k != 8 || it.Err() != nil {
			b.Fatal(k, it.Err())
		}
	}
}
