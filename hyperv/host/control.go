package host

import (
	"encoding/binary"

	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

// connState is the bus connection's state.
type connState uint8

const (
	disconnected connState = iota
	connected
)

// bus is the channel-management state machine. It is owned by the
// Server's loop goroutine: every field is read and written there only.
type bus struct {
	s *Server

	state      connState
	version    vmbusmsg.Version
	features   vmbusmsg.FeatureFlags
	targetVP   uint32 // VP that receives messages (recorded; one SINT is modelled)
	offersSent bool   // REQUESTOFFERS answered: later offers go out at once

	devices []*devEntry // registration order; removed ones until released
	relids  []*channel  // relid -> offered channel; nil = free

	gpadls  map[gpadlKey]*gpadl
	asm     *vmbusmsg.Assembler
	inprog  map[uint32]*channel // GPADL id in progress -> its channel
	stopped int                 // sessions stopped and not yet exited
	after   func()              // runs when stopped drops to 0 (reset, unload)
}

// devEntry is one registered device and its channels.
type devEntry struct {
	dev      Device
	offer    Offer
	chans    []*channel // [0] is the primary; subchannels follow
	removed  bool       // Rescind called: no new offers, freed once released
	released chan struct{}
}

// channel is one offer: a device's primary or one of its subchannels.
type channel struct {
	dev       *devEntry
	sub       uint16
	relid     uint32 // 0: not offered to the guest
	rescinded bool   // RESCIND sent; waiting for RELID_RELEASED
	gone      bool   // leaves its device once released
	ses       *Channel
	closing   *Channel              // stopped session not yet exited
	reopen    *vmbusmsg.OpenChannel // OPEN that arrived while closing
}

func (b *bus) init(s *Server) {
	b.s = s
	b.relids = make([]*channel, s.cfg.ConnIDs.maxRelID()+1)
	b.gpadls = map[gpadlKey]*gpadl{}
	b.inprog = map[uint32]*channel{}
	b.asm = vmbusmsg.NewAssembler(4 * s.cfg.MaxGPADLPages)
}

func (b *bus) resetting() bool { return b.after != nil }

// channel returns the offered, not released channel with this relid.
func (b *bus) channel(relid uint32) *channel {
	if relid == 0 || relid >= uint32(len(b.relids)) {
		return nil
	}
	return b.relids[relid]
}

// handlePost decodes and dispatches one message the guest posted.
func (b *bus) handlePost(conn uint32, p []byte) {
	s := b.s
	if len(p) == 0 {
		return
	}
	m, err := vmbusmsg.DecodeFromGuest(p)
	if err != nil {
		s.log.Warn("vmbus host: bad message from guest", "conn", conn, "len", len(p), "err", err)
		b.badGPADLHeader(p)
		return
	}
	t := m.Type()
	if s.faults.dropped(FromGuest, t) {
		s.log.Info("vmbus host: fault: dropped message from guest", "type", t)
		return
	}
	switch m := m.(type) {
	case *vmbusmsg.InitiateContact:
		b.onInitiateContact(m)
		return
	case *vmbusmsg.Unload:
		b.onUnload()
		return
	}
	if b.state != connected {
		s.log.Warn("vmbus host: message before contact", "type", t)
		return
	}
	if t.MinVersion() > b.version || !b.features.Has(t.RequiredFeature()) {
		s.log.Warn("vmbus host: message not in the negotiated protocol", "type", t, "version", b.version)
		return
	}
	switch m := m.(type) {
	case *vmbusmsg.RequestOffers:
		b.onRequestOffers()
	case *vmbusmsg.GPADLHeader:
		b.onGPADLHeader(m)
	case *vmbusmsg.GPADLBody:
		b.onGPADLBody(m)
	case *vmbusmsg.GPADLTeardown:
		b.onGPADLTeardown(m)
	case *vmbusmsg.OpenChannel:
		b.onOpen(m)
	case *vmbusmsg.CloseChannel:
		b.onClose(m)
	case *vmbusmsg.RelIDReleased:
		b.onRelIDReleased(m)
	case *vmbusmsg.ModifyChannel:
		if c := b.channel(m.ChildRelID); c != nil && !c.rescinded && b.version >= vmbusmsg.VersionWin10V5_3 {
			s.send(&vmbusmsg.ModifyChannelResponse{ChildRelID: m.ChildRelID})
		}
	default:
		s.log.Warn("vmbus host: unsupported message", "type", t)
	}
}

// badGPADLHeader answers a GPADL_HEADER that failed to decode with a
// failed GPADL_CREATED, as OpenVMM reports every header error, when the
// relid and handle can be read.
func (b *bus) badGPADLHeader(p []byte) {
	if len(p) < 16 || vmbusmsg.MessageType(binary.LittleEndian.Uint32(p)) != vmbusmsg.MsgGPADLHeader {
		return
	}
	relid, id := binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:])
	if b.state != connected {
		return
	}
	if c := b.channel(relid); c != nil && c.rescinded {
		return
	}
	b.gpadlFailed(relid, id)
}

// onInitiateContact negotiates a version. A contact on a live connection
// resets the bus first (as QEMU does and OpenVMM's Reconnect action).
func (b *bus) onInitiateContact(m *vmbusmsg.InitiateContact) {
	if b.state == connected {
		b.reset(func() { b.negotiate(m) })
		return
	}
	b.negotiate(m)
}

func (b *bus) negotiate(m *vmbusmsg.InitiateContact) {
	s := b.s
	v := m.VersionRequested
	if !s.cfg.supports(v) || s.faults.refuses(v) {
		s.log.Info("vmbus host: guest requested unsupported version", "version", v)
		s.send(&vmbusmsg.VersionResponse{})
		return
	}
	resp := &vmbusmsg.VersionResponse{VersionSupported: 1, MsgConnID: uint32(v)}
	if v >= vmbusmsg.VersionWin10V5 {
		resp.MsgConnID = s.cfg.MessageConnID
	}
	var features vmbusmsg.FeatureFlags
	if v.HasFeatureFlags() {
		_, _, want := m.TargetInfo()
		features = want & s.cfg.Features
		resp.Form = vmbusmsg.VersionResponseForm2
		resp.SupportedFeatures = features
	}
	// Both monitor pages or neither (OpenVMM); below 2.4 a failure
	// cannot be reported and reads as "unsupported".
	if (m.MonitorPage1 == 0) != (m.MonitorPage2 == 0) {
		s.log.Warn("vmbus host: guest gave one monitor page of two")
		if v < vmbusmsg.VersionWin8 {
			s.send(&vmbusmsg.VersionResponse{})
			return
		}
		resp.ConnectionState = vmbusmsg.ConnectionFailedUnknownFailure
		s.send(resp)
		return
	}
	b.state, b.version, b.features, b.offersSent = connected, v, features, false
	b.targetVP = 0
	if v >= vmbusmsg.VersionWin8_1 {
		b.targetVP = m.TargetVCPU
	}
	s.log.Info("vmbus host: guest connected", "version", v, "features", features)
	s.send(resp)
}

// onUnload disconnects: every channel closes, then UNLOAD_RESPONSE.
func (b *bus) onUnload() {
	b.reset(func() { b.s.send(&vmbusmsg.UnloadResponse{}) })
}

// reset forgets the connection: every session is stopped, every relid
// and GPADL dropped, rescinded devices removed, subchannels dropped. next
// runs once every stopped session has exited; until then posts wait.
func (b *bus) reset(next func()) {
	b.stopAll()
	for _, d := range b.devices {
		keep := d.chans[:0]
		for _, c := range d.chans {
			c.relid, c.rescinded, c.reopen = 0, false, nil
			if c.sub == 0 && !c.gone {
				keep = append(keep, c)
			}
		}
		clear(d.chans[len(keep):])
		d.chans = keep
	}
	b.pruneDevices()
	clear(b.relids)
	b.dropAllGPADLs()
	b.state, b.version, b.features, b.offersSent = disconnected, 0, 0, false
	b.after = next
	b.checkAfter()
}

// checkAfter runs the pending reset continuation once no stopped session
// is still running.
func (b *bus) checkAfter() {
	if b.stopped == 0 && b.after != nil {
		f := b.after
		b.after = nil
		f()
	}
}

// stopAll stops every session.
func (b *bus) stopAll() {
	for _, d := range b.devices {
		for _, c := range d.chans {
			if c.ses != nil {
				b.stopSession(c.ses)
			}
		}
	}
}

// onRequestOffers offers every channel, then ALLOFFERS_DELIVERED.
func (b *bus) onRequestOffers() {
	if b.offersSent {
		b.s.log.Warn("vmbus host: offers requested twice")
		return
	}
	b.offersSent = true
	for _, d := range b.devices {
		if d.removed {
			continue
		}
		for _, c := range d.chans {
			b.offer(c)
		}
	}
	b.s.send(&vmbusmsg.AllOffersDelivered{})
}

// offer assigns c the lowest free relid and sends OFFERCHANNEL.
func (b *bus) offer(c *channel) {
	if c.relid != 0 || c.gone {
		return
	}
	for r := 1; r < len(b.relids); r++ {
		if b.relids[r] == nil {
			b.relids[r], c.relid = c, uint32(r)
			b.s.send(b.offerMsg(c))
			return
		}
	}
	b.s.log.Error("vmbus host: out of relids, channel not offered", "subchannel", c.sub)
}

func (b *bus) offerMsg(c *channel) *vmbusmsg.OfferChannel {
	o := &c.dev.offer
	return &vmbusmsg.OfferChannel{
		InterfaceType:         o.Class,
		InterfaceInstance:     o.Instance,
		Flags:                 o.Flags,
		MMIOMegabytes:         o.MMIOMegabytes,
		UserDefined:           o.UserDefined,
		SubChannelIndex:       c.sub,
		MMIOMegabytesOptional: o.MMIOMegabytesOptional,
		ChildRelID:            c.relid,
		MonitorID:             vmbusmsg.NoMonitor,
		DedicatedInterrupt:    1,
		ConnectionID:          b.s.cfg.ConnIDs.connID(c.relid),
	}
}

// rescind withdraws c: RESCIND_CHANNELOFFER if the guest knows it (the
// relid stays taken until RELID_RELEASED), and its session stops without
// answering an OPEN still in flight. A channel the guest never saw goes
// at once.
func (b *bus) rescind(c *channel) {
	c.gone = true
	if c.ses != nil {
		b.stopSession(c.ses)
	}
	c.reopen = nil
	if c.relid == 0 {
		b.removeChannel(c)
		return
	}
	if !c.rescinded {
		c.rescinded = true
		b.s.send(&vmbusmsg.RescindChannelOffer{ChildRelID: c.relid})
	}
}

// onRelIDReleased frees a rescinded channel's relid.
func (b *bus) onRelIDReleased(m *vmbusmsg.RelIDReleased) {
	c := b.channel(m.ChildRelID)
	if c == nil || !c.rescinded {
		b.s.log.Warn("vmbus host: RELID_RELEASED for a channel not rescinded", "relid", m.ChildRelID)
		return
	}
	b.dropChannelGPADLs(c)
	b.relids[c.relid] = nil
	c.relid, c.rescinded = 0, false
	if c.gone {
		b.removeChannel(c)
	}
}

// removeChannel takes c off its device; a removed device with no
// channels left is forgotten and its Rescind waiters released.
func (b *bus) removeChannel(c *channel) {
	d := c.dev
	for i, x := range d.chans {
		if x == c {
			d.chans = append(d.chans[:i], d.chans[i+1:]...)
			break
		}
	}
	b.pruneDevices()
}

func (b *bus) pruneDevices() {
	keep := b.devices[:0]
	for _, d := range b.devices {
		if d.removed && len(d.chans) == 0 {
			close(d.released)
			continue
		}
		keep = append(keep, d)
	}
	clear(b.devices[len(keep):])
	b.devices = keep
}

// dropSubchannels withdraws every subchannel of d (when its primary
// closes: subchannels belong to the primary's open session).
func (b *bus) dropSubchannels(d *devEntry) {
	for i := len(d.chans) - 1; i >= 0; i-- {
		if c := d.chans[i]; c.sub != 0 && !c.gone {
			b.rescind(c)
		}
	}
}
