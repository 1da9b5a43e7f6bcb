package netvsp_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// The tests play a netvsc guest by hand: VMBus messages through the synic
// pair, NVSP and RNDIS through hyperv/ring rings on simulated RAM.

const waitTimeout = 5 * time.Second

var guestMAC = vswitch.MAC{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}

type env struct {
	t    *testing.T
	srv  *host.Server
	port synic.GuestPort
	ram  *kernel.SimRAM
	sw   *vswitch.Switch
	dev  *netvsp.Device
	conn uint32
}

func newEnv(t *testing.T, cfg netvsp.Config) *env {
	t.Helper()
	ram := kernel.NewSimRAM(1024)
	srv, err := host.NewServer(host.Config{Memory: ram})
	if err != nil {
		t.Fatal(err)
	}
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sw := vswitch.New(vswitch.Config{NoAger: true})
	t.Cleanup(sw.Close)
	if cfg.MAC.IsZero() {
		cfg.MAC = guestMAC
	}
	cfg.Switch = sw
	dev, err := netvsp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, port: pair.Guest(), ram: ram, sw: sw, dev: dev, conn: 1}
}

func (e *env) post(m vmbusmsg.Message) {
	e.t.Helper()
	if err := e.port.PostMessage(e.conn, uint32(tlfs.MsgVMBus), m.Encode()); err != nil {
		e.t.Fatalf("post %s: %v", m.Type(), err)
	}
}

func (e *env) recv() vmbusmsg.Message {
	e.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	var sm synic.Message
	for {
		if e.port.TakeMessage(&sm) {
			m, err := vmbusmsg.DecodeFromHost(sm.Bytes())
			if err != nil {
				e.t.Fatal(err)
			}
			return m
		}
		select {
		case <-e.port.Interrupt():
		case <-deadline.C:
			e.t.Fatal("no message from the host")
		}
	}
}

func expectMsg[T vmbusmsg.Message](e *env) T {
	e.t.Helper()
	m := e.recv()
	x, ok := m.(T)
	if !ok {
		e.t.Fatalf("got %s, want %T", m.Type(), x)
	}
	return x
}

// guest is a scripted netvsc guest on the NIC's primary channel.
type guest struct {
	e       *env
	t       *testing.T
	offer   *vmbusmsg.OfferChannel
	out     *ring.Writer
	in      *ring.Reader
	tid     uint64
	nextID  uint32
	version nvsp.Version

	recvBuf, sendBuf *kernel.Region
	slotSize         int
	sectionSize      int
	scratch          *kernel.Region // a page for GPA-direct control messages
	rid              uint32
	pending          []hostPacket // packets read while waiting for something else
}

// hostPacket is a packet from the host, copied out of the ring.
type hostPacket struct {
	ring.Descriptor
	Ranges  []ring.XferRange
	SetID   uint16
	Payload []byte
}

// connect negotiates VMBus, finds the NIC's offer and opens it.
func (e *env) connect() *guest {
	e.t.Helper()
	v := vmbusmsg.VersionWin10V5_3
	ic := &vmbusmsg.InitiateContact{VersionRequested: v}
	ic.SetTargetInfo(2, 0, 0)
	if err := e.port.PostMessage(v.InitiateContactConnectionID(), uint32(tlfs.MsgVMBus), ic.Encode()); err != nil {
		e.t.Fatal(err)
	}
	r := expectMsg[*vmbusmsg.VersionResponse](e)
	e.conn = r.MsgConnID
	e.post(&vmbusmsg.RequestOffers{})
	var offer *vmbusmsg.OfferChannel
	for offer == nil {
		switch m := e.recv().(type) {
		case *vmbusmsg.OfferChannel:
			if m.InterfaceType == tlfs.GUIDNetwork {
				offer = m
			}
		case *vmbusmsg.AllOffersDelivered:
			e.t.Fatal("no network offer")
		}
	}
	for {
		if _, ok := e.recv().(*vmbusmsg.AllOffersDelivered); ok {
			break
		}
	}
	region, err := e.ram.Alloc(8)
	if err != nil {
		e.t.Fatal(err)
	}
	first, second, err := ring.SplitPair(region.Bytes, 4)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range []ring.Memory{first, second} {
		ring.InitControl(m.Control)
	}
	g := &guest{e: e, t: e.t, offer: offer, nextID: 0x100}
	g.gpadl(region)
	e.post(&vmbusmsg.OpenChannel{ChildRelID: offer.ChildRelID, OpenID: offer.ChildRelID, RingBufferGPADL: g.nextID - 1,
		DownstreamRingBufferPageOffset: 4})
	if res := expectMsg[*vmbusmsg.OpenChannelResult](e); res.Status != 0 {
		e.t.Fatalf("open: %+v", res)
	}
	g.out, _ = ring.NewWriter(first.Control, first.Data)
	g.in, _ = ring.NewReader(second.Control, second.Data, nil)
	g.scratch, _ = e.ram.Alloc(2)
	return g
}

// gpadl creates a GPADL over region and returns its id.
func (g *guest) gpadl(region *kernel.Region) uint32 {
	g.t.Helper()
	id := g.nextID
	g.nextID++
	h, bodies, err := vmbusmsg.SplitGPADL(g.offer.ChildRelID, id, []gpa.Range{vmbusmsg.PageRange(region.PFNs)})
	if err != nil {
		g.t.Fatal(err)
	}
	g.e.post(h)
	for _, b := range bodies {
		g.e.post(b)
	}
	if c := expectMsg[*vmbusmsg.GPADLCreated](g.e); c.CreationStatus != 0 {
		g.t.Fatalf("GPADL: %+v", c)
	}
	return id
}

func (g *guest) signal() { g.e.port.SignalEvent(g.offer.ConnectionID) }

func (g *guest) write(fn func(w *ring.Writer) error) {
	g.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := fn(g.out)
		if err == nil {
			break
		}
		if !errors.Is(err, ring.ErrFull) || time.Now().After(deadline) {
			g.t.Fatal(err)
		}
		if g.out.Commit() {
			g.signal()
		}
		g.wait()
	}
	if g.out.Commit() {
		g.signal()
	}
}

func (g *guest) wait() {
	select {
	case <-g.e.port.Interrupt():
	case <-time.After(time.Millisecond):
	}
	g.e.port.ScanEvents(func(uint32) {})
}

// sendNVSP sends m in-band (40 bytes, as Linux) and returns its trans id.
func (g *guest) sendNVSP(m nvsp.Message, completion bool) uint64 {
	g.tid++
	id := g.tid
	b := nvsp.AppendPadded(nil, m, nvsp.GuestMessageSize)
	g.write(func(w *ring.Writer) error { return w.WriteInBand(id, completion, b) })
	return id
}

// sendRaw sends raw bytes in-band with a completion requested.
func (g *guest) sendRaw(b []byte) uint64 {
	g.tid++
	id := g.tid
	g.write(func(w *ring.Writer) error { return w.WriteInBand(id, true, b) })
	return id
}

// read returns the next packet from the host.
func (g *guest) read(d time.Duration) (hostPacket, bool) {
	g.t.Helper()
	if len(g.pending) > 0 {
		p := g.pending[0]
		g.pending = g.pending[1:]
		return p, true
	}
	deadline := time.Now().Add(d)
	var p ring.Packet
	for {
		err := g.in.Next(&p)
		if err == nil {
			hp := hostPacket{Descriptor: p.Descriptor, Payload: append([]byte(nil), p.Payload...)}
			if p.Type == ring.TypeXferPages {
				hp.Ranges = p.AppendXferRanges(nil)
				hp.SetID = p.XferSetID
			}
			if g.in.Commit() {
				g.signal()
			}
			return hp, true
		}
		if err != ring.ErrEmpty {
			g.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			return hostPacket{}, false
		}
		g.wait()
	}
}

func (g *guest) mustRead() hostPacket {
	g.t.Helper()
	p, ok := g.read(waitTimeout)
	if !ok {
		g.t.Fatal("no packet from the host")
	}
	return p
}

// completion waits for the completion of id, keeping other packets.
func (g *guest) completion(id uint64) []byte {
	g.t.Helper()
	var skipped []hostPacket
	defer func() { g.pending = append(skipped, g.pending...) }()
	for {
		p := g.mustRead()
		if p.Type == ring.TypeCompletion && p.TransID == id {
			return p.Payload
		}
		skipped = append(skipped, p)
	}
}

func decodeHost[T nvsp.Message](g *guest, b []byte) T {
	g.t.Helper()
	m, err := nvsp.DecodeFromHost(b, g.version)
	if err != nil {
		g.t.Fatalf("decode % x: %v", b, err)
	}
	x, ok := m.(T)
	if !ok {
		g.t.Fatalf("got %s, want %T", m.Type(), x)
	}
	return x
}

// init runs INIT for v and returns the completion.
func (g *guest) init(v nvsp.Version) *nvsp.InitComplete {
	g.t.Helper()
	id := g.sendNVSP(nvsp.NewInit(v), true)
	b := g.completion(id)
	c := decodeHost[*nvsp.InitComplete](g, b)
	if c.Status == nvsp.StatusSuccess {
		g.version = v
		if len(b) != (nvsp.HostMessageSize(v)+7)&^7 { // the ring pads to 8
			g.t.Fatalf("INIT_COMPLETE is %d bytes at %v", len(b), v)
		}
	}
	return c
}

// attach runs the Linux attach sequence up to the buffers.
func (g *guest) attach(v nvsp.Version, caps nvsp.Capabilities, recvPages, sendPages int) {
	g.t.Helper()
	if c := g.init(v); c.Status != nvsp.StatusSuccess {
		g.t.Fatalf("INIT %v: %+v", v, c)
	}
	g.sendNVSP(&nvsp.SendNDISConfig{MTU: 1514, Capabilities: caps}, false)
	g.sendNVSP(nvsp.NewSendNDISVersion(v.NDIS()), false)
	var err error
	g.recvBuf, err = g.e.ram.Alloc(recvPages)
	if err != nil {
		g.t.Fatal(err)
	}
	var rb nvsp.SendReceiveBuffer
	rb.GPADL, rb.ID = g.gpadl(g.recvBuf), nvsp.ReceiveBufferID
	rc := decodeHost[*nvsp.SendReceiveBufferComplete](g, g.completion(g.sendNVSP(&rb, true)))
	if err := rc.Check(uint32(len(g.recvBuf.Bytes))); err != nil {
		g.t.Fatalf("receive buffer: %+v: %v", rc, err)
	}
	g.slotSize = int(rc.Section.SubAllocSize)
	g.sendBuf, err = g.e.ram.Alloc(sendPages)
	if err != nil {
		g.t.Fatal(err)
	}
	var sb nvsp.SendSendBuffer
	sb.GPADL, sb.ID = g.gpadl(g.sendBuf), nvsp.SendBufferIDLinux
	sc := decodeHost[*nvsp.SendSendBufferComplete](g, g.completion(g.sendNVSP(&sb, true)))
	if _, err := sc.Sections(uint32(len(g.sendBuf.Bytes))); err != nil || sc.Status != nvsp.StatusSuccess {
		g.t.Fatalf("send buffer: %+v: %v", sc, err)
	}
	g.sectionSize = int(sc.SectionSize)
}

// control sends an RNDIS control message GPA-direct, as Linux does, and
// returns the host's NVSP completion status.
func (g *guest) controlRaw(msg []byte) nvsp.Status {
	g.t.Helper()
	copy(g.scratch.Bytes, msg)
	r := []gpa.Range{{ByteCount: uint32(len(msg)), PFNs: g.scratch.PFNs[:1]}}
	nv := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelControl, SectionIndex: nvsp.NoSection}, nvsp.GuestMessageSize)
	g.tid++
	id := g.tid
	g.write(func(w *ring.Writer) error { return w.WriteGPADirect(id, true, r, nv) })
	c := decodeHost[*nvsp.SendRNDISPacketComplete](g, g.completion(id))
	return c.Status
}

// rndisReply reads the next control transfer-page packet, completes it and
// decodes its RNDIS message.
func (g *guest) rndisReply() rndis.Message {
	g.t.Helper()
	for {
		p := g.mustRead()
		if p.Type != ring.TypeXferPages {
			g.t.Fatalf("got %v packet, want transfer pages", p.Type)
		}
		rp := decodeHost[*nvsp.SendRNDISPacket](g, p.Payload)
		if rp.ChannelType != nvsp.ChannelControl {
			g.pending = append(g.pending, p)
			continue
		}
		if len(p.Ranges) != 1 || p.SetID != nvsp.ReceiveBufferID {
			g.t.Fatalf("control packet ranges %v set %#x", p.Ranges, p.SetID)
		}
		g.completeRx(p.TransID)
		m, err := rndis.DecodeFromHost(g.rangeBytes(p.Ranges[0]))
		if err != nil {
			g.t.Fatal(err)
		}
		return m
	}
}

func (g *guest) rangeBytes(r ring.XferRange) []byte {
	g.t.Helper()
	if int(r.ByteOffset)+int(r.ByteCount) > len(g.recvBuf.Bytes) || int(r.ByteCount) > g.slotSize {
		g.t.Fatalf("range %+v outside the receive buffer", r)
	}
	return append([]byte(nil), g.recvBuf.Bytes[r.ByteOffset:r.ByteOffset+r.ByteCount]...)
}

func (g *guest) completeRx(id uint64) {
	b := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacketComplete{Status: nvsp.StatusSuccess}, 8)
	g.write(func(w *ring.Writer) error { return w.WriteCompletion(id, b) })
}

// request sends an RNDIS request and returns the reply.
func (g *guest) request(m rndis.Message) rndis.Message {
	g.t.Helper()
	if st := g.controlRaw(m.AppendTo(nil)); st != nvsp.StatusSuccess {
		g.t.Fatalf("%s: NVSP status %v", m.Type(), st)
	}
	return g.rndisReply()
}

func (g *guest) rndisInit() *rndis.InitializeComplete {
	g.t.Helper()
	g.rid++
	r := g.request(&rndis.Initialize{RequestID: g.rid, MajorVersion: 1, MaxTransferSize: 0x4000})
	ic, ok := r.(*rndis.InitializeComplete)
	if !ok || ic.RequestID != g.rid {
		g.t.Fatalf("INITIALIZE reply %+v", r)
	}
	return ic
}

func (g *guest) query(oid rndis.OID, in []byte) *rndis.QueryComplete {
	g.t.Helper()
	g.rid++
	r := g.request(rndis.NewQuery(g.rid, oid, in))
	qc, ok := r.(*rndis.QueryComplete)
	if !ok || qc.RequestID != g.rid {
		g.t.Fatalf("QUERY reply %+v", r)
	}
	return qc
}

func (g *guest) set(oid rndis.OID, v []byte) rndis.Status {
	g.t.Helper()
	g.rid++
	r := g.request(rndis.NewSet(g.rid, oid, v))
	sc, ok := r.(*rndis.SetComplete)
	if !ok || sc.RequestID != g.rid {
		g.t.Fatalf("SET reply %+v", r)
	}
	return sc.Status
}
