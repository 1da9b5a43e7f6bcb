package ifnet

import (
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

func TestForceMTU(t *testing.T) {
	reg := NewRegistry()
	defer reg.Close()
	ifp, _ := newTestIf(t, "hn0", CapJumboMTU)
	must(t, reg.Attach(ifp))
	evs := make(chan Event, 8)
	_, err := reg.Subscribe(func(ev Event) { evs <- ev })
	must(t, err)
	must(t, ifp.Ioctl(&SetMTU{MTU: 9000}))
	must(t, ifp.ForceMTU(1500))
	if ifp.MTU() != 1500 {
		t.Fatalf("MTU %d after ForceMTU(1500)", ifp.MTU())
	}
	mustIs(t, ifp.ForceMTU(10), ErrInvalid)
	mustIs(t, ifp.ForceMTU(70000), ErrInvalid)
	var got []int
	for len(got) < 2 {
		ev := <-evs
		if ev.Type == EventMTU {
			got = append(got, ev.OldMTU, ev.MTU)
		}
	}
	if got[0] != 1500 || got[1] != 9000 {
		t.Fatalf("first MTU event %v", got)
	}
	ev := <-evs
	if ev.Type != EventMTU || ev.OldMTU != 9000 || ev.MTU != 1500 {
		t.Fatalf("ForceMTU event %+v", ev)
	}
}

func TestAccountInputAndDriverObservedTx(t *testing.T) {
	ifp, drv := newTestIf(t, "hn0", 0)
	must(t, ifp.Ioctl(&SetFlags{Flags: FlagUp}))
	ifp.SetRunning(true)
	pool := packet.MustPool(packet.PoolConfig{Size: 2048, Max: 64})
	var seen [3]int // DirIn, DirOut packets
	o, err := ifp.Observe(func(_ *Interface, dir Direction, b *packet.Batch) { seen[dir] += b.Len() })
	must(t, err)
	defer o.Stop()
	if !ifp.Observed() {
		t.Fatal("Observed() false with an observer installed")
	}

	b := packet.NewBatch(8)
	fill(t, pool, b, 3, 100, 1)
	ifp.AccountInput(b)
	if st := ifp.Stats(); st.InPackets != 3 || st.InBytes != 300 || seen[DirIn] != 3 || b.Len() != 3 {
		t.Fatalf("AccountInput: stats %+v, observed %d, batch left %d", st, seen[DirIn], b.Len())
	}
	b.Free()

	fill(t, pool, b, 2, 60, 1)
	if _, err := ifp.Transmit(b); err != nil || seen[DirOut] != 2 {
		t.Fatalf("default transmit: err %v, observed %d", err, seen[DirOut])
	}
	ifp.SetTxObservedByDriver(true)
	if !ifp.TxObservedByDriver() {
		t.Fatal("setting not kept")
	}
	fill(t, pool, b, 2, 60, 1)
	if _, err := ifp.Transmit(b); err != nil || seen[DirOut] != 2 {
		t.Fatalf("driver-observed transmit: err %v, observed %d (Transmit must not show it)", err, seen[DirOut])
	}
	fill(t, pool, b, 4, 60, 1)
	ifp.ObserveTx(b)
	b.Free()
	if seen[DirOut] != 6 || drv.txPkts.Load() != 4 || ifp.Stats().OutPackets != 4 {
		t.Fatalf("ObserveTx: observed %d, driver sent %d, out %d", seen[DirOut], drv.txPkts.Load(), ifp.Stats().OutPackets)
	}
}

func TestGetReadyRequest(t *testing.T) {
	ifp, drv := newTestIf(t, "vf0", 0)
	must(t, ifp.Ioctl(&GetReady{})) // the fake driver accepts every request
	mustIs(t, ifp.Ioctl((*GetReady)(nil)), ErrInvalid)
	if r := drv.requests(); len(r) != 1 || r[0] != "GetReady" {
		t.Fatalf("driver saw %v", r)
	}
}
