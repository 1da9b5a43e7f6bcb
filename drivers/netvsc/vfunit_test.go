package netvsc

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

func bitsOf(ts ...packet.HashType) uint32 {
	var b uint32
	for _, t := range ts {
		b |= 1 << t
	}
	return b
}

// FreeBSD hn_vf_rss_fixup's delivery rules (spec/vf-modes.md §1.7).
func TestHashDeliveryOff(t *testing.T) {
	v4 := ifnet.RSSIPv4 | ifnet.RSSTCPv4
	v6 := ifnet.RSSIPv6 | ifnet.RSSTCPv6
	for _, c := range []struct {
		name    string
		vf, hn  ifnet.RSSTypes
		wantOff uint32
	}{
		{"same types: only the opaque hash", v4 | v6, v4 | v6, bitsOf(packet.HashOpaque)},
		{"VF hashes UDP/IPv4, hn not: IPv4 off", v4 | ifnet.RSSUDPv4, v4, bitsOf(packet.HashOpaque, packet.HashIPv4)},
		{"VF hashes TCP/IPv4, hn only IPv4", v4, ifnet.RSSIPv4, bitsOf(packet.HashOpaque, packet.HashIPv4)},
		{"VF hashes TCP/IPv6, hn only IPv6", v6, ifnet.RSSIPv6, bitsOf(packet.HashOpaque, packet.HashIPv6)},
		{"VF hashes TCP/IPv6 EX", v6 | ifnet.RSSTCPv6Ex, v6, bitsOf(packet.HashOpaque, packet.HashIPv6, packet.HashTCPv6)},
		{"VF hashes IPv6 EX", v6 | ifnet.RSSIPv6Ex, v6, bitsOf(packet.HashOpaque, packet.HashIPv6, packet.HashIPv6Ex)},
		{"VF hashes UDP/IPv6 EX", v6 | ifnet.RSSUDPv6Ex, v6, bitsOf(packet.HashOpaque, packet.HashIPv6, packet.HashUDPv6)},
	} {
		if got := hashDeliveryOff(c.vf, c.hn); got != c.wantOff {
			t.Errorf("%s: off %#x, want %#x", c.name, got, c.wantOff)
		}
	}
	if hashAllOff&bitsOf(packet.HashNone) != 0 || hashAllOff&bitsOf(packet.HashTCPv4, packet.HashOpaque) != bitsOf(packet.HashTCPv4, packet.HashOpaque) {
		t.Errorf("hashAllOff %#x", hashAllOff)
	}
}

func TestRSSTypesRoundTrip(t *testing.T) {
	all := ifnet.RSSTypes(0)
	for _, m := range rssTypeBits {
		all |= m.t
		if rssTypes(rssInfo(m.t)) != m.t {
			t.Errorf("%v does not round-trip", m.t)
		}
	}
	if rssTypes(rssInfo(all)) != all {
		t.Errorf("all types %v", all)
	}
}

func TestFixCapDepsAndAssist(t *testing.T) {
	en := fixCapDeps(ifnet.CapTSO4 | ifnet.CapTSO6 | ifnet.CapTxCsumIPv6 | ifnet.CapVLANHWCsum | ifnet.CapLRO)
	if en != ifnet.CapTSO6|ifnet.CapTxCsumIPv6|ifnet.CapLRO {
		t.Errorf("fixCapDeps %v", en)
	}
	got := assistFor(ifnet.CapTxCsum|ifnet.CapTSO4, ifnet.AssistCsumIPv4|ifnet.AssistIPTSO|ifnet.AssistCsumIPv6, ifnet.AssistTCP|ifnet.AssistUDP|ifnet.AssistTSO)
	if got != ifnet.AssistTCP|ifnet.AssistUDP|ifnet.AssistIPTSO {
		t.Errorf("assistFor %v", got)
	}
}

// FreeBSD (VIFAPI) logged a NULL VF's name; fail names whatever it is
// given and survives nil.
func TestFailWithoutVF(t *testing.T) {
	var buf strings.Builder
	m := &vfMgr{d: &Device{log: slog.New(slog.NewTextHandler(&buf, nil))}}
	m.fail("bringing up VF failed", nil, errors.New("boom"))
	if m.w.lastErr != "bringing up VF failed : boom" || !strings.Contains(buf.String(), `vf="" err=boom`) {
		t.Fatalf("lastErr %q, log %q", m.w.lastErr, buf.String())
	}
}
