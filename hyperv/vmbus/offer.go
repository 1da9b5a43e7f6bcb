package vmbus

import (
	"context"
	"fmt"
	"sync"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// Offer is one channel the host offered: its identity and control plane
// (GPADLs, open, close, sub-channels). It stays valid after a rescind,
// when every operation fails with ErrRescinded.
type Offer struct {
	bus   *Bus
	msg   vmbusmsg.OfferChannel // read-only after creation
	relid uint32

	gone chan struct{} // closed when the host rescinds

	mu      sync.Mutex // guards everything below
	ch      *Channel
	ring    *GPADL
	gpadls  map[uint32]*GPADL
	subs    []*Offer
	onSub   func(*Offer)
	primary *Offer
}

// GPADL is a guest memory region the host has been given access to.
type GPADL struct {
	ID     uint32
	Region *kernel.Region
	owned  bool // the bus allocated Region (ring buffers) and frees it
}

// ClassID is the device class (interface type) GUID.
func (o *Offer) ClassID() tlfs.GUID { return o.msg.InterfaceType }

// InstanceID is the device instance GUID.
func (o *Offer) InstanceID() tlfs.GUID { return o.msg.InterfaceInstance }

// RelID is the channel's relative id.
func (o *Offer) RelID() uint32 { return o.relid }

// SubChannelIndex is 0 for a primary channel.
func (o *Offer) SubChannelIndex() uint16 { return o.msg.SubChannelIndex }

// Message returns a copy of the offer as the host sent it.
func (o *Offer) Message() vmbusmsg.OfferChannel { return o.msg }

// Gone is closed when the host rescinds the offer.
func (o *Offer) Gone() <-chan struct{} { return o.gone }

// Rescinded reports whether the host has rescinded the offer.
func (o *Offer) Rescinded() bool {
	select {
	case <-o.gone:
		return true
	default:
		return false
	}
}

// Channel returns the open channel, or nil.
func (o *Offer) Channel() *Channel {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ch
}

// Subchannels returns the sub-channel offers of a primary received so far.
func (o *Offer) Subchannels() []*Offer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Offer(nil), o.subs...)
}

// OnSubchannel sets the function called (on the bus worker) for each
// sub-channel offer of this primary, including those already received.
func (o *Offer) OnSubchannel(fn func(*Offer)) {
	o.mu.Lock()
	o.onSub = fn
	subs := append([]*Offer(nil), o.subs...)
	o.mu.Unlock()
	for _, s := range subs {
		o.bus.work.push(func() { fn(s) })
	}
}

func (b *Bus) onOffer(m *vmbusmsg.OfferChannel) {
	relid := m.ChildRelID
	if relid == 0 || relid > synic.MaxRelID {
		b.bad("offer with out-of-range relid", "relid", relid)
		return
	}
	o := &Offer{bus: b, msg: *m, relid: relid, gone: make(chan struct{}), gpadls: map[uint32]*GPADL{}}
	b.mu.Lock()
	if _, dup := b.offers[relid]; dup {
		b.mu.Unlock()
		b.bad("second offer for a relid in use", "relid", relid)
		return
	}
	b.offers[relid] = o
	var primary *Offer
	if m.SubChannelIndex != 0 {
		for _, p := range b.offers {
			if p.msg.SubChannelIndex == 0 && p.msg.InterfaceType == m.InterfaceType &&
				p.msg.InterfaceInstance == m.InterfaceInstance {
				primary = p
				break
			}
		}
	}
	d := b.drivers[m.InterfaceType]
	b.mu.Unlock()
	b.log.Debug("offer", "relid", relid, "class", m.InterfaceType, "sub", m.SubChannelIndex)
	switch {
	case m.SubChannelIndex != 0 && primary != nil:
		primary.mu.Lock()
		o.primary = primary
		primary.subs = append(primary.subs, o)
		fn := primary.onSub
		primary.mu.Unlock()
		if fn != nil {
			b.work.push(func() { fn(o) })
		}
	case m.SubChannelIndex != 0:
		b.bad("sub-channel offer without its primary", "relid", relid)
	case d != nil:
		b.work.push(func() { d.Add(o) })
	}
}

// onRescind runs on the dispatcher: it wakes everything waiting on the
// channel at once, then lets the driver let go and releases the relid on
// the worker (spec §2.5 step 7).
func (b *Bus) onRescind(relid uint32) {
	b.mu.Lock()
	o := b.offers[relid]
	b.mu.Unlock()
	if o == nil {
		b.bad("rescind for an unknown relid", "relid", relid)
		return
	}
	if o.Rescinded() {
		b.bad("second rescind", "relid", relid)
		return
	}
	close(o.gone)
	b.w.failChannel(relid, fmt.Errorf("relid %d: %w", relid, ErrRescinded))
	if ch := o.Channel(); ch != nil {
		ch.rescind()
	}
	b.work.push(func() {
		if d := b.driverFor(o); d != nil && o.msg.SubChannelIndex == 0 {
			d.Remove(o)
		}
		o.Close(context.Background()) // no messages: the channel is gone
		o.releaseMemory()
		b.mu.Lock()
		delete(b.offers, relid)
		b.mu.Unlock()
		if p := o.primary; p != nil {
			p.mu.Lock()
			for i, s := range p.subs {
				if s == o {
					p.subs = append(p.subs[:i], p.subs[i+1:]...)
					break
				}
			}
			p.mu.Unlock()
		}
		if err := b.post(&vmbusmsg.RelIDReleased{ChildRelID: relid}); err != nil {
			b.log.Warn("relid release", "relid", relid, "err", err)
		}
	})
}

// CreateGPADL gives the host access to r and returns its handle. The
// caller keeps ownership of r and must tear the GPADL down before freeing r.
func (o *Offer) CreateGPADL(ctx context.Context, r *kernel.Region) (*GPADL, error) {
	return o.createGPADL(ctx, r, false)
}

func (o *Offer) createGPADL(ctx context.Context, r *kernel.Region, owned bool) (*GPADL, error) {
	if o.Rescinded() {
		return nil, ErrRescinded
	}
	b := o.bus
	id := b.nextGPADL.Add(1)
	if id == 0 {
		id = b.nextGPADL.Add(1)
	}
	hdr, bodies, err := vmbusmsg.SplitGPADL(o.relid, id, []gpa.Range{vmbusmsg.PageRange(r.PFNs)})
	if err != nil {
		return nil, fmt.Errorf("vmbus: gpadl of %d pages: %w", len(r.PFNs), err)
	}
	msgs := make([]vmbusmsg.Message, 0, 1+len(bodies))
	msgs = append(msgs, hdr)
	for _, body := range bodies {
		msgs = append(msgs, body)
	}
	resp, err := b.request(ctx, waitKey{kind: waitGPADLCreated, id: id}, o.relid, msgs...)
	if err != nil {
		return nil, fmt.Errorf("vmbus: relid %d gpadl %#x: %w", o.relid, id, err)
	}
	if st := resp.(*vmbusmsg.GPADLCreated).CreationStatus; st != 0 {
		return nil, fmt.Errorf("vmbus: relid %d gpadl %#x status %#x: %w", o.relid, id, st, ErrRefused)
	}
	g := &GPADL{ID: id, Region: r, owned: owned}
	o.mu.Lock()
	o.gpadls[id] = g
	o.mu.Unlock()
	return g, nil
}

// TeardownGPADL revokes the host's access to g's memory. After a rescind
// the host answers nothing, so the GPADL is only forgotten (as Linux
// vmbus_teardown_gpadl does).
func (o *Offer) TeardownGPADL(ctx context.Context, g *GPADL) error {
	o.mu.Lock()
	_, ok := o.gpadls[g.ID]
	o.mu.Unlock()
	if !ok {
		return fmt.Errorf("vmbus: gpadl %#x not on relid %d: %w", g.ID, o.relid, ErrState)
	}
	var err error
	if !o.Rescinded() {
		_, err = o.bus.request(ctx, waitKey{kind: waitGPADLTorndown, id: g.ID}, o.relid,
			&vmbusmsg.GPADLTeardown{ChildRelID: o.relid, GPADL: g.ID})
		if err != nil && !o.Rescinded() {
			return fmt.Errorf("vmbus: teardown gpadl %#x: %w", g.ID, err)
		}
	}
	o.forgetGPADL(g)
	return nil
}

func (o *Offer) forgetGPADL(g *GPADL) {
	o.mu.Lock()
	delete(o.gpadls, g.ID)
	o.mu.Unlock()
	if g.owned {
		o.bus.cfg.Memory.Free(g.Region)
	}
}

// releaseMemory forgets every GPADL still recorded once the host can no
// longer use them (after a rescind or at bus close): owned memory is
// freed; caller-owned regions stay with the caller.
func (o *Offer) releaseMemory() {
	o.mu.Lock()
	var gs []*GPADL
	for _, g := range o.gpadls {
		gs = append(gs, g)
	}
	o.mu.Unlock()
	for _, g := range gs {
		o.forgetGPADL(g)
	}
}

// GPADLs returns the number of GPADLs the offer holds (ring included).
func (o *Offer) GPADLs() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.gpadls)
}

// OpenOptions configures Offer.Open.
type OpenOptions struct {
	// SendPages and RecvPages size the guest-to-host and host-to-guest
	// rings in 4 KiB pages, control page included (minimum 2; default 64,
	// i.e. 252 KiB of data each, the netvsc default in Linux).
	SendPages, RecvPages int
	// UserData is OPENCHANNEL's 120-byte user data (pipe-mode devices).
	UserData []byte
	// Handler receives the packets the host sends (see Channel).
	Handler Handler
	// TargetVP is the VP the host interrupts for this channel.
	TargetVP uint32
}

// Open allocates the ring pair, hands it to the host in one GPADL and opens
// the channel (spec §2.5 step 5). The returned Channel is also available
// from Channel().
func (o *Offer) Open(ctx context.Context, opt OpenOptions) (*Channel, error) {
	if opt.SendPages == 0 {
		opt.SendPages = 64
	}
	if opt.RecvPages == 0 {
		opt.RecvPages = 64
	}
	if opt.SendPages < 2 || opt.RecvPages < 2 || len(opt.UserData) > vmbusmsg.UserDefinedSize {
		return nil, fmt.Errorf("vmbus: open with %d/%d ring pages and %d bytes of user data: %w",
			opt.SendPages, opt.RecvPages, len(opt.UserData), ErrState)
	}
	o.mu.Lock()
	busy := o.ch != nil
	o.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("vmbus: relid %d already open: %w", o.relid, ErrState)
	}
	b := o.bus
	region, err := b.cfg.Memory.Alloc(opt.SendPages + opt.RecvPages)
	if err != nil {
		return nil, fmt.Errorf("vmbus: ring memory: %w", err)
	}
	out, in, err := ring.SplitPair(region.Bytes, opt.SendPages)
	if err == nil {
		err = ring.InitControl(out.Control)
	}
	if err == nil {
		err = ring.InitControl(in.Control)
	}
	if err != nil {
		b.cfg.Memory.Free(region)
		return nil, fmt.Errorf("vmbus: ring init: %w", err)
	}
	g, err := o.createGPADL(ctx, region, true)
	if err != nil {
		b.cfg.Memory.Free(region)
		return nil, err
	}
	conn := o.msg.ConnectionID
	ch, err := NewChannel(ChannelConfig{
		Out: out, In: in, Handler: opt.Handler, Clock: b.cfg.Clock, Logger: b.log,
		Name:   fmt.Sprintf("relid%d", o.relid),
		Signal: func() error { return b.port.SignalEvent(conn) },
	})
	if err != nil {
		o.TeardownGPADL(ctx, g)
		return nil, err
	}
	b.chans[o.relid].Store(ch) // events may arrive as soon as the host opens
	msg := &vmbusmsg.OpenChannel{ChildRelID: o.relid, OpenID: o.relid, RingBufferGPADL: g.ID,
		TargetVP: opt.TargetVP, DownstreamRingBufferPageOffset: uint32(opt.SendPages)}
	copy(msg.UserData[:], opt.UserData)
	resp, err := b.request(ctx, waitKey{kind: waitOpen, id: o.relid}, o.relid, msg)
	if err == nil {
		if st := resp.(*vmbusmsg.OpenChannelResult).Status; st != 0 {
			err = fmt.Errorf("vmbus: open relid %d status %#x: %w", o.relid, st, ErrRefused)
		}
	}
	if err != nil {
		b.chans[o.relid].Store(nil)
		ch.Close()
		o.TeardownGPADL(ctx, g)
		return nil, fmt.Errorf("vmbus: open relid %d: %w", o.relid, err)
	}
	o.mu.Lock()
	o.ch, o.ring = ch, g
	o.mu.Unlock()
	ch.Start()
	return ch, nil
}

// Close closes the channel (CLOSECHANNEL, no reply), stops its receive
// goroutine and tears down the ring GPADL (spec §2.5 step 6). Open
// sub-channels of a primary are closed first. After a rescind nothing is
// sent. Closing a channel that is not open returns ErrState.
func (o *Offer) Close(ctx context.Context) error {
	for _, s := range o.Subchannels() {
		s.Close(ctx)
	}
	o.mu.Lock()
	ch, g := o.ch, o.ring
	o.ch, o.ring = nil, nil
	o.mu.Unlock()
	if ch == nil {
		return ErrState
	}
	b := o.bus
	b.chans[o.relid].Store(nil)
	ch.Close()
	var err error
	if !o.Rescinded() {
		if err = b.post(&vmbusmsg.CloseChannel{ChildRelID: o.relid}); err != nil {
			err = fmt.Errorf("vmbus: close relid %d: %w", o.relid, err)
		}
	}
	if terr := o.TeardownGPADL(ctx, g); terr != nil && err == nil {
		err = terr
	}
	return err
}
