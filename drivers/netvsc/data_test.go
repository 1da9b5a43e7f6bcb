package netvsc_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/net/packet"
)

var (
	hnIP = net.IPv4(192, 0, 2, 1)
)

// udpFrame builds an Ethernet/IPv4/UDP frame of payload bytes.
func udpFrame(t testing.TB, src, dst net.HardwareAddr, sip, dip net.IP, sport uint16, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: sip, DstIP: dip}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 40999}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i*7 + int(sport))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(data)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func decodeUDP(t testing.TB, b []byte) (*layers.UDP, []byte) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		t.Fatalf("no UDP layer in %v", p)
	}
	return u, u.Payload
}

// echoBothWays sends n frames hn0 → station and n frames station → hn0
// (sizes from 60 to 1514 bytes) and checks them byte for byte.
func echoBothWays(t *testing.T, w *world, n int) {
	t.Helper()
	sizes := func(i int) int { return []int{18, 100, 512, 1000, 1472}[i%5] }
	hn := net.HardwareAddr(hnMAC[:])
	st := net.HardwareAddr(stationMAC[:])
	var out [][]byte
	for i := range n {
		out = append(out, udpFrame(t, hn, st, hnIP, stationIP.AsSlice(), uint16(41000+i), sizes(i)))
	}
	w.send(out, nil)
	got := w.stationFrames(n)
	for i := range n {
		if !bytes.Equal(got[i].Data, out[i]) {
			t.Fatalf("frame %d to the station differs:\n got %x\nwant %x", i, got[i].Data, out[i])
		}
		u, _ := decodeUDP(t, got[i].Data)
		if int(u.SrcPort) != 41000+i {
			t.Fatalf("frame %d: port %d", i, u.SrcPort)
		}
	}
	var in [][]byte
	for i := range n {
		f := udpFrame(t, st, hn, stationIP.AsSlice(), hnIP, uint16(42000+i), sizes(i+2))
		in = append(in, f)
		if !w.station.Send(f, packet.Meta{}) {
			t.Fatalf("station send %d", i)
		}
	}
	rx := w.recv(n)
	for i, p := range rx {
		if !bytes.Equal(p.Bytes(), in[i]) {
			t.Fatalf("frame %d to hn0 differs:\n got %x\nwant %x", i, p.Bytes(), in[i])
		}
		u, _ := decodeUDP(t, p.Bytes())
		if int(u.SrcPort) != 42000+i {
			t.Fatalf("frame %d: port %d", i, u.SrcPort)
		}
		p.Free()
	}
}

func TestFramesBothWays(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.up()
	echoBothWays(t, w, 200)
	st := w.dev.Stats()
	if st.TxSectionSends+st.TxGPADirectSends != 200 || st.TxSectionSends == 0 || st.RxPackets != 200 {
		t.Fatalf("stats %+v", st)
	}
	// Frames reach the station before their completions reach hn0.
	waitFor(t, "every send to complete", func() bool {
		st := w.dev.Stats()
		return st.TxCompletions == 200 && st.SectionsInUse == 0 && st.BounceInUse == 0
	})
}

func TestVLANFramesBothWays(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.up()
	hn := net.HardwareAddr(hnMAC[:])
	st := net.HardwareAddr(stationMAC[:])
	f := udpFrame(t, hn, st, hnIP, stationIP.AsSlice(), 43007, 300)
	var m packet.Meta
	m.SetVLAN(0x2000 | 100) // PCP 1, VID 100
	w.send([][]byte{f}, []packet.Meta{m})
	got := w.stationFrames(1)[0]
	if !bytes.Equal(got.Data, f) || !got.Meta.HasVLAN || got.Meta.VLAN != m.VLAN {
		t.Fatalf("station got vlan %v %#x, frame equal %v", got.Meta.HasVLAN, got.Meta.VLAN, bytes.Equal(got.Data, f))
	}
	g := udpFrame(t, st, hn, stationIP.AsSlice(), hnIP, 43008, 200)
	var m2 packet.Meta
	m2.SetVLAN(200)
	if !w.station.Send(g, m2) {
		t.Fatal("station send")
	}
	p := w.recv(1)[0]
	defer p.Free()
	if !bytes.Equal(p.Bytes(), g) || !p.Meta.HasVLAN || p.Meta.VLANID() != 200 {
		t.Fatalf("hn0 got vlan %v %#x", p.Meta.HasVLAN, p.Meta.VLAN)
	}
	decodeUDP(t, p.Bytes())
}
