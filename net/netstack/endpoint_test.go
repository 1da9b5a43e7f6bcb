package netstack

import (
	"encoding/binary"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/net/pair"
)

// udpListener binds UDP port on ts's IPv4 address.
func udpListener(t *testing.T, ts *testStack, port uint16) *gonet.UDPConn {
	t.Helper()
	c, err := gonet.DialUDP(ts.s, &tcpip.FullAddress{NIC: nicID, Addr: ts.addr, Port: port}, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv reads one datagram or reports a timeout.
func recv(c *gonet.UDPConn, wait time.Duration) (string, bool) {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

func TestEndpointConfigFollowsInterface(t *testing.T) {
	checkGoroutines(t)
	p, a, b := newPairStacks(t, pair.Config{MaxMTU: 9000}, Options{})
	ep := a.ep
	if ep.MTU() != 1500 || ep.MaxHeaderLength() != 14 || ep.ARPHardwareType() != header.ARPHardwareEther {
		t.Fatalf("mtu %d hdr %d", ep.MTU(), ep.MaxHeaderLength())
	}
	if err := p.A.Ioctl(&ifnet.SetMTU{MTU: 9000}); err != nil {
		t.Fatal(err)
	}
	if ep.MTU() != 9000 {
		t.Fatalf("MTU after ioctl: %d", ep.MTU())
	}
	ep.SetMTU(1400)
	if p.A.MTU() != 1400 {
		t.Fatalf("interface MTU after SetMTU: %d", p.A.MTU())
	}
	if got := ep.LinkAddress(); got != tcpip.LinkAddress(p.A.MAC()) {
		t.Fatalf("link address %v", got)
	}
	ep.SetLinkAddress("\x02\x00\x00\x00\x00\x77")
	if p.A.MAC().String() != "02:00:00:00:00:77" || ep.LinkAddress() != "\x02\x00\x00\x00\x00\x77" {
		t.Fatalf("MAC after SetLinkAddress: %v", p.A.MAC())
	}

	if c := ep.Capabilities(); c != stack.CapabilityResolutionRequired {
		t.Fatalf("capabilities without offloads %#x", c)
	}
	if ep.SupportedGSO() != stack.GSONotSupported || ep.GSOMaxSize() != 0 {
		t.Fatal("GSO without TSO")
	}
	// Both ends: the pair turns A's checksum requests into "verified" flags
	// only for a receiver with RX checksum offload.
	caps := ifnet.CapHWCsum | ifnet.CapTSO4
	for _, ifp := range []*ifnet.Interface{p.A, p.B} {
		if err := ifp.SetCapState(ifnet.CapState{Capabilities: caps, Enabled: caps, HWAssist: ifnet.DeriveHWAssist(caps)}); err != nil {
			t.Fatal(err)
		}
	}
	p.A.SetTSOLimits(ifnet.TSOLimits{MaxBytes: 32 << 10})
	want := stack.CapabilityResolutionRequired | stack.CapabilityRXChecksumOffload | stack.CapabilityTXChecksumOffload
	if c := ep.Capabilities(); c != want {
		t.Fatalf("capabilities %#x want %#x", c, want)
	}
	if ep.SupportedGSO() != stack.HostGSOSupported || ep.GSOMaxSize() != 32<<10-14 {
		t.Fatalf("GSO %v max %d", ep.SupportedGSO(), ep.GSOMaxSize())
	}

	// Link state: down means not attached, no delivery, no transmit.
	if !ep.IsAttached() || !b.ep.IsAttached() {
		t.Fatal("not attached with the link up")
	}
	conn := udpListener(t, b, 7000)
	send := func(msg string) {
		t.Helper()
		c, err := gonet.DialUDP(a.s, nil, &tcpip.FullAddress{NIC: nicID, Addr: b.addr, Port: 7000}, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(msg))
	}
	send("hello")
	if got, ok := recv(conn, 5*time.Second); !ok || got != "hello" {
		t.Fatalf("datagram with link up: %q %v", got, ok)
	}
	p.SetLink(false)
	if ep.IsAttached() {
		t.Fatal("attached with the link down")
	}
	send("lost")
	if got, ok := recv(conn, 100*time.Millisecond); ok {
		t.Fatalf("datagram delivered with the link down: %q", got)
	}
	// The endpoint refuses to write on a down link.
	var list stack.PacketBufferList
	list.PushBack(stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: 64}))
	if _, err := ep.WritePackets(list); err == nil {
		t.Fatal("write on a down link succeeded")
	} else if _, ok := err.(*tcpip.ErrClosedForSend); !ok {
		t.Fatalf("write on a down link: %v", err)
	}
	list.DecRef()
	// A frame a driver delivers anyway is dropped.
	before := b.ep.Interface().Stats().Drops[ifnet.DropDown]
	pool := packet.MustPool(packet.PoolConfig{})
	bt := packet.NewBatch(1)
	pk := pool.Get()
	_ = pk.SetBytes(udpFrame(t, p.A.MAC(), p.B.MAC(), a.addr, b.addr, 7000, "late", true))
	bt.Add(pk)
	p.B.Input(bt)
	if got := b.ep.Interface().Stats().Drops[ifnet.DropDown]; got != before+1 {
		t.Fatalf("DropDown %d -> %d", before, got)
	}
	p.SetLink(true)
	send("again")
	if got, ok := recv(conn, 5*time.Second); !ok || got != "again" {
		t.Fatalf("datagram after link up: %q %v", got, ok)
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame; good says whether the UDP
// checksum is right.
func udpFrame(t *testing.T, srcMAC, dstMAC []byte, src, dst tcpip.Address, port uint16, msg string, good bool) []byte {
	t.Helper()
	f := make([]byte, ethHdrLen+header.IPv4MinimumSize+header.UDPMinimumSize+len(msg))
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(srcMAC), DstAddr: tcpip.LinkAddress(dstMAC),
		Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[ethHdrLen:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - ethHdrLen), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 9999, DstPort: port, Length: uint16(len(u))})
	copy(u[header.UDPMinimumSize:], msg)
	l, ok := parseL4(f)
	if !ok {
		t.Fatal("parseL4 of a built frame failed")
	}
	c := ^checksum.Checksum(u, pseudoSum(f, &l, len(u)))
	if !good {
		c ^= 0x5a5a
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return f
}

// TestRxChecksumPromise: with RX checksum offload advertised, gVisor checks
// nothing, so the endpoint must: driver-verified frames pass, frames the
// driver marked bad are dropped, unmarked ones are verified in software.
func TestRxChecksumPromise(t *testing.T) {
	checkGoroutines(t)
	p, a, b := newPairStacks(t, pair.Config{Capabilities: ifnet.CapHWCsum}, Options{})
	if b.ep.Capabilities()&stack.CapabilityRXChecksumOffload == 0 {
		t.Fatal("RX offload not advertised")
	}
	conn := udpListener(t, b, 7001)
	pool := packet.MustPool(packet.PoolConfig{})
	bt := packet.NewBatch(1)
	inject := func(msg string, good bool, flags packet.Csum) {
		pk := pool.Get()
		_ = pk.SetBytes(udpFrame(t, p.A.MAC(), p.B.MAC(), a.addr, b.addr, 7001, msg, good))
		pk.Meta.Csum = flags
		bt.Add(pk)
		p.B.Input(bt)
	}
	for _, c := range []struct {
		msg       string
		good      bool
		flags     packet.Csum
		delivered bool
	}{
		{"bad-unmarked", false, 0, false},
		{"good-unmarked", true, 0, true},
		{"bad-but-hw-says-ok", false, packet.CsumRxIPOK | packet.CsumRxL4OK, true},
		{"good-but-hw-says-bad", true, packet.CsumRxL4Bad, false},
	} {
		before := p.B.Stats().Drops[ifnet.DropInvalid]
		inject(c.msg, c.good, c.flags)
		got, ok := recv(conn, 200*time.Millisecond)
		if ok != c.delivered || (ok && got != c.msg) {
			t.Errorf("%s: delivered %v (%q), want %v", c.msg, ok, got, c.delivered)
		}
		if dropped := p.B.Stats().Drops[ifnet.DropInvalid] - before; dropped != map[bool]uint64{true: 0, false: 1}[c.delivered] {
			t.Errorf("%s: DropInvalid +%d", c.msg, dropped)
		}
	}
}

// TestDetachUninstallsInput: removing the NIC takes the endpoint's input
// off the interface.
func TestDetachUninstallsInput(t *testing.T) {
	checkGoroutines(t)
	p, _, b := newPairStacks(t, pair.Config{}, Options{})
	if terr := b.s.RemoveNIC(nicID); terr != nil {
		t.Fatal(terr)
	}
	if b.ep.IsAttached() {
		t.Fatal("attached after RemoveNIC")
	}
	pool := packet.MustPool(packet.PoolConfig{})
	bt := packet.NewBatch(1)
	pk := pool.Get()
	_ = pk.SetBytes(make([]byte, 60))
	bt.Add(pk)
	p.B.Input(bt)
	if p.B.Stats().Drops[ifnet.DropNoInput] != 1 {
		t.Fatalf("drops %v", p.B.Stats().Drops)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("nil interface accepted")
	}
	p, err := pair.New(pair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := New(p.A, Options{Pool: packet.MustPool(packet.PoolConfig{Size: 16})}); err == nil {
		t.Fatal("tiny pool accepted")
	}
	// Close runs the close action once (gVisor clears it itself before
	// closing a removed NIC's endpoint, so this is for other owners).
	ep, err := New(p.A, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	ep.SetOnCloseAction(func() { runs++ })
	ep.Close()
	ep.Close()
	if runs != 1 {
		t.Fatalf("close action ran %d times", runs)
	}
}
