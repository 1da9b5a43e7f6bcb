package mlx

import (
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
)

// Hot remove under traffic, then hot add again, many times: the driver
// reattaches every time, nothing hangs, every frame is delivered or counted
// dropped, and goroutines and guest memory come back to the baseline.
// Default: 5 cycles of ~4,000 frames; -long: 100 cycles of 1,000,000
// (make mlx-long).

var long = flag.Bool("long", false, "run the 100-cycle hot-plug test with 1,000,000 frames per cycle")

func TestHotplugCycles(t *testing.T) {
	cycles, perCycle := 5, uint64(4000)
	if *long {
		cycles, perCycle = 100, 1_000_000
	}
	r := newRig(t, rigOpts{vf: Config{SQSize: 256, RQSize: 256}})
	vf := r.waitVF()
	var baseG, basePages int
	var total, rxSent, rxPlaced, txDrops uint64
	var rxDrops [mlxdev.NumDropReasons]uint64
	start := time.Now()
	for c := range cycles {
		dev := r.device()
		sk := r.up(vf)
		if c == 0 {
			// Baseline with a VF attached and its interface up.
			baseG, basePages = runtime.NumGoroutine(), r.ram.FreePages()
		} else if got := r.ram.FreePages(); got != basePages {
			t.Fatalf("cycle %d: %d free pages with the VF attached, baseline %d", c, got, basePages)
		}
		st0 := r.st.Stats().Frames
		tr := startTraffic(t, r, vf, true)
		eventually(t, "traffic", func() bool { return tr.taken.Load() >= perCycle && sk.n.Load() > 0 })
		eject := c%2 == 1
		done := make(chan error, 1)
		go func() {
			if eject {
				done <- r.vbus.Eject(r.slot)
				return
			}
			dev.SurpriseRemove()
			done <- r.vbus.Remove(r.slot)
		}()
		e := r.nextEvent("detach")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("cycle %d: removal: %v", c, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("cycle %d: removal hung", c)
		}
		tr.halt()
		if e.Attached || e.VF != vf {
			t.Fatalf("cycle %d: event %+v", c, e)
		}
		r.unplugPort()
		// The station only ever hears from this VF.
		checkAccounting(t, r, vf, dev, tr, r.st.Stats().Frames-st0, sk)
		ds := dev.Stats()
		rxSent += tr.stationSent.Load()
		rxPlaced += ds.RxPackets
		for i, n := range ds.RxDrops {
			rxDrops[i] += n
		}
		txDrops += vf.Stats().TxDrops + ds.TxDropped()
		if n, p := vf.dma.live(); n != 0 || p != 0 || vf.pages.count() != 0 {
			t.Fatalf("cycle %d: VF holds %d regions %d pages", c, n, p)
		}
		if eject {
			if s := dev.State(); s.Objects() != 0 || s.PagesGiven != 0 {
				t.Fatalf("cycle %d: device after eject %+v", c, s)
			}
			noViolations(t, dev)
		}
		_ = dev.Close()
		total += tr.taken.Load()
		// Hot add a fresh VF at the same slot.
		r.plugDevice(false)
		vf = r.waitVF()
	}
	_ = r.up(vf)
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseG })
	if got := r.ram.FreePages(); got != basePages {
		t.Fatalf("after %d cycles: %d free pages, baseline %d", cycles, got, basePages)
	}
	t.Logf("%d cycles in %v: VF sent %d frames (%d dropped); station sent %d, device placed %d, dropped %d by reason %v",
		cycles, time.Since(start), total, txDrops, rxSent, rxPlaced, rxSent-rxPlaced, dropsByReason(rxDrops))
}

// dropsByReason names the nonzero drop counters.
func dropsByReason(d [mlxdev.NumDropReasons]uint64) map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range d {
		if n != 0 {
			m[fmt.Sprint(mlxdev.DropReason(i))] = n
		}
	}
	return m
}
