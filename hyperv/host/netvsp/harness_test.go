package netvsp_test

import (
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host/hosttest"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// The tests play a netvsc guest by hand (hyperv/host/hosttest): VMBus
// messages through the synic pair, NVSP and RNDIS through hyperv/ring
// rings on simulated RAM.

const waitTimeout = hosttest.Timeout

var guestMAC = vswitch.MAC{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}

type env struct {
	*hosttest.Guest
	t   *testing.T
	sw  *vswitch.Switch
	dev *netvsp.Device
}

func newEnv(t *testing.T, cfg netvsp.Config) *env {
	t.Helper()
	g := hosttest.New(t, 1024)
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
	if err := g.Srv.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	return &env{Guest: g, t: t, sw: sw, dev: dev}
}

func expectMsg[T vmbusmsg.Message](e *env) T { e.t.Helper(); return hosttest.Expect[T](e.Guest) }

// guest is a scripted netvsc guest on the NIC's primary channel.
type guest struct {
	*hosttest.Channel
	e       *env
	t       *testing.T
	nextID  uint32 // the next GPADL id
	version nvsp.Version

	recvBuf, sendBuf *kernel.Region
	slotSize         int
	sectionSize      int
	scratch          *kernel.Region // a page for GPA-direct control messages
	rid              uint32
}

type hostPacket = hosttest.Packet

// connect negotiates VMBus, finds the NIC's offer and opens it.
func (e *env) connect() *guest {
	e.t.Helper()
	offer := e.Connect(tlfs.GUIDNetwork)
	g := &guest{Channel: e.Open(offer, 0x100, 4), e: e, t: e.t, nextID: 0x101}
	g.scratch, _ = e.RAM.Alloc(2)
	return g
}

// gpadl creates a GPADL over region and returns its id.
func (g *guest) gpadl(region *kernel.Region) uint32 {
	g.t.Helper()
	id := g.nextID
	g.nextID++
	g.e.GPADL(g.Offer.ChildRelID, id, region)
	return id
}

// sendNVSP sends m in-band (40 bytes, as Linux) and returns its trans id.
func (g *guest) sendNVSP(m nvsp.Message, completion bool) uint64 {
	return g.SendInBand(nvsp.AppendPadded(nil, m, nvsp.GuestMessageSize), completion)
}

// sendRaw sends raw bytes in-band with a completion requested.
func (g *guest) sendRaw(b []byte) uint64 { return g.SendInBand(b, true) }

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
	b := g.Completion(id)
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
	g.recvBuf, err = g.e.RAM.Alloc(recvPages)
	if err != nil {
		g.t.Fatal(err)
	}
	var rb nvsp.SendReceiveBuffer
	rb.GPADL, rb.ID = g.gpadl(g.recvBuf), nvsp.ReceiveBufferID
	rc := decodeHost[*nvsp.SendReceiveBufferComplete](g, g.Completion(g.sendNVSP(&rb, true)))
	if err := rc.Check(uint32(len(g.recvBuf.Bytes))); err != nil {
		g.t.Fatalf("receive buffer: %+v: %v", rc, err)
	}
	g.slotSize = int(rc.Section.SubAllocSize)
	g.sendBuf, err = g.e.RAM.Alloc(sendPages)
	if err != nil {
		g.t.Fatal(err)
	}
	var sb nvsp.SendSendBuffer
	sb.GPADL, sb.ID = g.gpadl(g.sendBuf), nvsp.SendBufferIDLinux
	sc := decodeHost[*nvsp.SendSendBufferComplete](g, g.Completion(g.sendNVSP(&sb, true)))
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
	g.TID++
	id := g.TID
	g.Write(func(w *ring.Writer) error { return w.WriteGPADirect(id, true, r, nv) })
	c := decodeHost[*nvsp.SendRNDISPacketComplete](g, g.Completion(id))
	return c.Status
}

// rndisReply reads the next control transfer-page packet, completes it and
// decodes its RNDIS message.
func (g *guest) rndisReply() rndis.Message {
	g.t.Helper()
	for {
		p := g.MustRead()
		if p.Type != ring.TypeXferPages {
			g.t.Fatalf("got %v packet, want transfer pages", p.Type)
		}
		rp := decodeHost[*nvsp.SendRNDISPacket](g, p.Payload)
		if rp.ChannelType != nvsp.ChannelControl {
			g.Pending = append(g.Pending, p)
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
	g.Write(func(w *ring.Writer) error { return w.WriteCompletion(id, b) })
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
