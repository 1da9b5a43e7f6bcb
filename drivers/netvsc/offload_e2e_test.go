package netvsc_test

import (
	"bytes"
	"encoding/binary"
	"github.com/hvguest/hvguest/net/packet/packettest"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/net/packet"
)

// Offload acceptance: hn0 asks the simulated host for checksums and
// segmentation, and what reaches a switch station is checked with
// gopacket alone (its own checksum computation), as a peer on a real
// Hyper-V switch would see it.

var (
	hnIP6      = net.ParseIP("2001:db8::1")
	stationIP6 = net.ParseIP("2001:db8::2")
)

type e2eFrame struct {
	v6, udp bool
	payload []byte
	seq     uint32
	flags   func(*layers.TCP)
	lso     bool // leave the IP length 0, as Linux GSO does
}

// build serialises f from hn0 to the station with the L4 checksum (and,
// for LSO, the IPv4 header checksum) left zero for the host to fill.
func (f e2eFrame) build(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(hnMAC[:]), DstMAC: net.HardwareAddr(stationMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	proto := layers.IPProtocolTCP
	if f.udp {
		proto = layers.IPProtocolUDP
	}
	var nl gopacket.NetworkLayer
	var ip gopacket.SerializableLayer
	if f.v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		i := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: hnIP6, DstIP: stationIP6}
		nl, ip = i, i
	} else {
		i := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x4242, Flags: layers.IPv4DontFragment, Protocol: proto,
			SrcIP: hnIP.To4(), DstIP: stationIP.AsSlice()}
		nl, ip = i, i
	}
	var l4 gopacket.SerializableLayer
	if f.udp {
		u := &layers.UDP{SrcPort: 5353, DstPort: 9}
		_ = u.SetNetworkLayerForChecksum(nl)
		l4 = u
	} else {
		tc := &layers.TCP{SrcPort: 45000, DstPort: 80, Seq: f.seq, Ack: 1, ACK: true, Window: 1024,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 2}}}}
		if f.flags != nil {
			f.flags(tc)
		}
		_ = tc.SetNetworkLayerForChecksum(nl)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, l4, gopacket.Payload(f.payload)); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	l4off, at := 14+20, 16
	if f.v6 {
		l4off = 14 + 40
	}
	if f.udp {
		at = 6
	}
	b[l4off+at], b[l4off+at+1] = 0, 0
	if f.lso {
		if f.v6 {
			binary.BigEndian.PutUint16(b[14+4:], 0)
		} else {
			binary.BigEndian.PutUint16(b[14+2:], 0)
			b[14+10], b[14+11] = 0, 0
		}
	}
	return b
}

// verified decodes b with gopacket and fails unless its IPv4 header and
// TCP/UDP checksums are the ones gopacket computes for it.
func verified(t testing.TB, b []byte) gopacket.Packet {
	t.Helper()
	p, err := packettest.VerifyChecksums(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func e2ePayload(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + seed + i>>9)
	}
	return b
}

// Checksum offload: TCP and UDP over IPv4 and IPv6 leave hn0 with zero
// checksums and arrive at the station with correct ones.
func TestE2EChecksumOffload(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.up()
	cases := []struct {
		f    e2eFrame
		csum packet.Csum
	}{
		{e2eFrame{payload: e2ePayload(1000, 1), seq: 10}, packet.CsumTxTCPv4},
		{e2eFrame{payload: e2ePayload(333, 2), udp: true}, packet.CsumTxUDPv4},
		{e2eFrame{payload: e2ePayload(1201, 3), v6: true, seq: 20}, packet.CsumTxTCPv6},
		{e2eFrame{payload: e2ePayload(7, 4), v6: true, udp: true}, packet.CsumTxUDPv6},
	}
	for _, c := range cases {
		w.send([][]byte{c.f.build(t)}, []packet.Meta{{Csum: c.csum}})
		got := w.stationFrames(1)
		if len(got) != 1 {
			t.Fatalf("%s: station got %d frames", c.csum, len(got))
		}
		p := verified(t, got[0].Data)
		if app := p.ApplicationLayer(); app == nil || !bytes.Equal(app.Payload(), c.f.payload) {
			t.Fatalf("%s: payload differs", c.csum)
		}
		if got[0].Meta.Csum != 0 {
			t.Fatalf("%s: requests reached the switch: %s", c.csum, got[0].Meta.Csum)
		}
	}
	if s := w.nic.OffloadStats(); s.TxChecksummed != 4 || s.TxMalformed != 0 {
		t.Fatalf("host offload stats %+v", s)
	}
}

// A TSO send of the largest size hn0 offers (the host's LSO maximum,
// 62780 bytes, about 61 KiB) arrives as MSS-sized segments: contiguous
// sequence numbers, per-segment lengths and IP ids, flags where TCP
// segmentation puts them, checksums gopacket agrees with, and a payload
// that reassembles byte-exact.
func TestE2ETSO(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.up()
	for _, v6 := range []bool{false, true} {
		before := w.nic.OffloadStats()
		mss := 1448 // a 1500-byte MTU less 20 (IPv4) + 32 (TCP with timestamps)
		limit := w.ifp.TSOLimits().MaxBytes
		hdr := 14 + 20 + 32
		csum := packet.CsumTxTCPv4 | packet.CsumTxTSOv4
		if v6 {
			hdr, csum, mss = 14+40+32, packet.CsumTxTCPv6|packet.CsumTxTSOv6, 1428
		}
		if limit < 60000 {
			t.Fatalf("hn0 TSO limit %d", limit)
		}
		f := e2eFrame{v6: v6, payload: e2ePayload(limit-hdr, 9), seq: 0xffff0000, lso: true,
			flags: func(tc *layers.TCP) { tc.PSH, tc.FIN, tc.CWR = true, true, true }}
		w.send([][]byte{f.build(t)}, []packet.Meta{{Csum: csum, MSS: uint16(mss)}})
		want := (len(f.payload) + mss - 1) / mss
		got := w.stationFrames(want)
		if len(got) != want {
			t.Fatalf("v6=%v: %d segments, want %d", v6, len(got), want)
		}
		var re []byte
		seq := f.seq
		for i, fr := range got {
			p := verified(t, fr.Data)
			tc, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !ok {
				t.Fatalf("segment %d: no TCP", i)
			}
			last := i == len(got)-1
			if n := len(tc.Payload); n > mss || (!last && n != mss) || len(fr.Data) > 1514 {
				t.Fatalf("segment %d: %d payload bytes, %d frame bytes", i, n, len(fr.Data))
			}
			if tc.Seq != seq {
				t.Fatalf("segment %d: seq %#x, want %#x", i, tc.Seq, seq)
			}
			if tc.FIN != last || tc.PSH != last || tc.CWR != (i == 0) || !tc.ACK {
				t.Fatalf("segment %d: FIN %v PSH %v CWR %v ACK %v", i, tc.FIN, tc.PSH, tc.CWR, tc.ACK)
			}
			if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				if int(ip.Length) != len(fr.Data)-14 || ip.Id != 0x4242+uint16(i) {
					t.Fatalf("segment %d: IPv4 length %d id %#x", i, ip.Length, ip.Id)
				}
			}
			if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok && int(ip.Length) != len(fr.Data)-14-40 {
				t.Fatalf("segment %d: IPv6 payload length %d", i, ip.Length)
			}
			seq += uint32(len(tc.Payload))
			re = append(re, tc.Payload...)
		}
		if !bytes.Equal(re, f.payload) {
			t.Fatalf("v6=%v: reassembled %d bytes differ from the %d sent", v6, len(re), len(f.payload))
		}
		if s := w.nic.OffloadStats(); s.TxLSO-before.TxLSO != 1 || s.TxSegments-before.TxSegments != uint64(want) {
			t.Fatalf("host offload stats %+v", s)
		}
	}
}

// Receive checksum offload: hn0 enables it, so the host verifies frames
// from the station and hn0 reports good and bad checksums in Meta.
func TestE2ERxChecksum(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.up()
	good := udpFrame(t, net.HardwareAddr(stationMAC[:]), net.HardwareAddr(hnMAC[:]), stationIP.AsSlice(), hnIP, 7, 200)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 0xff
	w.station.Send(good, packet.Meta{})
	w.station.Send(bad, packet.Meta{})
	in := w.recv(2)
	defer func() {
		for _, p := range in {
			p.Free()
		}
	}()
	if c := in[0].Meta.Csum; c&packet.CsumRxL4OK == 0 || c&packet.CsumRxL4Bad != 0 {
		t.Fatalf("good frame: %s", c)
	}
	if c := in[1].Meta.Csum; c&packet.CsumRxL4Bad == 0 || c&packet.CsumRxL4OK != 0 {
		t.Fatalf("bad frame: %s", c)
	}
}
