package netvsc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
)

// A host with no version in common: attach fails with ErrHost, no
// interface appears and nothing stays allocated.
func TestAttachFailsCleanly(t *testing.T) {
	ram := kernel.NewSimRAM(4096)
	srv, err := host.NewServer(host.Config{Memory: ram})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	sw := vswitch.New(vswitch.Config{NoAger: true})
	defer sw.Close()
	nic, err := netvsp.New(netvsp.Config{MAC: hnMAC, Switch: sw, Versions: []nvsp.Version{nvsp.Version61}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddDevice(nic); err != nil {
		t.Fatal(err)
	}
	reg := ifnet.NewRegistry()
	defer reg.Close()
	drv, err := netvsc.NewDriver(netvsc.Config{Memory: ram, Registry: reg, MaxVersion: nvsp.Version5,
		RecvBufferSize: 1 << 20, SendBufferSize: 64 << 10, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bus, err := vmbus.Connect(context.Background(), vmbus.Config{Port: pair.Guest(), Memory: ram},
		map[tlfs.GUID]vmbus.Driver{netvsc.Class: drv})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	waitFor(t, "the attach to fail", func() bool { return len(drv.Errors()) > 0 })
	if errs := drv.Errors(); !errors.Is(errs[0], netvsc.ErrHost) {
		t.Fatalf("attach error %v, want ErrHost", errs[0])
	}
	if len(reg.Interfaces()) != 0 || len(drv.Devices()) != 0 {
		t.Fatal("an interface appeared")
	}
	waitFor(t, "guest memory to be freed", func() bool { return ram.Allocations() <= 1 }) // at most the bus's own pages
}
