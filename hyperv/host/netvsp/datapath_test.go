package netvsp_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/net/packet"
)

var (
	stationMAC = vswitch.MAC{0x02, 0, 0, 0, 0, 0x22}
	guestIP    = netip.MustParseAddr("10.0.0.1")
	stationIP  = netip.MustParseAddr("10.0.0.2")
)

// ready attaches, initializes RNDIS and sets the default packet filter.
func ready(t *testing.T, cfg netvsp.Config) (*env, *guest) {
	e := newEnv(t, cfg)
	g := e.connect()
	g.attach(nvsp.Version61, nvsp.GuestCapabilities(nvsp.Version61, false), 32, 16)
	g.rndisInit()
	if st := g.set(rndis.OIDGenCurrentPacketFilter, binary.LittleEndian.AppendUint32(nil, uint32(rndis.PacketFilterDefault))); st != 0 {
		t.Fatal(st)
	}
	return e, g
}

func arpRequest(t *testing.T) []byte {
	eth := layers.Ethernet{SrcMAC: net.HardwareAddr(guestMAC[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: guestMAC[:], SourceProtAddress: guestIP.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: stationIP.AsSlice()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, &eth, &arp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawFrame(dst, src vswitch.MAC, payload string) []byte {
	f := append(append(append([]byte(nil), dst[:]...), src[:]...), 0x88, 0xb5)
	return append(f, payload...)
}

// sendSection writes PACKET messages into send section idx and sends them.
func (g *guest) sendSection(idx int, frames [][]byte, infos []*rndis.PacketInfo) nvsp.Status {
	g.t.Helper()
	sec := g.sendBuf.Bytes[idx*g.sectionSize : (idx+1)*g.sectionSize]
	used := 0
	for i, f := range frames {
		align := 8
		if i == len(frames)-1 {
			align = 0
		}
		n, err := rndis.PutPacket(sec[used:], infos[i], f, align)
		if err != nil {
			g.t.Fatal(err)
		}
		used += n
	}
	return g.sendRNDIS(&nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: uint32(idx), SectionSize: uint32(used)})
}

func (g *guest) sendRNDIS(m *nvsp.SendRNDISPacket) nvsp.Status {
	g.t.Helper()
	id := g.sendNVSP(m, true)
	return decodeHost[*nvsp.SendRNDISPacketComplete](g, g.Completion(id)).Status
}

// sendGPADirect sends one frame GPA-direct: the RNDIS header in one range,
// the frame in another (Linux's page list).
func (g *guest) sendGPADirect(frame []byte, info *rndis.PacketInfo) nvsp.Status {
	g.t.Helper()
	page := g.scratch.Bytes
	n, err := rndis.PutPacketHeader(page, info, len(frame))
	if err != nil {
		g.t.Fatal(err)
	}
	copy(page[4096:], frame)
	r := []gpa.Range{{ByteCount: uint32(n), PFNs: g.scratch.PFNs[:1]}, {ByteCount: uint32(len(frame)), PFNs: g.scratch.PFNs[1:2]}}
	nv := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: nvsp.NoSection}, nvsp.GuestMessageSize)
	g.TID++
	id := g.TID
	g.Write(func(w *ring.Writer) error { return w.WriteGPADirect(id, true, r, nv) })
	return decodeHost[*nvsp.SendRNDISPacketComplete](g, g.Completion(id)).Status
}

type rxFrame struct {
	data []byte
	info rndis.PacketInfo
}

// readData reads one data transfer-page packet, completes it and returns
// its frames.
func (g *guest) readData() []rxFrame {
	g.t.Helper()
	p := g.MustRead()
	if p.Type != ring.TypeXferPages {
		g.t.Fatalf("got %v, want transfer pages", p.Type)
	}
	if rp := decodeHost[*nvsp.SendRNDISPacket](g, p.Payload); rp.ChannelType != nvsp.ChannelData || rp.SectionIndex != nvsp.NoSection {
		g.t.Fatalf("inline message %+v", rp)
	}
	var out []rxFrame
	for _, r := range p.Ranges {
		var f rxFrame
		data, n, err := rndis.ParsePacket(g.rangeBytes(r), &f.info)
		if err != nil || n != int(r.ByteCount) {
			g.t.Fatalf("range %+v: %v", r, err)
		}
		f.data = append([]byte(nil), data...)
		out = append(out, f)
	}
	g.completeRx(p.TransID)
	return out
}

func TestARPThroughSwitch(t *testing.T) {
	e, g := ready(t, netvsp.Config{})
	st, err := vswitch.NewStation(e.sw, vswitch.StationConfig{Name: "peer", MAC: stationMAC, IP: stationIP, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	req := arpRequest(t)
	if s := g.sendSection(0, [][]byte{req}, []*rndis.PacketInfo{{}}); s != nvsp.StatusSuccess {
		t.Fatalf("send: %v", s)
	}
	if st.Stats().ARPReplies != 1 {
		t.Fatalf("station %+v", st.Stats())
	}
	frames := g.readData()
	if len(frames) != 1 {
		t.Fatalf("%d frames", len(frames))
	}
	pk := gopacket.NewPacket(frames[0].data, layers.LayerTypeEthernet, gopacket.Default)
	arp, _ := pk.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp == nil || arp.Operation != layers.ARPReply || vswitch.MAC(arp.SourceHwAddress) != stationMAC {
		t.Fatalf("reply %v", pk)
	}
	// The same through GPA-direct, and a ping.
	if s := g.sendGPADirect(req, &rndis.PacketInfo{}); s != nvsp.StatusSuccess {
		t.Fatalf("GPA-direct send: %v", s)
	}
	if f := g.readData(); len(f) != 1 || !bytes.Equal(f[0].data, frames[0].data) {
		t.Fatalf("second reply %v", f)
	}
	s := e.dev.Stats()
	if s.TxFrames != 2 || s.RxFrames != 2 || s.RxPackets != 2 || s.Errors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBatchedSendAndMetadata(t *testing.T) {
	// PassOffload: the requests themselves are what is checked here
	// (offload_test.go checks their emulation).
	e, g := ready(t, netvsp.Config{VLAN: vswitch.Trunk(1), PassOffload: true})
	st, _ := vswitch.NewStation(e.sw, vswitch.StationConfig{Name: "peer", MAC: stationMAC, VLAN: vswitch.Trunk(1), Record: true, Promisc: true})
	f1 := rawFrame(stationMAC, guestMAC, "one")
	f2 := rawFrame(stationMAC, guestMAC, "two, a little longer")
	f3 := rawFrame(stationMAC, guestMAC, "three")
	i2 := &rndis.PacketInfo{Present: rndis.HasVLAN, VLAN: rndis.NewVLANInfo(42, 5)}
	i3 := &rndis.PacketInfo{Present: rndis.HasChecksum | rndis.HasLSO,
		Checksum: uint32(rndis.NewTxChecksumInfo(rndis.TxChecksumIPv4|rndis.TxChecksumTCP, 34)), LSO: rndis.NewLSOv2Info(1448, 34, false)}
	if s := g.sendSection(3, [][]byte{f1, f2, f3}, []*rndis.PacketInfo{{}, i2, i3}); s != nvsp.StatusSuccess {
		t.Fatalf("send: %v", s)
	}
	got := st.Frames()
	if len(got) != 3 || !bytes.Equal(got[0].Data, f1) || !bytes.Equal(got[1].Data, f2) || !bytes.Equal(got[2].Data, f3) {
		t.Fatalf("station got %v", got)
	}
	if m := got[1].Meta; !m.HasVLAN || m.VLANID() != 42 || m.VLAN>>13 != 5 {
		t.Fatalf("VLAN meta %+v", m)
	}
	if m := got[2].Meta; m.Csum&packet.CsumTxTCPv4 == 0 || m.Csum&packet.CsumTxTSOv4 == 0 || m.MSS != 1448 || m.HasVLAN {
		t.Fatalf("offload meta %+v", m)
	}

	// Frames from the switch: several waiting frames share one
	// transfer-page packet; a VLAN tag becomes per-packet info.
	b := packet.NewBatch(8)
	for i := 0; i < 5; i++ {
		p := packet.New(0, 128)
		p.SetBytes(rawFrame(guestMAC, stationMAC, "to guest"))
		if i == 4 {
			p.Meta.SetVLAN(7)
		}
		p.Meta.Csum = packet.CsumRxL4OK | packet.CsumRxIPOK
		b.Add(p)
	}
	st.SwitchPort().Input(b)
	frames := g.readData()
	if len(frames) != 5 {
		t.Fatalf("%d frames in one packet, want 5", len(frames))
	}
	if fi := frames[4].info; !fi.Has(rndis.HasVLAN) || fi.VLAN.ID() != 7 {
		t.Fatalf("VLAN info %+v", fi)
	}
	if fi := frames[0].info; !fi.Has(rndis.HasChecksum) || rndis.RxChecksumInfo(fi.Checksum)&rndis.RxChecksumTCPSucceeded == 0 {
		t.Fatalf("checksum info %+v", fi)
	}
}

func TestPacketFilter(t *testing.T) {
	e, g := ready(t, netvsp.Config{})
	gen, _ := vswitch.NewGenerator(e.sw, "gen", vswitch.VLANConfig{}, rawFrame(guestMAC, stationMAC, "x"), packet.Meta{}, nil)
	other := vswitch.MAC{0x02, 9, 9, 9, 9, 9}
	e.sw.AddStatic(other, vswitch.DefaultVLAN, e.dev.SwitchPort()) // as if the guest had changed its MAC
	gen.Generate(1)
	if f := g.readData(); len(f) != 1 {
		t.Fatal("directed frame not received")
	}
	gen.SetTemplate(rawFrame(other, stationMAC, "x"), packet.Meta{})
	gen.Generate(3)
	if s := e.dev.Stats(); s.RxFiltered != 3 {
		t.Fatalf("stats %+v", s)
	}
	// Filter 0 (Linux ndo_stop): nothing is delivered.
	g.set(rndis.OIDGenCurrentPacketFilter, make([]byte, 4))
	gen.SetTemplate(rawFrame(vswitch.Broadcast, stationMAC, "x"), packet.Meta{})
	gen.Generate(2)
	if s := e.dev.Stats(); s.RxDropped != 5 || s.RxFrames != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Promiscuous: everything.
	g.set(rndis.OIDGenCurrentPacketFilter, binary.LittleEndian.AppendUint32(nil, uint32(rndis.PacketTypePromiscuous)))
	gen.SetTemplate(rawFrame(other, stationMAC, "x"), packet.Meta{})
	gen.Generate(1)
	if f := g.readData(); len(f) != 1 {
		t.Fatal("promiscuous frame not received")
	}
}

// Without completions the guest runs out of receive slots; its
// completions give them back.
func TestReceiveSlotsRecycled(t *testing.T) {
	e, g := ready(t, netvsp.Config{})
	slots := e.dev.State().RecvSlots - netvsp.ControlSlots
	gen, _ := vswitch.NewGenerator(e.sw, "gen", vswitch.VLANConfig{}, rawFrame(guestMAC, stationMAC, "x"), packet.Meta{}, nil)
	gen.Generate(slots + 10)
	if s := e.dev.Stats(); s.RxFrames != uint64(slots) || s.RxDropped != 10 {
		t.Fatalf("stats %+v (slots %d)", s, slots)
	}
	n := 0
	for n < slots {
		n += len(g.readData())
	}
	deadline := time.Now().Add(waitTimeout)
	for e.dev.State().RecvInFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("slots still in flight: %d", e.dev.State().RecvInFlight)
		}
		time.Sleep(100 * time.Microsecond)
	}
	gen.Generate(5)
	if f := g.readData(); len(f) != 5 {
		t.Fatalf("after completions: %d frames", len(f))
	}
}
