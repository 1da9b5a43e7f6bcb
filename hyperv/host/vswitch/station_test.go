package vswitch

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/hvguest/hvguest/net/packet"
)

func TestStationARPAndPing(t *testing.T) {
	sw := New(Config{NoAger: true})
	defer sw.Close()
	ipA, ipB := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a, err := NewStation(sw, StationConfig{Name: "a", MAC: macA, IP: ipA, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewStation(sw, StationConfig{Name: "b", MAC: macB, IP: ipB, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewStation(sw, StationConfig{Name: "c", MAC: macC, Record: true})

	if !a.SendARPRequest(ipB, packet.Meta{}) {
		t.Fatal("ARP request not sent")
	}
	if a.Stats().ARPSeen != 1 || b.Stats().ARPReplies != 1 {
		t.Fatalf("a %+v b %+v", a.Stats(), b.Stats())
	}
	fr := a.Frames()
	if len(fr) != 1 {
		t.Fatalf("a recorded %d frames", len(fr))
	}
	pk := gopacket.NewPacket(fr[0].Data, layers.LayerTypeEthernet, gopacket.Default)
	arp, _ := pk.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp == nil || arp.Operation != layers.ARPReply || MAC(arp.SourceHwAddress) != macB || netip.AddrFrom4([4]byte(arp.SourceProtAddress)) != ipB {
		t.Fatalf("ARP reply %v", pk)
	}
	// c saw the broadcast request but not the unicast reply.
	if n := len(c.Frames()); n != 1 {
		t.Fatalf("c recorded %d frames, want 1", n)
	}

	if !a.Ping(macB, ipB, 7, 1, []byte("hello"), packet.Meta{}) {
		t.Fatal("ping not sent")
	}
	if a.Stats().EchoSeen != 1 || b.Stats().EchoReplies != 1 {
		t.Fatalf("a %+v b %+v", a.Stats(), b.Stats())
	}
	fr = a.Frames()
	pk = gopacket.NewPacket(fr[0].Data, layers.LayerTypeEthernet, gopacket.Default)
	ic, _ := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic == nil || ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply || ic.Id != 7 || ic.Seq != 1 || string(ic.Payload) != "hello" {
		t.Fatalf("echo reply %v", pk)
	}
	if len(c.Frames()) != 0 {
		t.Fatal("c saw unicast traffic")
	}
	// A ping for an address nobody has goes unanswered.
	a.Ping(macB, netip.MustParseAddr("10.0.0.9"), 7, 2, nil, packet.Meta{})
	if b.Stats().EchoReplies != 1 {
		t.Fatal("b answered for a foreign IP")
	}
}

func TestStationOnTrunkAnswersTagged(t *testing.T) {
	sw := New(Config{NoAger: true})
	defer sw.Close()
	ipB := netip.MustParseAddr("192.168.5.2")
	a, _ := NewStation(sw, StationConfig{Name: "a", MAC: macA, IP: netip.MustParseAddr("192.168.5.1"), VLAN: Access(5), Record: true})
	b, _ := NewStation(sw, StationConfig{Name: "b", MAC: macB, IP: ipB, VLAN: Trunk(0, 5), Record: true})
	a.SendARPRequest(ipB, packet.Meta{})
	if a.Stats().ARPSeen != 1 {
		t.Fatal("no ARP reply across the trunk")
	}
	fr := b.Frames()
	if len(fr) != 1 || fr[0].Meta.VLANID() != 5 {
		t.Fatalf("trunk station saw %+v", fr)
	}
	if af := a.Frames(); len(af) != 1 || af[0].Meta.HasVLAN {
		t.Fatalf("access station got %+v", af)
	}
}
