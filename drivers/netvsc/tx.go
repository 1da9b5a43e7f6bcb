package netvsc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

var (
	// errTxBusy is returned (pre-built, so back-pressure allocates
	// nothing) when the ring, the sections or the descriptors are full.
	errTxBusy = fmt.Errorf("netvsc: transmit ring or send buffers full: %w", ifnet.ErrBusy)
	errTxDown = fmt.Errorf("netvsc: no synthetic data path: %w", ifnet.ErrDown)
	errNoRes  = errors.New("netvsc: no free send resource")
)

// txDesc is one outstanding send: the transaction id the host echoes in its
// completion names it, and it holds a send section or a bounce slot.
type txDesc struct {
	gen     uint32 // part of the transaction id; 0 while free
	section int32  // -1: none
	bounce  int32  // -1: none
}

// txState is the transmit bookkeeping of one synth.
//
// Ownership: mu guards every field; it is taken by Transmit (around the
// whole batch, before the channel's own send lock) and by the receive
// goroutine for completions. Lock order: tx.mu, then the channel's send
// lock (inside TrySend).
type txState struct {
	mu         sync.Mutex
	secFree    []uint64 // bit set: section free
	secInUse   int
	descs      []txDesc
	freeDescs  []uint32 // stack of free descriptor indexes
	nextGen    uint32
	bounceFree []int32 // stack of free bounce slots
	bounceRng  []gpa.Range
	done       *kernel.Event               // signalled when outstanding drops to 0
	msg        [nvsp.GuestMessageSize]byte // NVSP scratch for stage
	st         txStats
}

type txStats struct {
	packets, bytes, sectionSends, gpaSends, ringFull, noResource uint64
	completions, badCompletions, failedCompletions, tooBig       uint64
}

// transID packs a descriptor index and its generation; bit 63 stays clear
// (vmbus.RequestIDBit belongs to Channel.Request).
func transID(idx, gen uint32) uint64 { return uint64(gen)<<32 | uint64(idx) }

func (t *txState) init(s *synth) error {
	n := int(s.secCount)
	t.secFree = make([]uint64, (n+63)/64)
	for i := 0; i < n; i++ {
		t.secFree[i/64] |= 1 << (i % 64)
	}
	slots := s.cfg.BounceSlots
	if slots > 0 {
		var err error
		if s.bounce, err = s.cfg.Memory.Alloc(slots * BounceSlotSize / kernel.PageSize); err != nil {
			return fmt.Errorf("netvsc: bounce slots: %w", err)
		}
		t.bounceRng = make([]gpa.Range, slots)
		for i := range slots {
			first := i * BounceSlotSize / kernel.PageSize
			last := first + BounceSlotSize/kernel.PageSize
			t.bounceRng[i].PFNs = s.bounce.PFNs[first:last:last]
			t.bounceFree = append(t.bounceFree, int32(slots-1-i))
		}
	}
	nd := n + slots
	t.descs = make([]txDesc, nd)
	t.freeDescs = make([]uint32, nd)
	for i := range nd {
		t.freeDescs[i] = uint32(nd - 1 - i)
		t.descs[i] = txDesc{section: -1, bounce: -1}
	}
	t.nextGen = 1
	t.done = kernel.NewEvent()
	return nil
}

func (t *txState) allocSection() int32 {
	for w, word := range t.secFree {
		if word != 0 {
			b := bits.TrailingZeros64(word)
			t.secFree[w] &^= 1 << b
			t.secInUse++
			return int32(w*64 + b)
		}
	}
	return -1
}

func (t *txState) freeSection(i int32) {
	t.secFree[i/64] |= 1 << (i % 64)
	t.secInUse--
}

func (t *txState) allocDesc() (uint32, bool) {
	n := len(t.freeDescs)
	if n == 0 {
		return 0, false
	}
	idx := t.freeDescs[n-1]
	t.freeDescs = t.freeDescs[:n-1]
	gen := t.nextGen
	if t.nextGen++; t.nextGen >= 1<<31 {
		t.nextGen = 1
	}
	t.descs[idx] = txDesc{gen: gen, section: -1, bounce: -1}
	return idx, true
}

// release frees what descriptor idx holds and the descriptor itself.
func (t *txState) release(idx uint32) {
	d := &t.descs[idx]
	if d.section >= 0 {
		t.freeSection(d.section)
	}
	if d.bounce >= 0 {
		t.bounceFree = append(t.bounceFree, d.bounce)
	}
	*d = txDesc{section: -1, bounce: -1}
	t.freeDescs = append(t.freeDescs, idx)
}

func (t *txState) outstanding() int { return len(t.descs) - len(t.freeDescs) }

// complete handles a send completion from the host (receive goroutine). An
// id that names no outstanding send is counted and ignored.
func (t *txState) complete(id uint64, payload []byte) {
	idx, gen := uint32(id), uint32(id>>32)
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(idx) >= len(t.descs) || gen == 0 || t.descs[idx].gen != gen {
		t.st.badCompletions++
		return
	}
	if len(payload) < 8 || binary.LittleEndian.Uint32(payload) != uint32(nvsp.MsgSendRNDISPacketComplete) ||
		nvsp.Status(binary.LittleEndian.Uint32(payload[4:])) != nvsp.StatusSuccess {
		t.st.failedCompletions++ // the host dropped it; the resources are free all the same
	}
	t.st.completions++
	t.release(idx)
	if t.outstanding() == 0 {
		t.done.Signal()
	}
}

// drain waits until every send is completed, or timeout.
func (t *txState) drain(s *synth, timeout time.Duration) {
	timer := s.cfg.Clock.NewTimer(timeout)
	defer timer.Stop()
	for {
		t.mu.Lock()
		n := t.outstanding()
		t.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-t.done.C():
		case <-timer.C():
			s.log.Warn("netvsc: sends still outstanding at detach", "n", n)
			return
		}
	}
}

// transmit sends packets from the front of b in one ring commit and
// returns how many it took (and freed: frames are copied).
func (s *synth) transmit(b *packet.Batch) (int, error) {
	pkts := b.Packets()
	t := &s.tx
	n := 0
	t.mu.Lock()
	var err error
	for err == nil && n < len(pkts) {
		// One commit per run of packets bound for the same channel.
		ch := s.txChannel(pkts[n])
		err = ch.TrySend(func(tx *vmbus.Tx) error {
			for n < len(pkts) && s.txChannel(pkts[n]) == ch {
				if err := s.stage(tx, pkts[n]); err != nil {
					return err
				}
				n++
			}
			return nil
		})
	}
	switch {
	case err == nil:
	case errors.Is(err, vmbus.ErrRingFull):
		t.st.ringFull++
		err = errTxBusy
	case err == errNoRes:
		t.st.noResource++
		err = errTxBusy
	}
	t.mu.Unlock()
	for _, p := range pkts[:n] {
		p.Free()
	}
	b.Consume(n)
	return n, err
}

// stage copies one packet into a section (or a bounce slot) and stages its
// SEND_RNDIS_PKT. Called with tx.mu held, inside TrySend. A frame too big
// for anything is dropped (taken, counted) rather than blocking the queue.
func (s *synth) stage(tx *vmbus.Tx, p *packet.Packet) error {
	t := &s.tx
	frame := p.Bytes()
	var info rndis.PacketInfo
	fillTxInfo(&info, &p.Meta, frame)
	hlen := rndis.PacketHeaderLen(&info)
	total := hlen + len(frame)
	idx, ok := t.allocDesc()
	if !ok {
		return errNoRes
	}
	d := &t.descs[idx]
	msg := &t.msg
	binary.LittleEndian.PutUint32(msg[0:], uint32(nvsp.MsgSendRNDISPacket))
	binary.LittleEndian.PutUint32(msg[4:], uint32(nvsp.ChannelData))
	var err error
	if total <= int(s.secSize) {
		d.section = t.allocSection()
	}
	if d.section >= 0 {
		off := int(d.section) * int(s.secSize)
		buf := s.txRegion.Bytes[off : off+int(s.secSize)]
		if _, err := rndis.PutPacketHeader(buf, &info, len(frame)); err != nil {
			t.release(idx)
			return err
		}
		copy(buf[hlen:], frame)
		binary.LittleEndian.PutUint32(msg[8:], uint32(d.section))
		binary.LittleEndian.PutUint32(msg[12:], uint32(total))
		err = tx.InBand(transID(idx, d.gen), true, msg[:])
		if err == nil {
			t.st.sectionSends++
		}
	} else {
		if total > BounceSlotSize {
			t.release(idx)
			t.st.tooBig++
			s.dev.countDrop(ifnet.DropTooBig)
			return nil
		}
		nb := len(t.bounceFree)
		if nb == 0 {
			t.release(idx)
			return errNoRes
		}
		d.bounce = t.bounceFree[nb-1]
		t.bounceFree = t.bounceFree[:nb-1]
		off := int(d.bounce) * BounceSlotSize
		buf := s.bounce.Bytes[off : off+BounceSlotSize]
		if _, err := rndis.PutPacketHeader(buf, &info, len(frame)); err != nil {
			t.release(idx)
			return err
		}
		copy(buf[hlen:], frame)
		r := &t.bounceRng[d.bounce]
		r.ByteCount, r.ByteOffset = uint32(total), 0
		full := r.PFNs[:cap(r.PFNs)]
		r.PFNs = full[:gpa.PagesFor(0, uint32(total))]
		binary.LittleEndian.PutUint32(msg[8:], nvsp.NoSection)
		binary.LittleEndian.PutUint32(msg[12:], 0)
		err = tx.GPADirect(transID(idx, d.gen), true, t.bounceRng[d.bounce:d.bounce+1], msg[:])
		if err == nil {
			t.st.gpaSends++
		}
	}
	if err != nil {
		t.release(idx)
		return err
	}
	t.st.packets++
	t.st.bytes += uint64(len(frame))
	return nil
}
