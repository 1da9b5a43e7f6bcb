package mlxdev

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

var (
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	srcIP   = net.IP{10, 0, 0, 1}
	dstIP   = net.IP{10, 0, 0, 2}
)

// tcpFrame builds an Ethernet/IPv4/TCP frame; with csum false the IP and
// TCP checksums are left zero (what a driver offloading them sends).
func tcpFrame(t testing.TB, dst net.HardwareAddr, sport, dport uint16, payload []byte, csum bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(testMAC[:]), DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x1000, Protocol: layers.IPProtocolTCP, SrcIP: srcIP, DstIP: dstIP}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 77, ACK: true,
		PSH: true, Window: 512, DataOffset: 5}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: csum},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func udp6Frame(t testing.TB, payload []byte, csum bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(testMAC[:]), DstMAC: peerMAC, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	udp := &layers.UDP{SrcPort: 5000, DstPort: 6000}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: csum},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checksumsValid re-serializes the decoded frame with computed checksums
// and reports whether it matches byte for byte.
func checksumsValid(t testing.TB, f []byte) bool {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(nl)
		}
		if sl, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, sl)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(buf.Bytes(), f)
}

// txEnv is a device with one SQ whose CQ reports on an armed EQ.
type txEnv struct {
	*env
	eq   *teq
	cq   *tcq
	sq   *tsq
	data []byte // driver payload buffer (guest memory)
	base uint64
}

func newTxEnv(t testing.TB, mod func(*Config)) *txEnv {
	e := newEnv(newHarness(t, mod))
	x := &txEnv{env: e}
	x.eq = e.createEQ(7, mlxhw.EventComp.Bit()|mlxhw.EventCQError.Bit()|mlxhw.EventPortChange.Bit(), 1)
	x.cq = e.createCQ(8, x.eq.n)
	x.sq = e.createSQ(x.cq, 8)
	r := e.alloc(40)
	x.data, x.base = r.Bytes, r.GPA(0)
	return x
}

// send posts frame as a SEND (or LSO) WQE: hdr bytes inline, the rest
// through one data segment.
func (x *txEnv) send(frame []byte, hdr int, w mlxhw.SendWQE) uint16 {
	copy(x.data, frame[hdr:])
	w.Inline = frame[:hdr]
	if w.Opcode == 0 {
		w.Opcode = mlxhw.WQEOpSend
	}
	segs := []mlxhw.DataSeg{{ByteCount: uint32(len(frame) - hdr), LKey: x.lkey, Addr: x.base}}
	return x.sq.post(&w, segs, true)
}

func TestTxSendChecksum(t *testing.T) {
	x := newTxEnv(t, nil)
	x.cq.arm(false)
	frame := tcpFrame(t, peerMAC, 1234, 80, bytes.Repeat([]byte("abc"), 300), false)
	idx := x.send(frame, 14, mlxhw.SendWQE{CSFlags: mlxhw.CSL3 | mlxhw.CSL4})
	got := x.wire.take()
	if len(got) != 1 || len(got[0]) != len(frame) {
		t.Fatalf("wire got %d frames", len(got))
	}
	if !checksumsValid(t, got[0]) {
		t.Fatal("checksums not filled")
	}
	if bytes.Equal(got[0], frame) {
		t.Fatal("frame unchanged")
	}
	cqes := x.cq.poll()
	if len(cqes) != 1 || cqes[0].Opcode != mlxhw.CQEReq || cqes[0].WQECounter != idx || cqes[0].QPN() != x.sq.n ||
		cqes[0].ByteCnt != uint32(len(frame)) {
		t.Fatalf("CQEs %+v", cqes)
	}
	evs := x.eq.poll(true)
	if len(evs) != 1 || evs[0].Type != mlxhw.EventComp || evs[0].CompCQN() != x.cq.n {
		t.Fatalf("EQEs %+v", evs)
	}
	if n := x.irqs[1].Load(); n != 1 {
		t.Fatalf("%d interrupts on vector 1", n)
	}
	// IPv6/UDP with the L4 flag only; a non-IP frame with flags is sent
	// unmodified and counted.
	u := udp6Frame(t, []byte("hello, world"), false)
	x.send(u, 18, mlxhw.SendWQE{CSFlags: mlxhw.CSL4})
	arp := append(append([]byte{}, peerMAC...), testMAC[:]...)
	arp = append(arp, 0x08, 0x06)
	arp = append(arp, make([]byte, 46)...)
	x.send(arp, 14, mlxhw.SendWQE{CSFlags: mlxhw.CSL3})
	got = x.wire.take()
	if len(got) != 2 || !checksumsValid(t, got[0]) || !bytes.Equal(got[1], arp) {
		t.Fatalf("wire %d frames", len(got))
	}
	if s := x.dev.Stats(); s.TxPackets != 3 || s.TxCsumUnsupported != 1 || s.TxWQEs != 3 {
		t.Fatalf("stats %+v", s)
	}
	x.noViolations()
}

func TestTxLSO(t *testing.T) {
	x := newTxEnv(t, nil)
	payload := make([]byte, 65536)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	frame := tcpFrame(t, peerMAC, 40000, 5201, payload, false)
	frame[14+2], frame[14+3] = 0, 0 // an LSO header's IP length is not trusted
	x.send(frame, 54, mlxhw.SendWQE{Opcode: mlxhw.WQEOpLSO, MSS: 1448, CSFlags: mlxhw.CSL3 | mlxhw.CSL4})
	segs := x.wire.take()
	if len(segs) != 46 {
		t.Fatalf("%d segments, want 46", len(segs))
	}
	var seq uint32 = 1000
	var got []byte
	for i, f := range segs {
		if !checksumsValid(t, f) {
			t.Fatalf("segment %d: bad checksums", i)
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp.Seq != seq || ip.Id != 0x1000+uint16(i) {
			t.Fatalf("segment %d: seq %d id %#x, want %d %#x", i, tcp.Seq, ip.Id, seq, 0x1000+i)
		}
		last := i == len(segs)-1
		if tcp.PSH != last || !tcp.ACK {
			t.Fatalf("segment %d: PSH %v ACK %v", i, tcp.PSH, tcp.ACK)
		}
		if !last && len(tcp.Payload) != 1448 || int(ip.Length) != 40+len(tcp.Payload) {
			t.Fatalf("segment %d: %d payload bytes, ip length %d", i, len(tcp.Payload), ip.Length)
		}
		seq += uint32(len(tcp.Payload))
		got = append(got, tcp.Payload...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("reassembled payload differs")
	}
	cqes := x.cq.poll()
	if len(cqes) != 1 || cqes[0].ByteCnt != uint32(len(frame)) {
		t.Fatalf("one CQE per LSO WQE: %+v", cqes)
	}
	if s := x.dev.Stats(); s.TxLSOSegments != 46 || s.TxPackets != 46 {
		t.Fatalf("stats %+v", s)
	}
	// Headers not all inline: LOCAL_QP_OP error CQE, SQ in ERR.
	x.send(frame[:2000], 34, mlxhw.SendWQE{Opcode: mlxhw.WQEOpLSO, MSS: 1448})
	cqes = x.cq.poll()
	if len(cqes) != 1 || cqes[0].Opcode != mlxhw.CQEReqErr || cqes[0].Syndrome != mlxhw.SyndLocalQPOp {
		t.Fatalf("short LSO header: %+v", cqes)
	}
	x.noViolations()
}

func TestTxVLANInsert(t *testing.T) {
	x := newTxEnv(t, nil)
	frame := tcpFrame(t, peerMAC, 1, 2, []byte("payload"), true)
	copy(x.data, frame)
	w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, VLAN: true, VLANTCI: 0x2064}
	x.sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(frame)), LKey: x.lkey, Addr: x.base}}, true)
	got := x.wire.take()
	if len(got) != 1 || len(got[0]) != len(frame)+4 {
		t.Fatalf("wire %d frames", len(got))
	}
	f := got[0]
	want := append(append(append([]byte{}, frame[:12]...), 0x81, 0x00, 0x20, 0x64), frame[12:]...)
	if !bytes.Equal(f, want) {
		t.Fatalf("tagged frame\n% x\nwant\n% x", f[:20], want[:20])
	}
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if d, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || d.VLANIdentifier != 0x064 || d.Priority != 1 {
		t.Fatalf("dot1q %+v", p.Layer(layers.LayerTypeDot1Q))
	}
	x.noViolations()
}

// TestTxLSOIPv6Tagged: an LSO of a VLAN-tagged IPv6/TCP frame (tag inline
// in the headers) keeps the tag on every segment and fixes payload_len.
func TestTxLSOIPv6Tagged(t *testing.T) {
	x := newTxEnv(t, nil)
	payload := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 2000) // 10000 bytes
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(testMAC[:]), DstMAC: peerMAC, EthernetType: layers.EthernetTypeDot1Q}
	tag := &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
		SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	tcp := &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 0xfffff000, ACK: true, PSH: true, FIN: true, Window: 100, DataOffset: 5}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, tag, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	const hdr = 14 + 4 + 40 + 20
	x.send(frame, hdr, mlxhw.SendWQE{Opcode: mlxhw.WQEOpLSO, MSS: 1000, CSFlags: mlxhw.CSL4})
	segs := x.wire.take()
	if len(segs) != 10 {
		t.Fatalf("%d segments", len(segs))
	}
	seq := uint32(0xfffff000)
	for i, f := range segs {
		if !checksumsValid(t, f) {
			t.Fatalf("segment %d checksum", i)
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		d, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tc := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		last := i == 9
		if d == nil || d.VLANIdentifier != 42 || ip6.Length != 1020 || tc.Seq != seq || tc.FIN != last || tc.PSH != last {
			t.Fatalf("segment %d: tag %v len %d seq %#x FIN %v", i, d, ip6.Length, tc.Seq, tc.FIN)
		}
		seq += 1000 // wraps past 2^32
	}
	x.noViolations()
}
