package mlx

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// End to end through the vPCI bus, the device model and the virtual switch:
// frames both ways byte-exact, offloads checked with gopacket on the wire.

var (
	vfIP      = net.IPv4(10, 0, 0, 1).To4()
	stationIP = net.IPv4(10, 0, 0, 2).To4()
)

// tcpPacket builds an Ethernet/IPv4/TCP frame with correct checksums.
func tcpPacket(t testing.TB, src, dst net.HardwareAddr, sip, dip net.IP, seq uint32, payload []byte, udp bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	proto := layers.IPProtocolTCP
	if udp {
		proto = layers.IPProtocolUDP
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x1000, Protocol: proto, SrcIP: sip, DstIP: dip}
	var l4 gopacket.SerializableLayer
	if udp {
		u := &layers.UDP{SrcPort: 5000, DstPort: 6000}
		_ = u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		tc := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: seq, Ack: 7, ACK: true, PSH: true, Window: 512}
		_ = tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// checksumsValid re-serialises a decoded IPv4 TCP/UDP frame with gopacket's
// own checksum computation and compares: the wire frame's checksums are
// right iff the bytes are unchanged.
func checksumsValid(t testing.TB, f []byte) bool {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if eth == nil || ip == nil {
		t.Fatalf("not IPv4: %v", p)
	}
	var l4 gopacket.SerializableLayer
	var payload []byte
	if tc, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		_ = tc.SetNetworkLayerForChecksum(ip)
		l4, payload = tc, tc.Payload
	} else if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		_ = u.SetNetworkLayerForChecksum(ip)
		l4, payload = u, u.Payload
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(buf.Bytes(), f)
}

func sendVF(t testing.TB, vf *VF, f []byte, m packet.Meta) {
	t.Helper()
	p := packet.New(0, len(f)+64)
	if err := p.SetBytes(f); err != nil {
		t.Fatal(err)
	}
	p.Meta = m
	b := packet.NewBatch(1)
	b.Add(p)
	for range 1000 {
		n, err := vf.Interface().Transmit(b)
		if n == 1 {
			return
		}
		if err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("transmit refused")
}

func TestTrafficOffloadsVLAN(t *testing.T) {
	r := newRig(t, rigOpts{})
	if err := r.devPortVLAN(vswitch.Trunk(vswitch.DefaultVLAN, 5)); err != nil {
		t.Fatal(err)
	}
	st5, err := vswitch.NewStation(r.sw, vswitch.StationConfig{Name: "v5", MAC: vswitch.MAC{2, 5, 5, 5, 5, 5},
		VLAN: vswitch.Access(5), Record: true})
	if err != nil {
		t.Fatal(err)
	}
	vf := r.waitVF()
	ifp := vf.Interface()
	if ifp.Kind() != ifnet.KindEthernet || !bytes.Equal(ifp.MAC(), vfMAC[:]) {
		t.Fatalf("interface %v MAC %v", ifp.Kind(), ifp.MAC())
	}
	if s, ok := ifp.BusSerial(); !ok || s != vfSerial {
		t.Fatalf("bus serial %#x %v", s, ok)
	}
	want := ifnet.CapHWCsum | ifnet.CapHWCsumIPv6 | ifnet.CapTSO | ifnet.CapVLANHWTagging | ifnet.CapLinkState
	if ifp.Capabilities()&want != want || ifp.TSOLimits().MaxBytes != 1<<16 {
		t.Fatalf("caps %v, TSO %+v", ifp.Capabilities(), ifp.TSOLimits())
	}
	if ifp.LinkState() != ifnet.LinkUp || ifp.Media().Active.Speed != 25_000_000_000 {
		t.Fatalf("link %v media %+v", ifp.LinkState(), ifp.Media())
	}
	sk := r.up(vf)
	sk.keep = true
	dev := r.device()
	vmac, smac := net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:])

	// Station -> VF: plain frames of many sizes, byte-exact, with the RX
	// checksum verdicts; one corrupted TCP checksum.
	var sent [][]byte
	for i := range 40 {
		f := tcpPacket(t, smac, vmac, stationIP, vfIP, uint32(i), bytes.Repeat([]byte{byte(i)}, 10+i*35), i%2 == 1)
		if i == 39 {
			f[len(f)-1] ^= 0xff // payload changed, checksum not
		}
		sent = append(sent, f)
		if !r.st.Send(f, packet.Meta{}) {
			t.Fatal("station send")
		}
	}
	eventually(t, "40 frames at the VF", func() bool { return sk.n.Load() == 40 })
	got := sk.got()
	for i, g := range got {
		if !bytes.Equal(g.Data, sent[i]) {
			t.Fatalf("frame %d differs (%d vs %d bytes)", i, len(g.Data), len(sent[i]))
		}
		wantCs := packet.CsumRxIPOK | packet.CsumRxL4OK
		if i == 39 {
			wantCs = packet.CsumRxIPOK | packet.CsumRxL4Bad
		}
		if g.Meta.Csum != wantCs || g.Meta.RcvIf != ifp.Index() {
			t.Fatalf("frame %d meta %+v", i, g.Meta)
		}
	}

	// VF -> station: plain, checksum offload, LSO.
	_ = r.st.Frames()
	plain := tcpPacket(t, vmac, smac, vfIP, stationIP, 1, []byte("hello, station"), false)
	sendVF(t, vf, plain, packet.Meta{})
	csum := tcpPacket(t, vmac, smac, vfIP, stationIP, 2, bytes.Repeat([]byte{0xab}, 1000), false)
	binary.BigEndian.PutUint16(csum[14+10:], 0) // IPv4 header checksum
	binary.BigEndian.PutUint16(csum[34+16:], 0) // TCP checksum
	sendVF(t, vf, csum, packet.Meta{Csum: packet.CsumTxIPv4 | packet.CsumTxTCPv4})
	udp := tcpPacket(t, vmac, smac, vfIP, stationIP, 0, bytes.Repeat([]byte{0xcd}, 333), true)
	binary.BigEndian.PutUint16(udp[34+6:], 0)
	sendVF(t, vf, udp, packet.Meta{Csum: packet.CsumTxUDPv4})
	payload := make([]byte, 65536-54)
	for i := range payload {
		payload[i] = byte(i * 13)
	}
	lso := tcpPacket(t, vmac, smac, vfIP, stationIP, 1_000_000, payload, false)
	binary.BigEndian.PutUint16(lso[34+16:], 0)
	sendVF(t, vf, lso, packet.Meta{Csum: packet.CsumTxTSOv4 | packet.CsumTxIPv4 | packet.CsumTxTCPv4, MSS: 1448})
	nseg := (len(payload) + 1447) / 1448
	fr := collect(t, r.st, 3+nseg)
	if !bytes.Equal(fr[0].Data, plain) {
		t.Fatal("plain frame changed on the wire")
	}
	for i, f := range fr[1:3] {
		if !checksumsValid(t, f.Data) {
			t.Fatalf("offloaded frame %d has bad checksums", i)
		}
	}
	if !bytes.Equal(fr[1].Data[54:], csum[54:]) || !bytes.Equal(fr[2].Data[42:], udp[42:]) {
		t.Fatal("offloaded payload changed")
	}
	var re []byte
	for i, f := range fr[3 : 3+nseg] {
		p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
		tc, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if tc == nil || ip == nil || !checksumsValid(t, f.Data) {
			t.Fatalf("segment %d: bad frame or checksums", i)
		}
		if tc.Seq != 1_000_000+uint32(len(re)) || (tc.PSH != (i == nseg-1)) || ip.Id != uint16(0x1000+i) {
			t.Fatalf("segment %d: seq %d psh %v id %#x", i, tc.Seq, tc.PSH, ip.Id)
		}
		if i < nseg-1 && len(tc.Payload) != 1448 {
			t.Fatalf("segment %d carries %d bytes", i, len(tc.Payload))
		}
		re = append(re, tc.Payload...)
	}
	if !bytes.Equal(re, payload) || nseg != 46 {
		t.Fatalf("LSO: %d segments, %d of %d payload bytes", nseg, len(re), len(payload))
	}

	// VLAN: insert on transmit (the switch trunk carries it to VLAN 5),
	// strip on receive (the tag comes back in Meta).
	v5 := tcpPacket(t, vmac, net.HardwareAddr{2, 5, 5, 5, 5, 5}, vfIP, stationIP, 9, []byte("vlan five"), false)
	m := packet.Meta{}
	m.SetVLAN(5)
	sendVF(t, vf, v5, m)
	if f5 := collect(t, st5, 1); !bytes.Equal(f5[0].Data, v5) {
		t.Fatal("VLAN 5 frame differs")
	}
	back := tcpPacket(t, net.HardwareAddr{2, 5, 5, 5, 5, 5}, vmac, stationIP, vfIP, 9, []byte("back on five"), false)
	st5.Send(back, packet.Meta{})
	eventually(t, "VLAN frame at the VF", func() bool { return sk.n.Load() == 41 })
	g := sk.got()[40]
	if !bytes.Equal(g.Data, back) || !g.Meta.HasVLAN || g.Meta.VLANID() != 5 {
		t.Fatalf("VLAN receive: meta %+v", g.Meta)
	}
	// Tagging off: the driver puts the tag in the inline header itself on
	// transmit and leaves it in the frame on receive.
	if err := ifp.Ioctl(&ifnet.SetCapabilities{Enable: ifp.Capabilities() &^ (ifnet.CapVLANHWTagging | ifnet.CapVLANHWCsum | ifnet.CapVLANHWTSO)}); err != nil {
		t.Fatal(err)
	}
	sendVF(t, vf, v5, m)
	if f5 := collect(t, st5, 1); !bytes.Equal(f5[0].Data, v5) {
		t.Fatal("VLAN 5 frame differs with tagging off")
	}
	st5.Send(back, packet.Meta{})
	eventually(t, "tagged frame at the VF", func() bool { return sk.n.Load() == 42 })
	g = sk.got()[41]
	tagged := append(append(bytes.Clone(back[:12]), 0x81, 0x00, 0x00, 0x05), back[12:]...)
	if !bytes.Equal(g.Data, tagged) || g.Meta.HasVLAN {
		t.Fatalf("VLAN receive with tagging off: meta %+v, %x", g.Meta, g.Data[:18])
	}
	ds := dev.Stats()
	if ds.TxLSOSegments != uint64(nseg) {
		t.Fatalf("device LSO segments %d", ds.TxLSOSegments)
	}
	noViolations(t, dev)
}

// collect drains a station until it has n frames.
func collect(t testing.TB, st *vswitch.Station, n int) []vswitch.Frame {
	t.Helper()
	var fr []vswitch.Frame
	eventually(t, "frames at the station", func() bool {
		fr = append(fr, st.Frames()...)
		return len(fr) >= n
	})
	return fr
}

// devPortVLAN sets the device's switch port mode.
func (r *rig) devPortVLAN(c vswitch.VLANConfig) error {
	r.mu.Lock()
	p := r.devPort
	r.mu.Unlock()
	return p.SetVLAN(c)
}

var _ = mlxdev.Config{}

func TestRSSAcrossQueues(t *testing.T) {
	r := newRig(t, rigOpts{vf: Config{Queues: 3}})
	vf := r.waitVF()
	sk := r.up(vf)
	sk.keep = true
	vmac, smac := net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:])
	const flows = 64
	for round := range 2 {
		for fl := range flows {
			f := tcpPacket(t, smac, vmac, stationIP, vfIP, uint32(round), []byte("rss"), false)
			tcpSetSport(t, f, uint16(20000+fl*7))
			r.st.Send(f, packet.Meta{})
		}
	}
	eventually(t, "all flows", func() bool { return sk.n.Load() == 2*flows })
	queueOf := map[uint16]uint16{}
	used := map[uint16]int{}
	for _, g := range sk.got() {
		sport := binary.BigEndian.Uint16(g.Data[34:])
		if g.Meta.HashType != packet.HashTCPv4 || g.Meta.Hash == 0 {
			t.Fatalf("flow %d: hash %#x type %v", sport, g.Meta.Hash, g.Meta.HashType)
		}
		if q, ok := queueOf[sport]; ok && q != g.Meta.Queue {
			t.Fatalf("flow %d moved from queue %d to %d", sport, q, g.Meta.Queue)
		}
		queueOf[sport] = g.Meta.Queue
		used[g.Meta.Queue]++
	}
	if len(used) != 3 {
		t.Fatalf("queues used: %v", used)
	}
	noViolations(t, r.device())
}

// tcpSetSport rewrites the TCP source port and fixes the checksum
// incrementally (RFC 1624).
func tcpSetSport(t testing.TB, f []byte, port uint16) {
	t.Helper()
	old := binary.BigEndian.Uint16(f[34:])
	binary.BigEndian.PutUint16(f[34:], port)
	sum := uint32(^binary.BigEndian.Uint16(f[34+16:])) + uint32(^old) + uint32(port)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(f[34+16:], ^uint16(sum))
	if !checksumsValid(t, f) {
		t.Fatal("checksum fix-up wrong")
	}
}

func TestLSOIPv6(t *testing.T) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	r.up(vf)
	vmac, smac := net.HardwareAddr(vfMAC[:]), net.HardwareAddr(stationMAC[:])
	src, dst := net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	eth := &layers.Ethernet{SrcMAC: vmac, DstMAC: smac, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
	tc := &layers.TCP{SrcPort: 443, DstPort: 50000, Seq: 77, ACK: true, PSH: true, Window: 100}
	_ = tc.SetNetworkLayerForChecksum(ip)
	payload := make([]byte, 20000)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tc, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	f := append([]byte(nil), buf.Bytes()...)
	binary.BigEndian.PutUint16(f[54+16:], 0)
	sendVF(t, vf, f, packet.Meta{Csum: packet.CsumTxTSOv6 | packet.CsumTxTCPv6, MSS: 1400})
	nseg := (len(payload) + 1399) / 1400
	fr := collect(t, r.st, nseg)
	var re []byte
	for i, g := range fr {
		p := gopacket.NewPacket(g.Data, layers.LayerTypeEthernet, gopacket.Default)
		i6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		seg, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if i6 == nil || seg == nil {
			t.Fatalf("segment %d does not decode", i)
		}
		if int(i6.Length) != 20+len(seg.Payload) || seg.Seq != 77+uint32(len(re)) || seg.PSH != (i == nseg-1) {
			t.Fatalf("segment %d: length %d, seq %d, psh %v", i, i6.Length, seg.Seq, seg.PSH)
		}
		// The TCP checksum over the IPv6 pseudo-header, recomputed.
		_ = seg.SetNetworkLayerForChecksum(i6)
		out := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(out, gopacket.SerializeOptions{ComputeChecksums: true}, seg, gopacket.Payload(seg.Payload)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), g.Data[54:]) {
			t.Fatalf("segment %d: bad TCP checksum", i)
		}
		re = append(re, seg.Payload...)
	}
	if !bytes.Equal(re, payload) {
		t.Fatalf("reassembled %d of %d bytes", len(re), len(payload))
	}
	noViolations(t, r.device())
}
