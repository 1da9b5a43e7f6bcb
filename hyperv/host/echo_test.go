package host_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

func TestEchoInBand(t *testing.T) {
	e, o, dev := connected(t, host.Config{})
	g := e.open(o, 0xE1E10, 4, 4)
	msg := []byte("hello, host") // 11 bytes, padded to 16 in the ring
	g.write(64, func(w *ring.Writer) error { return w.WriteInBand(7, false, msg) })
	d, p := g.read()
	if d.Type != ring.TypeInBand || d.TransID != 7 || d.CompletionRequested() || !bytes.Equal(p, append(msg, 0, 0, 0, 0, 0)) {
		t.Fatalf("in-band echo: %+v %q", d, p)
	}
	g.write(64, func(w *ring.Writer) error { return w.WriteInBand(8, true, []byte("completion plz")) })
	d, p = g.read()
	if d.Type != ring.TypeCompletion || d.TransID != 8 || string(p[:14]) != "completion plz" {
		t.Fatalf("completion echo: %+v %q", d, p)
	}
	waitFor(t, "stats", func() bool { return dev.Stats().Replies == 2 })
	if s := dev.Stats(); s.Packets != 2 || s.Bytes != 32 || s.Errors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// GPA-direct: the echo reads the ranges from guest memory, so the bytes
// coming back prove the host walked the PFNs.
func TestEchoGPADirect(t *testing.T) {
	e, o, dev := connected(t, host.Config{})
	g := e.open(o, 0xE1E10, 4, 4)
	buf, _ := e.ram.Alloc(3)
	for i := range buf.Bytes {
		buf.Bytes[i] = byte(i * 7)
	}
	ranges := []gpa.Range{
		{ByteCount: 5000, ByteOffset: 100, PFNs: buf.PFNs[:2]},
		{ByteCount: 10, ByteOffset: 4090, PFNs: buf.PFNs[1:3]},
	}
	want := append(append([]byte(nil), buf.Bytes[100:5100]...), buf.Bytes[4096+4090:4096+4100]...)
	g.write(ring.GPADirectSize(ranges, 8), func(w *ring.Writer) error {
		return w.WriteGPADirect(99, true, ranges, []byte("nvspmsg!"))
	})
	d, p := g.read()
	if d.Type != ring.TypeCompletion || d.TransID != 99 || !bytes.Equal(p[:len(want)], want) || len(p) != (len(want)+7)&^7 {
		t.Fatalf("gpa-direct echo: %+v, %d bytes", d, len(p))
	}
	// A range outside guest memory: answered without payload.
	badR := []gpa.Range{{ByteCount: 16, PFNs: []uint64{0x7FFFFFF}}}
	g.write(ring.GPADirectSize(badR, 0), func(w *ring.Writer) error { return w.WriteGPADirect(100, false, badR, nil) })
	d, p = g.read()
	if d.Type != ring.TypeInBand || d.TransID != 100 || len(p) != 0 {
		t.Fatalf("bad range echo: %+v %d", d, len(p))
	}
	waitFor(t, "stats", func() bool { return dev.Stats().Replies == 2 })
	if s := dev.Stats(); s.GPADirect != 2 || s.Errors != 1 || s.Bytes != uint64(len(want)) {
		t.Fatalf("stats %+v", s)
	}
}

// Many packets through small rings: both sides fill their rings and wait
// on pending_send_sz, so the signalling in both directions is exercised.
func TestEchoManyPacketsSmallRings(t *testing.T) {
	e, o, dev := connected(t, host.Config{})
	g := e.open(o, 0xE1E10, 2, 2) // 4 KiB of data each way
	const n = 20000
	done := make(chan error, 1)
	go func() {
		// The reader runs beside the writer, as a guest's interrupt path does.
		for i := 0; i < n; i++ {
			d, p := g.readNoFatal()
			if d.TransID != uint64(i) || len(p) < 8 || binary.LittleEndian.Uint64(p) != uint64(i)*3 {
				done <- fmt.Errorf("packet %d: %+v % x", i, d, p)
				return
			}
		}
		done <- nil
	}()
	payload := make([]byte, 200)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(payload, uint64(i)*3)
		size := 8 + i%190
		g.write(ring.InBandSize(size), func(w *ring.Writer) error { return w.WriteInBand(uint64(i), false, payload[:size]) })
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := dev.Stats(); s.Packets != n || s.Replies != n {
		t.Fatalf("stats %+v", s)
	}
}

func TestSubchannels(t *testing.T) {
	e := newEnv(t, host.Config{})
	dev := echoWithSubchannels(2)
	e.srv.AddDevice(dev)
	e.connect(vmbusmsg.VersionWin10V5_3)
	prim := e.offers()[0]
	e.open(prim, 1, 2, 2)
	var subs []*vmbusmsg.OfferChannel
	for i := 0; i < 2; i++ {
		s := expect[*vmbusmsg.OfferChannel](e)
		if s.InterfaceType != prim.InterfaceType || s.InterfaceInstance != prim.InterfaceInstance ||
			s.SubChannelIndex != uint16(i+1) || s.ChildRelID == prim.ChildRelID {
			t.Fatalf("subchannel offer %d: %+v", i, s)
		}
		subs = append(subs, s)
	}
	sg := e.open(subs[1], 2, 2, 2)
	sg.write(64, func(w *ring.Writer) error { return w.WriteInBand(5, false, []byte("on sub 2")) })
	if d, p := sg.read(); d.TransID != 5 || string(p) != "on sub 2" {
		t.Fatalf("subchannel echo: %+v %q", d, p)
	}
	// Closing the primary withdraws the subchannels.
	e.mustPost(&vmbusmsg.CloseChannel{ChildRelID: prim.ChildRelID})
	got := map[uint32]bool{}
	for i := 0; i < 2; i++ {
		got[expect[*vmbusmsg.RescindChannelOffer](e).ChildRelID] = true
	}
	if !got[subs[0].ChildRelID] || !got[subs[1].ChildRelID] {
		t.Fatalf("rescinded %v", got)
	}
	for _, s := range subs {
		e.mustPost(&vmbusmsg.RelIDReleased{ChildRelID: s.ChildRelID})
	}
	// Reopening the primary offers fresh subchannels.
	e.mustPost(&vmbusmsg.GPADLTeardown{ChildRelID: prim.ChildRelID, GPADL: 1})
	expect[*vmbusmsg.GPADLTorndown](e)
	e.open(prim, 1, 2, 2)
	for i := 0; i < 2; i++ {
		if s := expect[*vmbusmsg.OfferChannel](e); s.SubChannelIndex != uint16(i+1) {
			t.Fatalf("re-offered subchannel: %+v", s)
		}
	}
}
