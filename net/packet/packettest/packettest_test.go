package packettest

import (
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func frame(t *testing.T, v6, udp bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var nl gopacket.NetworkLayer
	var ls []gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2"), NextHeader: layers.IPProtocolTCP}
		if udp {
			ip.NextHeader = layers.IPProtocolUDP
		}
		nl, ls = ip, []gopacket.SerializableLayer{eth, ip}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{192, 0, 2, 2}, Protocol: layers.IPProtocolTCP}
		if udp {
			ip.Protocol = layers.IPProtocolUDP
		}
		nl, ls = ip, []gopacket.SerializableLayer{eth, ip}
	}
	if udp {
		u := &layers.UDP{SrcPort: 1, DstPort: 2}
		_ = u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 7, ACK: true, Window: 100}
		_ = tc.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload("hvguest checksum test payload"))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Correct frames pass; a flipped payload bit is a TCP/UDP checksum error,
// a flipped IPv4 TTL an IPv4 header one.
func TestVerifyChecksums(t *testing.T) {
	for _, c := range []struct {
		name    string
		v6, udp bool
		l4      string
	}{{"tcp4", false, false, "TCP"}, {"udp4", false, true, "UDP"}, {"tcp6", true, false, "TCP"}, {"udp6", true, true, "UDP"}} {
		f := frame(t, c.v6, c.udp)
		if _, err := VerifyChecksums(f); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		bad := append([]byte(nil), f...)
		bad[len(bad)-1] ^= 1
		if _, err := VerifyChecksums(bad); err == nil || !strings.Contains(err.Error(), c.l4+" checksum") {
			t.Errorf("%s with a flipped payload bit: %v", c.name, err)
		}
		if !c.v6 {
			bad := append([]byte(nil), f...)
			bad[14+8] ^= 1 // TTL
			if _, err := VerifyChecksums(bad); err == nil || !strings.Contains(err.Error(), "IPv4 header checksum") {
				t.Errorf("%s with a flipped TTL: %v", c.name, err)
			}
		}
	}
}
