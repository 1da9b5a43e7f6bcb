package netstack

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc/fifo"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/pair"
)

const nicID = 1

// testStack is a gVisor stack with one NIC over an ifnet interface.
type testStack struct {
	s    *stack.Stack
	ep   *Endpoint
	addr tcpip.Address
}

// up sets the interface administratively up (the pair driver then sets it
// running).
func up(t testing.TB, ifp *ifnet.Interface) {
	t.Helper()
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
}

// newStack builds a stack on ifp with IPv4 address 10.0.0.last/24 and IPv6
// fd00::last/64. The stack is destroyed at cleanup.
func newStack(t testing.TB, ifp *ifnet.Interface, last byte, opts Options) *testStack {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	ep, err := New(ifp, opts)
	if err != nil {
		t.Fatal(err)
	}
	if terr := s.CreateNICWithOptions(nicID, ep, stack.NICOptions{Name: ifp.Name(), QDisc: fifo.New(ep, 1, 1000)}); terr != nil {
		t.Fatal(terr)
	}
	addr := tcpip.AddrFrom4([4]byte{10, 0, 0, last})
	addr6 := tcpip.AddrFrom16([16]byte{0: 0xfd, 15: last})
	for _, pa := range []tcpip.ProtocolAddress{
		{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}},
		{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr6, PrefixLen: 64}},
	} {
		if terr := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); terr != nil {
			t.Fatal(terr)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}.Subnet(), NIC: nicID},
		{Destination: tcpip.AddressWithPrefix{Address: addr6, PrefixLen: 64}.Subnet(), NIC: nicID},
	})
	// Big socket buffers so that a transfer is not window-bound.
	sz := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: 4 << 20, Max: 8 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sz)
	rz := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: 4 << 20, Max: 8 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rz)
	// The wire is in memory: losses come only from a receiver that falls
	// behind (the race detector slows gVisor 10x). SACK and a bounded RTO
	// keep a recovery from idling for seconds.
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	maxRTO := tcpip.TCPMaxRTOOption(250 * time.Millisecond)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &maxRTO)
	t.Cleanup(func() {
		s.Close()
		s.Wait()
	})
	return &testStack{s: s, ep: ep, addr: addr}
}

// newPairStacks joins two stacks (10.0.0.1 on A, 10.0.0.2 on B) with a pair.
func newPairStacks(t testing.TB, cfg pair.Config, opts Options) (*pair.Pair, *testStack, *testStack) {
	t.Helper()
	p, err := pair.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	up(t, p.A)
	up(t, p.B)
	a := newStack(t, p.A, 1, opts)
	b := newStack(t, p.B, 2, opts)
	return p, a, b
}

// transfer sends size pseudo-random bytes from a to b over TCP and checks
// the sha256 of what arrived. during, if set, runs in its own goroutine
// while the data flows; pace, if set, is called by the writer after each
// 64 KiB with the fraction written so far (it may block to let during
// keep up).
func transfer(t testing.TB, a, b *testStack, proto tcpip.NetworkProtocolNumber, size int, during func(), pace func(float64)) time.Duration {
	t.Helper()
	dst := tcpip.FullAddress{NIC: nicID, Addr: b.addr, Port: 5001}
	if proto == ipv6.ProtocolNumber {
		dst.Addr = tcpip.AddrFrom16([16]byte{0: 0xfd, 15: 2})
	}
	ln, err := gonet.ListenTCP(b.s, dst, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		got <- r
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, a.s, dst, proto)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	duringDone := make(chan struct{})
	go func() {
		defer close(duringDone)
		if during != nil {
			during()
		}
		<-stop
	}()
	start := time.Now()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 64<<10)
	for left := size; left > 0; {
		n := min(len(buf), left)
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := c.Write(buf[:n]); err != nil {
			t.Fatalf("write after %d bytes: %v", size-left, err)
		}
		left -= n
		if pace != nil {
			pace(float64(size-left) / float64(size))
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("receiver did not finish")
	}
	elapsed := time.Since(start)
	as, bs := a.s.Stats(), b.s.Stats()
	t.Logf("sender: %d retransmits, %d timeouts, %d send errors; receiver: %d dropped packets, %d invalid TCP segments",
		as.TCP.Retransmits.Value(), as.TCP.Timeouts.Value(), as.TCP.SegmentSendErrors.Value(), bs.DroppedPackets.Value(), bs.TCP.InvalidSegmentsReceived.Value())
	close(stop)
	<-duringDone
	c.Close()
	if r.err != nil {
		t.Fatalf("receive: %v", r.err)
	}
	if r.n != int64(size) {
		t.Fatalf("received %d bytes, sent %d", r.n, size)
	}
	if [32]byte(h.Sum(nil)) != r.sum {
		t.Fatal("sha256 of received data differs from sent")
	}
	return elapsed
}

// checkGoroutines fails the test if goroutines started during it outlive
// its cleanups (register it first so that it runs last).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
