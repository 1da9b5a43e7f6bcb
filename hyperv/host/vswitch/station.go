package vswitch

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/hvguest/hvguest/net/packet"
)

// StationConfig configures a Station.
type StationConfig struct {
	Name string
	MAC  MAC
	// IP, if valid (IPv4), is the address the station answers ARP requests
	// and ICMP echo requests for.
	IP netip.Addr
	// VLAN is the station's port mode (zero value: access on DefaultVLAN).
	VLAN VLANConfig
	// Record keeps a copy of every frame delivered to the station, up to
	// MaxRecord frames (default 1024).
	Record    bool
	MaxRecord int
	// Promisc makes the station look at frames for other addresses too
	// (they are counted as Foreign either way).
	Promisc bool
	// Pool provides the station's outgoing frames (default: a new pool).
	Pool *packet.Pool
}

// Frame is a recorded frame: its bytes and the metadata it arrived with.
type Frame struct {
	Data []byte
	Meta packet.Meta
}

// StationStats are a station's counters.
type StationStats struct {
	Frames, Bytes uint64 // frames delivered to the station
	Foreign       uint64 // frames for another unicast address
	ARPReplies    uint64 // ARP replies sent
	EchoReplies   uint64 // ICMP echo replies sent
	ARPSeen       uint64 // ARP replies received
	EchoSeen      uint64 // ICMP echo replies received
	Sent          uint64 // frames the station sent
}

// Station is a simulated host on the switch: it records what it receives
// and answers ARP and ICMP echo requests for its address. It is meant for
// tests and demos, not for speed: it parses every frame with gopacket.
type Station struct {
	cfg  StationConfig
	port *SwitchPort
	pool *packet.Pool

	mu     sync.Mutex
	frames []Frame
	eth    layers.Ethernet
	arp    layers.ARP
	ip4    layers.IPv4
	icmp   layers.ICMPv4
	pay    gopacket.Payload
	parser *gopacket.DecodingLayerParser
	decd   []gopacket.LayerType
	sbuf   gopacket.SerializeBuffer

	nFrames, nBytes, foreign, arpReplies, echoReplies, arpSeen, echoSeen, sent atomic.Uint64
}

// NewStation creates a station and attaches it to sw.
func NewStation(sw *Switch, cfg StationConfig) (*Station, error) {
	if cfg.MaxRecord <= 0 {
		cfg.MaxRecord = 1024
	}
	st := &Station{cfg: cfg, pool: cfg.Pool, sbuf: gopacket.NewSerializeBuffer()}
	if st.pool == nil {
		st.pool = packet.MustPool(packet.PoolConfig{})
	}
	st.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &st.eth, &st.arp, &st.ip4, &st.icmp, &st.pay)
	st.parser.IgnoreUnsupported = true
	p, err := sw.Attach(cfg.Name, st, cfg.VLAN)
	if err != nil {
		return nil, err
	}
	st.port = p
	return st, nil
}

// SwitchPort returns the station's port.
func (st *Station) SwitchPort() *SwitchPort { return st.port }

// MAC returns the station's address.
func (st *Station) MAC() MAC { return st.cfg.MAC }

// Stats returns the station's counters.
func (st *Station) Stats() StationStats {
	return StationStats{
		Frames: st.nFrames.Load(), Bytes: st.nBytes.Load(), Foreign: st.foreign.Load(),
		ARPReplies: st.arpReplies.Load(), EchoReplies: st.echoReplies.Load(),
		ARPSeen: st.arpSeen.Load(), EchoSeen: st.echoSeen.Load(), Sent: st.sent.Load(),
	}
}

// Frames returns the recorded frames and forgets them.
func (st *Station) Frames() []Frame {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.frames
	st.frames = nil
	return f
}

// Deliver implements Port.
func (st *Station) Deliver(b *packet.Batch) {
	for _, p := range b.Packets() {
		st.receive(p)
		p.Free()
	}
}

func (st *Station) receive(p *packet.Packet) {
	data := p.Bytes()
	st.nFrames.Add(1)
	st.nBytes.Add(uint64(len(data)))
	if len(data) < 14 {
		return
	}
	mine := data[0]&1 != 0 || MAC(data[0:6]) == st.cfg.MAC
	if !mine {
		st.foreign.Add(1)
	}
	var reply *packet.Packet
	var counter *atomic.Uint64
	st.mu.Lock()
	if st.cfg.Record && len(st.frames) < st.cfg.MaxRecord {
		st.frames = append(st.frames, Frame{Data: append([]byte(nil), data...), Meta: p.Meta})
	}
	if mine || st.cfg.Promisc {
		_ = st.parser.DecodeLayers(data, &st.decd)
		for _, lt := range st.decd {
			switch lt {
			case layers.LayerTypeARP:
				reply, counter = st.onARP(p.Meta)
			case layers.LayerTypeICMPv4:
				reply, counter = st.onICMP(p.Meta)
			}
		}
	}
	st.mu.Unlock()
	// Send outside the lock: the reply may come straight back into this
	// station's Deliver (Input is reentrant).
	if reply != nil && st.send(reply) {
		counter.Add(1)
	}
}

func (st *Station) ownIP(ip []byte) bool {
	if !st.cfg.IP.Is4() || len(ip) != 4 {
		return false
	}
	return netip.AddrFrom4([4]byte(ip)) == st.cfg.IP
}

// onARP runs with st.mu held; it returns the reply to send, if any.
func (st *Station) onARP(meta packet.Meta) (*packet.Packet, *atomic.Uint64) {
	a := &st.arp
	switch a.Operation {
	case layers.ARPReply:
		st.arpSeen.Add(1)
	case layers.ARPRequest:
		if !st.ownIP(a.DstProtAddress) {
			return nil, nil
		}
		eth := layers.Ethernet{SrcMAC: st.cfg.MAC[:], DstMAC: append(net.HardwareAddr(nil), a.SourceHwAddress...), EthernetType: layers.EthernetTypeARP}
		rep := layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPReply,
			SourceHwAddress: st.cfg.MAC[:], SourceProtAddress: st.cfg.IP.AsSlice(),
			DstHwAddress: a.SourceHwAddress, DstProtAddress: a.SourceProtAddress,
		}
		return st.build(meta, &eth, &rep), &st.arpReplies
	}
	return nil, nil
}

// onICMP runs with st.mu held; it returns the reply to send, if any.
func (st *Station) onICMP(meta packet.Meta) (*packet.Packet, *atomic.Uint64) {
	switch st.icmp.TypeCode.Type() {
	case layers.ICMPv4TypeEchoReply:
		st.echoSeen.Add(1)
	case layers.ICMPv4TypeEchoRequest:
		if !st.ownIP(st.ip4.DstIP) {
			return nil, nil
		}
		eth := layers.Ethernet{SrcMAC: st.cfg.MAC[:], DstMAC: append(net.HardwareAddr(nil), st.eth.SrcMAC...), EthernetType: layers.EthernetTypeIPv4}
		ip := layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: st.cfg.IP.AsSlice(), DstIP: append(net.IP(nil), st.ip4.SrcIP...)}
		ic := layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: st.icmp.Id, Seq: st.icmp.Seq}
		pay := gopacket.Payload(append([]byte(nil), st.icmp.Payload...))
		return st.build(meta, &eth, &ip, &ic, pay), &st.echoReplies
	}
	return nil, nil
}

// build serialises ls into a pool packet carrying the VLAN tag of meta (so
// a station on a trunk answers on the VLAN it was asked on); nil if that
// fails. It runs with st.mu held.
func (st *Station) build(meta packet.Meta, ls ...gopacket.SerializableLayer) *packet.Packet {
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(st.sbuf, opts, ls...); err != nil {
		return nil
	}
	return st.packetOf(st.sbuf.Bytes(), meta)
}

func (st *Station) packetOf(frame []byte, meta packet.Meta) *packet.Packet {
	p := st.pool.Get()
	if p == nil {
		return nil
	}
	if err := p.SetBytes(frame); err != nil {
		p.Free()
		return nil
	}
	if meta.HasVLAN {
		p.Meta.SetVLAN(meta.VLAN)
	}
	return p
}

// send puts p on the switch; it must not run with st.mu held.
func (st *Station) send(p *packet.Packet) bool {
	if p == nil {
		return false
	}
	b := packet.NewBatch(1)
	b.Add(p)
	st.port.Input(b)
	st.sent.Add(1)
	return true
}

// Send sends a copy of frame with the VLAN tag of m.
func (st *Station) Send(frame []byte, m packet.Meta) bool { return st.send(st.packetOf(frame, m)) }

// SendARPRequest broadcasts an ARP request for ip (IPv4).
func (st *Station) SendARPRequest(ip netip.Addr, m packet.Meta) bool {
	st.mu.Lock()
	eth := layers.Ethernet{SrcMAC: st.cfg.MAC[:], DstMAC: Broadcast[:], EthernetType: layers.EthernetTypeARP}
	src := []byte{0, 0, 0, 0}
	if st.cfg.IP.Is4() {
		src = st.cfg.IP.AsSlice()
	}
	req := layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: st.cfg.MAC[:], SourceProtAddress: src,
		DstHwAddress: make([]byte, 6), DstProtAddress: ip.AsSlice(),
	}
	p := st.build(m, &eth, &req)
	st.mu.Unlock()
	return st.send(p)
}

// Ping sends an ICMP echo request to ip at dst with the given id, sequence
// number and payload.
func (st *Station) Ping(dst MAC, ip netip.Addr, id, seq uint16, payload []byte, m packet.Meta) bool {
	st.mu.Lock()
	eth := layers.Ethernet{SrcMAC: st.cfg.MAC[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeIPv4}
	ipl := layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: st.cfg.IP.AsSlice(), DstIP: ip.AsSlice()}
	ic := layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq}
	p := st.build(m, &eth, &ipl, &ic, gopacket.Payload(payload))
	st.mu.Unlock()
	return st.send(p)
}
