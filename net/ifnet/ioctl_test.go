package ifnet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
)

func TestNewValidation(t *testing.T) {
	d := &fakeDriver{}
	cases := []struct {
		name string
		cfg  Config
		drv  Driver
	}{
		{"nil driver", Config{Name: "x0", MAC: mac(1)}, nil},
		{"empty name", Config{MAC: mac(1)}, d},
		{"long name", Config{Name: "abcdefghijklmnop", MAC: mac(1)}, d},
		{"short mac", Config{Name: "x0", MAC: net.HardwareAddr{2, 0, 0}}, d},
		{"multicast mac", Config{Name: "x0", MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}}, d},
		{"zero mac", Config{Name: "x0", MAC: make(net.HardwareAddr, 6)}, d},
		{"mtu above max", Config{Name: "x0", MAC: mac(1), MTU: 2000, MaxMTU: 1500}, d},
		{"mtu too big", Config{Name: "x0", MAC: mac(1), MTU: 70000, MaxMTU: 70000}, d},
		{"enabled not supported", Config{Name: "x0", MAC: mac(1), Capabilities: CapRxCsum, Enabled: CapTxCsum}, d},
		{"rss key too long", Config{Name: "x0", MAC: mac(1), RSS: RSSConfig{Key: make([]byte, 129)}}, d},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, c.drv)
			mustIs(t, err, ErrInvalid)
		})
	}
	ifp, err := New(Config{Name: "j0", MAC: mac(1), Capabilities: CapJumboMTU | CapTxCsum, Enabled: CapTxCsum}, d)
	must(t, err)
	if lo, hi := ifp.MTURange(); lo != DefaultMinMTU || hi != DefaultJumboMTU || ifp.MTU() != DefaultMTU {
		t.Fatalf("mtu %d range %d..%d", ifp.MTU(), lo, hi)
	}
	if ifp.HWAssist() != AssistCsumIPv4 {
		t.Fatalf("initial hwassist %v", ifp.HWAssist())
	}
}

func TestIoctlSetFlags(t *testing.T) {
	ifp, d := newTestIf(t, "t0", 0)
	d.hook = func(r Request) error {
		if f, ok := r.(*SetFlags); ok {
			if ifp.Flags()&FlagUp != 0 {
				return errors.New("driver must see the old flags during the call")
			}
			ifp.SetRunning(f.Flags&FlagUp != 0)
		}
		return nil
	}
	// Driver-owned bits in the request are ignored; user bits are committed.
	must(t, ifp.Ioctl(&SetFlags{Flags: FlagUp | FlagPromisc | FlagLoopback}))
	want := FlagUp | FlagPromisc | FlagRunning | FlagBroadcast | FlagMulticast
	if got := ifp.Flags(); got != want {
		t.Fatalf("flags %v, want %v", got, want)
	}
	d.hook = nil
	d.failWith("SetFlags", fmt.Errorf("hw: %w", ErrBusy))
	err := ifp.Ioctl(&SetFlags{Flags: FlagUp | FlagAllMulti})
	mustIs(t, err, ErrBusy)
	if ifp.Flags()&FlagAllMulti != 0 {
		t.Fatal("flags committed although the driver failed")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("t0: SetFlags")) {
		t.Fatalf("error lacks context: %v", err)
	}
}

func TestIoctlSetMTU(t *testing.T) {
	ifp, d := newTestIf(t, "t0", 0)
	mustIs(t, ifp.Ioctl(&SetMTU{MTU: 1501}), ErrInvalid)
	mustIs(t, ifp.Ioctl(&SetMTU{MTU: 10}), ErrInvalid)
	must(t, ifp.Ioctl(&SetMTU{MTU: 1400}))
	if ifp.MTU() != 1400 {
		t.Fatalf("mtu %d", ifp.MTU())
	}
	must(t, ifp.Ioctl(&SetMTU{MTU: 1400})) // unchanged: driver not called
	if got := d.requests(); !slices.Equal(got, []string{"SetMTU"}) {
		t.Fatalf("driver calls %v", got)
	}
	d.failWith("SetMTU", fmt.Errorf("%w: no MTU change", ErrNotSupported))
	mustIs(t, ifp.Ioctl(&SetMTU{MTU: 1300}), ErrNotSupported)
	if ifp.MTU() != 1400 {
		t.Fatal("mtu committed after driver failure")
	}
}

func TestIoctlMulticast(t *testing.T) {
	ifp, d := newTestIf(t, "t0", 0)
	g1 := net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}
	g2 := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	mustIs(t, ifp.Ioctl(&AddMulti{Addr: mac(9)}), ErrInvalid) // unicast
	mustIs(t, ifp.Ioctl(&AddMulti{Addr: g1[:5]}), ErrInvalid)
	must(t, ifp.Ioctl(&AddMulti{Addr: g1}))
	must(t, ifp.Ioctl(&AddMulti{Addr: g1})) // second reference: no driver call
	must(t, ifp.Ioctl(&AddMulti{Addr: g2}))
	if got := ifp.Multicast(); len(got) != 2 || !bytes.Equal(got[0], g1) || !bytes.Equal(got[1], g2) {
		t.Fatalf("list %v", got)
	}
	must(t, ifp.Ioctl(&DelMulti{Addr: g1})) // drops a reference only
	if len(ifp.Multicast()) != 2 {
		t.Fatal("refcounted entry removed early")
	}
	d.failWith("DelMulti", fmt.Errorf("hw: %w", ErrBusy))
	mustIs(t, ifp.Ioctl(&DelMulti{Addr: g1}), ErrBusy)
	if len(ifp.Multicast()) != 2 {
		t.Fatal("entry removed although the driver failed")
	}
	d.failWith("DelMulti", nil)
	must(t, ifp.Ioctl(&DelMulti{Addr: g1}))
	if got := ifp.Multicast(); len(got) != 1 || !bytes.Equal(got[0], g2) {
		t.Fatalf("list after delete %v", got)
	}
	mustIs(t, ifp.Ioctl(&DelMulti{Addr: g1}), ErrNotFound)
	if got := d.requests(); !slices.Equal(got, []string{"AddMulti", "AddMulti", "DelMulti", "DelMulti"}) {
		t.Fatalf("driver calls %v", got)
	}
	// No multicast support.
	nm, err := New(Config{Name: "nm0", MAC: mac(2)}, &fakeDriver{})
	must(t, err)
	mustIs(t, nm.Ioctl(&AddMulti{Addr: g1}), ErrNotSupported)
}

func TestIoctlSetCapabilities(t *testing.T) {
	all := CapHWCsum | CapHWCsumIPv6 | CapTSO | CapLRO | CapVLANHWTagging | CapVLANHWTSO
	ifp, d := newTestIf(t, "t0", all)
	if ifp.HWAssist() != AssistCsumIPv4|AssistCsumIPv6|AssistTSO {
		t.Fatalf("initial hwassist %v", ifp.HWAssist())
	}
	mustIs(t, ifp.Ioctl(&SetCapabilities{Enable: CapJumboMTU}), ErrInvalid)              // unsupported
	mustIs(t, ifp.Ioctl(&SetCapabilities{Enable: CapTSO4}), ErrInvalid)                  // TSO4 without TXCSUM
	mustIs(t, ifp.Ioctl(&SetCapabilities{Enable: CapTxCsum | CapTSO6}), ErrInvalid)      // TSO6 without TXCSUM_IPV6
	mustIs(t, ifp.Ioctl(&SetCapabilities{Enable: CapVLANHWTSO | CapTxCsum}), ErrInvalid) // VLAN_HWTSO without tagging
	req := &SetCapabilities{Enable: CapRxCsum | CapTxCsum | CapTSO4}
	must(t, ifp.Ioctl(req))
	if ifp.CapEnabled() != CapRxCsum|CapTxCsum|CapTSO4 || ifp.HWAssist() != AssistCsumIPv4|AssistIPTSO {
		t.Fatalf("enabled %v assist %v", ifp.CapEnabled(), ifp.HWAssist())
	}
	if req.HWAssist != AssistCsumIPv4|AssistIPTSO {
		t.Fatalf("request not updated: %v", req.HWAssist)
	}
	// A driver may narrow the result and publish its own hwassist (hn with a VF).
	d.hook = func(r Request) error {
		if c, ok := r.(*SetCapabilities); ok {
			c.Enable &^= CapTSO4
			c.HWAssist = AssistIP | AssistTCP
		}
		return nil
	}
	must(t, ifp.Ioctl(&SetCapabilities{Enable: CapHWCsum | CapTSO4}))
	if ifp.CapEnabled() != CapHWCsum || ifp.HWAssist() != AssistIP|AssistTCP {
		t.Fatalf("narrowed: enabled %v assist %v", ifp.CapEnabled(), ifp.HWAssist())
	}
	d.hook = nil
	d.failWith("SetCapabilities", fmt.Errorf("hw: %w", ErrBusy))
	mustIs(t, ifp.Ioctl(&SetCapabilities{Enable: 0}), ErrBusy)
	if ifp.CapEnabled() != CapHWCsum {
		t.Fatal("caps committed after driver failure")
	}
	// Driver-side capability change (hn adopting a VF's caps).
	mustIs(t, ifp.SetCapState(CapState{Capabilities: CapRxCsum, Enabled: CapTxCsum}), ErrInvalid)
	must(t, ifp.SetCapState(CapState{Capabilities: CapHWCsum, Enabled: CapTxCsum, HWAssist: AssistTCP}))
	if ifp.Capabilities() != CapHWCsum || ifp.CapEnabled() != CapTxCsum || ifp.HWAssist() != AssistTCP {
		t.Fatal("SetCapState not applied")
	}
}

func TestIoctlMedia(t *testing.T) {
	ifp, d := newTestIf(t, "t0", 0)
	active := Media{Type: MediaEthernet, Speed: 10_000_000_000, FullDuplex: true}
	ifp.SetMediaState(MediaState{Current: Media{Type: MediaEthernet, Auto: true}, Active: active, Status: MediaValid | MediaActive})
	g := &GetMedia{}
	must(t, ifp.Ioctl(g))
	if g.State.Active != active || g.State.Status != MediaValid|MediaActive || !g.State.Current.Auto {
		t.Fatalf("GetMedia %+v", g.State)
	}
	// A driver may answer from elsewhere (hn forwarding to its VF).
	d.hook = func(r Request) error {
		if gm, ok := r.(*GetMedia); ok {
			gm.State.Status = MediaValid
		}
		if sm, ok := r.(*SetMedia); ok && sm.Media.Speed == 1 {
			return fmt.Errorf("unsupported speed: %w", ErrInvalid)
		}
		return nil
	}
	must(t, ifp.Ioctl(g))
	if g.State.Status != MediaValid {
		t.Fatalf("driver answer lost: %v", g.State.Status)
	}
	sel := Media{Type: MediaEthernet, Speed: 1_000_000_000, FullDuplex: true}
	must(t, ifp.Ioctl(&SetMedia{Media: sel}))
	if ifp.Media().Current != sel {
		t.Fatalf("SetMedia not committed: %v", ifp.Media().Current)
	}
	mustIs(t, ifp.Ioctl(&SetMedia{Media: Media{Type: MediaEthernet, Speed: 1}}), ErrInvalid)
	if ifp.Media().Current != sel {
		t.Fatal("SetMedia committed after failure")
	}
	if s := sel.String(); s != "ethernet 1000000000bps full-duplex" {
		t.Fatalf("media string %q", s)
	}
}

func TestIoctlSetMAC(t *testing.T) {
	ifp, d := newTestIf(t, "t0", 0)
	mustIs(t, ifp.Ioctl(&SetMAC{MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}}), ErrInvalid)
	mustIs(t, ifp.Ioctl(&SetMAC{MAC: net.HardwareAddr{2, 2}}), ErrInvalid)
	mustIs(t, ifp.Ioctl(&SetMAC{MAC: make(net.HardwareAddr, 6)}), ErrInvalid)
	newMAC := mac(0x42)
	must(t, ifp.Ioctl(&SetMAC{MAC: newMAC}))
	newMAC[5] = 0 // the interface keeps its own copy
	if got := ifp.MAC(); !bytes.Equal(got, mac(0x42)) {
		t.Fatalf("mac %v", got)
	}
	d.failWith("SetMAC", fmt.Errorf("%w", ErrNotSupported))
	mustIs(t, ifp.Ioctl(&SetMAC{MAC: mac(7)}), ErrNotSupported)
	if !bytes.Equal(ifp.MAC(), mac(0x42)) {
		t.Fatal("mac committed after failure")
	}
}

func TestIoctlRSS(t *testing.T) {
	ifp, d := newTestIf(t, "t0", 0)
	k := &GetRSSKey{}
	must(t, ifp.Ioctl(k))
	if k.Func != RSSFuncNone || len(k.Key) != 0 {
		t.Fatalf("default rss %+v", k)
	}
	key := bytes.Repeat([]byte{0x6d, 0x5a}, 20)
	must(t, ifp.SetRSS(RSSConfig{Func: RSSFuncToeplitz, Key: key, Types: RSSIPv4 | RSSTCPv4 | RSSTCPv6}))
	mustIs(t, ifp.SetRSS(RSSConfig{Key: make([]byte, MaxRSSKeyLen+1)}), ErrInvalid)
	must(t, ifp.Ioctl(k))
	if k.Func != RSSFuncToeplitz || !bytes.Equal(k.Key, key) {
		t.Fatalf("rss key %+v", k)
	}
	k.Key[0] = 0 // callers get a copy
	h := &GetRSSHash{}
	must(t, ifp.Ioctl(h))
	if h.Func != RSSFuncToeplitz || h.Types != RSSIPv4|RSSTCPv4|RSSTCPv6 || ifp.RSS().Key[0] != 0x6d {
		t.Fatalf("rss hash %+v", h)
	}
	d.hook = func(r Request) error {
		if k, ok := r.(*GetRSSKey); ok {
			k.Key = make([]byte, MaxRSSKeyLen+1)
		}
		return nil
	}
	mustIs(t, ifp.Ioctl(&GetRSSKey{}), ErrInvalid)
}

func TestIoctlCustomUnknownNil(t *testing.T) {
	ifp, _ := newTestIf(t, "t0", 0)
	c := &customReq{In: 21}
	must(t, ifp.Ioctl(c))
	if c.Out != 42 {
		t.Fatalf("custom request answer %d", c.Out)
	}
	mustIs(t, ifp.Ioctl(&unknownReq{}), ErrNotSupported)
	mustIs(t, ifp.Ioctl(nil), ErrInvalid)
	mustIs(t, ifp.Ioctl((*SetMTU)(nil)), ErrInvalid)
	mustIs(t, ifp.Ioctl((*GetRSSKey)(nil)), ErrInvalid)
}

func TestClaim(t *testing.T) {
	vf, d := newTestIf(t, "vf0", CapHWCsum)
	mustIs(t, func() error { _, err := vf.Claim(""); return err }(), ErrInvalid)
	c, err := vf.Claim("hn0")
	must(t, err)
	if owner, ok := vf.ClaimedBy(); !ok || owner != "hn0" || c.Owner() != "hn0" || c.Interface() != vf {
		t.Fatal("claim state")
	}
	_, err = vf.Claim("lagg0")
	mustIs(t, err, ErrClaimed)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("hn0")) {
		t.Fatalf("refusal does not name the owner: %v", err)
	}
	// Every request that configures is refused directly and passes
	// through the claim.
	reqs := []Request{&SetFlags{Flags: FlagUp}, &SetMTU{MTU: 1400}, &AddMulti{Addr: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}},
		&DelMulti{Addr: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}, &SetCapabilities{Enable: CapRxCsum},
		&SetMedia{Media: Media{Type: MediaEthernet, Auto: true}}, &SetMAC{MAC: mac(3)},
		&customReq{In: 1}, &customQuery{write: true}}
	for _, r := range reqs {
		err := vf.Ioctl(r)
		mustIs(t, err, ErrClaimed)
		if !bytes.Contains([]byte(err.Error()), []byte(r.RequestName())) {
			t.Fatalf("refusal lacks the request name: %v", err)
		}
	}
	if len(d.requests()) != 0 {
		t.Fatalf("driver saw refused requests: %v", d.requests())
	}
	// Queries only read: they pass the claim, directly and through it.
	queries := []Request{&GetMedia{}, &GetRSSKey{}, &GetRSSHash{}, &GetReady{}, &customQuery{}}
	for _, r := range queries {
		if err := vf.Ioctl(r); err != nil && !errors.Is(err, ErrNotSupported) {
			t.Fatalf("query %s on a claimed interface: %v", r.RequestName(), err)
		}
	}
	if got := len(d.requests()); got != len(queries) {
		t.Fatalf("driver saw %d queries, want %d: %v", got, len(queries), d.requests())
	}
	for _, r := range reqs {
		must(t, c.Ioctl(r))
	}
	if vf.MTU() != 1400 || vf.Flags()&FlagUp == 0 || !bytes.Equal(vf.MAC(), mac(3)) || vf.CapEnabled() != CapRxCsum {
		t.Fatal("pass-through requests not applied")
	}
	must(t, c.Release())
	mustIs(t, c.Release(), ErrReleased)
	mustIs(t, c.Ioctl(&SetMTU{MTU: 1300}), ErrReleased)
	mustIs(t, c.Ioctl(&GetMedia{}), ErrReleased) // a released claim answers nothing
	must(t, vf.Ioctl(&SetMTU{MTU: 1300}))        // direct ioctls work again
	c2, err := vf.Claim("lagg0")
	must(t, err)
	mustIs(t, c.Ioctl(&SetMTU{MTU: 1200}), ErrReleased) // an old claim never regains rights
	must(t, c2.Release())
}

func TestKindAndBusSerial(t *testing.T) {
	drv := &fakeDriver{}
	ifp, err := New(Config{Name: "vf0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, BusSerial: 7, HasBusSerial: true}, drv)
	if err != nil {
		t.Fatal(err)
	}
	if ifp.Kind() != KindEthernet || ifp.Kind().String() != "ethernet" {
		t.Fatalf("kind %v", ifp.Kind())
	}
	if s, ok := ifp.BusSerial(); !ok || s != 7 {
		t.Fatalf("serial %d %v", s, ok)
	}
	hn, err := New(Config{Name: "hn0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Kind: KindSynthetic}, drv)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hn.BusSerial(); ok || hn.Kind() != KindSynthetic {
		t.Fatalf("hn kind %v", hn.Kind())
	}
	if _, err := New(Config{Name: "x0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Kind: Kind(99)}, drv); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
}
