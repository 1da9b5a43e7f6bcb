package host_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

func TestNegotiateEveryVersion(t *testing.T) {
	for _, v := range vmbusmsg.AllVersions() {
		t.Run(v.String(), func(t *testing.T) {
			e := newEnv(t, host.Config{Features: vmbusmsg.FeatureClientID | vmbusmsg.FeaturePauseResume})
			ic := &vmbusmsg.InitiateContact{VersionRequested: v, TargetVCPU: 0}
			if v >= vmbusmsg.VersionWin10V5 {
				ic.SetTargetInfo(2, 0, vmbusmsg.FeatureClientID|vmbusmsg.FeatureGuestSpecifiedSignalParameters)
			}
			if err := e.postOn(v.InitiateContactConnectionID(), ic); err != nil {
				t.Fatal(err)
			}
			r := expect[*vmbusmsg.VersionResponse](e)
			if !r.Supported() || r.ConnectionState != vmbusmsg.ConnectionSuccessful {
				t.Fatalf("refused: %+v", r)
			}
			wantConn := uint32(v) // OpenVMM writes the version below 5.0
			if v >= vmbusmsg.VersionWin10V5 {
				wantConn = host.DefaultMessageConnID
			}
			if r.MsgConnID != wantConn {
				t.Errorf("offset 12 = %#x, want %#x", r.MsgConnID, wantConn)
			}
			wantForm, wantFeat := vmbusmsg.VersionResponseForm1, vmbusmsg.FeatureFlags(0)
			if v >= vmbusmsg.VersionWin10V6_0 {
				wantForm, wantFeat = vmbusmsg.VersionResponseForm2, vmbusmsg.FeatureClientID
			}
			if r.Form != wantForm || r.SupportedFeatures != wantFeat {
				t.Errorf("form %d features %v, want %d %v", r.Form, r.SupportedFeatures, wantForm, wantFeat)
			}
			// The connection works: offers come back on the message port.
			e.msgConn = r.MsgConnID
			if v < vmbusmsg.VersionWin10V5 {
				e.msgConn = 1
			}
			if got := e.offers(); len(got) != 0 {
				t.Fatalf("offers on an empty bus: %d", len(got))
			}
		})
	}
}

func TestUnknownVersionRefused(t *testing.T) {
	e := newEnv(t, host.Config{})
	e.mustPost(&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.MakeVersion(3, 7)})
	if r := expect[*vmbusmsg.VersionResponse](e); r.Supported() || r.EncodedLen() != vmbusmsg.VersionResponseSize {
		t.Fatalf("unknown version accepted: %+v", r)
	}
	// Still disconnected: REQUESTOFFERS is ignored.
	e.mustPost(&vmbusmsg.RequestOffers{})
	e.expectNone(20 * time.Millisecond)
}

// A host that speaks at most 4.0 (QEMU) has no connection id 4: a guest
// trying 5.0+ there gets HV_STATUS_INVALID_CONNECTION_ID and falls back
// to 4.0 on connection id 1.
func TestFallbackOnOldHost(t *testing.T) {
	old := []vmbusmsg.Version{vmbusmsg.VersionWin8, vmbusmsg.VersionWin8_1, vmbusmsg.VersionWin10}
	e := newEnv(t, host.Config{Versions: old})
	var negotiated vmbusmsg.Version
	for _, v := range vmbusmsg.GuestVersions() {
		ic := &vmbusmsg.InitiateContact{VersionRequested: v}
		err := e.postOn(v.InitiateContactConnectionID(), ic)
		if v >= vmbusmsg.VersionWin10V5 {
			if !errors.Is(err, tlfs.StatusInvalidConnectionID) {
				t.Fatalf("%v on conn 4: err %v, want invalid connection id", v, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		r := expect[*vmbusmsg.VersionResponse](e)
		if r.Supported() {
			negotiated = v
			break
		}
	}
	if negotiated != vmbusmsg.VersionWin10 {
		t.Fatalf("negotiated %v, want 4.0", negotiated)
	}
	// A version the host dropped is refused with version_supported = 0.
	e2 := newEnv(t, host.Config{Versions: old})
	e2.mustPost(&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10V4_1})
	if r := expect[*vmbusmsg.VersionResponse](e2); r.Supported() {
		t.Fatal("4.1 accepted by a 4.0 host")
	}
}

func TestHypercallChecks(t *testing.T) {
	e := newEnv(t, host.Config{})
	if err := e.port.PostMessage(7, 1, (&vmbusmsg.RequestOffers{}).Encode()); !errors.Is(err, tlfs.StatusInvalidConnectionID) {
		t.Errorf("post on conn 7: %v", err)
	}
	if st := e.srv.HandlePost(1, 0, nil); st != tlfs.StatusInvalidParameter {
		t.Errorf("message type 0: %v", st)
	}
	if st := e.srv.HandleSignal(0x2001); st != tlfs.StatusInvalidConnectionID {
		t.Errorf("signal of a closed channel: %v", st)
	}
	// A host-to-guest message posted by the guest is dropped, not fatal.
	e.mustPost(&vmbusmsg.VersionResponse{VersionSupported: 1})
	e.connect(vmbusmsg.VersionWin10V5_3)
}

func TestRefuseVersionFault(t *testing.T) {
	e := newEnv(t, host.Config{})
	e.srv.Faults().RefuseVersion(vmbusmsg.VersionWin10V6_0)
	ic := &vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10V6_0}
	if err := e.postOn(4, ic); err != nil {
		t.Fatal(err)
	}
	if r := expect[*vmbusmsg.VersionResponse](e); r.Supported() {
		t.Fatal("refused version accepted")
	}
	e.connect(vmbusmsg.VersionWin10V5_3)
}

func TestOneMonitorPageFails(t *testing.T) {
	e := newEnv(t, host.Config{})
	e.mustPost(&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10, MonitorPage1: 0x1000})
	r := expect[*vmbusmsg.VersionResponse](e)
	if !r.Supported() || r.ConnectionState != vmbusmsg.ConnectionFailedUnknownFailure {
		t.Fatalf("got %+v, want supported with FAILED_UNKNOWN_FAILURE", r)
	}
}

func TestOffersAndHotAdd(t *testing.T) {
	e := newEnv(t, host.Config{})
	d1 := echo.New(echo.Options{})
	d2 := &fixedDevice{offer: host.Offer{Class: echo.ClassGUID, Instance: tlfs.MustParseGUID("00000002-0000-0000-0000-000000000001"), MMIOMegabytes: 32}}
	d2.offer.SetPipeMode(vmbusmsg.PipeModeMessage)
	for _, d := range []host.Device{d1, d2} {
		if err := e.srv.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.srv.AddDevice(d1); !errors.Is(err, host.ErrDevice) {
		t.Errorf("duplicate device: %v", err)
	}
	e.connect(vmbusmsg.VersionWin10V5_3)
	offers := e.offers()
	if len(offers) != 2 {
		t.Fatalf("%d offers, want 2", len(offers))
	}
	for i, o := range offers {
		if o.ChildRelID != uint32(i+1) || o.ConnectionID != o.ChildRelID|0x2000 ||
			!o.IsDedicatedInterrupt() || o.Monitored() || o.SubChannelIndex != 0 || o.InterfaceType != echo.ClassGUID {
			t.Errorf("offer %d: %+v", i, o)
		}
	}
	if o := offers[1]; o.MMIOMegabytes != 32 || o.PipeMode() != vmbusmsg.PipeModeMessage || o.Flags&vmbusmsg.OfferNamedPipeMode == 0 {
		t.Errorf("offer fields lost: %+v", o)
	}
	// Hot add: offered at once.
	d3 := echo.New(echo.Options{Instance: tlfs.MustParseGUID("00000003-0000-0000-0000-000000000001")})
	if err := e.srv.AddDevice(d3); err != nil {
		t.Fatal(err)
	}
	if o := expect[*vmbusmsg.OfferChannel](e); o.ChildRelID != 3 {
		t.Fatalf("hot-added relid %d", o.ChildRelID)
	}
	// A second REQUESTOFFERS is ignored.
	e.mustPost(&vmbusmsg.RequestOffers{})
	e.expectNone(20 * time.Millisecond)
}

func TestCompactConnIDs(t *testing.T) {
	e := newEnv(t, host.Config{ConnIDs: host.ConnIDCompact})
	e.srv.AddDevice(echo.New(echo.Options{}))
	e.connect(vmbusmsg.VersionWin10)
	o := e.offers()[0]
	if o.ConnectionID != o.ChildRelID+16 || o.ConnectionID >= 2048 {
		t.Fatalf("connection id %#x for relid %d", o.ConnectionID, o.ChildRelID)
	}
	g := e.open(o, 0xE1E10, 2, 2)
	g.write(64, func(w *ringWriter) error { return w.WriteInBand(1, false, []byte("compact!")) })
	if d, p := g.read(); d.TransID != 1 || string(p) != "compact!" {
		t.Fatalf("echo over compact ids: %v %q", d, p)
	}
}

func TestSlowHostFault(t *testing.T) {
	clk := kernel.NewFakeClock(time.Unix(0, 0))
	e := newEnv(t, host.Config{Clock: clk})
	e.srv.Faults().SlowHost(time.Second)
	e.mustPost(&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10})
	e.expectNone(20 * time.Millisecond)
	clk.WaitForTimers(1)
	clk.Advance(time.Second)
	if r := expect[*vmbusmsg.VersionResponse](e); !r.Supported() {
		t.Fatal(r)
	}
	e.srv.Faults().Reset()
	e.srv.Faults().Drop(host.ToGuest, vmbusmsg.MsgAllOffersDelivered, 1)
	e.mustPost(&vmbusmsg.RequestOffers{})
	e.expectNone(20 * time.Millisecond)
}

func TestDropFromGuestFault(t *testing.T) {
	e := newEnv(t, host.Config{})
	e.srv.Faults().Drop(host.FromGuest, vmbusmsg.MsgInitiateContact, 1)
	e.mustPost(&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10})
	e.expectNone(20 * time.Millisecond)
	e.connect(vmbusmsg.VersionWin10)
}

func TestUnloadAndReconnect(t *testing.T) {
	e := newEnv(t, host.Config{})
	dev := echo.New(echo.Options{})
	e.srv.AddDevice(dev)
	e.connect(vmbusmsg.VersionWin10V5_3)
	o := e.offers()[0]
	g := e.open(o, 0xE1E10, 4, 4)
	e.mustPost(&vmbusmsg.Unload{})
	expect[*vmbusmsg.UnloadResponse](e)
	if s := dev.Stats(); s.Opens != 1 || s.Closes != 1 {
		t.Fatalf("after unload: %+v", s)
	}
	if st := e.srv.HandleSignal(o.ConnectionID); st != tlfs.StatusInvalidConnectionID {
		t.Errorf("signal after unload: %v", st)
	}
	_ = g
	// Reconnect: same relid, the old GPADL id is free again.
	e.connect(vmbusmsg.VersionWin10V5_3)
	o2 := e.offers()[0]
	if o2.ChildRelID != o.ChildRelID {
		t.Fatalf("relid %d after reconnect, want %d", o2.ChildRelID, o.ChildRelID)
	}
	e.open(o2, 0xE1E10, 4, 4)
	// INITIATE_CONTACT on a live connection resets the bus first.
	e.connect(vmbusmsg.VersionWin10V5_3)
	if s := dev.Stats(); s.Opens != 2 || s.Closes != 2 {
		t.Fatalf("after reset: %+v", s)
	}
}

type fixedDevice struct {
	offer host.Offer
	err   error
}

func (d *fixedDevice) Offer() host.Offer { return d.offer }
func (d *fixedDevice) Open(ch *host.Channel) (host.Handler, error) {
	if d.err != nil {
		return nil, d.err
	}
	return nopHandler{}, nil
}

type nopHandler struct{}

func (nopHandler) Packet(*ringPacket) error { return nil }
func (nopHandler) Close()                   {}
