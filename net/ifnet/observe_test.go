package ifnet

import (
	"errors"
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

func TestObserverSeesBothDirections(t *testing.T) {
	ifp, _ := newTestIf(t, "obs0", 0)
	must(t, ifp.Ioctl(&SetFlags{Flags: FlagUp}))
	ifp.SetRunning(true)
	var got []Direction
	var lens []int
	o, err := ifp.Observe(func(_ *Interface, dir Direction, b *packet.Batch) {
		got = append(got, dir)
		lens = append(lens, b.Len())
	})
	must(t, err)
	if _, err := ifp.Observe(func(*Interface, Direction, *packet.Batch) {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second observer: %v", err)
	}
	pool := packet.MustPool(packet.PoolConfig{})
	b := packet.NewBatch(8)
	fill(t, pool, b, 3, 60, 1)
	if _, err := ifp.Transmit(b); err != nil {
		t.Fatal(err)
	}
	fill(t, pool, b, 2, 60, 1)
	ifp.Input(b)
	if len(got) != 2 || got[0] != DirOut || got[1] != DirIn || lens[0] != 3 || lens[1] != 2 {
		t.Fatalf("observed %v %v", got, lens)
	}
	must(t, o.Stop())
	mustIs(t, o.Stop(), ErrReleased)
	fill(t, pool, b, 1, 60, 1)
	ifp.Input(b)
	if len(got) != 2 {
		t.Fatal("stopped observer still called")
	}
	if DirIn.String() != "in" || DirOut.String() != "out" {
		t.Fatal("direction names")
	}
}
