package netvsc_test

import (
	"flag"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/net/packet"
)

var vfCycles = flag.Int("vfcycles", 12, "VF attach/detach cycles in TestVFMigrationCycles (make netvsc-vf-long runs 500)")

// Live migration over and over (spec/vf-modes.md A.9): the VF comes and
// goes, planned and surprise alternating, while hn0 transmits without a
// pause. Every frame handed to hn0 is taken by one of the VFs or reaches
// the station; hn0 ends as it began; nothing leaks.
func TestVFMigrationCycles(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{serial: 3})
	w.up()
	hnBefore := stateOf(w.ifp)
	var stop atomic.Bool
	var handed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := packet.NewBatch(16)
		for i := 0; !stop.Load() || b.Len() > 0; {
			for !stop.Load() && b.Len() < 16 {
				p := packet.New(packet.DefaultHeadroom, 64)
				_ = p.SetBytes(frame(stationHW, byte(i), 64))
				b.Add(p)
				i++
			}
			n, _ := w.ifp.Transmit(b)
			handed.Add(int64(n))
		}
	}()
	var vfs []*fakeVF
	for c := range *vfCycles {
		vf := newFakeVF(t, fakeVFOpts{serial: 3, hasSerial: true})
		vf.discard = true
		vfs = append(vfs, vf)
		if c > 0 {
			w.setVF(true, 3)
		}
		w.attach(vf, netvsc.VFActive)
		waitFor(t, "traffic on the VF", func() bool { return vf.sentCount() > 50 })
		if c%2 == 0 { // planned: the host switches and withdraws first
			w.setVF(false, 3)
			waitFor(t, "transmit synthetic", func() bool { return w.dev.VFStatus().TxTarget == "synthetic" })
			if err := w.reg.Detach(vf.ifp); err != nil {
				t.Fatal(err)
			}
		} else { // surprise: the device vanishes, the host notices later
			if err := w.reg.Detach(vf.ifp); err != nil {
				t.Fatal(err)
			}
			w.setVF(false, 3)
		}
		w.waitState(netvsc.VFNone)
	}
	stop.Store(true)
	wg.Wait()
	// Counted after the sender stopped: a Transmit that passed a VF's
	// detach check just before it detached is still that VF's.
	onVFs := 0
	for _, vf := range vfs {
		onVFs += vf.sentCount()
	}
	total := handed.Load()
	deadline := time.Now().Add(10 * time.Second)
	for int64(w.station.Stats().Frames)+int64(onVFs) < total && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := int64(w.station.Stats().Frames)
	t.Logf("%d cycles: %d frames, %d via VFs, %d synthetic", *vfCycles, total, onVFs, got)
	if got+int64(onVFs) != total {
		t.Fatalf("handed %d, VFs took %d, station got %d; stats %+v host %+v station %+v", total, onVFs, got, w.dev.Stats(), w.nic.Stats(), w.station.Stats())
	}
	if s := w.dev.Stats(); s.VFTxPackets != uint64(onVFs) {
		t.Fatalf("VFTxPackets %d, VFs took %d", s.VFTxPackets, onVFs)
	}
	if got := stateOf(w.ifp); got != hnBefore {
		t.Fatalf("hn after the cycles %+v, before %+v", got, hnBefore)
	}
}
