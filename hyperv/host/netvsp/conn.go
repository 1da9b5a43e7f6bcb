package netvsp

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/net/packet"
)

// RNDISState is the RNDIS device state.
type RNDISState uint8

const (
	RNDISUninitialized RNDISState = iota
	RNDISInitialized
	RNDISHalted
)

// State is what the guest negotiated, as State reports it.
type State struct {
	Version      nvsp.Version
	NDIS         nvsp.NDISVersion
	MTU          uint32 // L2, from NDIS config (DefaultMTU without one)
	Capabilities nvsp.Capabilities
	Config       bool // NDIS config received

	RecvBufferSize, RecvSlotSize, RecvSlots int
	RecvBufferID                            uint16
	RecvInFlight                            int // slots the guest has not completed yet
	SendBufferSize, SendSectionSize         int
	SendSections                            int
	SendBufferID                            uint16
	Revoked                                 bool // a buffer was revoked: the channel is done

	RNDIS        RNDISState
	PacketFilter rndis.PacketFilter
	Offload      rndis.OffloadParameters
	Multicast    [][6]byte
	RSS          *rndis.RSSParameters
	CurrentMAC   [6]byte

	DataPath     nvsp.DataPath
	VFAdvertised bool
	VFSerial     uint32
}

type state struct {
	State
}

func (s *state) snapshot() State {
	out := s.State
	out.Multicast = append([][6]byte(nil), s.Multicast...)
	if s.RSS != nil {
		r := *s.RSS
		r.IndirectionTable = append([]uint32(nil), r.IndirectionTable...)
		r.HashKey = append([]byte(nil), r.HashKey...)
		out.RSS = &r
	}
	return out
}

// conn is one open primary channel. The channel goroutine (Packet) and
// the switch's delivering goroutines (receive) share it under mu.
type conn struct {
	d  *Device
	ch *host.Channel

	mu      sync.Mutex
	st      state
	recv    *host.GPADLView
	recvMem []byte // the receive buffer as one slice, if contiguous
	slots   slotTable
	send    *host.GPADLView
	closed  bool

	// vRSS (subchan.go): primary is set on a subchannel conn; q, rss and
	// sc belong to the primary.
	primary *conn
	q       queues
	rss     atomic.Pointer[rssState]
	sc      rssScratch

	// Scratch, guarded by mu.
	ranges    []ring.XferRange
	rxScratch []byte
	ctlBuf    []byte
	dataMsg   []byte // inline NVSP of data transfer-page packets
	ctlMsg    []byte // inline NVSP of control transfer-page packets
	reply     []byte

	// Channel-goroutine scratch (no lock needed).
	gather  []byte
	rg      gpa.Range
	txBatch *packet.Batch
}

func newConn(d *Device, ch *host.Channel) *conn {
	c := &conn{d: d, ch: ch, txBatch: packet.NewBatch(packet.DefaultBatchSize)}
	c.st.MTU = DefaultMTU
	c.st.CurrentMAC = d.cfg.MAC
	c.rg.PFNs = make([]uint64, 0, 64)
	c.gather = make([]byte, 0, 16<<10)
	c.ranges = make([]ring.XferRange, 0, d.cfg.MaxRangesPerPacket)
	return c
}

// Close implements host.Handler.
func (c *conn) Close() {
	if c.primary != nil {
		c.closeSub()
		c.d.stats.closes.Add(1)
		return
	}
	// A closed channel forgets the guest's data path; so does the switch
	// (the guest switches again after reopening, spec/vf-modes.md §2.3).
	c.d.pathMu.Lock()
	c.mu.Lock()
	c.closed = true
	c.releaseBuffers()
	c.mu.Unlock()
	c.d.setPath(false)
	c.d.pathMu.Unlock()
	c.d.cur.CompareAndSwap(c, nil)
	c.d.stats.closes.Add(1)
}

func (c *conn) releaseBuffers() {
	if c.recv != nil {
		c.recv.Release()
		c.recv, c.recvMem = nil, nil
	}
	if c.send != nil {
		c.send.Release()
		c.send = nil
	}
}

func (c *conn) bad(msg string, args ...any) {
	c.d.stats.errs.Add(1)
	c.d.log.Debug("netvsp: "+msg, args...)
}

// Packet implements host.Handler. It never returns an error for guest
// input: bad messages are answered or ignored as the host does.
func (c *conn) Packet(p *ring.Packet) error {
	if c.primary != nil {
		return c.subPacket(p)
	}
	switch p.Type {
	case ring.TypeCompletion:
		c.rxCompletion(p.TransID)
		return nil
	case ring.TypeInBand, ring.TypeGPADirect:
	default:
		c.bad("unexpected packet type", "type", p.Type)
		return nil
	}
	c.mu.Lock()
	v := c.st.Version
	c.mu.Unlock()
	if c.fastRNDIS(p, v) {
		return nil
	}
	m, err := nvsp.DecodeFromGuest(p.Payload, v)
	if err != nil {
		c.bad("undecodable NVSP message", "err", err)
		return nil
	}
	if v == 0 && m.Type() != nvsp.MsgInit {
		// OpenVMM: nothing but INIT before a version is negotiated.
		c.bad("NVSP message before INIT", "type", m.Type())
		return nil
	}
	if v != 0 && m.Type() != nvsp.MsgInit && m.Type().MinVersion() > v {
		c.bad("NVSP message above the negotiated version", "type", m.Type(), "version", v)
		return nil
	}
	if p.Type == ring.TypeGPADirect && m.Type() != nvsp.MsgSendRNDISPacket {
		c.bad("GPA-direct packet that is not SEND_RNDIS_PKT", "type", m.Type())
		return nil
	}
	switch m := m.(type) {
	case *nvsp.Init:
		c.onInit(p, m)
	case *nvsp.SendNDISVersion:
		c.mu.Lock()
		c.st.NDIS = m.Version()
		c.mu.Unlock()
		if m.Version() > c.d.cfg.MaxNDIS || m.Major != 6 {
			c.bad("NDIS version not supported", "ndis", m.Version())
		}
		c.emptyCompletion(p)
	case *nvsp.SendNDISConfig:
		mtu := m.MTU
		if mtu < nvsp.MinConfigMTU || mtu > nvsp.MaxConfigMTU {
			mtu = nvsp.MinConfigMTU
		}
		c.mu.Lock()
		c.st.MTU, c.st.Capabilities, c.st.Config = mtu, m.Capabilities, true
		c.mu.Unlock()
		c.emptyCompletion(p)
	case *nvsp.SendReceiveBuffer:
		c.onReceiveBuffer(p, m)
	case *nvsp.SendSendBuffer:
		c.onSendBuffer(p, m)
	case *nvsp.RevokeReceiveBuffer, *nvsp.RevokeSendBuffer:
		c.onRevoke(m)
	case *nvsp.SendRNDISPacket:
		c.onRNDIS(p, m)
	case *nvsp.SwitchDataPath:
		c.onSwitchDataPath(p, m)
	case *nvsp.SubchannelRequest:
		c.onSubchannel(p, m)
	case *nvsp.OIDQueryEx:
		c.complete(p, &nvsp.OIDQueryExComplete{Status: uint32(rndis.StatusNotSupported)})
	default:
		c.bad("unexpected NVSP message from the guest", "type", m.Type())
	}
	return nil
}

// complete answers p with m padded to the host's message size, if the
// guest asked for a completion.
func (c *conn) complete(p *ring.Packet, m nvsp.Message) {
	if !p.CompletionRequested() {
		return
	}
	c.mu.Lock()
	c.reply = nvsp.AppendPadded(c.reply[:0], m, nvsp.HostMessageSize(c.st.Version))
	err := c.ch.SendCompletion(p.TransID, c.reply)
	c.mu.Unlock()
	c.sendErr(err)
}

func (c *conn) emptyCompletion(p *ring.Packet) {
	if p.CompletionRequested() {
		c.sendErr(c.ch.SendCompletion(p.TransID, nil))
	}
}

func (c *conn) sendErr(err error) {
	if err != nil && !errors.Is(err, host.ErrClosed) {
		c.bad("send to guest failed", "err", err)
	}
}

func (c *conn) versionAccepted(v nvsp.Version) bool {
	for _, a := range c.d.cfg.Versions {
		if a == v {
			return true
		}
	}
	return false
}

func (c *conn) onInit(p *ring.Packet, m *nvsp.Init) {
	c.mu.Lock()
	ok := m.MinVersion == m.MaxVersion && c.versionAccepted(m.MinVersion) && c.recv == nil && c.send == nil
	if ok {
		c.st.Version = m.MinVersion
	}
	c.mu.Unlock()
	if !ok {
		// OpenVMM answers an unsupported version with status NONE.
		c.complete(p, &nvsp.InitComplete{NegotiatedVersion: nvsp.VersionInvalid, MaxMDLChainLength: nvsp.MaxMDLChainLength, Status: nvsp.StatusNone})
		return
	}
	nv := nvsp.VersionInvalid
	if m.MinVersion == nvsp.Version1 {
		nv = nvsp.Version1
	}
	c.complete(p, &nvsp.InitComplete{NegotiatedVersion: nv, MaxMDLChainLength: nvsp.MaxMDLChainLength, Status: nvsp.StatusSuccess})
}

func (c *conn) onReceiveBuffer(p *ring.Packet, m *nvsp.SendReceiveBuffer) {
	fail := &nvsp.SendReceiveBufferComplete{Status: nvsp.StatusFailure}
	c.mu.Lock()
	if c.recv != nil || c.st.Revoked || (c.st.Version >= nvsp.Version2 && !c.st.Config) {
		c.mu.Unlock()
		c.bad("SEND_RECV_BUF refused: buffer exists or NDIS config missing")
		c.complete(p, fail)
		return
	}
	view, err := c.ch.MapGPADL(m.GPADL)
	if err != nil {
		c.mu.Unlock()
		c.bad("SEND_RECV_BUF: bad GPADL", "gpadl", m.GPADL, "err", err)
		c.complete(p, fail)
		return
	}
	slot := slotHeadroom + int(c.st.MTU) + slotFooter
	n := view.Size / slot
	if n <= ControlSlots {
		c.mu.Unlock()
		view.Release()
		c.bad("SEND_RECV_BUF: buffer too small", "size", view.Size)
		c.complete(p, fail)
		return
	}
	c.recv = view
	c.recvMem, _ = view.Bytes()
	c.slots.init(n, slot)
	c.st.RecvBufferSize, c.st.RecvSlotSize, c.st.RecvSlots, c.st.RecvBufferID = view.Size, slot, n, m.ID
	c.rxScratch = make([]byte, slot)
	c.mu.Unlock()
	c.complete(p, &nvsp.SendReceiveBufferComplete{Status: nvsp.StatusSuccess, NumSections: 1,
		Section: nvsp.ReceiveBufferSection{Offset: 0, SubAllocSize: uint32(slot), NumSubAllocs: uint32(n), EndOffset: uint32(slot * n)}})
}

func (c *conn) onSendBuffer(p *ring.Packet, m *nvsp.SendSendBuffer) {
	fail := &nvsp.SendSendBufferComplete{Status: nvsp.StatusFailure}
	c.mu.Lock()
	if c.send != nil || c.st.Revoked {
		c.mu.Unlock()
		c.bad("SEND_SEND_BUF refused: buffer exists")
		c.complete(p, fail)
		return
	}
	view, err := c.ch.MapGPADL(m.GPADL)
	if err != nil || view.Size < nvsp.SendSectionSize {
		c.mu.Unlock()
		if err == nil {
			view.Release()
		}
		c.bad("SEND_SEND_BUF: bad GPADL", "gpadl", m.GPADL, "err", err)
		c.complete(p, fail)
		return
	}
	c.send = view
	c.st.SendBufferSize, c.st.SendSectionSize = view.Size, nvsp.SendSectionSize
	c.st.SendSections, c.st.SendBufferID = view.Size/nvsp.SendSectionSize, m.ID
	c.mu.Unlock()
	c.complete(p, &nvsp.SendSendBufferComplete{Status: nvsp.StatusSuccess, SectionSize: nvsp.SendSectionSize})
}

// onRevoke: OpenVMM stops the channel's processing at a revoke; here the
// buffers are released and nothing more is sent or received on them.
func (c *conn) onRevoke(m nvsp.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Revoked = true
	switch m.(type) {
	case *nvsp.RevokeReceiveBuffer:
		if c.recv != nil {
			c.recv.Release()
			c.recv, c.recvMem = nil, nil
		}
	case *nvsp.RevokeSendBuffer:
		if c.send != nil {
			c.send.Release()
			c.send = nil
		}
	}
}

// onSwitchDataPath switches the data path and answers with an empty
// completion (not an NVSP message) once the switch steers accordingly, as
// OpenVMM does (spec/openvmm-notes.md §2.3). A switch to the VF is honoured
// only while a VF is present and was advertised to the guest; otherwise it
// is completed with no action (OpenVMM's "wrong state" case).
func (c *conn) onSwitchDataPath(p *ring.Packet, m *nvsp.SwitchDataPath) {
	d := c.d
	if f := d.cfg.BeforeSwitchPath; f != nil {
		f(m.DataPath == nvsp.DataPathVF)
	}
	d.pathMu.Lock()
	c.mu.Lock()
	apply, vf := false, false
	switch m.DataPath {
	case nvsp.DataPathSynthetic:
		c.st.DataPath = m.DataPath
		apply = true
	case nvsp.DataPathVF:
		if c.st.VFAdvertised && d.vfConfig().present {
			c.st.DataPath = m.DataPath
			apply, vf = true, true
		} else {
			d.stats.pathRefused.Add(1)
			d.log.Debug("netvsp: SWITCH_DATA_PATH to VF without an advertised VF: ignored")
		}
	default:
		c.bad("SWITCH_DATA_PATH: bad data path", "path", m.DataPath)
	}
	c.mu.Unlock()
	if apply {
		d.setPath(vf)
	}
	d.pathMu.Unlock()
	c.emptyCompletion(p)
}

// vfChanged tells the guest about a VF change.
func (c *conn) vfChanged(old, now vfConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.st.RNDIS != RNDISInitialized || !c.vfAllowed() {
		return
	}
	if old.present && c.st.VFAdvertised {
		if c.st.DataPath == nvsp.DataPathVF {
			c.sendInBand(transSwitchPath, &nvsp.SwitchDataPath{DataPath: nvsp.DataPathSynthetic})
			c.st.DataPath = nvsp.DataPathSynthetic
		}
		c.sendInBand(transVFAssociation, &nvsp.SendVFAssociation{Allocated: false, Serial: c.st.VFSerial})
		c.st.VFAdvertised = false
	}
	if now.present {
		c.advertiseVF(now)
	}
}

// vfAllowed: OpenVMM sends VF association only at NVSP ≥ 4 to a guest
// that set the SR-IOV capability. Runs with mu held.
func (c *conn) vfAllowed() bool {
	return c.st.Version >= nvsp.Version4 && c.st.Config && c.st.Capabilities&nvsp.CapSRIOV != 0
}

// advertiseVF runs with mu held.
func (c *conn) advertiseVF(vf vfConfig) {
	if !vf.present || !c.vfAllowed() {
		return
	}
	c.sendInBand(transVFAssociation, &nvsp.SendVFAssociation{Allocated: true, Serial: vf.serial})
	c.st.VFAdvertised, c.st.VFSerial = true, vf.serial
}

// sendInBand sends a host-initiated NVSP message with a completion
// requested (OpenVMM); guests need not complete it. Runs with mu held.
func (c *conn) sendInBand(trans uint64, m nvsp.Message) {
	c.reply = nvsp.AppendPadded(c.reply[:0], m, nvsp.HostMessageSize(c.st.Version))
	c.sendErr(c.ch.SendInBand(trans, true, c.reply))
}
