package tap

import (
	"github.com/hvguest/hvguest/net/tapdev/taptest"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/netstack"
	"github.com/hvguest/hvguest/net/pair"
)

// checkGoroutines fails the test if goroutines outlive its cleanups.
func checkGoroutines(t *testing.T) {
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

// icmpStack puts a gVisor stack answering ICMP echo at addr/24 on ifp.
func icmpStack(t *testing.T, ifp *ifnet.Interface, addr tcpip.Address) {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{icmp.NewProtocol4},
	})
	ep, err := netstack.New(ifp, netstack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if terr := s.CreateNIC(1, ep); terr != nil {
		t.Fatal(terr)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}}
	if terr := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); terr != nil {
		t.Fatal(terr)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	t.Cleanup(func() {
		s.Close()
		s.Wait()
	})
}

// TestPingThroughTAP: the kernel, in a fresh network namespace, pings a
// gVisor stack through the TAP bridge. Path: kernel -> TAP -> bridge ->
// pair end A (Transmit) -> wire -> pair end B -> gVisor, and back.
func TestPingThroughTAP(t *testing.T) {
	taptest.NeedTAP(t)
	checkGoroutines(t)
	ns := taptest.NewNetns(t, "hvtap")

	p, err := pair.New(pair.Config{QueueLen: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for _, ifp := range []*ifnet.Interface{p.A, p.B} {
		if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
			t.Fatal(err)
		}
	}
	icmpStack(t, p.B, tcpip.AddrFrom4([4]byte{10, 99, 0, 2}))

	br, err := Open(p.A, Config{Name: "hvtap0", NetNS: "/var/run/netns/" + ns})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	if br.Name() != "hvtap0" {
		t.Fatalf("TAP name %q", br.Name())
	}
	// The TAP lives in the namespace, not here.
	if _, err := exec.Command("ip", "link", "show", "hvtap0").CombinedOutput(); err == nil {
		t.Fatal("hvtap0 visible in the test's own namespace")
	}
	taptest.Run(t, "ip", "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "hvtap0")
	taptest.Run(t, "ip", "-n", ns, "link", "set", "hvtap0", "up")
	out := taptest.Run(t, "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.2")
	t.Logf("%s", out)
	if !strings.Contains(out, "3 received") {
		t.Fatalf("ping lost replies:\n%s", out)
	}
	st := br.Stats()
	if st.FromTAP < 4 || st.ToTAP < 4 { // ARP + 3 echoes each way
		t.Fatalf("bridge stats %+v", st)
	}
	t.Logf("bridge stats %+v", st)

	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The non-persistent TAP goes away with its descriptor.
	if out, err := exec.Command("ip", "-n", ns, "link", "show", "hvtap0").CombinedOutput(); err == nil {
		t.Fatalf("hvtap0 still exists after Close:\n%s", out)
	}
}

// TestOpenErrors covers the failures that need no privileges to provoke.
func TestOpenErrors(t *testing.T) {
	if _, err := Open(nil, Config{}); err == nil {
		t.Fatal("nil interface accepted")
	}
	p, err := pair.New(pair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := Open(p.A, Config{Name: "a-name-that-is-too-long"}); err == nil {
		t.Fatal("long name accepted")
	}
	if _, err := Open(p.A, Config{Name: "hvtapx", NetNS: "/nonexistent/netns"}); err == nil {
		t.Fatal("missing netns accepted")
	}
}
