package netvsc_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/ifnet"
)

// A second NIC becomes hn1; rescinding it detaches hn1, frees what it
// held and stops its goroutines while hn0 keeps working.
func TestSecondNICAndRescind(t *testing.T) {
	base := runtime.NumGoroutine()
	w := newWorld(t, worldOpts{})
	w.up()
	allocs := w.ram.Allocations()
	nic2, err := netvsp.New(netvsp.Config{MAC: vswitch.MAC{0x00, 0x15, 0x5d, 9, 9, 9}, Switch: w.sw})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.srv.AddDevice(nic2); err != nil {
		t.Fatal(err)
	}
	var hn1 *ifnet.Interface
	waitFor(t, "hn1", func() bool { hn1, err = w.reg.ByName("hn1"); return err == nil })
	if hn1.MAC().String() != "00:15:5d:09:09:09" {
		t.Fatalf("hn1 MAC %s", hn1.MAC())
	}
	released, err := w.srv.Rescind(nic2)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hn1 to detach", hn1.Detached)
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("host never got the rescinded channel back")
	}
	waitFor(t, "hn1's memory to be freed", func() bool { return w.ram.Allocations() == allocs })
	if n := len(w.drv.Devices()); n != 1 {
		t.Fatalf("%d devices after rescind", n)
	}
	echoBothWays(t, w, 4)
	w.close()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base+2 })
}
