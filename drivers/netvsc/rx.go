package netvsc

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// maxXferRanges bounds the ranges of one transfer-page packet (Linux
// NVSP_RSC_MAX; NVSP_MAX_PACKETS_PER_RECEIVE is 375 without RSC).
const maxXferRanges = 562

// rxState is the receive side of one synth.
//
// Ownership: batch and st belong to the channel's receive goroutine
// (HandlePackets). compMu guards comp, the queue of transfer-page
// completions not yet written to the ring, shared with the completer
// goroutine; compKick wakes it.
type rxState struct {
	ch    *vmbus.Channel // the channel this state receives on
	queue uint16         // its queue index (0: primary), set in Meta.Queue
	batch *packet.Batch
	pool  *packet.Pool
	st    rxStats

	compMu   sync.Mutex
	comp     []rxComp // completions owed, oldest first
	compMax  int
	compKick chan struct{}
}

// rxStats are atomics: the receive goroutine writes, Stats reads.
type rxStats struct {
	packets, bytes, ranges, xferPackets, controlMsgs, indications atomic.Uint64
	badPackets, badRanges, noBuffer, compDropped, unknown         atomic.Uint64
}

func (r *rxState) init(s *synth) {
	r.batch = packet.NewBatch(s.cfg.RxBatch)
	r.pool = s.cfg.RxPool
	r.compMax = 8192
	r.comp = make([]rxComp, 0, r.compMax)
	r.compKick = make(chan struct{}, 1)
}

// channel is the channel r receives on (the primary's when unset).
func (r *rxState) channel(s *synth) *vmbus.Channel {
	if r.ch == nil {
		return s.ch
	}
	return r.ch
}

func (r *rxState) release() {
	if r.batch != nil {
		r.batch.Free()
	}
}

// rxCompletion is the 8-byte SEND_RNDIS_PKT_COMPLETE Linux sends for
// every transfer-page packet.
var rxCompletion = func() []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(nvsp.MsgSendRNDISPacketComplete))
	return binary.LittleEndian.AppendUint32(b, uint32(nvsp.StatusSuccess))
}()

// HandlePackets implements vmbus.Handler: it runs on the channel's receive
// goroutine with a batch of host packets.
func (s *synth) HandlePackets(_ *vmbus.Channel, pkts []ring.Packet) {
	s.handlePackets(&s.rx, pkts)
}

// handlePackets is HandlePackets for the queue whose receive state is r.
func (s *synth) handlePackets(r *rxState, pkts []ring.Packet) {
	owed := false
	for i := range pkts {
		p := &pkts[i]
		switch p.Type {
		case ring.TypeCompletion:
			s.tx.complete(p.TransID, p.Payload)
		case ring.TypeXferPages:
			s.receive(r, p)
			owed = true
		case ring.TypeInBand:
			owed = s.inband(r, p) || owed
		default:
			r.st.unknown.Add(1)
		}
	}
	if b := r.batch; b.Len() > 0 {
		s.dev.input(b)
	}
	if owed {
		s.flushCompletions(r)
	}
}

// receive handles one transfer-page packet: every range is one RNDIS
// message in the receive buffer. The packet is completed whatever its
// content, so the host gets its slots back, but only once every range has
// been copied out: the completer goroutine may send a queued completion at
// any moment, and the host reuses the slots as soon as it has it.
func (s *synth) receive(r *rxState, p *ring.Packet) {
	r.st.xferPackets.Add(1)
	s.receiveRanges(r, p)
	r.owe(p.TransID, false)
}

func (s *synth) receiveRanges(r *rxState, p *ring.Packet) {
	if p.XferSetID != nvsp.ReceiveBufferID || p.RangeCount > maxXferRanges {
		r.st.badPackets.Add(1)
		s.dev.hostLog("netvsc: bad transfer-page packet", "set", p.XferSetID, "ranges", p.RangeCount)
		return
	}
	if len(p.Payload) < 16 || binary.LittleEndian.Uint32(p.Payload) != uint32(nvsp.MsgSendRNDISPacket) {
		r.st.badPackets.Add(1)
		s.dev.hostLog("netvsc: transfer-page packet without SEND_RNDIS_PKT")
		return
	}
	for i := 0; i < int(p.RangeCount); i++ {
		s.receiveRange(r, p.XferRange(i))
	}
}

// receiveRange handles one RNDIS message at a range of the receive buffer,
// checked as Linux netvsc_receive does: inside the buffer and no longer
// than a slot.
func (s *synth) receiveRange(r *rxState, x ring.XferRange) {
	if x.ByteCount == 0 || x.ByteCount > s.rxSlot || uint64(x.ByteOffset)+uint64(x.ByteCount) > uint64(s.rxSize) {
		r.st.badRanges.Add(1)
		s.dev.hostLog("netvsc: receive range outside the buffer", "off", x.ByteOffset, "len", x.ByteCount)
		return
	}
	r.st.ranges.Add(1)
	msg := s.rxRegion.Bytes[x.ByteOffset : x.ByteOffset+x.ByteCount]
	t, err := rndis.PeekType(msg)
	if err != nil {
		r.st.badRanges.Add(1)
		return
	}
	if t == rndis.MsgPacket {
		s.receiveData(r, msg)
	} else {
		s.receiveControl(r, t, msg)
	}
}

func (s *synth) receiveData(r *rxState, msg []byte) {
	var info rndis.PacketInfo
	frame, _, err := rndis.ParsePacket(msg, &info)
	if err != nil || len(frame) == 0 {
		r.st.badRanges.Add(1)
		s.dev.countDrop(ifnet.DropInvalid)
		return
	}
	if info.Present&rndis.HasPacketID != 0 && info.PacketID.Flags&rndis.PacketIDSubAllocation != 0 {
		r.st.badRanges.Add(1) // RSC fragments: RSC is never enabled by this driver
		s.dev.countDrop(ifnet.DropInvalid)
		return
	}
	pk := r.pool.Get()
	if pk == nil {
		r.st.noBuffer.Add(1)
		s.dev.countDrop(ifnet.DropNoBuffer)
		return
	}
	if err := pk.SetBytes(frame); err != nil {
		pk.Free()
		s.dev.countDrop(ifnet.DropTooBig)
		return
	}
	fillRxMeta(&pk.Meta, &info)
	if off := s.dev.vfm.hashOff.Load(); off&(1<<pk.Meta.HashType) != 0 {
		pk.Meta.Hash, pk.Meta.HashType = 0, packet.HashNone // would not match the VF's (vfrss.go)
	}
	pk.Meta.Queue = r.queue
	r.st.packets.Add(1)
	r.st.bytes.Add(uint64(len(frame)))
	r.batch.Add(pk)
	if r.batch.Full() {
		s.dev.input(r.batch)
	}
}

// receiveControl handles a control completion or a status indication.
func (s *synth) receiveControl(r *rxState, t rndis.MessageType, msg []byte) {
	r.st.controlMsgs.Add(1)
	if t&rndis.CompletionBit != 0 && t != rndis.MsgResetComplete {
		if len(msg) >= 12 && s.ctl.deliver(binary.LittleEndian.Uint32(msg[8:]), msg) {
			return
		}
		s.dev.hostLog("netvsc: unexpected RNDIS completion", "type", t)
		return
	}
	if t != rndis.MsgIndicateStatus {
		s.dev.hostLog("netvsc: unexpected RNDIS message", "type", t)
		return
	}
	m, err := rndis.DecodeFromHost(msg)
	ind, ok := m.(*rndis.IndicateStatus)
	if err != nil || !ok {
		r.st.badRanges.Add(1)
		return
	}
	s.dev.indicate(ind)
	r.st.indications.Add(1) // after: whoever sees the count sees its effect
}

// inband handles host-initiated NVSP messages: VF association, the send
// indirection table, and a host-ordered data-path switch.
func (s *synth) inband(r *rxState, p *ring.Packet) (owed bool) {
	m, err := nvsp.DecodeFromHost(p.Payload, s.ver)
	if err != nil {
		r.st.unknown.Add(1)
		s.dev.hostLog("netvsc: bad in-band message", "err", err)
		return false
	}
	switch m := m.(type) {
	case *nvsp.SendVFAssociation:
		s.vf.associate(m.Allocated, m.Serial)
		s.dev.vfm.hostChanged()
	case *nvsp.SwitchDataPath:
		s.vf.hostSwitched(m.DataPath)
		s.dev.vfm.hostChanged()
		if p.CompletionRequested() {
			r.owe(p.TransID, true)
			owed = true
		}
	case *nvsp.SendIndirectionTable:
		s.setSendTable(m.Table)
	default:
		r.st.unknown.Add(1)
	}
	return owed
}

// rxComp is one completion owed to the host: the transfer-page packets'
// SEND_RNDIS_PKT_COMPLETE, or an empty one (a host SWITCH_DATA_PATH).
type rxComp struct {
	id    uint64
	empty bool
}

// owe queues a completion for transID.
func (r *rxState) owe(id uint64, empty bool) {
	r.compMu.Lock()
	if len(r.comp) < r.compMax {
		r.comp = append(r.comp, rxComp{id, empty})
	} else {
		r.st.compDropped.Add(1)
	}
	r.compMu.Unlock()
}

// flushCompletions writes the queued completions in one commit without
// waiting (the receive goroutine): if the ring is full, or a sender waits
// for room, the rest stay queued and the completer goroutine is woken.
func (s *synth) flushCompletions(r *rxState) {
	r.compMu.Lock()
	defer r.compMu.Unlock()
	done := 0
	err := r.channel(s).TrySend(func(tx *vmbus.Tx) error {
		for done < len(r.comp) {
			if err := stageCompletion(tx, r.comp[done]); err != nil {
				return err
			}
			done++
		}
		return nil
	})
	n := copy(r.comp, r.comp[done:])
	r.comp = r.comp[:n]
	if err != nil && n > 0 {
		select {
		case r.compKick <- struct{}{}:
		default:
		}
	}
}

func stageCompletion(tx *vmbus.Tx, c rxComp) error {
	if c.empty {
		return tx.Completion(c.id, nil)
	}
	return tx.Completion(c.id, rxCompletion)
}

// completer writes completions the receive goroutine could not, waiting
// for ring space; it stops when the synth detaches.
func (s *synth) completer(r *rxState) {
	defer s.workers.Done()
	var pending []rxComp
	for {
		select {
		case <-s.stop:
			return
		case <-r.compKick:
			// Take the queue and write it waiting for room, without
			// holding compMu, so the receive goroutine never waits.
			r.compMu.Lock()
			pending = append(pending[:0], r.comp...)
			r.comp = r.comp[:0]
			r.compMu.Unlock()
			err := r.channel(s).Send(func(tx *vmbus.Tx) error {
				for _, c := range pending {
					if err := stageCompletion(tx, c); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return // channel closed or dead: nothing more can be sent
			}
		}
	}
}
