package netvsc_test

import (
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
)

// NETWORK_CHANGE (the host after a migration or a switch change): hn's
// carrier goes down at once and comes back NetworkChangeDelay later on the
// platform clock (Linux netvsc_link_change), so DHCP renews; a second
// change restarts the wait; a real MEDIA_DISCONNECT during it wins; a
// cycle pending at close leaves no goroutine behind.
func TestNetworkChange(t *testing.T) {
	checkNoLeaks(t)
	clk := kernel.NewFakeClock(time.Unix(1_700_000_000, 0))
	w := newWorld(t, worldOpts{cfg: func(c *netvsc.Config) { c.Clock = clk }})
	w.up()
	var mu sync.Mutex
	var links []ifnet.LinkState
	sub, err := w.reg.Subscribe(func(ev ifnet.Event) {
		if ev.Type == ifnet.EventLink && ev.Interface == w.ifp {
			mu.Lock()
			links = append(links, ev.Link)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	seen := func() []ifnet.LinkState {
		mu.Lock()
		defer mu.Unlock()
		return append([]ifnet.LinkState(nil), links...)
	}
	link := func(want ifnet.LinkState) {
		t.Helper()
		waitFor(t, "link "+want.String(), func() bool { return w.ifp.LinkState() == want })
	}
	stays := func(want ifnet.LinkState) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if w.ifp.LinkState() != want {
				t.Fatalf("link %s, want it to stay %s", w.ifp.LinkState(), want)
			}
		}
	}
	if w.ifp.LinkState() != ifnet.LinkUp {
		t.Fatalf("link %s before", w.ifp.LinkState())
	}

	// The cycle: down now, up after the delay, not before.
	w.nic.NetworkChange(rndis.NetworkChangeDefinite)
	link(ifnet.LinkDown)
	waitFor(t, "the change counted", func() bool { return w.dev.Stats().NetworkChanges == 1 })
	clk.Advance(netvsc.NetworkChangeDelay - time.Millisecond)
	stays(ifnet.LinkDown)
	clk.Advance(time.Millisecond)
	link(ifnet.LinkUp)
	waitFor(t, "two link events", func() bool { return len(seen()) >= 2 }) // the registry delivers after the state changes
	if got := seen(); len(got) != 2 || got[0] != ifnet.LinkDown || got[1] != ifnet.LinkUp {
		t.Fatalf("link events %v, want down then up", got)
	}

	// A second change during the wait restarts it.
	change := func(ty rndis.NetworkChangeType) {
		t.Helper()
		n := w.dev.Stats().NetworkChanges
		w.nic.NetworkChange(ty)
		waitFor(t, "the change handled", func() bool { return w.dev.Stats().NetworkChanges == n+1 })
	}
	change(rndis.NetworkChangePossible)
	link(ifnet.LinkDown)
	clk.Advance(time.Second)
	change(rndis.NetworkChangePossible)
	clk.Advance(time.Second + time.Millisecond)
	stays(ifnet.LinkDown)
	clk.Advance(time.Second)
	link(ifnet.LinkUp)

	// A real disconnect during the wait wins: the link stays down until
	// the host connects it again.
	change(rndis.NetworkChangeDefinite)
	link(ifnet.LinkDown)
	ind := w.dev.Stats().RxIndications
	w.nic.SetLink(false)
	waitFor(t, "the disconnect handled", func() bool { return w.dev.Stats().RxIndications == ind+1 })
	clk.Advance(2 * netvsc.NetworkChangeDelay)
	stays(ifnet.LinkDown)
	w.nic.SetLink(true)
	link(ifnet.LinkUp)

	// Pending at close: the world's teardown and checkNoLeaks see to it.
	w.nic.NetworkChange(rndis.NetworkChangeDefinite)
	link(ifnet.LinkDown)
}
