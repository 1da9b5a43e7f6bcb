package netvsc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
)

// Errors of the driver, wrapped with context.
var (
	// ErrHost: the host answered something the driver cannot accept (a
	// refused buffer, a malformed reply, no common protocol version).
	ErrHost = errors.New("netvsc: host refused or answered wrongly")
	// ErrDetached: the device's synthetic attachment is gone.
	ErrDetached = errors.New("netvsc: device detached")
)

// synth is one synthetic attachment: the open channel, the buffers and
// what was negotiated. It lives from attach to detach; an MTU change
// replaces it.
//
// Ownership: the fields set during attach (versions, buffers, geometry,
// caps) are immutable afterwards. tx is guarded by tx.mu; rx is owned by
// the channel's receive goroutine, except rx.comp (guarded by rx.compMu);
// ctl is guarded by ctl.mu; vf by vf.mu (vf.go).
type synth struct {
	dev  *Device
	cfg  *Config
	log  *slog.Logger
	mtu  int
	ch   *vmbus.Channel
	open bool // channel opened (so Offer.Close is owed)

	ver  nvsp.Version
	ndis nvsp.NDISVersion

	rxRegion *kernel.Region
	rxGPADL  *vmbus.GPADL
	rxSlot   uint32 // sub-allocation size
	rxSlots  uint32
	rxSize   uint32 // bytes of the region the host may use

	txRegion *kernel.Region
	txGPADL  *vmbus.GPADL
	secSize  uint32
	secCount uint32

	ctlPage *kernel.Region // one page for RNDIS control requests
	bounce  *kernel.Region // BounceSlots × BounceSlotSize

	rndisUp  bool // INITIALIZE succeeded, HALT owed
	maxPkts  uint32
	align    int
	mac      net.HardwareAddr
	frameMTU int // OID_GEN_MAXIMUM_FRAME_SIZE
	linkUp   bool
	speedBps uint64
	hw       *rndis.Offload
	off      offloads

	tx  txState
	rx  rxState
	rss rssState // subchannels and RSS (rss.go)
	ctl ctlState
	vf  vfState

	stop       chan struct{} // closed at detach: stops the completer
	workers    sync.WaitGroup
	filter     rndis.PacketFilter // last filter set (guarded by Device.cfgMu)
	halted     bool
	closedOnce sync.Once
}

// attachSynth opens the channel and runs the whole synthetic attach
// sequence. On error everything taken is given back.
func attachSynth(ctx context.Context, d *Device, mtu int) (*synth, error) {
	s := &synth{dev: d, cfg: d.cfg, log: d.log, mtu: mtu, stop: make(chan struct{})}
	if err := s.attach(ctx); err != nil {
		s.detach(ctx)
		return nil, err
	}
	return s, nil
}

func (s *synth) attach(ctx context.Context) error {
	var err error
	if s.ctlPage, err = s.cfg.Memory.Alloc(1); err != nil {
		return err
	}
	s.ctl.init()
	s.rx.init(s)
	s.ch, err = s.dev.offer.Open(ctx, vmbus.OpenOptions{SendPages: s.cfg.RingPages, RecvPages: s.cfg.RingPages, Handler: s})
	if err != nil {
		return fmt.Errorf("netvsc: open channel: %w", err)
	}
	s.open = true
	s.rx.ch = s.ch
	s.workers.Add(1)
	go s.completer(&s.rx)
	if err := s.negotiate(ctx); err != nil {
		return err
	}
	if err := s.connectRecvBuffer(ctx); err != nil {
		return err
	}
	if err := s.connectSendBuffer(ctx); err != nil {
		return err
	}
	if err := s.tx.init(s); err != nil {
		return err
	}
	if err := s.rndisAttach(ctx); err != nil {
		return err
	}
	s.attachQueues(ctx)
	return nil
}

// negotiate offers each NVSP version in turn, then sends NDIS config and
// version (Linux negotiate_nvsp_ver, netvsc_connect_vsp).
func (s *synth) negotiate(ctx context.Context) error {
	for _, v := range nvsp.Versions {
		if v > s.cfg.MaxVersion || (s.cfg.Isolated && v < nvsp.Version61) {
			continue
		}
		reply, err := s.request(ctx, nvsp.NewInit(v))
		if err != nil {
			return fmt.Errorf("netvsc: INIT %s: %w", v, err)
		}
		ic, ok := reply.(*nvsp.InitComplete)
		if !ok {
			return fmt.Errorf("%w: INIT answered with %s", ErrHost, reply.Type())
		}
		if ic.Status != nvsp.StatusSuccess {
			continue
		}
		s.ver, s.ndis = v, v.NDIS()
		if v >= nvsp.Version2 {
			cfg := &nvsp.SendNDISConfig{MTU: uint32(s.mtu + nvsp.EthernetHeaderSz), Capabilities: nvsp.GuestCapabilities(v, s.cfg.Isolated)}
			if err := s.post(cfg); err != nil {
				return err
			}
		}
		return s.post(nvsp.NewSendNDISVersion(s.ndis))
	}
	return fmt.Errorf("%w: no common NVSP version (offered %s and older)", ErrHost, s.cfg.MaxVersion)
}

func pagesFor(n int) int { return (n + kernel.PageSize - 1) / kernel.PageSize }

// connectRecvBuffer allocates the receive buffer, gives it to the host as a
// GPADL and announces it (Linux netvsc_init_buf, first half).
func (s *synth) connectRecvBuffer(ctx context.Context) error {
	size := s.cfg.RecvBufferSize
	if s.ver <= nvsp.Version2 && size > LegacyRecvBufferMax {
		size = LegacyRecvBufferMax
	}
	var err error
	if s.rxRegion, err = s.cfg.Memory.Alloc(pagesFor(size)); err != nil {
		return fmt.Errorf("netvsc: receive buffer: %w", err)
	}
	if s.rxGPADL, err = s.dev.offer.CreateGPADL(ctx, s.rxRegion); err != nil {
		return fmt.Errorf("netvsc: receive buffer GPADL: %w", err)
	}
	m := &nvsp.SendReceiveBuffer{}
	m.GPADL, m.ID = s.rxGPADL.ID, nvsp.ReceiveBufferID
	reply, err := s.request(ctx, m)
	if err != nil {
		return fmt.Errorf("netvsc: SEND_RECV_BUF: %w", err)
	}
	rc, ok := reply.(*nvsp.SendReceiveBufferComplete)
	if !ok {
		return fmt.Errorf("%w: SEND_RECV_BUF answered with %s", ErrHost, reply.Type())
	}
	if err := rc.Check(uint32(len(s.rxRegion.Bytes))); err != nil {
		return fmt.Errorf("%w: %w", ErrHost, err)
	}
	s.rxSlot, s.rxSlots = rc.Section.SubAllocSize, rc.Section.NumSubAllocs
	s.rxSize = uint32(len(s.rxRegion.Bytes))
	return nil
}

// connectSendBuffer does the same for the send buffer and records its
// sections (Linux netvsc_init_buf, second half).
func (s *synth) connectSendBuffer(ctx context.Context) error {
	var err error
	if s.txRegion, err = s.cfg.Memory.Alloc(pagesFor(s.cfg.SendBufferSize)); err != nil {
		return fmt.Errorf("netvsc: send buffer: %w", err)
	}
	if s.txGPADL, err = s.dev.offer.CreateGPADL(ctx, s.txRegion); err != nil {
		return fmt.Errorf("netvsc: send buffer GPADL: %w", err)
	}
	m := &nvsp.SendSendBuffer{}
	m.GPADL, m.ID = s.txGPADL.ID, nvsp.SendBufferIDLinux
	reply, err := s.request(ctx, m)
	if err != nil {
		return fmt.Errorf("netvsc: SEND_SEND_BUF: %w", err)
	}
	sc, ok := reply.(*nvsp.SendSendBufferComplete)
	if !ok {
		return fmt.Errorf("%w: SEND_SEND_BUF answered with %s", ErrHost, reply.Type())
	}
	n, err := sc.Sections(uint32(len(s.txRegion.Bytes)))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHost, err)
	}
	s.secSize, s.secCount = sc.SectionSize, n
	return nil
}

// detach undoes whatever attach got done, in reverse (Linux
// rndis_filter_device_remove, netvsc_device_remove): packet filter off,
// HALT, drain sends, revoke buffers, close, tear down GPADLs, free memory.
// It is safe on a partial attach and runs once.
func (s *synth) detach(ctx context.Context) {
	s.closedOnce.Do(func() { s.detachOnce(ctx) })
}

func (s *synth) detachOnce(ctx context.Context) {
	gone := s.dev.offer.Rescinded()
	if s.rndisUp && !gone {
		if s.filter != rndis.PacketTypeNone {
			if err := s.setFilter(ctx, rndis.PacketTypeNone); err != nil {
				s.log.Debug("netvsc: clear packet filter", "err", err)
			}
		}
		if err := s.halt(ctx); err != nil {
			s.log.Debug("netvsc: HALT", "err", err)
		}
		s.tx.drain(s, s.cfg.Timeout)
	}
	if s.open && !gone {
		if s.rxGPADL != nil {
			m := &nvsp.RevokeReceiveBuffer{}
			m.ID = nvsp.ReceiveBufferID
			_ = s.post(m)
		}
		if s.txGPADL != nil {
			m := &nvsp.RevokeSendBuffer{}
			m.ID = nvsp.SendBufferIDLinux
			_ = s.post(m)
		}
	}
	close(s.stop)
	s.closeQueues(ctx) // subchannels before the primary, as Linux vmbus_close
	if s.open {
		if err := s.dev.offer.Close(ctx); err != nil {
			s.log.Debug("netvsc: close channel", "err", err)
		}
	}
	s.workers.Wait()
	// GPADLs go after the close, as Linux does on VMBus ≥ Win10.
	for _, g := range []*vmbus.GPADL{s.rxGPADL, s.txGPADL} {
		if g != nil {
			if err := s.dev.offer.TeardownGPADL(ctx, g); err != nil {
				s.log.Debug("netvsc: teardown GPADL", "err", err)
			}
		}
	}
	s.rx.release()
	for _, r := range []*kernel.Region{s.rxRegion, s.txRegion, s.ctlPage, s.bounce} {
		if r != nil {
			if err := s.cfg.Memory.Free(r); err != nil {
				s.log.Warn("netvsc: free buffer", "err", err)
			}
		}
	}
	s.rxRegion, s.txRegion, s.ctlPage, s.bounce = nil, nil, nil, nil
}
