package netvsp

import (
	"bytes"
	"encoding/binary"
	"github.com/hvguest/hvguest/net/packet/packettest"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/packet"
)

// Frames are built by gopacket and checked by recomputing their checksums
// with gopacket (serialising the decoded layers with ComputeChecksums and
// comparing the checksum fields), not with this package's code.

var (
	srcMAC = net.HardwareAddr{0x00, 0x15, 0x5d, 1, 2, 3}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x22}
	src4   = net.IP{10, 0, 0, 1}
	dst4   = net.IP{10, 0, 0, 2}
	src6   = net.ParseIP("fd00::1")
	dst6   = net.ParseIP("fd00::2")
)

type frameOpts struct {
	v6, udp, vlan bool
	payload       int
	flags         func(*layers.TCP)
	lso           bool // IPv4 total length 0 / IPv6 payload length 0, as Linux GSO leaves them
	zeroIP        bool // IPv4 header checksum 0 (the guest asks the host for it)
}

func testPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// buildFrame returns a gopacket-serialised frame with a zero TCP/UDP
// checksum (what a guest asking for offload sends) and its payload.
func buildFrame(t testing.TB, o frameOpts) ([]byte, []byte) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	if o.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 42, Priority: 3, Type: layers.EthernetTypeIPv4})
	}
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolTCP
	if o.udp {
		proto = layers.IPProtocolUDP
	}
	if o.v6 {
		if o.vlan {
			ls[1].(*layers.Dot1Q).Type = layers.EthernetTypeIPv6
		} else {
			eth.EthernetType = layers.EthernetTypeIPv6
		}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src6, DstIP: dst6}
		nl, ls = ip, append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: proto, SrcIP: src4, DstIP: dst4}
		nl, ls = ip, append(ls, ip)
	}
	if o.udp {
		u := &layers.UDP{SrcPort: 4000, DstPort: 5000}
		_ = u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 0xfffff000, Ack: 7, ACK: true, Window: 512,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
		if o.flags != nil {
			o.flags(tc)
		}
		_ = tc.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tc)
	}
	pl := testPayload(o.payload)
	ls = append(ls, gopacket.Payload(pl))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	f := append([]byte(nil), buf.Bytes()...)
	l3 := 14
	if o.vlan {
		l3 = 18
	}
	l4, at := l3+20, 16
	if o.v6 {
		l4 = l3 + 40
	}
	if o.udp {
		at = 6
	}
	f[l4+at], f[l4+at+1] = 0, 0
	if o.zeroIP && !o.v6 {
		f[l3+10], f[l3+11] = 0, 0
	}
	if o.lso {
		if o.v6 {
			binary.BigEndian.PutUint16(f[l3+4:], 0)
		} else {
			binary.BigEndian.PutUint16(f[l3+2:], 0)
		}
	}
	return f, pl
}

// checkFrame decodes f with gopacket, checks that its checksums are the
// ones gopacket computes, and returns the decoded packet.
func checkFrame(t testing.TB, f []byte) gopacket.Packet {
	t.Helper()
	p, err := packettest.VerifyChecksums(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type offloadRig struct {
	o    offloader
	st   offloadCounters
	out  []*packet.Packet
	b    *packet.Batch
	pool *packet.Pool
}

func newRig() *offloadRig {
	r := &offloadRig{pool: packet.MustPool(packet.PoolConfig{Size: 9216 + 4}), b: packet.NewBatch(packet.DefaultBatchSize)}
	r.o = offloader{seg: r.pool, st: &r.st}
	return r
}

func (r *offloadRig) flush(b *packet.Batch) { r.out = append(r.out, b.Packets()...) }

// run offloads frame with m and returns the frames that leave.
func (r *offloadRig) run(frame []byte, m packet.Meta) (frames [][]byte, metas []packet.Meta, dropped int) {
	r.out = r.out[:0]
	pk := packet.New(64, 70000)
	_ = pk.SetBytes(frame)
	pk.Meta = m
	dropped = r.o.tx(pk, r.b, r.flush)
	r.flush(r.b)
	r.b.Clear()
	for _, p := range r.out {
		frames = append(frames, append([]byte(nil), p.Bytes()...))
		metas = append(metas, p.Meta)
		p.Free()
	}
	return frames, metas, dropped
}

func TestChecksumFill(t *testing.T) {
	cases := []struct {
		name string
		o    frameOpts
		csum packet.Csum
	}{
		{"tcp4+ip", frameOpts{payload: 1000, zeroIP: true}, packet.CsumTxIPv4 | packet.CsumTxTCPv4},
		{"tcp4 odd", frameOpts{payload: 999}, packet.CsumTxTCPv4},
		{"udp4", frameOpts{udp: true, payload: 333}, packet.CsumTxUDPv4},
		{"tcp6", frameOpts{v6: true, payload: 1400}, packet.CsumTxTCPv6},
		{"udp6 vlan", frameOpts{v6: true, udp: true, vlan: true, payload: 17}, packet.CsumTxUDPv6},
		{"tcp4 vlan", frameOpts{vlan: true, payload: 64, zeroIP: true}, packet.CsumTxIPv4 | packet.CsumTxTCPv4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			f, pl := buildFrame(t, c.o)
			frames, metas, d := r.run(f, packet.Meta{Csum: c.csum})
			if d != 0 || len(frames) != 1 {
				t.Fatalf("dropped %d, %d frames", d, len(frames))
			}
			p := checkFrame(t, frames[0])
			if !bytes.Equal(p.ApplicationLayer().Payload(), pl) {
				t.Fatal("payload changed")
			}
			if metas[0].Csum&packet.CsumTxMask != 0 {
				t.Fatalf("requests left in meta: %s", metas[0].Csum)
			}
			if c.o.vlan != metas[0].HasVLAN || (c.o.vlan && (metas[0].VLANID() != 42 || metas[0].VLAN>>13 != 3)) {
				t.Fatalf("vlan meta %+v", metas[0])
			}
			if p.Layer(layers.LayerTypeDot1Q) != nil {
				t.Fatal("inline tag left in the frame")
			}
		})
	}
}

// A 64 KiB TSO send becomes MSS-sized segments whose payload reassembles
// byte-exact, with contiguous sequence numbers, per-segment IP ids and
// lengths, flags on the right segments and every checksum right.
func TestLSOSegmentation(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			const mss = 1448
			o := frameOpts{v6: v6, vlan: vlan, payload: 65536 - 14 - 20 - 32 - 100, lso: true,
				flags: func(tc *layers.TCP) { tc.PSH, tc.FIN, tc.CWR, tc.ECE = true, true, true, true }}
			f, pl := buildFrame(t, o)
			csum := packet.CsumTxTSOv4 | packet.CsumTxTCPv4
			if v6 {
				csum = packet.CsumTxTSOv6 | packet.CsumTxTCPv6
			}
			r := newRig()
			frames, metas, d := r.run(f, packet.Meta{Csum: csum, MSS: mss})
			want := (len(pl) + mss - 1) / mss
			if d != 0 || len(frames) != want {
				t.Fatalf("v6=%v: dropped %d, %d segments, want %d", v6, d, len(frames), want)
			}
			var re []byte
			seq := uint32(0xfffff000)
			for i, fr := range frames {
				p := checkFrame(t, fr)
				tc := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
				seg := tc.Payload
				if len(seg) > mss || (i < len(frames)-1 && len(seg) != mss) {
					t.Fatalf("segment %d: %d bytes", i, len(seg))
				}
				if tc.Seq != seq {
					t.Fatalf("segment %d: seq %#x, want %#x", i, tc.Seq, seq)
				}
				seq += uint32(len(seg))
				last := i == len(frames)-1
				if tc.FIN != last || tc.PSH != last || tc.CWR != (i == 0) || !tc.ECE || !tc.ACK || len(tc.Options) != 3 {
					t.Fatalf("segment %d: flags FIN %v PSH %v CWR %v ECE %v", i, tc.FIN, tc.PSH, tc.CWR, tc.ECE)
				}
				if v6 {
					ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
					if int(ip.Length) != 32+len(seg) {
						t.Fatalf("segment %d: payload length %d", i, ip.Length)
					}
				} else {
					ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
					if int(ip.Length) != 20+32+len(seg) || ip.Id != 0x1234+uint16(i) {
						t.Fatalf("segment %d: length %d id %#x", i, ip.Length, ip.Id)
					}
				}
				if metas[i].MSS != 0 || metas[i].Csum != 0 || metas[i].HasVLAN != vlan {
					t.Fatalf("segment %d: meta %+v", i, metas[i])
				}
				re = append(re, seg...)
			}
			if !bytes.Equal(re, pl) {
				t.Fatalf("v6=%v: reassembled %d bytes differ from the %d sent", v6, len(re), len(pl))
			}
			if s := r.st.txSegs.Load(); s != uint64(want) || r.st.txLSO.Load() != 1 {
				t.Fatalf("counters: %d segments, %d LSO", s, r.st.txLSO.Load())
			}
		}
	}
}

// A frame with an LSO request whose payload fits in one MSS goes out as
// one frame with its lengths and checksums filled.
func TestLSOSingleSegment(t *testing.T) {
	f, pl := buildFrame(t, frameOpts{payload: 100, lso: true, flags: func(tc *layers.TCP) { tc.PSH = true }})
	frames, _, d := newRig().run(f, packet.Meta{Csum: packet.CsumTxTSOv4, MSS: 1448})
	if d != 0 || len(frames) != 1 {
		t.Fatalf("dropped %d, %d frames", d, len(frames))
	}
	p := checkFrame(t, frames[0])
	if tc := p.Layer(layers.LayerTypeTCP).(*layers.TCP); !tc.PSH || !bytes.Equal(tc.Payload, pl) {
		t.Fatal("segment differs")
	}
}

func TestMalformedDropped(t *testing.T) {
	tcp4, _ := buildFrame(t, frameOpts{payload: 200})
	udp4, _ := buildFrame(t, frameOpts{udp: true, payload: 200})
	tcp6, _ := buildFrame(t, frameOpts{v6: true, payload: 200})
	mod := func(f []byte, fn func([]byte)) []byte { f = append([]byte(nil), f...); fn(f); return f }
	cases := []struct {
		name  string
		frame []byte
		m     packet.Meta
	}{
		{"runt", tcp4[:10], packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"truncated ip", tcp4[:30], packet.Meta{Csum: packet.CsumTxIPv4}},
		{"truncated tcp", tcp4[:14+20+10], packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"ihl 4", mod(tcp4, func(f []byte) { f[14] = 0x44 }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"ihl beyond frame", mod(tcp4, func(f []byte) { f[14] = 0x4f })[:14+50], packet.Meta{Csum: packet.CsumTxIPv4}},
		{"total length beyond frame", mod(tcp4, func(f []byte) { f[16] = 0xff }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"total length zero", mod(tcp4, func(f []byte) { f[16], f[17] = 0, 0 }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"tcp data offset", mod(tcp4, func(f []byte) { f[14+20+12] = 0x40 }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"not ip", mod(tcp4, func(f []byte) { f[12] = 0x88 }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"version", mod(tcp4, func(f []byte) { f[14] = 0x65 }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"fragment", mod(tcp4, func(f []byte) { f[14+6] = 0x20 }), packet.Meta{Csum: packet.CsumTxTCPv4}},
		{"lso on udp", udp4, packet.Meta{Csum: packet.CsumTxTSOv4, MSS: 100}},
		{"lso v4 flagged v6", tcp4, packet.Meta{Csum: packet.CsumTxTSOv6, MSS: 100}},
		{"ipv6 truncated", tcp6[:50], packet.Meta{Csum: packet.CsumTxTCPv6}},
		{"ipv6 payload length", mod(tcp6, func(f []byte) { f[18] = 0xff }), packet.Meta{Csum: packet.CsumTxTCPv6}},
		{"ipv6 ext beyond", mod(tcp6, func(f []byte) { f[20] = 0; f[54+1] = 0xff }), packet.Meta{Csum: packet.CsumTxTCPv6}},
	}
	for _, c := range cases {
		r := newRig()
		frames, _, d := r.run(c.frame, c.m)
		if d != 1 || len(frames) != 0 || r.st.txMalformed.Load() != 1 {
			t.Errorf("%s: dropped %d, %d frames out, malformed %d", c.name, d, len(frames), r.st.txMalformed.Load())
		}
	}
	// More segments than maxSegments, and a header bigger than a segment
	// buffer, are dropped.
	big, _ := buildFrame(t, frameOpts{payload: 3000, lso: true})
	r := newRig()
	if _, _, d := r.run(big, packet.Meta{Csum: packet.CsumTxTSOv4, MSS: 2}); d != 1 {
		t.Errorf("1500 segments: dropped %d", d)
	}
	r.o.seg = packet.MustPool(packet.PoolConfig{Size: 64})
	if _, _, d := r.run(big, packet.Meta{Csum: packet.CsumTxTSOv4, MSS: 1000}); d != 1 {
		t.Errorf("segment pool too small: dropped %d", d)
	}
	// An exhausted segment pool drops the segments it cannot hold.
	r = newRig()
	r.o.seg = packet.MustPool(packet.PoolConfig{Size: 2048, Max: 2})
	frames, _, d := r.run(big, packet.Meta{Csum: packet.CsumTxTSOv4, MSS: 1000})
	if d != 1 || len(frames) != 2 || r.st.txNoBuf.Load() != 1 {
		t.Errorf("exhausted pool: %d frames, dropped %d", len(frames), d)
	}
}

func TestRxChecksum(t *testing.T) {
	good := func(o frameOpts) []byte {
		f, _ := buildFrame(t, o)
		r := newRig()
		csum := packet.CsumTxIPv4 | packet.CsumTxTCPv4
		switch {
		case o.v6 && o.udp:
			csum = packet.CsumTxUDPv6
		case o.v6:
			csum = packet.CsumTxTCPv6
		case o.udp:
			csum = packet.CsumTxIPv4 | packet.CsumTxUDPv4
		}
		frames, _, _ := r.run(f, packet.Meta{Csum: csum})
		return frames[0]
	}
	on := &rndis.OffloadParameters{IPv4Checksum: rndis.OffloadTxRxEnabled, TCPIPv4Checksum: rndis.OffloadRxEnabledTxDisabled,
		UDPIPv4Checksum: rndis.OffloadTxRxEnabled, TCPIPv6Checksum: rndis.OffloadTxRxEnabled, UDPIPv6Checksum: rndis.OffloadTxRxEnabled}
	off := &rndis.OffloadParameters{IPv4Checksum: rndis.OffloadTxEnabledRxDisabled, TCPIPv4Checksum: rndis.OffloadTxEnabledRxDisabled}
	r := newRig()
	check := func(name string, p *rndis.OffloadParameters, f []byte, want packet.Csum) {
		t.Helper()
		m := packet.Meta{Csum: packet.CsumRxL4OK | packet.CsumTxTCPv4} // stale bits are replaced
		r.o.rxChecksum(p, f, &m)
		if m.Csum != want {
			t.Errorf("%s: %s, want %s", name, m.Csum, want)
		}
	}
	tcp4 := good(frameOpts{payload: 500})
	check("tcp4", on, tcp4, packet.CsumRxIPOK|packet.CsumRxL4OK)
	check("tcp4 off", off, tcp4, 0)
	check("tcp4 no params", &rndis.OffloadParameters{}, tcp4, 0)
	check("udp4", on, good(frameOpts{udp: true, payload: 51}), packet.CsumRxIPOK|packet.CsumRxL4OK)
	check("tcp6 vlan", on, good(frameOpts{v6: true, vlan: true, payload: 51}), packet.CsumRxL4OK)
	check("udp6", on, good(frameOpts{v6: true, udp: true, payload: 51}), packet.CsumRxL4OK)
	bad := append([]byte(nil), tcp4...)
	bad[len(bad)-1] ^= 0x40
	check("tcp4 bad payload", on, bad, packet.CsumRxIPOK|packet.CsumRxL4Bad)
	bad = append([]byte(nil), tcp4...)
	bad[14+8]-- // TTL
	check("ipv4 bad header", on, bad, packet.CsumRxIPBad|packet.CsumRxL4OK)
	check("runt", on, tcp4[:20], 0)
	if r.st.rxBad.Load() != 2 || r.st.rxVerified.Load() != 6 {
		t.Errorf("counters: verified %d bad %d", r.st.rxVerified.Load(), r.st.rxBad.Load())
	}
}

// FuzzOffloadTx feeds arbitrary frames and requests: no panic, no frame
// beyond a segment buffer, and every frame that leaves with a TCP or UDP
// request has checksums that verify.
func FuzzOffloadTx(f *testing.F) {
	tcp4, _ := buildFrame(f, frameOpts{payload: 3000, lso: true})
	tcp6, _ := buildFrame(f, frameOpts{v6: true, vlan: true, payload: 3000})
	udp4, _ := buildFrame(f, frameOpts{udp: true, payload: 30})
	f.Add(tcp4, uint16(packet.CsumTxTSOv4), uint16(1000))
	f.Add(tcp6, uint16(packet.CsumTxTSOv6|packet.CsumTxTCPv6), uint16(536))
	f.Add(udp4, uint16(packet.CsumTxUDPv4|packet.CsumTxIPv4), uint16(0))
	f.Add(tcp6, uint16(packet.CsumTxTCPv6), uint16(0))
	r := newRig()
	f.Fuzz(func(t *testing.T, frame []byte, csum, mss uint16) {
		if len(frame) > 66000 {
			return
		}
		m := packet.Meta{Csum: packet.Csum(csum) & packet.CsumTxMask, MSS: mss}
		frames, _, _ := r.run(frame, m)
		for _, fr := range frames {
			if m.Csum == 0 {
				continue
			}
			if len(fr) > r.pool.Size() && m.Csum&packet.CsumTxTSO != 0 && mss > 0 {
				t.Fatalf("segment of %d bytes", len(fr))
			}
			h, ok := parseHeaders(fr, false)
			if !ok || h.frag {
				t.Fatalf("frame out that does not parse")
			}
			l4 := m.Csum&(packet.CsumTxTCPv4|packet.CsumTxUDPv4|packet.CsumTxTCPv6|packet.CsumTxUDPv6|packet.CsumTxTSO) != 0
			if _, fits := h.l4Len(fr); l4 && fits && !verifyL4(fr, &h) {
				t.Fatalf("L4 checksum wrong after fill")
			}
		}
		var st rndis.OffloadParameters
		st.TCPIPv4Checksum, st.IPv4Checksum, st.TCPIPv6Checksum = rndis.OffloadTxRxEnabled, rndis.OffloadTxRxEnabled, rndis.OffloadTxRxEnabled
		var mm packet.Meta
		r.o.rxChecksum(&st, frame, &mm)
	})
}

func allRx() *rndis.OffloadParameters {
	v := uint8(rndis.OffloadTxRxEnabled)
	return &rndis.OffloadParameters{IPv4Checksum: v, TCPIPv4Checksum: v, UDPIPv4Checksum: v, TCPIPv6Checksum: v, UDPIPv6Checksum: v}
}
