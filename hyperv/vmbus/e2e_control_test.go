package vmbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

func TestVersionFallback(t *testing.T) {
	cases := []struct {
		name string
		host []vmbusmsg.Version
		want vmbusmsg.Version
	}{
		{"qemu-like host, 4.0 and older", []vmbusmsg.Version{vmbusmsg.VersionWin7, vmbusmsg.VersionWin8, vmbusmsg.VersionWin8_1, vmbusmsg.VersionWin10}, vmbusmsg.VersionWin10},
		{"WS2012 host", []vmbusmsg.Version{vmbusmsg.VersionWin8}, vmbusmsg.VersionWin8},
		{"WS2022 host", []vmbusmsg.Version{vmbusmsg.VersionWin10V5_2, vmbusmsg.VersionWin10V5_3}, vmbusmsg.VersionWin10V5_3},
		{"WS2008R2 host", []vmbusmsg.Version{vmbusmsg.VersionWin7}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, c.host)
			drv := newDriver()
			bus, err := vmbus.Connect(context.Background(), vmbus.Config{Port: w.pair.Guest(), Memory: w.ram, Timeout: 5 * time.Second},
				map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: drv})
			if c.want == 0 {
				if !errors.Is(err, vmbus.ErrNoVersion) {
					t.Fatalf("want ErrNoVersion, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer bus.Close(context.Background())
			if bus.Version() != c.want {
				t.Fatalf("negotiated %v, want %v", bus.Version(), c.want)
			}
			// The connection works at that version: open and echo.
			o := recv(t, drv.added, "offer")
			ch, err := o.Open(context.Background(), vmbus.OpenOptions{SendPages: 4, RecvPages: 4})
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := ch.Request(context.Background(), []byte("12345678")); err != nil || string(resp) != "12345678" {
				t.Fatalf("echo at %v: %q %v", c.want, resp, err)
			}
		})
	}
}

func TestMalformedHostMessagesAreRejected(t *testing.T) {
	w := newWorld(t, nil)
	drv := newDriver()
	bus, err := vmbus.Connect(context.Background(), vmbus.Config{Port: w.pair.Guest(), Memory: w.ram},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: drv})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	o := recv(t, drv.added, "offer")
	hp := w.pair.Host()
	bad := [][]byte{
		{},                        // no header
		{1, 0, 0, 0},              // short header
		{1, 0, 0, 0, 0, 0, 0, 0},  // an offer of 8 bytes
		{3, 0, 0, 0, 0, 0, 0, 0},  // REQUESTOFFERS travels guest to host only
		{99, 0, 0, 0, 0, 0, 0, 0}, // unknown type
		(&vmbusmsg.RescindChannelOffer{ChildRelID: 2000}).Encode(), // unknown relid
		(&vmbusmsg.OpenChannelResult{ChildRelID: 7}).Encode(),      // answers nothing
	}
	for _, m := range bad {
		if err := hp.Deliver(uint32(tlfs.MsgVMBus), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := hp.Deliver(0x80000010, make([]byte, 24)); err != nil { // a timer message on the VMBus SINT
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := bus.Stats()
		if st.BadMessages == 7 && st.UnmatchedResponses == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	// The bus still works.
	ch, err := o.Open(context.Background(), vmbus.OpenOptions{SendPages: 4, RecvPages: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Request(context.Background(), []byte("still ok")); err != nil {
		t.Fatal(err)
	}
}

func TestSubchannelsLargeGPADLAndClose(t *testing.T) {
	w := newWorld(t, nil)
	w.srv.Rescind(w.dev)
	dev := echo.New(echo.Options{Subchannels: 3, Instance: tlfs.MustParseGUID("4c7f6a39-5e3b-4d7e-9a61-000000000002")})
	if err := w.srv.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	drv := newDriver()
	free := w.ram.FreePages()
	bus, err := vmbus.Connect(context.Background(), vmbus.Config{Port: w.pair.Guest(), Memory: w.ram},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: drv})
	if err != nil {
		t.Fatal(err)
	}
	o := recv(t, drv.added, "offer")
	subs := make(chan *vmbus.Offer, 8)
	o.OnSubchannel(func(s *vmbus.Offer) { subs <- s })
	ctx := context.Background()
	if _, err := o.Open(ctx, vmbus.OpenOptions{SendPages: 4, RecvPages: 4}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s := recv(t, subs, "sub-channel offer")
		if s.SubChannelIndex() == 0 || s.InstanceID() != o.InstanceID() || s.RelID() == o.RelID() {
			t.Fatalf("sub-channel %d: index %d relid %d", i, s.SubChannelIndex(), s.RelID())
		}
		ch, err := s.Open(ctx, vmbus.OpenOptions{SendPages: 2, RecvPages: 2})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := ch.Request(ctx, []byte("sub-chan")); err != nil || string(resp) != "sub-chan" {
			t.Fatalf("echo on sub-channel: %q %v", resp, err)
		}
	}
	// 128 pages: a header with 26 PFNs and bodies of 28, 28, 28, 18.
	region, err := w.ram.Alloc(128)
	if err != nil {
		t.Fatal(err)
	}
	g, err := o.CreateGPADL(ctx, region)
	if err != nil {
		t.Fatal(err)
	}
	if o.GPADLs() != 2 {
		t.Fatalf("%d gpadls", o.GPADLs())
	}
	if err := o.TeardownGPADL(ctx, g); err != nil {
		t.Fatal(err)
	}
	w.ram.Free(region)
	// Closing the primary closes its sub-channels first.
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range o.Subchannels() {
		if s.Channel() != nil || s.GPADLs() != 0 {
			t.Fatalf("sub-channel %d still open", s.RelID())
		}
	}
	if o.GPADLs() != 0 {
		t.Fatalf("%d gpadls after close", o.GPADLs())
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if w.ram.FreePages() != free {
		t.Fatalf("leaked %d pages", free-w.ram.FreePages())
	}
	if st := dev.Stats(); st.Opens != 4 || st.Closes != 4 {
		t.Fatalf("device stats %+v", st)
	}
}

func TestHostThatStopsAnsweringTimesOut(t *testing.T) {
	w := newWorld(t, nil)
	drv := newDriver()
	bus, err := vmbus.Connect(context.Background(), vmbus.Config{Port: w.pair.Guest(), Memory: w.ram, Timeout: 200 * time.Millisecond},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: drv})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	o := recv(t, drv.added, "offer")
	free := w.ram.FreePages()
	w.srv.Faults().Drop(host.ToGuest, vmbusmsg.MsgGPADLCreated, 1)
	if _, err := o.Open(context.Background(), vmbus.OpenOptions{SendPages: 2, RecvPages: 2}); !errors.Is(err, vmbus.ErrTimeout) {
		t.Fatalf("open with GPADL_CREATED dropped: %v", err)
	}
	if w.ram.FreePages() != free || o.GPADLs() != 0 {
		t.Fatalf("failed open leaked: %d pages, %d gpadls", free-w.ram.FreePages(), o.GPADLs())
	}
	// The next attempt works.
	if _, err := o.Open(context.Background(), vmbus.OpenOptions{SendPages: 2, RecvPages: 2}); err != nil {
		t.Fatal(err)
	}
}

func TestLateOfferAndLateDriver(t *testing.T) {
	w := newWorld(t, nil)
	bus, err := vmbus.Connect(context.Background(), vmbus.Config{Port: w.pair.Guest(), Memory: w.ram}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	// The echo offer arrived before any driver registered: it waits.
	if n := len(bus.Offers()); n != 1 {
		t.Fatalf("%d offers", n)
	}
	drv := newDriver()
	bus.RegisterDriver(echo.ClassGUID, drv)
	first := recv(t, drv.added, "offer routed to a late driver")
	// A device hot-added after ALLOFFERS_DELIVERED is offered at once.
	dev2 := echo.New(echo.Options{Instance: tlfs.MustParseGUID("4c7f6a39-5e3b-4d7e-9a61-000000000099")})
	if err := w.srv.AddDevice(dev2); err != nil {
		t.Fatal(err)
	}
	second := recv(t, drv.added, "hot-added offer")
	if second.InstanceID() != tlfs.MustParseGUID("4c7f6a39-5e3b-4d7e-9a61-000000000099") || second.RelID() == first.RelID() {
		t.Fatalf("hot-added offer: instance %v relid %d", second.InstanceID(), second.RelID())
	}
	ch, err := second.Open(context.Background(), vmbus.OpenOptions{SendPages: 2, RecvPages: 2})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := ch.Request(context.Background(), []byte("hot-add!")); err != nil || string(resp) != "hot-add!" {
		t.Fatalf("%q %v", resp, err)
	}
	if dev2.Stats().Packets != 1 {
		t.Fatalf("second device stats %+v", dev2.Stats())
	}
}
