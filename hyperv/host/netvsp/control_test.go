package netvsp_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/ring"
)

func TestAttachAndQueries(t *testing.T) {
	e := newEnv(t, netvsp.Config{})
	g := e.connect()
	c := g.init(nvsp.Version61)
	if c.Status != nvsp.StatusSuccess || c.NegotiatedVersion != nvsp.VersionInvalid || c.MaxMDLChainLength != 34 {
		t.Fatalf("INIT_COMPLETE %+v", c)
	}
	g.version = 0
	// A second INIT before the buffers renegotiates; then the Linux sequence.
	g.attach(nvsp.Version61, nvsp.GuestCapabilities(nvsp.Version61, false), 32, 16)
	st := e.dev.State()
	if st.Version != nvsp.Version61 || st.NDIS != nvsp.NDIS630 || st.MTU != 1514 || !st.Config ||
		st.RecvSlotSize != 256+1514+36 || st.RecvSlots != 32*4096/1806 || st.SendSectionSize != 6144 || st.SendSections != 10 {
		t.Fatalf("state %+v", st)
	}
	ic := g.rndisInit()
	if ic.Status != rndis.StatusSuccess || ic.MajorVersion != 1 || ic.DeviceFlags != 1 || ic.Medium != 0 ||
		ic.MaxPacketsPerMessage != 8 || ic.MaxTransferSize != 0xEFFFFFFF || ic.PacketAlignmentFactor != 3 {
		t.Fatalf("INITIALIZE_CMPLT %+v", ic)
	}
	u32 := func(q *rndis.QueryComplete) uint32 {
		t.Helper()
		if q.Status != rndis.StatusSuccess || len(q.Info) != 4 {
			t.Fatalf("query %+v", q)
		}
		return binary.LittleEndian.Uint32(q.Info)
	}
	if v := u32(g.query(rndis.OIDGenMaximumFrameSize, nil)); v != 1500 {
		t.Errorf("max frame size %d", v)
	}
	if v := u32(g.query(rndis.OIDGenMaximumTotalSize, nil)); v != 1514 {
		t.Errorf("max total size %d", v)
	}
	if v := u32(g.query(rndis.OIDGenLinkSpeed, nil)); v != 100_000_000 {
		t.Errorf("link speed %d", v)
	}
	if v := u32(g.query(rndis.OIDGenMediaConnectStatus, nil)); v != 0 {
		t.Errorf("media status %d", v)
	}
	if v := u32(g.query(rndis.OIDGenVendorID, nil)); v != 0x155D {
		t.Errorf("vendor %#x", v)
	}
	if q := g.query(rndis.OID8023PermanentAddress, nil); q.Status != 0 || [6]byte(q.Info) != guestMAC {
		t.Errorf("MAC %+v", q)
	}
	if q := g.query(rndis.OIDGenFriendlyName, nil); q.Status != 0 || len(q.Info) < 4 || q.Info[0] != 'N' {
		t.Errorf("friendly name %+v", q)
	}
	q := g.query(rndis.OIDTCPOffloadHardwareCapabilities, rndis.OffloadHeader(3).AppendTo(nil))
	off, err := rndis.DecodeOffload(q.Info)
	if q.Status != 0 || err != nil || off.Header.Revision != 3 || off.LSOv2.IPv4MaxSize != 0xF53C || off.LSOv2.IPv4MinSegments != 2 ||
		off.Checksum.IPv4TxFlags&rndis.CsumTCP == 0 || off.Checksum.IPv6RxFlags&rndis.CsumUDP == 0 {
		t.Errorf("offload caps %+v %v", off, err)
	}
	q = g.query(rndis.OIDGenReceiveScaleCapabilities, rndis.RSSCapabilitiesHeader.AppendTo(nil))
	rc, err := rndis.DecodeRSSCapabilities(q.Info)
	if err != nil || rc.NumReceiveQueues != 1 || rc.NumIndirectionEntries != 128 {
		t.Errorf("RSS caps %+v %v", rc, err)
	}
	if q := g.query(rndis.OIDGenMachineName, nil); q.Status != rndis.StatusNotSupported || len(q.Info) != 0 {
		t.Errorf("unknown OID answered %+v", q)
	}
	// The Hyper-V quirk: info_buf_offset 0 fails the query.
	raw := rndis.NewQuery(77, rndis.OIDGenMaximumFrameSize, nil).AppendTo(nil)
	binary.LittleEndian.PutUint32(raw[20:], 0)
	if st := g.controlRaw(raw); st != nvsp.StatusSuccess {
		t.Fatalf("NVSP status %v", st)
	}
	if r, ok := g.rndisReply().(*rndis.QueryComplete); !ok || r.RequestID != 77 || r.Status == rndis.StatusSuccess {
		t.Errorf("offset-0 query answered %+v", r)
	}

	// Sets.
	if st := g.set(rndis.OIDGenCurrentPacketFilter, binary.LittleEndian.AppendUint32(nil, uint32(rndis.PacketFilterDefault))); st != 0 {
		t.Errorf("packet filter: %v", st)
	}
	if st := g.set(rndis.OIDGenCurrentPacketFilter, []byte{1}); st != rndis.StatusInvalidLength {
		t.Errorf("short packet filter: %v", st)
	}
	op := rndis.NewOffloadParameters(3)
	op.TCPIPv4Checksum, op.LSOv2IPv4 = rndis.OffloadTxRxEnabled, rndis.OffloadEnabled
	if st := g.set(rndis.OIDTCPOffloadParameters, op.Encode()); st != 0 {
		t.Errorf("offload parameters: %v", st)
	}
	ind, ok := g.rndisReply().(*rndis.IndicateStatus)
	if !ok || ind.Status != rndis.StatusTaskOffloadCurrentConfig {
		t.Fatalf("after offload set: %+v", ind)
	}
	if cur, err := rndis.DecodeOffload(ind.Buffer); err != nil || cur.LSOv2.IPv4MaxSize == 0 || cur.LSOv2.IPv6MaxSize != 0 {
		t.Errorf("current offload %+v %v", cur, err)
	}
	if st := g.set(rndis.OIDTCPOffloadParameters, []byte{1, 2}); st != rndis.StatusInvalidData {
		t.Errorf("bad offload parameters: %v", st)
	}
	mc := []byte{0x01, 0, 0x5e, 0, 0, 1, 0x33, 0x33, 0, 0, 0, 1}
	if st := g.set(rndis.OID8023MulticastList, mc); st != 0 {
		t.Errorf("multicast list: %v", st)
	}
	if st := g.set(rndis.OIDGenReceiveScaleParameters, rndis.NewRSSParameters(1).Encode()); st != 0 {
		t.Errorf("RSS parameters: %v", st)
	}
	if st := g.set(rndis.OIDGenReceiveScaleParameters, rndis.NewRSSParameters(4).Encode()); st != rndis.StatusInvalidData {
		t.Errorf("RSS over 4 queues on a 1-queue NIC: %v", st)
	}
	newMAC := [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	if st := g.set(rndis.OIDGenRNDISConfigParameter, rndis.NewMACAddressParameter(newMAC).Encode()); st != 0 {
		t.Errorf("MAC change: %v", st)
	}
	if st := g.set(rndis.OIDGenMachineName, nil); st != rndis.StatusNotSupported {
		t.Errorf("unknown set: %v", st)
	}
	var ka rndis.KeepAlive
	ka.RequestID = 99
	if r, ok := g.request(&ka).(*rndis.KeepAliveComplete); !ok || r.RequestID != 99 || r.Status != 0 {
		t.Errorf("keepalive %+v", r)
	}
	st = e.dev.State()
	if st.RNDIS != netvsp.RNDISInitialized || st.PacketFilter != rndis.PacketFilterDefault || len(st.Multicast) != 2 ||
		st.Offload.LSOv2IPv4 != rndis.OffloadEnabled || st.RSS == nil || st.CurrentMAC != newMAC {
		t.Fatalf("state %+v", st)
	}
	if q := g.query(rndis.OID8023CurrentAddress, nil); [6]byte(q.Info) != newMAC {
		t.Errorf("current address %x", q.Info)
	}
	// HALT has no RNDIS reply.
	var h rndis.Halt
	h.RequestID = 100
	if st := g.controlRaw(h.AppendTo(nil)); st != nvsp.StatusSuccess {
		t.Fatalf("HALT: %v", st)
	}
	if p, ok := g.Read(50 * time.Millisecond); ok {
		t.Fatalf("HALT answered: %+v", p)
	}
	if e.dev.State().RNDIS != netvsp.RNDISHalted {
		t.Fatal("not halted")
	}
	if s := e.dev.Stats(); s.Errors != 0 {
		t.Fatalf("errors %+v", s)
	}
}

// An old host (NVSP 2, NDIS 6.1 only) refuses newer versions with status
// NONE and speaks 28-byte messages.
func TestOldHost(t *testing.T) {
	e := newEnv(t, netvsp.Config{Versions: []nvsp.Version{nvsp.Version2}, MaxNDIS: nvsp.NDIS61})
	g := e.connect()
	for _, v := range []nvsp.Version{nvsp.Version61, nvsp.Version6, nvsp.Version5, nvsp.Version4} {
		if c := g.init(v); c.Status != nvsp.StatusNone {
			t.Fatalf("INIT %v: %+v", v, c)
		}
	}
	g.attach(nvsp.Version2, nvsp.GuestCapabilities(nvsp.Version2, false), 32, 16)
	if st := e.dev.State(); st.NDIS != nvsp.NDIS61 || st.Version != nvsp.Version2 {
		t.Fatalf("state %+v", st)
	}
	g.rndisInit()
	q := g.query(rndis.OIDTCPOffloadHardwareCapabilities, rndis.OffloadHeader(3).AppendTo(nil))
	if off, err := rndis.DecodeOffload(q.Info); err != nil || off.Header.Revision != 2 {
		t.Fatalf("NDIS 6.1 offload caps: %+v %v", off, err)
	}
	if e.dev.Stats().Errors != 0 {
		t.Fatalf("stats %+v", e.dev.Stats())
	}
}

func TestNDISConfigRequiredBeforeReceiveBuffer(t *testing.T) {
	e := newEnv(t, netvsp.Config{})
	g := e.connect()
	g.init(nvsp.Version5)
	region, _ := e.RAM.Alloc(32)
	var rb nvsp.SendReceiveBuffer
	rb.GPADL, rb.ID = g.gpadl(region), nvsp.ReceiveBufferID
	if c := decodeHost[*nvsp.SendReceiveBufferComplete](g, g.Completion(g.sendNVSP(&rb, true))); c.Status != nvsp.StatusFailure {
		t.Fatalf("receive buffer without NDIS config: %+v", c)
	}
	// A GPADL that does not exist.
	g.sendNVSP(&nvsp.SendNDISConfig{MTU: 1514}, false)
	rb.GPADL = 0xdead
	if c := decodeHost[*nvsp.SendReceiveBufferComplete](g, g.Completion(g.sendNVSP(&rb, true))); c.Status != nvsp.StatusFailure {
		t.Fatalf("receive buffer on a bad GPADL: %+v", c)
	}
}

func TestLinkFlap(t *testing.T) {
	e := newEnv(t, netvsp.Config{})
	g := e.connect()
	g.attach(nvsp.Version61, 0, 32, 16)
	g.rndisInit()
	e.dev.SetLink(false)
	if ind, ok := g.rndisReply().(*rndis.IndicateStatus); !ok || ind.Status != rndis.StatusMediaDisconnect {
		t.Fatalf("link down: %+v", ind)
	}
	if q := g.query(rndis.OIDGenMediaConnectStatus, nil); binary.LittleEndian.Uint32(q.Info) != uint32(rndis.MediaDisconnected) {
		t.Fatalf("media status %x", q.Info)
	}
	if e.dev.SwitchPort().LinkUp() {
		t.Fatal("switch port still up")
	}
	e.dev.SetLink(false) // no change, no indication
	e.dev.SetLink(true)
	if ind, ok := g.rndisReply().(*rndis.IndicateStatus); !ok || ind.Status != rndis.StatusMediaConnect {
		t.Fatalf("link up: %+v", ind)
	}
}

func TestVFAssociation(t *testing.T) {
	e := newEnv(t, netvsp.Config{})
	e.dev.SetVF(true, 7)
	g := e.connect()
	g.attach(nvsp.Version5, nvsp.GuestCapabilities(nvsp.Version5, false), 32, 16)
	g.rndisInit()
	p := g.MustRead()
	va := decodeHost[*nvsp.SendVFAssociation](g, p.Payload)
	if p.Type != ring.TypeInBand || !p.CompletionRequested() || p.TransID != 0x8000000000000000 || !va.Allocated || va.Serial != 7 {
		t.Fatalf("VF association %+v %+v", p.Descriptor, va)
	}
	if len(p.Payload) < nvsp.MessageSizeV1 {
		t.Fatalf("VF association is %d bytes", len(p.Payload))
	}
	// The guest switches to the VF: an empty completion.
	id := g.sendNVSP(&nvsp.SwitchDataPath{DataPath: nvsp.DataPathVF}, true)
	if b := g.Completion(id); len(b) != 0 {
		t.Fatalf("SWITCH_DATA_PATH completion carries % x", b)
	}
	if e.dev.State().DataPath != nvsp.DataPathVF {
		t.Fatal("data path not recorded")
	}
	// The VF goes away while in use: switch back, then disassociate.
	e.dev.SetVF(false, 7)
	p = g.MustRead()
	if sp := decodeHost[*nvsp.SwitchDataPath](g, p.Payload); sp.DataPath != nvsp.DataPathSynthetic || p.TransID != 0x8000000000000001 {
		t.Fatalf("host switch %+v", sp)
	}
	p = g.MustRead()
	if va := decodeHost[*nvsp.SendVFAssociation](g, p.Payload); va.Allocated || va.Serial != 7 {
		t.Fatalf("disassociation %+v", va)
	}
	// Guest completions of host requests are tolerated.
	g.Write(func(w *ring.Writer) error { return w.WriteCompletion(0x8000000000000000, nil) })
	e.dev.SetVF(true, 9)
	if va := decodeHost[*nvsp.SendVFAssociation](g, g.MustRead().Payload); !va.Allocated || va.Serial != 9 {
		t.Fatalf("re-association %+v", va)
	}
	if e.dev.Stats().Errors != 0 {
		t.Fatalf("stats %+v", e.dev.Stats())
	}
}

func TestNoVFWithoutSRIOV(t *testing.T) {
	e := newEnv(t, netvsp.Config{})
	e.dev.SetVF(true, 7)
	g := e.connect()
	g.attach(nvsp.Version5, nvsp.CapIEEE8021Q, 32, 16)
	g.rndisInit()
	if p, ok := g.Read(50 * time.Millisecond); ok {
		t.Fatalf("host sent %+v to a guest without SR-IOV", p.Descriptor)
	}
}
