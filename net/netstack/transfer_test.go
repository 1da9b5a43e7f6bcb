package netstack

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/net/pair"
)

// transferSize is the TCP transfer of the acceptance tests. The full
// 64 MiB stays affordable under the race detector too (about 10 s on two
// cores), so no build tag shrinks it.
func transferSize() int { return 64 << 20 }

func logRate(t *testing.T, size int, d time.Duration, ifps ...*ifnet.Interface) {
	for _, ifp := range ifps {
		st := ifp.Stats()
		t.Logf("%s: out %d pkts, in %d pkts, drops %v", ifp.Name(), st.OutPackets, st.InPackets, st.Drops)
	}
	t.Logf("%d MiB in %v (%.0f Mbit/s)", size>>20, d.Round(time.Millisecond), float64(size)*8/d.Seconds()/1e6)
}

// TestTCPTransfer moves the full transfer between two stacks joined by a
// pair without offloads: gVisor computes and verifies every checksum.
func TestTCPTransfer(t *testing.T) {
	checkGoroutines(t)
	p, a, b := newPairStacks(t, pair.Config{QueueLen: 256}, Options{})
	size := transferSize()
	logRate(t, size, transfer(t, a, b, ipv4.ProtocolNumber, size, nil, nil), p.A, p.B)
}

// TestTCPTransferOffload does it with checksum offload and TSO: gVisor
// hands 64 KiB GSO packets to the endpoint, which passes them whole with
// TSO metadata; the pair delivers them with "checksum good" flags.
func TestTCPTransferOffload(t *testing.T) {
	checkGoroutines(t)
	caps := ifnet.CapHWCsum | ifnet.CapHWCsumIPv6 | ifnet.CapTSO
	p, a, b := newPairStacks(t, pair.Config{QueueLen: 256, Capabilities: caps}, Options{})
	var tso, big atomic.Int64
	obs, err := p.A.Observe(func(_ *ifnet.Interface, _ ifnet.Direction, bt *packet.Batch) {
		for _, pk := range bt.Packets() {
			if pk.Meta.Csum&packet.CsumTxTSOv4 != 0 && pk.Meta.MSS > 0 {
				tso.Add(1)
			}
			if pk.Len() > 1514 {
				big.Add(1)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	size := transferSize()
	logRate(t, size, transfer(t, a, b, ipv4.ProtocolNumber, size, nil, nil))
	if tso.Load() == 0 || big.Load() == 0 {
		t.Fatalf("no TSO frames sent (tso %d, >1514 bytes %d)", tso.Load(), big.Load())
	}
	t.Logf("%d TSO frames", tso.Load())
	if a.ep.Capabilities()&0x6 != 0x6 { // TX and RX checksum offload bits
		t.Fatalf("capabilities %#x", a.ep.Capabilities())
	}
}

// TestTCPTransferSoftwareOffload enables TSO and checksum offload as
// capabilities but narrows the hardware-assist flags to nothing, as a
// driver that lost its VF would: the endpoint segments and checksums in
// software, and every frame on the wire fits the MTU.
func TestTCPTransferSoftwareOffload(t *testing.T) {
	checkGoroutines(t)
	caps := ifnet.CapHWCsum | ifnet.CapTSO4
	p, a, b := newPairStacks(t, pair.Config{QueueLen: 256, Capabilities: caps}, Options{})
	for _, ifp := range []*ifnet.Interface{p.A, p.B} {
		if err := ifp.SetCapState(ifnet.CapState{Capabilities: ifp.Capabilities(), Enabled: caps}); err != nil {
			t.Fatal(err)
		}
	}
	var tooBig, flagged atomic.Int64
	obs, err := p.A.Observe(func(_ *ifnet.Interface, _ ifnet.Direction, bt *packet.Batch) {
		for _, pk := range bt.Packets() {
			if pk.Len() > 1514 {
				tooBig.Add(1)
			}
			if pk.Meta.Csum != 0 {
				flagged.Add(1)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	size := transferSize() / 4
	logRate(t, size, transfer(t, a, b, ipv4.ProtocolNumber, size, nil, nil))
	if tooBig.Load() != 0 || flagged.Load() != 0 {
		t.Fatalf("%d frames above the MTU, %d with offload flags", tooBig.Load(), flagged.Load())
	}
}

// TestTCPTransferIPv6Offload runs TCP over IPv6 with TSO6 and IPv6
// checksum offload.
func TestTCPTransferIPv6Offload(t *testing.T) {
	checkGoroutines(t)
	caps := ifnet.CapHWCsumIPv6 | ifnet.CapTSO6
	_, a, b := newPairStacks(t, pair.Config{QueueLen: 256, Capabilities: caps}, Options{})
	size := transferSize() / 4
	logRate(t, size, transfer(t, a, b, ipv6.ProtocolNumber, size, nil, nil))
}

// TestTCPTransferInputOverride overrides the receiver's input and restores
// it 100 times while the transfer runs. Each override forwards to the
// input below it (its Next), so no byte may be lost.
func TestTCPTransferInputOverride(t *testing.T) {
	checkGoroutines(t)
	p, a, b := newPairStacks(t, pair.Config{QueueLen: 256}, Options{})
	var seen, done atomic.Int64
	const rounds = 100
	during := func() {
		defer done.Store(rounds)
		for range rounds {
			var h atomic.Pointer[ifnet.InputOverride]
			ov, err := p.B.OverrideInput(func(_ *ifnet.Interface, bt *packet.Batch) {
				seen.Add(int64(bt.Len()))
				o := h.Load()
				for o == nil { // the handle is published just after OverrideInput returns
					runtime.Gosched()
					o = h.Load()
				}
				o.Next(bt)
			})
			if err != nil {
				t.Error(err)
				return
			}
			h.Store(ov)
			time.Sleep(500 * time.Microsecond)
			if err := ov.Restore(); err != nil {
				t.Error(err)
				return
			}
			done.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	}
	// The writer keeps pace with the overrides so that all of them happen
	// while data flows: after writing a fraction f it waits for f*rounds.
	pace := func(f float64) {
		for float64(done.Load()) < f*rounds-1 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	size := transferSize()
	logRate(t, size, transfer(t, a, b, ipv4.ProtocolNumber, size, during, pace), p.A, p.B)
	if p.B.Overridden() != 0 {
		t.Fatal("override left installed")
	}
	if seen.Load() == 0 {
		t.Fatal("overrides saw no packets: the transfer ended before they ran")
	}
	t.Logf("%d packets went through the %d overrides", seen.Load(), rounds)
}
