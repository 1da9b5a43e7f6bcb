package host_test

import (
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

func echoWithSubchannels(n int) *echo.Device { return echo.New(echo.Options{Subchannels: n}) }

func TestRescindOpenChannel(t *testing.T) {
	e, o, dev := connected(t, host.Config{})
	g := e.open(o, 0xE1E10, 4, 4)
	released, err := e.srv.Rescind(dev)
	if err != nil {
		t.Fatal(err)
	}
	if r := expect[*vmbusmsg.RescindChannelOffer](e); r.ChildRelID != o.ChildRelID {
		t.Fatal(r)
	}
	waitFor(t, "device close", func() bool { return dev.Stats().Closes == 1 })
	// The rescinded channel answers nothing: OPEN, GPADL header.
	e.mustPost(&vmbusmsg.OpenChannel{ChildRelID: o.ChildRelID, RingBufferGPADL: 0xE1E10, DownstreamRingBufferPageOffset: 4})
	e.gpadlPost(o.ChildRelID, 5, pageRange(g.region.PFNs[:2]))
	e.expectNone(20 * time.Millisecond)
	// A device added now must not get the relid the guest still holds.
	d2 := echo.New(echo.Options{Instance: tlfs.MustParseGUID("00000009-0000-0000-0000-000000000000")})
	e.srv.AddDevice(d2)
	if o2 := expect[*vmbusmsg.OfferChannel](e); o2.ChildRelID == o.ChildRelID {
		t.Fatalf("relid %d reused before release", o2.ChildRelID)
	}
	// The guest closes, tears down and releases.
	g.close()
	e.mustPost(&vmbusmsg.GPADLTeardown{ChildRelID: o.ChildRelID, GPADL: 0xE1E10})
	expect[*vmbusmsg.GPADLTorndown](e)
	select {
	case <-released:
		t.Fatal("released before RELID_RELEASED")
	default:
	}
	e.mustPost(&vmbusmsg.RelIDReleased{ChildRelID: o.ChildRelID})
	select {
	case <-released:
	case <-time.After(waitTimeout):
		t.Fatal("Rescind's channel not closed after RELID_RELEASED")
	}
	// Re-adding the device offers it again, on the freed relid.
	if err := e.srv.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	if o3 := expect[*vmbusmsg.OfferChannel](e); o3.ChildRelID != o.ChildRelID {
		t.Fatalf("re-added on relid %d, want %d", o3.ChildRelID, o.ChildRelID)
	}
}

// An OPEN in flight when the channel is rescinded is never answered.
func TestRescindDuringOpen(t *testing.T) {
	e := newEnv(t, host.Config{})
	d := &slowOpenDevice{offer: host.Offer{Class: echo.ClassGUID}, entered: make(chan struct{}), unblock: make(chan struct{})}
	e.srv.AddDevice(d)
	e.connect(vmbusmsg.VersionWin10)
	o := e.offers()[0]
	region, _ := e.ram.Alloc(4)
	e.gpadl(o.ChildRelID, 1, pageRange(region.PFNs))
	e.mustPost(&vmbusmsg.OpenChannel{ChildRelID: o.ChildRelID, RingBufferGPADL: 1, DownstreamRingBufferPageOffset: 2})
	<-d.entered
	if _, err := e.srv.Rescind(d); err != nil {
		t.Fatal(err)
	}
	expect[*vmbusmsg.RescindChannelOffer](e)
	close(d.unblock)
	e.expectNone(30 * time.Millisecond)
	if _, err := e.srv.Rescind(d); err == nil {
		t.Fatal("second rescind accepted")
	}
}

// A device never offered (no REQUESTOFFERS yet) goes away at once.
func TestRescindBeforeOffer(t *testing.T) {
	e := newEnv(t, host.Config{})
	dev := echo.New(echo.Options{})
	e.srv.AddDevice(dev)
	released, err := e.srv.Rescind(dev)
	if err != nil {
		t.Fatal(err)
	}
	<-released
	e.connect(vmbusmsg.VersionWin10)
	if n := len(e.offers()); n != 0 {
		t.Fatalf("%d offers after rescind", n)
	}
}

type slowOpenDevice struct {
	offer            host.Offer
	entered, unblock chan struct{}
}

func (d *slowOpenDevice) Offer() host.Offer { return d.offer }
func (d *slowOpenDevice) Open(ch *host.Channel) (host.Handler, error) {
	close(d.entered)
	<-d.unblock
	return nopHandler{}, nil
}
