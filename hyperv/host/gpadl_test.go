package host_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

// connected returns an env with one echo device offered and connected.
func connected(t *testing.T, cfg host.Config) (*env, *vmbusmsg.OfferChannel, *echo.Device) {
	e := newEnv(t, cfg)
	dev := echo.New(echo.Options{})
	if err := e.srv.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	e.connect(vmbusmsg.VersionWin10V5_3)
	return e, e.offers()[0], dev
}

func TestGPADLHeaderAndBodies(t *testing.T) {
	e, o, _ := connected(t, host.Config{})
	r, err := e.ram.Alloc(128)
	if err != nil {
		t.Fatal(err)
	}
	h, bodies, err := vmbusmsg.SplitGPADL(o.ChildRelID, 0xE1E10, []gpa.Range{vmbusmsg.PageRange(r.PFNs)})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range bodies {
		sizes = append(sizes, len(b.Data)/8)
	}
	if len(h.Data)/8-1 != 26 || len(sizes) != 4 || sizes[0] != 28 || sizes[1] != 28 || sizes[2] != 28 || sizes[3] != 18 {
		t.Fatalf("split: header %d pfns, bodies %v", len(h.Data)/8-1, sizes)
	}
	e.mustPost(h)
	for i, b := range bodies {
		e.expectNone(0) // nothing before the last body
		e.mustPost(b)
		_ = i
	}
	c := expect[*vmbusmsg.GPADLCreated](e)
	if c.ChildRelID != o.ChildRelID || c.GPADL != 0xE1E10 || c.CreationStatus != 0 {
		t.Fatalf("created: %+v", c)
	}
	// Teardown answers with TORNDOWN; the handle can then be reused.
	e.mustPost(&vmbusmsg.GPADLTeardown{ChildRelID: o.ChildRelID, GPADL: 0xE1E10})
	if td := expect[*vmbusmsg.GPADLTorndown](e); td.GPADL != 0xE1E10 {
		t.Fatalf("torndown: %+v", td)
	}
	if c := e.gpadl(o.ChildRelID, 0xE1E10, vmbusmsg.PageRange(r.PFNs[:3])); c.CreationStatus != 0 {
		t.Fatalf("reuse: %+v", c)
	}
}

func TestGPADLValidation(t *testing.T) {
	e, o, _ := connected(t, host.Config{MaxGPADLPages: 64, MaxGPADLs: 8, Logger: testLogger(t)})
	r, err := e.ram.Alloc(80)
	if err != nil {
		t.Fatal(err)
	}
	pages := func(n int) gpa.Range { return vmbusmsg.PageRange(r.PFNs[:n]) }
	failed := func(name string, relid, id uint32) {
		t.Helper()
		c := expect[*vmbusmsg.GPADLCreated](e)
		if c.CreationStatus != host.StatusUnsuccessful || c.ChildRelID != relid || c.GPADL != id {
			t.Errorf("%s: got %+v, want failure for relid %d gpadl %#x", name, c, relid, id)
		}
	}

	// Unknown relid.
	e.gpadlPost(99, 1, pages(2))
	failed("unknown relid", 99, 1)

	// Zero handle.
	e.gpadlPost(o.ChildRelID, 0, pages(2))
	failed("zero handle", o.ChildRelID, 0)

	// Duplicate handle on the same channel.
	if c := e.gpadl(o.ChildRelID, 2, pages(2)); c.CreationStatus != 0 {
		t.Fatal(c)
	}
	e.gpadlPost(o.ChildRelID, 2, pages(3))
	failed("duplicate", o.ChildRelID, 2)

	// A PFN outside guest memory, in the header and in a body.
	bad := pages(40)
	bad.PFNs = append([]uint64(nil), bad.PFNs...)
	bad.PFNs[3] = 0x7FFFFFFF
	e.gpadlPost(o.ChildRelID, 3, bad)
	failed("pfn in header", o.ChildRelID, 3)
	bad.PFNs[3], bad.PFNs[35] = r.PFNs[3], 0x10
	e.gpadlPost(o.ChildRelID, 4, bad)
	failed("pfn in body", o.ChildRelID, 4)

	// range_buflen disagreeing with the PFN count.
	h, _, _ := vmbusmsg.SplitGPADL(o.ChildRelID, 5, []gpa.Range{pages(4)})
	raw := h.Encode()
	binary.LittleEndian.PutUint16(raw[16:], uint16(8+8*5))
	e.mustPostRaw(raw)
	failed("range_buflen mismatch", o.ChildRelID, 5)

	// byte_count not matching the pages given.
	h, _, _ = vmbusmsg.SplitGPADL(o.ChildRelID, 6, []gpa.Range{pages(4)})
	raw = h.Encode()
	binary.LittleEndian.PutUint32(raw[20:], 5*4096)
	e.mustPostRaw(raw)
	failed("byte_count mismatch", o.ChildRelID, 6)

	// Too many pages.
	e.gpadlPost(o.ChildRelID, 7, pages(65))
	failed("too many pages", o.ChildRelID, 7)

	// A body for a GPADL nobody started is dropped silently.
	e.mustPost(&vmbusmsg.GPADLBody{GPADL: 0x77, Data: make([]byte, 16)})
	e.expectNone(20 * time.Millisecond)

	// A body carrying more than range_buflen fails the GPADL.
	h, bodies, _ := vmbusmsg.SplitGPADL(o.ChildRelID, 8, []gpa.Range{pages(30)})
	e.mustPost(h)
	bodies[0].Data = append(bodies[0].Data, make([]byte, 8)...)
	e.mustPost(bodies[0])
	failed("extra body data", o.ChildRelID, 8)

	// Too many GPADLs: 1 exists (id 2); 7 more fit, the 9th fails.
	for id := uint32(10); id < 17; id++ {
		if c := e.gpadl(o.ChildRelID, id, pages(1)); c.CreationStatus != 0 {
			t.Fatalf("gpadl %d: %+v", id, c)
		}
	}
	e.gpadlPost(o.ChildRelID, 17, pages(1))
	failed("too many GPADLs", o.ChildRelID, 17)

	// Teardown of an unknown GPADL: no answer.
	e.mustPost(&vmbusmsg.GPADLTeardown{ChildRelID: o.ChildRelID, GPADL: 0x99})
	e.expectNone(20 * time.Millisecond)
}

func (e *env) gpadlPost(relid, id uint32, r gpa.Range) {
	e.t.Helper()
	h, bodies, err := vmbusmsg.SplitGPADL(relid, id, []gpa.Range{r})
	if err != nil {
		e.t.Fatal(err)
	}
	e.mustPost(h)
	for _, b := range bodies {
		e.mustPost(b)
	}
}

func (e *env) mustPostRaw(b []byte) {
	e.t.Helper()
	if err := e.port.PostMessage(e.msgConn, 1, b); err != nil {
		e.t.Fatal(err)
	}
}

// A GPADL used by an open ring is torn down only after the channel
// closes; until then the teardown is not answered.
func TestRingGPADLTeardownWaitsForClose(t *testing.T) {
	e, o, dev := connected(t, host.Config{})
	g := e.open(o, 0xE1E10, 4, 4)
	e.mustPost(&vmbusmsg.GPADLTeardown{ChildRelID: o.ChildRelID, GPADL: 0xE1E10})
	e.expectNone(30 * time.Millisecond)
	g.close()
	if td := expect[*vmbusmsg.GPADLTorndown](e); td.GPADL != 0xE1E10 {
		t.Fatal(td)
	}
	if s := dev.Stats(); s.Closes != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOpenValidation(t *testing.T) {
	e, o, _ := connected(t, host.Config{})
	region, _ := e.ram.Alloc(8)
	fail := func(name string, m *vmbusmsg.OpenChannel) {
		t.Helper()
		e.mustPost(m)
		r := expect[*vmbusmsg.OpenChannelResult](e)
		if r.Status != host.StatusUnsuccessful || r.ChildRelID != m.ChildRelID || r.OpenID != m.OpenID {
			t.Errorf("%s: %+v", name, r)
		}
	}
	open := func(gpadl, off uint32) *vmbusmsg.OpenChannel {
		return &vmbusmsg.OpenChannel{ChildRelID: o.ChildRelID, OpenID: 77, RingBufferGPADL: gpadl, DownstreamRingBufferPageOffset: off}
	}
	fail("unknown GPADL", open(0x42, 2))
	e.gpadl(o.ChildRelID, 1, vmbusmsg.PageRange(region.PFNs))
	fail("offset 0", open(1, 0))
	fail("offset 1", open(1, 1))
	fail("offset past the end", open(1, 7))
	fail("offset 9", open(1, 9))
	// Not whole pages.
	e.gpadl(o.ChildRelID, 2, gpa.Range{ByteCount: 8*4096 - 100, PFNs: region.PFNs})
	fail("partial page", open(2, 4))
	// Pages the memory cannot view contiguously.
	swapped := append([]uint64(nil), region.PFNs...)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	e.gpadl(o.ChildRelID, 3, vmbusmsg.PageRange(swapped))
	fail("non-contiguous", open(3, 4))
	// Two ranges.
	e.gpadl(o.ChildRelID, 4, vmbusmsg.PageRange(region.PFNs[:4]), vmbusmsg.PageRange(region.PFNs[4:]))
	fail("two ranges", open(4, 4))
	// Unknown relid: not answered.
	e.mustPost(&vmbusmsg.OpenChannel{ChildRelID: 55, RingBufferGPADL: 1, DownstreamRingBufferPageOffset: 4})
	e.expectNone(20 * time.Millisecond)
	// The valid one works, a second OPEN is not answered.
	e.mustPost(open(1, 4))
	if r := expect[*vmbusmsg.OpenChannelResult](e); r.Status != 0 || r.OpenID != 77 {
		t.Fatal(r)
	}
	e.mustPost(open(1, 4))
	e.expectNone(20 * time.Millisecond)
}

func TestDeviceOpenError(t *testing.T) {
	e := newEnv(t, host.Config{})
	d := &fixedDevice{offer: host.Offer{Class: echo.ClassGUID}, err: host.ErrDevice}
	e.srv.AddDevice(d)
	e.connect(vmbusmsg.VersionWin10)
	o := e.offers()[0]
	region, _ := e.ram.Alloc(4)
	e.gpadl(o.ChildRelID, 1, vmbusmsg.PageRange(region.PFNs))
	e.mustPost(&vmbusmsg.OpenChannel{ChildRelID: o.ChildRelID, OpenID: 5, RingBufferGPADL: 1, DownstreamRingBufferPageOffset: 2})
	if r := expect[*vmbusmsg.OpenChannelResult](e); r.Status != host.StatusUnsuccessful {
		t.Fatal(r)
	}
	// The ring GPADL is free again: teardown is answered at once.
	e.mustPost(&vmbusmsg.GPADLTeardown{ChildRelID: o.ChildRelID, GPADL: 1})
	expect[*vmbusmsg.GPADLTorndown](e)
}
