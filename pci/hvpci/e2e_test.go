package hvpci_test

// End to end: the guest vPCI bus driver against the simulated host's vPCI
// server (hyperv/host/vpci), over the real VMBus client and server.

import (
	"context"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
)

// Compile-time: the host's window type plugs into the guest driver.
var _ hvpci.MMIO = pci.MMIO(nil)

func TestGuestBusAgainstHostServer(t *testing.T) {
	ram := kernel.NewSimRAM(1024)
	srv, err := host.NewServer(host.Config{Memory: ram})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pair := synic.NewPair(srv)
	srv.Attach(pair.Host())
	vbus := vpci.New(vpci.Config{EjectTimeout: 5 * time.Second})
	fn := vpci.NewTestFunction(0x1234)
	slot, err := vbus.AddFunction(fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddDevice(vbus); err != nil {
		t.Fatal(err)
	}

	const base = 0xF000_0000
	drv, err := hvpci.NewDriver(hvpci.Config{
		Window: func(tlfs.GUID) (hvpci.Window, error) { return hvpci.MMIOWindow(base, vbus.Window(base)), nil },
		MMIO:   []hvpci.MMIORange{{Base: 0xF800_0000, Size: 64 << 20}, {Base: 0x10_0000_0000, Size: 1 << 30}},
	})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan hvpci.Event, 16)
	cancel := drv.Subscribe(func(e hvpci.Event) { events <- e })
	defer cancel()
	ctx := context.Background()
	bus, err := vmbus.Connect(ctx, vmbus.Config{Port: pair.Guest(), Memory: ram},
		map[tlfs.GUID]vmbus.Driver{hvpci.Class: drv})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(ctx)

	next := func(what string) hvpci.Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", what)
			panic("unreachable")
		}
	}
	for round := 0; round < 3; round++ {
		e := next("Added")
		if e.Type != hvpci.Added || e.Serial != 0x1234 || e.Function.Slot() != slot {
			t.Fatalf("round %d: event %+v", round, e)
		}
		f := e.Function
		// Vendor/device through the MMIO window equal the device model's.
		got, err := f.ReadConfig(0, 4)
		if err != nil {
			t.Fatal(err)
		}
		if want := fn.Config().Read32(0); got != want {
			t.Fatalf("vendor/device %#x through the window, device has %#x", got, want)
		}
		// The guest placed the 64-bit BAR above 4 GiB, aligned, and the
		// device model holds the address it wrote; the same piece is
		// reused after each eject.
		bars := f.BARs()
		if len(bars) != 1 || bars[0].Base != 0x10_0000_0000 || bars[0].Size != vpci.TestBARSize || !bars[0].Is64 {
			t.Fatalf("round %d: BARs %+v", round, bars)
		}
		dc := fn.Config()
		if got := uint64(dc.Read32(pci.BAR0+4))<<32 | uint64(dc.Read32(pci.BAR0)&^0xf); got != bars[0].Base {
			t.Fatalf("round %d: device BAR0 %#x, guest placed it at %#x", round, got, bars[0].Base)
		}
		// A command-register write reaches the device model.
		if err := f.WriteConfig(pci.Command, 2, uint32(pci.CommandMemory|pci.CommandMaster)); err != nil {
			t.Fatal(err)
		}
		if v := fn.Config().Read16(pci.Command); v&(pci.CommandMemory|pci.CommandMaster) != pci.CommandMemory|pci.CommandMaster {
			t.Fatalf("command register %#x after the guest's write", v)
		}
		if _, ok := vbus.Resources(slot); !ok {
			t.Fatal("host has no resources assigned for the function")
		}
		// Planned eject: the guest lets go, the host's Eject returns.
		errc := make(chan error, 1)
		go func() { errc <- vbus.Eject(slot) }()
		e = next("Removed")
		if e.Type != hvpci.Removed || e.Reason != hvpci.ReasonEject || e.Serial != 0x1234 {
			t.Fatalf("round %d: removal %+v", round, e)
		}
		if err := <-errc; err != nil {
			t.Fatalf("eject: %v", err)
		}
		if _, err := f.ReadConfig(0, 4); err == nil {
			t.Fatal("config read after eject succeeded")
		}
		// Hot add again at the same slot.
		if err := vbus.AddFunctionAt(slot, fn); err != nil {
			t.Fatal(err)
		}
	}
}
