package netvsc

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/vmbus"
)

// maxControlReply bounds the RNDIS control reply the driver copies out of
// the receive buffer (the largest it asks for is an NDIS_OFFLOAD).
const maxControlReply = 4096

// ctlState serializes RNDIS control requests: one is in flight at a time,
// using the one control page (Linux allows several; nothing here needs it).
//
// mu is held for the whole request. waitID is the request id whose reply
// the receive goroutine should deliver to reply (0: none); it is atomic
// because the receive goroutine reads it without mu.
type ctlState struct {
	mu     sync.Mutex
	nextID uint32
	waitID atomic.Uint32
	reply  chan []byte
}

func (c *ctlState) init() { c.reply = make(chan []byte, 1) }

// deliver is called by the receive goroutine with a control completion
// (still in the receive buffer); it copies it out if someone waits for it.
func (c *ctlState) deliver(id uint32, msg []byte) bool {
	if id == 0 || c.waitID.Load() != id {
		return false
	}
	if len(msg) > maxControlReply {
		msg = msg[:maxControlReply]
	}
	cp := append([]byte(nil), msg...)
	select {
	case c.reply <- cp:
		return true
	default:
		return false
	}
}

// request sends an NVSP message with a completion requested and decodes the
// completion's payload.
func (s *synth) request(ctx context.Context, m nvsp.Message) (nvsp.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	reply, err := s.ch.Request(ctx, nvsp.AppendPadded(nil, m, nvsp.GuestMessageSize))
	if err != nil {
		return nil, err
	}
	msg, err := nvsp.DecodeFromHost(reply, s.ver)
	if err != nil {
		return nil, fmt.Errorf("%w: completion of %s: %w", ErrHost, m.Type(), err)
	}
	return msg, nil
}

// post sends an NVSP message that gets no answer.
func (s *synth) post(m nvsp.Message) error {
	return s.ch.SendInBand(0, false, nvsp.AppendPadded(nil, m, nvsp.GuestMessageSize))
}

// rndisControl sends one RNDIS control message GPA-direct from the control
// page (channel type control, no section), waits for the NVSP completion,
// and, when wantReply, for the RNDIS completion with the same request id.
func (s *synth) rndisControl(ctx context.Context, build func(id uint32) rndis.Message, wantReply bool) (rndis.Message, error) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.nextID++
	if s.ctl.nextID == 0 {
		s.ctl.nextID = 1
	}
	id := s.ctl.nextID
	msg := build(id)
	if msg.EncodedLen() > len(s.ctlPage.Bytes) {
		return nil, fmt.Errorf("netvsc: %s of %d bytes does not fit the control page", msg.Type(), msg.EncodedLen())
	}
	b := msg.AppendTo(s.ctlPage.Bytes[:0])
	select { // a stale reply from an abandoned request
	case <-s.ctl.reply:
	default:
	}
	if wantReply {
		s.ctl.waitID.Store(id)
		defer s.ctl.waitID.Store(0)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	hdr := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelControl, SectionIndex: nvsp.NoSection}, nvsp.GuestMessageSize)
	ranges := []gpa.Range{{ByteCount: uint32(len(b)), PFNs: s.ctlPage.PFNs[:1]}}
	comp, err := s.ch.RequestTx(ctx, func(tx *vmbus.Tx, tid uint64) error {
		return tx.GPADirect(tid, true, ranges, hdr)
	})
	if err != nil {
		return nil, fmt.Errorf("netvsc: RNDIS %s: %w", msg.Type(), err)
	}
	if cm, err := nvsp.DecodeFromHost(comp, s.ver); err != nil {
		return nil, fmt.Errorf("%w: RNDIS %s completion: %w", ErrHost, msg.Type(), err)
	} else if c, ok := cm.(*nvsp.SendRNDISPacketComplete); !ok || c.Status != nvsp.StatusSuccess {
		return nil, fmt.Errorf("%w: RNDIS %s not accepted (%v)", ErrHost, msg.Type(), cm.Type())
	}
	if !wantReply {
		return nil, nil
	}
	t := s.cfg.Clock.NewTimer(s.cfg.Timeout)
	defer t.Stop()
	select {
	case raw := <-s.ctl.reply:
		reply, err := rndis.DecodeFromHost(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: reply to RNDIS %s: %w", ErrHost, msg.Type(), err)
		}
		return reply, nil
	case <-t.C():
		return nil, fmt.Errorf("netvsc: RNDIS %s: %w", msg.Type(), vmbus.ErrTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stop:
		return nil, ErrDetached
	}
}

// query asks for oid (with optional input) and returns the answer.
func (s *synth) query(ctx context.Context, oid rndis.OID, input []byte) ([]byte, error) {
	r, err := s.rndisControl(ctx, func(id uint32) rndis.Message { return rndis.NewQuery(id, oid, input) }, true)
	if err != nil {
		return nil, err
	}
	qc, ok := r.(*rndis.QueryComplete)
	if !ok {
		return nil, fmt.Errorf("%w: query %#x answered with %s", ErrHost, uint32(oid), r.Type())
	}
	if qc.Status != rndis.StatusSuccess {
		return nil, fmt.Errorf("%w: query %#x: %s", ErrHost, uint32(oid), qc.Status)
	}
	return qc.Info, nil
}

func (s *synth) queryU32(ctx context.Context, oid rndis.OID) (uint32, error) {
	b, err := s.query(ctx, oid, nil)
	if err != nil {
		return 0, err
	}
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: query %#x: %d-byte answer", ErrHost, uint32(oid), len(b))
	}
	return binary.LittleEndian.Uint32(b), nil
}

// set sets oid to value.
func (s *synth) set(ctx context.Context, oid rndis.OID, value []byte) error {
	r, err := s.rndisControl(ctx, func(id uint32) rndis.Message { return rndis.NewSet(id, oid, value) }, true)
	if err != nil {
		return err
	}
	sc, ok := r.(*rndis.SetComplete)
	if !ok {
		return fmt.Errorf("%w: set %#x answered with %s", ErrHost, uint32(oid), r.Type())
	}
	if sc.Status != rndis.StatusSuccess {
		return fmt.Errorf("%w: set %#x: %s", ErrHost, uint32(oid), sc.Status)
	}
	return nil
}

func (s *synth) setFilter(ctx context.Context, f rndis.PacketFilter) error {
	if err := s.set(ctx, rndis.OIDGenCurrentPacketFilter, binary.LittleEndian.AppendUint32(nil, uint32(f))); err != nil {
		return err
	}
	s.filter = f
	return nil
}

func (s *synth) halt(ctx context.Context) error {
	_, err := s.rndisControl(ctx, func(id uint32) rndis.Message { m := &rndis.Halt{}; m.RequestID = id; return m }, false)
	s.halted = true
	return err
}

// rndisAttach initializes RNDIS and learns the device (Linux
// rndis_filter_device_add: INIT, frame size, MAC, offloads, link).
func (s *synth) rndisAttach(ctx context.Context) error {
	r, err := s.rndisControl(ctx, func(id uint32) rndis.Message {
		return &rndis.Initialize{RequestID: id, MajorVersion: rndis.MajorVersion, MinorVersion: rndis.MinorVersion, MaxTransferSize: 0x4000}
	}, true)
	if err != nil {
		return err
	}
	ic, ok := r.(*rndis.InitializeComplete)
	if !ok || ic.Status != rndis.StatusSuccess {
		return fmt.Errorf("%w: RNDIS INITIALIZE refused", ErrHost)
	}
	s.rndisUp = true
	s.maxPkts, s.align = ic.MaxPacketsPerMessage, ic.PacketAlignment()
	if s.align < 1 {
		s.align = 1
	}

	if v, err := s.queryU32(ctx, rndis.OIDGenMaximumFrameSize); err == nil && v >= 68 && int(v) < s.mtu {
		s.frameMTU = int(v) // Linux lowers the MTU to what the host takes
	}
	mac, err := s.query(ctx, rndis.OID8023PermanentAddress, nil)
	if err != nil {
		return err
	}
	if len(mac) < 6 {
		return fmt.Errorf("%w: %d-byte MAC address", ErrHost, len(mac))
	}
	s.mac = net.HardwareAddr(append([]byte(nil), mac[:6]...))

	if err := s.setupOffloads(ctx); err != nil {
		return err
	}
	if v, err := s.queryU32(ctx, rndis.OIDGenMediaConnectStatus); err == nil {
		s.linkUp = rndis.MediaConnectState(v) == rndis.MediaConnected
	} else {
		return err
	}
	if s.ver >= nvsp.Version5 {
		if v, err := s.queryU32(ctx, rndis.OIDGenLinkSpeed); err == nil {
			s.speedBps = uint64(v) * rndis.LinkSpeedUnit
		}
	}
	return nil
}
