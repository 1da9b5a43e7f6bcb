package host

import (
	"fmt"

	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// This file holds the loop's side of channel sessions (open, close, exit)
// and the device-facing Server API. Everything named b.* runs on the loop.

// onOpen opens a channel: the ring GPADL is split at the downstream page
// offset (first part: the ring the host reads, the guest's outbound;
// second part: the ring the host writes), a session goroutine calls the
// device, and OPENCHANNEL_RESULT follows its answer.
func (b *bus) onOpen(m *vmbusmsg.OpenChannel) {
	s := b.s
	c := b.channel(m.ChildRelID)
	switch {
	case c == nil:
		s.log.Warn("vmbus host: OPEN for an unknown relid", "relid", m.ChildRelID)
		return
	case c.rescinded:
		return // not answered (spec §2.5 item 7)
	case c.ses != nil:
		s.log.Warn("vmbus host: OPEN of an open channel", "relid", m.ChildRelID)
		return
	case c.closing != nil:
		mm := *m
		c.reopen = &mm // the previous session still runs; open after it
		return
	}
	fail := func(why string, err error) {
		s.log.Warn("vmbus host: OPEN refused", "relid", m.ChildRelID, "gpadl", m.RingBufferGPADL, "why", why, "err", err)
		s.send(&vmbusmsg.OpenChannelResult{ChildRelID: m.ChildRelID, OpenID: m.OpenID, Status: StatusUnsuccessful})
	}
	g, err := b.acquire(c, m.RingBufferGPADL)
	if err != nil {
		fail("ring GPADL", err)
		return
	}
	in, out, err := b.rings(g, m.DownstreamRingBufferPageOffset)
	if err != nil {
		b.release(g)
		fail("ring layout", err)
		return
	}
	ch := &Channel{
		s: s, dev: c.dev.dev, relid: c.relid, sub: c.sub, connID: s.cfg.ConnIDs.connID(c.relid),
		open: *m, version: b.version, noIRQ: m.TargetVP == vmbusmsg.TargetVPDisableInterrupts,
		in: in, out: out, rx: kernel.NewEvent(), tx: kernel.NewEvent(), stop: make(chan struct{}),
		c: c, ring: g,
	}
	c.ses = ch
	s.ports[c.relid].Store(ch)
	s.sessions.Add(1)
	go ch.run()
}

// rings validates a ring GPADL (one range of whole pages, each ring at
// least a control page and a data page) and builds the host's reader on
// the first part and writer on the second.
func (b *bus) rings(g *gpadl, offset uint32) (*ring.Reader, *ring.Writer, error) {
	if len(g.ranges) != 1 {
		return nil, nil, fmt.Errorf("%d ranges, a ring GPADL has one", len(g.ranges))
	}
	r := &g.ranges[0]
	pages := len(r.PFNs)
	if r.ByteOffset != 0 || int(r.ByteCount) != pages*ring.PageSize {
		return nil, nil, fmt.Errorf("range of %d bytes at offset %d is not whole pages", r.ByteCount, r.ByteOffset)
	}
	if offset < 2 || int(offset) > pages-2 {
		return nil, nil, fmt.Errorf("downstream offset %d in a %d-page GPADL", offset, pages)
	}
	mem := b.s.cfg.Memory
	first, err := mem.View(r.PFNs[:offset])
	if err != nil {
		return nil, nil, err
	}
	second, err := mem.View(r.PFNs[offset:])
	if err != nil {
		return nil, nil, err
	}
	inMem, err := ring.Split(first)
	if err != nil {
		return nil, nil, err
	}
	outMem, err := ring.Split(second)
	if err != nil {
		return nil, nil, err
	}
	in, err := ring.NewReader(inMem.Control, inMem.Data, nil)
	if err != nil {
		return nil, nil, err
	}
	out, err := ring.NewWriter(outMem.Control, outMem.Data)
	if err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

// openDone answers OPENCHANNEL once the device's Open returned, unless the
// channel was closed, rescinded or reset meanwhile.
func (b *bus) openDone(ch *Channel, err error) {
	if ch.stopped {
		return
	}
	st := uint32(0)
	if err != nil {
		b.s.log.Warn("vmbus host: device refused open", "relid", ch.relid, "err", err)
		st = StatusUnsuccessful
		b.detach(ch, false)
	}
	b.s.send(&vmbusmsg.OpenChannelResult{ChildRelID: ch.relid, OpenID: ch.open.OpenID, Status: st})
}

// onClose closes a channel; no reply. Closing a primary withdraws its
// subchannels.
func (b *bus) onClose(m *vmbusmsg.CloseChannel) {
	c := b.channel(m.ChildRelID)
	if c == nil || c.rescinded {
		return
	}
	c.reopen = nil
	if c.ses == nil {
		b.s.log.Warn("vmbus host: CLOSE of a channel not open", "relid", m.ChildRelID)
		return
	}
	b.stopSession(c.ses)
	if c.sub == 0 {
		b.dropSubchannels(c.dev)
	}
}

// stopSession ends a session: no more signals reach it, sends fail, the
// device's Close runs on its goroutine, and sessionExited follows.
func (b *bus) stopSession(ch *Channel) {
	if ch.stopped {
		return
	}
	b.detach(ch, true)
	ch.closed.Store(true)
	close(ch.stop)
}

func (b *bus) detach(ch *Channel, count bool) {
	ch.stopped = true
	if count {
		ch.counted = true
		b.stopped++
	}
	b.s.ports[ch.relid].CompareAndSwap(ch, nil)
	if ch.c.ses == ch {
		ch.c.ses = nil
	}
	ch.c.closing = ch
}

// sessionExited releases what the session held and resumes whatever
// waited for it (a reopen, a GPADL teardown, a reset).
func (b *bus) sessionExited(ch *Channel) {
	if !ch.stopped { // cannot happen: a session only exits when stopped or failed
		b.detach(ch, false)
	}
	ch.closed.Store(true)
	if ch.counted {
		b.stopped--
	}
	b.release(ch.ring)
	for _, v := range ch.views {
		if !v.released.Swap(true) {
			b.release(v.g)
		}
	}
	ch.views = nil
	c := ch.c
	if c.closing == ch {
		c.closing = nil
		if m := c.reopen; m != nil {
			c.reopen = nil
			if b.state == connected && b.relids[m.ChildRelID] == c {
				b.onOpen(m)
			}
		}
	}
	b.checkAfter()
}

// releaseView returns a device's GPADL view.
func (b *bus) releaseView(v *GPADLView) {
	ch := v.ch
	for i, x := range ch.views {
		if x == v {
			ch.views = append(ch.views[:i], ch.views[i+1:]...)
			b.release(v.g)
			return
		}
	}
}

// addSubchannels creates up to n subchannels of ch's device.
func (b *bus) addSubchannels(ch *Channel, n int) (int, error) {
	c := ch.c
	if ch.stopped || c.dev.removed {
		return 0, ErrClosed
	}
	if c.sub != 0 {
		return 0, fmt.Errorf("%w: subchannels are requested on the primary", ErrDevice)
	}
	d := c.dev
	live, next := 0, uint16(1)
	for _, x := range d.chans {
		if x.sub != 0 && !x.gone {
			live++
		}
		next = max(next, x.sub+1)
	}
	n = min(n, b.s.cfg.MaxSubchannels-live)
	for i := 0; i < n; i++ {
		sc := &channel{dev: d, sub: next + uint16(i)}
		d.chans = append(d.chans, sc)
		if b.state == connected && b.offersSent {
			b.offer(sc)
		}
	}
	return max(n, 0), nil
}

// AddDevice registers a device. If the guest has already requested
// offers, the device is offered at once (hot add). A device whose class
// and instance are already registered is refused.
func (s *Server) AddDevice(d Device) error {
	o := d.Offer()
	var err error
	if e := s.call(func() {
		b := &s.bus
		for _, x := range b.devices {
			if !x.removed && (x.dev == d || (x.offer.Class == o.Class && x.offer.Instance == o.Instance)) {
				err = fmt.Errorf("%w: class %v instance %v already offered", ErrDevice, o.Class, o.Instance)
				return
			}
		}
		e := &devEntry{dev: d, offer: o, released: make(chan struct{})}
		e.chans = []*channel{{dev: e}}
		b.devices = append(b.devices, e)
		if b.state == connected && b.offersSent {
			b.offer(e.chans[0])
		}
	}); e != nil {
		return e
	}
	return err
}

// Rescind withdraws a device and its subchannels: the guest gets
// RESCIND_CHANNELOFFER for each offered channel, open channels close
// (outstanding OPEN and GPADL requests are never answered), and each relid
// stays reserved until the guest's RELID_RELEASED. The returned channel
// is closed once every relid was released (or the bus was reset).
func (s *Server) Rescind(d Device) (released <-chan struct{}, err error) {
	if e := s.call(func() {
		b := &s.bus
		for _, x := range b.devices {
			if x.dev == d && !x.removed {
				x.removed = true
				released = x.released
				for i := len(x.chans) - 1; i >= 0; i-- {
					b.rescind(x.chans[i])
				}
				b.pruneDevices()
				return
			}
		}
		err = fmt.Errorf("%w: not registered", ErrDevice)
	}); e != nil {
		return nil, e
	}
	return released, err
}
