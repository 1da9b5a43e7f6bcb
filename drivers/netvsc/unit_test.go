package netvsc

import (
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

func TestFilterFor(t *testing.T) {
	up, bc := ifnet.FlagUp, ifnet.FlagBroadcast
	for _, c := range []struct {
		f    ifnet.Flags
		n    int
		want rndis.PacketFilter
	}{
		{bc, 3, rndis.PacketTypeNone},
		{up | bc, 0, rndis.PacketTypeDirected | rndis.PacketTypeBroadcast},
		{up | bc, 1, rndis.PacketFilterDefault},
		{up | bc | ifnet.FlagAllMulti, 0, rndis.PacketFilterDefault},
		{up | bc | ifnet.FlagPromisc, 5, rndis.PacketTypePromiscuous},
		{up, 0, rndis.PacketTypeDirected},
	} {
		if got := filterFor(c.f, c.n); got != c.want {
			t.Errorf("filterFor(%s, %d) = %#x, want %#x", c.f, c.n, got, c.want)
		}
	}
}

// hyperVOffload is what OpenVMM reports: checksums both ways for v4/v6,
// LSOv2 with 802.3 encapsulation, max 62780, 2 segments.
func hyperVOffload() *rndis.Offload {
	o := &rndis.Offload{Header: rndis.OffloadHeader(3)}
	v4 := uint32(rndis.CsumIPv4Options | rndis.CsumTCPOptions | rndis.CsumTCP | rndis.CsumUDP | rndis.CsumIPv4Header)
	v6 := uint32(rndis.CsumIPv6ExtHdrs | rndis.CsumTCPOptions | rndis.CsumTCP | rndis.CsumUDP)
	o.Checksum = rndis.ChecksumOffload{IPv4TxEncap: rndis.Encap8023, IPv4TxFlags: v4, IPv4RxEncap: rndis.Encap8023, IPv4RxFlags: v4,
		IPv6TxEncap: rndis.Encap8023, IPv6TxFlags: v6, IPv6RxEncap: rndis.Encap8023, IPv6RxFlags: v6}
	o.LSOv2 = rndis.LSOv2Offload{IPv4Encap: rndis.Encap8023, IPv4MaxSize: 62780, IPv4MinSegments: 2,
		IPv6Encap: rndis.Encap8023, IPv6MaxSize: 62780, IPv6MinSegments: 2, IPv6Options: rndis.LSOv2IPv6ExtHdrs | rndis.LSOv2IPv6TCPOptions}
	return o
}

func TestDecideOffloads(t *testing.T) {
	o, p := decideOffloads(hyperVOffload(), nvsp.Version61)
	if !o.tcp4 || !o.udp4 || !o.tcp6 || !o.udp6 || !o.tso4 || !o.tso6 || o.tsoMax != 62780 {
		t.Fatalf("offloads %+v", o)
	}
	if p.Header.Size != rndis.OffloadParametersSizeRev3 || p.IPv4Checksum != rndis.OffloadTxRxDisabled ||
		p.TCPIPv4Checksum != rndis.OffloadTxRxEnabled || p.LSOv2IPv6 != rndis.OffloadEnabled {
		t.Fatalf("parameters %+v", p)
	}
	cs := o.capState()
	if cs.HWAssist&ifnet.AssistIP != 0 || cs.HWAssist&ifnet.AssistTSO != ifnet.AssistTSO || cs.Capabilities&ifnet.CapTSO != ifnet.CapTSO {
		t.Fatalf("cap state %+v", cs)
	}
	if l := o.tsoLimits(1); l.MaxBytes != 62780 {
		t.Fatalf("TSO limits %+v", l)
	}
	// NVSP 4 and older: 22-byte parameters, no UDP checksum offload.
	o, p = decideOffloads(hyperVOffload(), nvsp.Version4)
	if o.udp4 || o.udp6 || p.UDPIPv4Checksum != rndis.OffloadNoChange || p.Header.Size != rndis.OffloadParametersSizeRev2 {
		t.Fatalf("old host: %+v %+v", o, p)
	}
	// No TSO without 802.3 encapsulation.
	hw := hyperVOffload()
	hw.LSOv2.IPv4Encap = 0
	if o, _ = decideOffloads(hw, nvsp.Version61); o.tso4 || !o.tcp4 {
		t.Fatalf("no encapsulation: %+v", o)
	}
}

func TestTxInfoFromMeta(t *testing.T) {
	frame := make([]byte, 80)
	frame[12], frame[13], frame[14] = 0x08, 0x00, 0x46 // IPv4, 24-byte header
	var info rndis.PacketInfo
	fillTxInfo(&info, &packet.Meta{Csum: packet.CsumTxTCPv4, HasVLAN: true, VLAN: 0x6005}, frame)
	if !info.Has(rndis.HasChecksum|rndis.HasVLAN) || info.VLAN.ID() != 5 || info.VLAN.Priority() != 3 {
		t.Fatalf("info %+v", info)
	}
	if c := rndis.TxChecksumInfo(info.Checksum); c.L4Offset() != 38 || c&rndis.TxChecksumTCP == 0 || c&rndis.TxChecksumIPv4 == 0 {
		t.Fatalf("checksum info %#x", info.Checksum)
	}
	info = rndis.PacketInfo{}
	fillTxInfo(&info, &packet.Meta{Csum: packet.CsumTxTCPv4 | packet.CsumTxTSOv4, MSS: 1448}, frame)
	if !info.Has(rndis.HasLSO) || info.Has(rndis.HasChecksum) || info.LSO.MSS() != 1448 || info.LSO.TCPHeaderOffset() != 38 || info.LSO.IPv6() {
		t.Fatalf("LSO info %+v", info)
	}
}

func TestRxMeta(t *testing.T) {
	var m packet.Meta
	info := rndis.PacketInfo{Present: rndis.HasChecksum | rndis.HasVLAN | rndis.HasHashValue | rndis.HasHashInfo,
		Checksum: uint32(rndis.RxChecksumTCPSucceeded | rndis.RxChecksumIPSucceeded), VLAN: rndis.NewVLANInfo(7, 1),
		HashValue: 99, HashInfo: rndis.HashFunctionToeplitz | rndis.HashTCPIPv6}
	fillRxMeta(&m, &info)
	if m.Csum != packet.CsumRxL4OK|packet.CsumRxIPOK || m.VLANID() != 7 || m.Hash != 99 || m.HashType != packet.HashTCPv6 {
		t.Fatalf("meta %+v", m)
	}
}

func TestSectionBitmapNeverLeaks(t *testing.T) {
	var tx txState
	s := &synth{secCount: 130, cfg: &Config{}}
	if err := tx.init(s); err != nil {
		t.Fatal(err)
	}
	var got []int32
	for {
		i := tx.allocSection()
		if i < 0 {
			break
		}
		got = append(got, i)
	}
	if len(got) != 130 || tx.secInUse != 130 {
		t.Fatalf("allocated %d sections", len(got))
	}
	for _, i := range got {
		tx.freeSection(i)
	}
	if tx.secInUse != 0 || tx.allocSection() != 0 {
		t.Fatal("sections not all free again")
	}
}
