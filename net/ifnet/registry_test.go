package ifnet

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRegistryLookupAndLifecycle(t *testing.T) {
	checkGoroutines(t)
	r := NewRegistry()
	defer r.Close()
	hn, _ := newTestIf(t, "hn0", 0)
	vf, _ := newTestIf(t, "vf0", 0) // same MAC as hn0, as a real VF
	other, err := New(Config{Name: "em0", MAC: mac(7)}, &fakeDriver{})
	must(t, err)
	must(t, r.Attach(hn))
	must(t, r.Attach(vf))
	must(t, r.Attach(other))
	mustIs(t, r.Attach(hn), ErrExists)
	dup, _ := newTestIf(t, "hn0", 0)
	mustIs(t, r.Attach(dup), ErrExists)
	if hn.Index() != 1 || vf.Index() != 2 || other.Index() != 3 {
		t.Fatalf("indexes %d %d %d", hn.Index(), vf.Index(), other.Index())
	}
	if got, err := r.ByName("vf0"); err != nil || got != vf {
		t.Fatalf("ByName: %v %v", got, err)
	}
	if got, err := r.ByIndex(3); err != nil || got != other {
		t.Fatalf("ByIndex: %v %v", got, err)
	}
	_, err = r.ByName("nope")
	mustIs(t, err, ErrNotFound)
	if got := r.ByMAC(mac(1)); !slices.Equal(got, []*Interface{hn, vf}) {
		t.Fatalf("ByMAC %v", got)
	}
	must(t, vf.Ioctl(&SetFlags{Flags: FlagUp}))
	vf.SetRunning(true)
	must(t, r.Detach(vf))
	mustIs(t, r.Detach(vf), ErrNotFound)
	if !vf.Detached() || vf.Flags()&FlagRunning != 0 {
		t.Fatal("detach state")
	}
	_, err = r.ByIndex(2)
	mustIs(t, err, ErrNotFound)
	mustIs(t, r.Attach(vf), ErrDetached)
	mustIs(t, vf.Ioctl(&SetMTU{MTU: 1400}), ErrDetached)
	_, err = vf.Claim("hn0")
	mustIs(t, err, ErrDetached)
	_, err = vf.OverrideInput(dropInput)
	mustIs(t, err, ErrDetached)
	// Indexes are not reused.
	vf2, _ := newTestIf(t, "vf0", 0)
	must(t, r.Attach(vf2))
	if vf2.Index() != 4 {
		t.Fatalf("reused index %d", vf2.Index())
	}
	if got := r.Interfaces(); !slices.Equal(got, []*Interface{hn, other, vf2}) {
		t.Fatalf("Interfaces %v", got)
	}
	must(t, r.Close())
	must(t, r.Close())
	late, _ := newTestIf(t, "late0", 0)
	mustIs(t, r.Attach(late), ErrClosed)
	_, err = r.Subscribe(func(Event) {})
	mustIs(t, err, ErrClosed)
}

// recorder collects the events one subscriber saw. Only the dispatcher
// goroutine appends; tests read after the registry is closed.
type recorder struct{ evs []Event }

func (rc *recorder) fn(ev Event) { rc.evs = append(rc.evs, ev) }

func TestRegistryEventOrderConcurrent(t *testing.T) {
	checkGoroutines(t)
	r := NewRegistry()
	recs := make([]*recorder, 3)
	for i := range recs {
		recs[i] = &recorder{}
		_, err := r.Subscribe(recs[i].fn)
		must(t, err)
	}
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				ifp, err := New(Config{Name: fmt.Sprintf("w%d_%d", w, i), MAC: mac(byte(w)), Flags: FlagMulticast}, &fakeDriver{})
				if err != nil {
					t.Error(err)
					return
				}
				// Link events before attach are not announced.
				ifp.SetLinkState(LinkDown)
				if err := r.Attach(ifp); err != nil {
					t.Error(err)
					return
				}
				ifp.SetLinkState(LinkUp)
				_ = ifp.Ioctl(&SetFlags{Flags: FlagUp})
				ifp.SetRunning(true)
				_ = ifp.Ioctl(&SetMTU{MTU: 1400})
				ifp.SetLinkState(LinkDown)
				if err := r.Detach(ifp); err != nil {
					t.Error(err)
				}
				ifp.SetLinkState(LinkUp) // after detach: not announced
			}
		}()
	}
	wg.Wait()
	must(t, r.Close())

	ref := recs[0].evs
	const perIf = 7 // attach, link up, flags up, flags running, mtu, link down, detach
	if len(ref) != workers*rounds*perIf {
		t.Fatalf("saw %d events, want %d", len(ref), workers*rounds*perIf)
	}
	for i, ev := range ref {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: gap or reorder", i, ev.Seq)
		}
	}
	for _, rc := range recs[1:] {
		if len(rc.evs) != len(ref) {
			t.Fatalf("subscribers saw %d and %d events", len(rc.evs), len(ref))
		}
		for i := range ref {
			if rc.evs[i].Seq != ref[i].Seq || rc.evs[i].Type != ref[i].Type || rc.evs[i].Interface != ref[i].Interface {
				t.Fatalf("subscribers disagree at %d: %v vs %v", i, rc.evs[i].Type, ref[i].Type)
			}
		}
	}
	perName := map[string][]EventType{}
	for _, ev := range ref {
		perName[ev.Name] = append(perName[ev.Name], ev.Type)
	}
	want := []EventType{EventAttach, EventLink, EventFlags, EventFlags, EventMTU, EventLink, EventDetach}
	for name, types := range perName {
		if !slices.Equal(types, want) {
			t.Fatalf("%s saw %v, want %v", name, types, want)
		}
	}
}

func TestRegistryReentrantSubscriber(t *testing.T) {
	checkGoroutines(t)
	r := NewRegistry()
	defer r.Close()
	vf, _ := newTestIf(t, "vf0", CapHWCsum)
	hn, _ := newTestIf(t, "hn0", CapHWCsum)
	got := make(chan string, 16)
	var claim *Claim
	// An hn-like subscriber: on its VF's attach it looks the VF up, claims
	// it, configures it through the claim and attaches another interface;
	// on detach it looks up again. All from the dispatcher goroutine.
	sub, err := r.Subscribe(func(ev Event) {
		switch {
		case ev.Type == EventAttach && ev.Name == "vf0":
			ifp, err := r.ByName("vf0")
			if err != nil {
				got <- "lookup failed: " + err.Error()
				return
			}
			if claim, err = ifp.Claim("hn0"); err != nil {
				got <- "claim failed: " + err.Error()
				return
			}
			if err := claim.Ioctl(&SetFlags{Flags: FlagUp}); err != nil {
				got <- "ioctl failed: " + err.Error()
				return
			}
			if err := r.Attach(hn); err != nil {
				got <- "attach failed: " + err.Error()
				return
			}
			got <- "vf attached"
		case ev.Type == EventFlags && ev.Name == "vf0":
			got <- fmt.Sprintf("vf flags %v", ev.Flags)
		case ev.Type == EventAttach && ev.Name == "hn0":
			got <- "hn attached"
		case ev.Type == EventDetach:
			_, err := r.ByIndex(ev.Index)
			if err == nil {
				got <- "detached interface still found"
				return
			}
			got <- "detached " + ev.Name
		}
	})
	must(t, err)
	must(t, r.Attach(vf))
	expect := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("got %q, want %q", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("deadlock? waiting for %q", want)
		}
	}
	expect("vf attached")
	expect("vf flags UP|BROADCAST|MULTICAST")
	expect("hn attached")
	mustIs(t, vf.Ioctl(&SetMTU{MTU: 1400}), ErrClaimed)
	must(t, r.Detach(vf))
	expect("detached vf0")
	must(t, sub.Unsubscribe())
	mustIs(t, sub.Unsubscribe(), ErrReleased)
	select {
	case <-sub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	must(t, r.Detach(hn))
	time.Sleep(10 * time.Millisecond)
	if len(got) != 0 {
		t.Fatalf("event after unsubscribe: %q", <-got)
	}
}

func TestRegistryUnsubscribeFromCallback(t *testing.T) {
	checkGoroutines(t)
	r := NewRegistry()
	var a, b recorder
	var subA *Subscription
	var err error
	subA, err = r.Subscribe(func(ev Event) {
		a.fn(ev)
		if ev.Type == EventDetach {
			if err := subA.Unsubscribe(); err != nil {
				panic(err)
			}
		}
	})
	must(t, err)
	subB, err := r.Subscribe(b.fn)
	must(t, err)
	for i := range 3 {
		ifp, _ := newTestIf(t, fmt.Sprintf("x%d", i), 0)
		must(t, r.Attach(ifp))
		must(t, r.Detach(ifp))
	}
	<-subA.Done()
	// A subscriber added later sees only later events.
	var c recorder
	_, err = r.Subscribe(c.fn)
	must(t, err)
	late, _ := newTestIf(t, "late0", 0)
	must(t, r.Attach(late))
	must(t, r.Close())
	<-subB.Done() // Close ends every subscription
	if len(a.evs) != 2 || a.evs[1].Type != EventDetach {
		t.Fatalf("A saw %d events after unsubscribing in its callback", len(a.evs))
	}
	if len(b.evs) != 7 || len(c.evs) != 1 || c.evs[0].Name != "late0" {
		t.Fatalf("B saw %d, C saw %d", len(b.evs), len(c.evs))
	}
	must(t, subB.Unsubscribe())
	if ev := c.evs[0]; ev.MTU != 1500 || ev.Index != 4 || ev.Seq != 7 || ev.MAC.String() != net.HardwareAddr(mac(1)).String() {
		t.Fatalf("attach event %+v", ev)
	}
}

// A device that changes its own address (SetHardwareAddr) is announced as
// EventMAC, once per change; a malformed address is refused.
func TestSetHardwareAddr(t *testing.T) {
	r := NewRegistry()
	rc := &recorder{}
	_, err := r.Subscribe(rc.fn)
	must(t, err)
	vf, _ := newTestIf(t, "vf0", 0)
	must(t, r.Attach(vf))
	must(t, vf.SetHardwareAddr(mac(9)))
	must(t, vf.SetHardwareAddr(mac(9))) // no change, no event
	mustIs(t, vf.SetHardwareAddr(net.HardwareAddr{1, 2, 3, 4, 5, 6}), ErrInvalid)
	mustIs(t, vf.SetHardwareAddr(net.HardwareAddr{2, 0, 0}), ErrInvalid)
	if !bytes.Equal(vf.MAC(), mac(9)) {
		t.Fatalf("MAC %v", vf.MAC())
	}
	must(t, r.Close())
	var macs []Event
	for _, ev := range rc.evs {
		if ev.Type == EventMAC {
			macs = append(macs, ev)
		}
	}
	if len(macs) != 1 || macs[0].Interface != vf || !bytes.Equal(macs[0].MAC, mac(9)) {
		t.Fatalf("EventMAC %+v", macs)
	}
}
