package vswitch

import (
	"encoding/binary"
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

func tagged(vid uint16) packet.Meta {
	var m packet.Meta
	m.SetVLAN(vid)
	return m
}

func TestVLANSeparation(t *testing.T) {
	// a, b: access 10; c: access 20; d: trunk carrying 10 and 20, no native;
	// e: trunk, native 20, all VLANs.
	r := newRig(t, Access(10), Access(10), Access(20), Trunk(0, 10, 20), Trunk(20))
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "x"))
	fr := make([][]Frame, len(r.rec))
	for i, rec := range r.rec {
		fr[i] = rec.take()
	}
	if len(fr[1]) != 1 || fr[1][0].Meta.HasVLAN || len(fr[2]) != 0 || len(fr[3]) != 1 || len(fr[4]) != 1 {
		t.Fatalf("VLAN 10 broadcast: %v", fr)
	}
	if m := fr[3][0].Meta; !m.HasVLAN || m.VLANID() != 10 {
		t.Fatalf("trunk d got meta %+v, want tag 10", m)
	}
	if m := fr[4][0].Meta; !m.HasVLAN || m.VLANID() != 10 {
		t.Fatalf("trunk e got meta %+v, want tag 10", m)
	}

	// The trunk sends on VLAN 20 with priority 5: c and e (native 20,
	// untagged) get it; the priority survives on the way out of a tagged
	// port only.
	send(t, r.port[3], tagged(5<<13|20), frame(Broadcast, macB, "y"))
	if got := r.counts(); !eqInts(got, []int{0, 0, 1, 0, 1}) {
		t.Fatalf("VLAN 20 from trunk: %v", got)
	}

	// Untagged on a trunk without native VLAN, a foreign tag on an access
	// port, a disallowed tag on the trunk: all dropped.
	send(t, r.port[3], packet.Meta{}, frame(Broadcast, macB, "z"))
	send(t, r.port[0], tagged(20), frame(Broadcast, macA, "z"))
	send(t, r.port[3], tagged(30), frame(Broadcast, macB, "z"))
	if got := r.counts(); !eqInts(got, []int{0, 0, 0, 0, 0}) {
		t.Fatalf("leaks: %v", got)
	}
	if r.port[3].Stats().Drops[DropVLAN] != 2 || r.port[0].Stats().Drops[DropVLAN] != 1 {
		t.Fatal("VLAN drops not counted")
	}

	// An access port accepts its own tag and a priority tag.
	send(t, r.port[0], tagged(10), frame(Broadcast, macA, "p"))
	send(t, r.port[0], tagged(3<<13), frame(Broadcast, macA, "p"))
	if got := r.counts(); !eqInts(got, []int{0, 2, 0, 2, 2}) {
		t.Fatalf("own/priority tags: %v", got)
	}

	// The same MAC on two VLANs is two entries.
	send(t, r.port[2], packet.Meta{}, frame(Broadcast, macA, "x"))
	if p, ok := r.sw.Lookup(macA, 10); !ok || p != r.port[0] {
		t.Fatal("A on VLAN 10 lost")
	}
	if p, ok := r.sw.Lookup(macA, 20); !ok || p != r.port[2] {
		t.Fatal("A on VLAN 20 not learned")
	}
	r.counts()
	// Unicast to A on VLAN 20 from the trunk goes to c, not to a.
	send(t, r.port[3], tagged(20), frame(macA, macB, "u"))
	if got := r.counts(); !eqInts(got, []int{0, 0, 1, 0, 0}) {
		t.Fatalf("unicast on VLAN 20: %v", got)
	}
}

func TestInBandTagNormalised(t *testing.T) {
	r := newRig(t, Trunk(0), Trunk(0), Access(7))
	f := frame(Broadcast, macA, "payload")
	tf := make([]byte, 0, len(f)+4)
	tf = append(tf, f[:12]...)
	tf = binary.BigEndian.AppendUint16(tf, etherTypeVLAN)
	tf = binary.BigEndian.AppendUint16(tf, 2<<13|7)
	tf = append(tf, f[12:]...)
	send(t, r.port[0], packet.Meta{}, tf)
	got := r.rec[1].take()
	if len(got) != 1 || string(got[0].Data) != string(f) || got[0].Meta.VLAN != 2<<13|7 {
		t.Fatalf("trunk got %+v", got)
	}
	got = r.rec[2].take()
	if len(got) != 1 || string(got[0].Data) != string(f) || got[0].Meta.HasVLAN {
		t.Fatalf("access got %+v", got)
	}
}

func TestSetVLANFlushes(t *testing.T) {
	r := newRig(t, Access(10), Access(10))
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "x"))
	if err := r.port[0].SetVLAN(Access(11)); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.sw.Lookup(macA, 10); ok {
		t.Fatal("entry survived a VLAN change")
	}
	if r.port[0].VLAN().Access != 11 {
		t.Fatal("VLAN() does not report the change")
	}
	r.counts()
	send(t, r.port[0], packet.Meta{}, frame(Broadcast, macA, "x"))
	if got := r.counts(); !eqInts(got, []int{0, 0}) {
		t.Fatalf("VLAN 11 leaked to VLAN 10: %v", got)
	}
}
