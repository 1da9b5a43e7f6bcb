// Package packettest checks frames the way the offload tests on both sides
// (the hn guest driver, the host's netvsp, the mlx VF and its model) need:
// decode with gopacket and compare every IPv4 header and TCP/UDP checksum
// with the one gopacket computes, so neither side's checksum code is the
// judge of itself.
//
// Side: both (test support).
package packettest

import (
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// VerifyChecksums decodes an Ethernet frame and returns it if its IPv4
// header checksum and its TCP or UDP checksum are the ones gopacket
// computes for its contents; otherwise an error says which is wrong.
func VerifyChecksums(frame []byte) (gopacket.Packet, error) {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		return p, fmt.Errorf("decode: %v", el.Error())
	}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	var ip4, l4 uint16
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet:
			c := *l
			ls = append(ls, &c)
		case *layers.Dot1Q:
			c := *l
			ls = append(ls, &c)
		case *layers.IPv4:
			c := *l
			ip4, nl = l.Checksum, &c
			ls = append(ls, &c)
		case *layers.IPv6:
			c := *l
			nl = &c
			ls = append(ls, &c)
		case *layers.TCP:
			c := *l
			_ = c.SetNetworkLayerForChecksum(nl)
			l4 = l.Checksum
			ls = append(ls, &c)
		case *layers.UDP:
			c := *l
			_ = c.SetNetworkLayerForChecksum(nl)
			l4 = l.Checksum
			ls = append(ls, &c)
		}
	}
	if app := p.ApplicationLayer(); app != nil {
		ls = append(ls, gopacket.Payload(app.Payload()))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		return p, fmt.Errorf("re-serialize: %w", err)
	}
	r := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	if ip, ok := r.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.Checksum != ip4 {
		return p, fmt.Errorf("IPv4 header checksum %#04x on the wire, gopacket computes %#04x", ip4, ip.Checksum)
	}
	if tc, ok := r.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && tc.Checksum != l4 {
		return p, fmt.Errorf("TCP checksum %#04x on the wire, gopacket computes %#04x", l4, tc.Checksum)
	}
	if u, ok := r.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.Checksum != l4 {
		return p, fmt.Errorf("UDP checksum %#04x on the wire, gopacket computes %#04x", l4, u.Checksum)
	}
	return p, nil
}
