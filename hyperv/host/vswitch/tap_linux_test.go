package vswitch

import (
	"bytes"
	"github.com/hvguest/hvguest/net/tapdev/taptest"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hvguest/hvguest/net/packet"
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

// TestTAPPortPing: the kernel, in a fresh network namespace, pings a
// vswitch Station through the TAP port. Path: ping -> kernel -> TAP ->
// reader -> switch -> station, which answers through the switch ->
// TAPPort.Deliver -> TAP -> kernel.
func TestTAPPortPing(t *testing.T) {
	taptest.NeedTAP(t)
	checkGoroutines(t)
	ns := taptest.NewNetns(t, "hvvsw")

	sw := New(Config{NoAger: true})
	defer sw.Close()
	stIP := netip.MustParseAddr("10.98.0.2")
	st, err := NewStation(sw, StationConfig{Name: "station", MAC: MAC{0x02, 0, 0, 0, 0x98, 2}, IP: stIP})
	if err != nil {
		t.Fatal(err)
	}
	pool := packet.MustPool(packet.PoolConfig{})
	tp, err := NewTAPPort(sw, TAPConfig{Name: "hvvsw0", NetNS: "/var/run/netns/" + ns, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if tp.Name() != "hvvsw0" || tp.SwitchPort().Name() != "hvvsw0" {
		t.Fatalf("TAP name %q, port name %q", tp.Name(), tp.SwitchPort().Name())
	}
	// The TAP lives in the namespace, not here.
	if _, err := exec.Command("ip", "link", "show", "hvvsw0").CombinedOutput(); err == nil {
		t.Fatal("hvvsw0 visible in the test's own namespace")
	}
	taptest.Run(t, "ip", "-n", ns, "addr", "add", "10.98.0.1/24", "dev", "hvvsw0")
	taptest.Run(t, "ip", "-n", ns, "link", "set", "hvvsw0", "up")
	out := taptest.Run(t, "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", stIP.String())
	t.Logf("%s", out)
	if !strings.Contains(out, "3 received") {
		t.Fatalf("ping lost replies:\n%s", out)
	}

	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Counters, now that nothing moves any more. The kernel may also send
	// IPv6 multicast (DAD, MLD, router solicitations) that reaches the
	// station too, so the station's totals are lower bounds.
	ts, ps, ss := tp.Stats(), tp.SwitchPort().Stats(), st.Stats()
	t.Logf("TAP %+v\nport %+v\nstation %+v", ts, ps, ss)
	if ss.EchoReplies != 3 || ss.ARPReplies < 1 {
		t.Errorf("station answered %d echoes, %d ARPs; want 3, >= 1", ss.EchoReplies, ss.ARPReplies)
	}
	if ts.FromTAP < 4 || ts.ToTAP < 4 { // ARP + 3 echoes each way
		t.Errorf("TAP stats %+v", ts)
	}
	if ts.FromTAP != ps.RxFrames || ts.ToTAP+ts.TxDrops != ps.TxFrames {
		t.Errorf("TAP %+v disagrees with switch port %+v", ts, ps)
	}
	if ts.TxDrops != 0 || ts.NoBuffer != 0 || ts.ReadErrs != 0 {
		t.Errorf("TAP errors %+v", ts)
	}
	if ss.Sent != ts.ToTAP {
		t.Errorf("station sent %d frames, TAP wrote %d", ss.Sent, ts.ToTAP)
	}
	if ss.Frames != ts.FromTAP {
		t.Errorf("station got %d frames, TAP read %d", ss.Frames, ts.FromTAP)
	}
	// The port is detached and the non-persistent TAP is gone.
	if len(sw.Ports()) != 1 {
		t.Errorf("switch still has %d ports", len(sw.Ports()))
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "show", "hvvsw0").CombinedOutput(); err == nil {
		t.Fatalf("hvvsw0 still exists after Close:\n%s", out)
	}
	// A delivery after Close is dropped and its packets freed, not written.
	b := packet.NewBatch(1)
	p := pool.Get()
	_ = p.AppendBytes(make([]byte, 60))
	b.Add(p)
	tp.Deliver(b)
	if got := tp.Stats(); got.TxDrops != 1 || got.ToTAP != ts.ToTAP {
		t.Errorf("Deliver after Close: %+v", got)
	}
	if ps := pool.Stats(); ps.InUse != 0 {
		t.Errorf("pool leaks packets: %+v", ps)
	}
}

// TestTAPPortTrunk: the TAP port is a trunk and the kernel pings through a
// VLAN subinterface, so the station's replies leave the switch tagged and
// reach the kernel with the tag back in the bytes.
func TestTAPPortTrunk(t *testing.T) {
	taptest.NeedTAP(t)
	checkGoroutines(t)
	ns := taptest.NewNetns(t, "hvvsw")
	sw := New(Config{NoAger: true})
	defer sw.Close()
	stIP := netip.MustParseAddr("10.97.0.2")
	st, err := NewStation(sw, StationConfig{Name: "station", MAC: MAC{0x02, 0, 0, 0, 0x97, 2}, IP: stIP, VLAN: Access(5)})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := NewTAPPort(sw, TAPConfig{Name: "hvvsw1", NetNS: "/var/run/netns/" + ns, VLAN: Trunk(0, 5)})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "link", "hvvsw1", "name", "hvvsw1.5", "type", "vlan", "id", "5").CombinedOutput(); err != nil {
		t.Skipf("skipping: no kernel VLAN support (8021q): %v\n%s", err, out)
	}
	taptest.Run(t, "ip", "-n", ns, "link", "set", "hvvsw1", "up")
	taptest.Run(t, "ip", "-n", ns, "addr", "add", "10.97.0.1/24", "dev", "hvvsw1.5")
	taptest.Run(t, "ip", "-n", ns, "link", "set", "hvvsw1.5", "up")
	out := taptest.Run(t, "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", stIP.String())
	if !strings.Contains(out, "2 received") {
		t.Fatalf("ping lost replies:\n%s", out)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	ts, ps, ss := tp.Stats(), tp.SwitchPort().Stats(), st.Stats()
	if ss.EchoReplies != 2 || ts.ToTAP != ss.Sent || ts.TxDrops != 0 || ps.TotalDrops() != 0 {
		t.Errorf("TAP %+v\nport %+v\nstation %+v", ts, ps, ss)
	}
}

func TestTAPPortErrors(t *testing.T) {
	sw := New(Config{NoAger: true})
	defer sw.Close()
	if _, err := NewTAPPort(nil, TAPConfig{}); err == nil {
		t.Fatal("nil switch accepted")
	}
	if _, err := NewTAPPort(sw, TAPConfig{Name: "a-name-that-is-too-long"}); err == nil {
		t.Fatal("long name accepted")
	}
	if _, err := NewTAPPort(sw, TAPConfig{Name: "hvvswx", NetNS: "/nonexistent/netns"}); err == nil {
		t.Fatal("missing netns accepted")
	}
	if n := len(sw.Ports()); n != 0 {
		t.Fatalf("failed opens left %d ports", n)
	}
}

// TestInsertTag: a trunk's tagged egress frame gets its 802.1Q header back
// in the bytes, and the switch's ingress normalisation undoes it.
func TestInsertTag(t *testing.T) {
	frame := []byte{
		1, 2, 3, 4, 5, 6, // dst
		7, 8, 9, 10, 11, 12, // src
		0x08, 0x00, 0xaa, 0xbb,
	}
	p := packet.New(packet.DefaultHeadroom, packet.DefaultSize)
	if err := p.SetBytes(frame); err != nil {
		t.Fatal(err)
	}
	p.Meta.SetVLAN(0x6005) // PCP 3, VID 5
	if !insertTag(p) {
		t.Fatal("insertTag failed")
	}
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x60, 0x05, 0x08, 0x00, 0xaa, 0xbb}
	if !bytes.Equal(p.Bytes(), want) || p.Meta.HasVLAN {
		t.Fatalf("got % x (HasVLAN %v), want % x", p.Bytes(), p.Meta.HasVLAN, want)
	}
	short := packet.New(packet.DefaultHeadroom, packet.DefaultSize)
	_ = short.SetBytes(frame[:10])
	short.Meta.SetVLAN(5)
	if insertTag(short) {
		t.Fatal("runt tagged")
	}
	noRoom := packet.New(0, 64)
	_ = noRoom.SetBytes(frame)
	noRoom.Meta.SetVLAN(5)
	if insertTag(noRoom) {
		t.Fatal("tag inserted without headroom")
	}
}
