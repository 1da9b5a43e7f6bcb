package mlx

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Transmit path (spec §3.1, §3.5, §7.9). Frames are copied into a byte
// ring of DMA memory owned by the send queue; a send WQE points at the
// copy with one data segment per physically contiguous run. Completions
// come back in order, so freeing is moving the ring's tail. One doorbell
// record update and one UAR doorbell per batch.

var (
	errTxBusy = fmt.Errorf("mlx: send queue full: %w", ifnet.ErrBusy)
	errTxDown = fmt.Errorf("mlx: send queue not ready: %w", ifnet.ErrDown)
)

const maxTxSegs = 32

// txInfo describes the WQE that starts at one WQEBB index.
type txInfo struct {
	nbb   uint16 // WQEBBs of this WQE; 0: not the start of a WQE
	data  bool   // carries a frame (not a NOP)
	bytes uint32
	end   uint64 // ring byte position after this WQE's data
}

// sq is one send queue with its completion queue.
//
// Ownership: mu guards every field below it; Transmit holds it for a batch
// and the worker goroutine holds it while it consumes the CQ. The cq's own
// counters are the worker's (under mu here, since SQ completions touch
// both).
type sq struct {
	v       *VF
	idx     int
	n       uint32 // sqn
	logSize uint8  // in WQEBBs
	wq      []byte
	dbr     []byte
	cq      *cq
	lkey    uint32
	uarOff  uint64
	bfOff   [2]uint64
	ring    *kernel.Region
	runEnd  []int // per ring page: byte offset where its contiguous run ends

	mu      sync.Mutex
	ready   bool // RDY and accepting frames
	closing bool // teardown started: never ready again
	err     bool // an error CQE moved the SQ to ERR; recovery pending
	pc, cc  uint16
	head    uint64 // ring bytes produced
	tail    uint64 // ring bytes completed
	info    []txInfo
	bf      int
	segs    [maxTxSegs]mlxhw.DataSeg
	hdr     [mlxhw.MaxSendWQESize]byte // inline header scratch
	wqe     mlxhw.SendWQE
	lastDB  [2]uint32
	pending bool // WQEs posted since the last doorbell
}

func (s *sq) size() int { return 1 << s.logSize }

func (s *sq) outstanding() int { return int(s.pc - s.cc) }

// initRing computes the contiguous runs of the byte ring's pages.
func (s *sq) initRing() {
	n := len(s.ring.PFNs)
	s.runEnd = make([]int, n)
	end := n
	for i := n - 1; i >= 0; i-- {
		if i+1 < n && s.ring.PFNs[i+1] != s.ring.PFNs[i]+1 {
			end = i + 1
		}
		s.runEnd[i] = end * kernel.PageSize
	}
}

// ringSegs appends data segments for ring bytes [pos, pos+n).
func (s *sq) ringSegs(segs []mlxhw.DataSeg, pos uint64, n int) ([]mlxhw.DataSeg, bool) {
	size := len(s.ring.Bytes)
	for n > 0 {
		off := int(pos % uint64(size))
		chunk := min(n, s.runEnd[off/kernel.PageSize]-off)
		if len(segs) == cap(segs) {
			return segs, false
		}
		segs = append(segs, mlxhw.DataSeg{ByteCount: uint32(chunk), LKey: s.lkey, Addr: s.ring.GPA(off)})
		pos += uint64(chunk)
		n -= chunk
	}
	return segs, true
}

func (s *sq) ringCopy(pos uint64, b []byte) {
	size := len(s.ring.Bytes)
	off := int(pos % uint64(size))
	k := copy(s.ring.Bytes[off:], b)
	copy(s.ring.Bytes, b[k:])
}

// transmit posts frames from the front of b and rings the doorbell once.
// It returns how many packets it took (their frames are copied, so it
// frees them).
func (s *sq) transmit(b *packet.Batch) (int, error) {
	pkts := b.Packets()
	s.mu.Lock()
	if !s.ready || s.err {
		s.mu.Unlock()
		return 0, errTxDown
	}
	n := 0
	var err error
	for n < len(pkts) {
		// A frame the device cannot take (errTxDrop) is taken and counted.
		if err = s.post(pkts[n]); err != nil && err != errTxDrop {
			break
		}
		err = nil
		n++
	}
	s.ringDoorbell()
	s.mu.Unlock()
	for _, p := range pkts[:n] {
		p.Free()
	}
	b.Consume(n)
	return n, err
}

// errTxDrop marks a frame the driver took and dropped (counted).
var errTxDrop = fmt.Errorf("mlx: frame dropped")

// post builds one frame's WQE. Called with mu held. It returns errTxBusy
// when the ring has no room (the frame stays with the caller).
func (s *sq) post(p *packet.Packet) error {
	v := s.v
	frame := p.Bytes()
	m := &p.Meta
	w := &s.wqe
	*w = mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, SQN: s.n, FmCeSe: mlxhw.CECQEAlways}
	lso := m.Csum&packet.CsumTxTSO != 0
	inline := 0
	switch {
	case lso:
		ihs, ok := lsoHeaderLen(frame)
		// The device takes at most 1<<max_lso_cap bytes per LSO WQE,
		// headers included (spec §7.10).
		if !ok || m.MSS == 0 || len(frame) > 1<<v.eth.MaxLSO || ihs > 256 {
			v.countTxDrop(ifnet.DropInvalid)
			return errTxDrop
		}
		inline = ihs
		w.Opcode, w.MSS = mlxhw.WQEOpLSO, m.MSS
	case v.eth.WQEInlineMode == mlxhw.InlineModeL2:
		inline = min(len(frame), mlxhw.MinInline)
	}
	if len(frame) == 0 || (!lso && len(frame) > v.maxFrame) {
		v.countTxDrop(ifnet.DropTooBig)
		return errTxDrop
	}
	w.CSFlags = csFlags(m.Csum)
	vlan := m.HasVLAN
	if vlan && !v.vlanInsert() && inline == 0 {
		// No insertion in hardware (or tagging turned off): the tag goes
		// into an inline copy of the L2 header instead.
		inline = min(len(frame), 14)
	}
	hdr := frame[:inline]
	if vlan && inline >= 12 {
		// Insertion and inline headers share the eth segment field: put
		// the tag into the inline copy (spec §3.1, mlxhw.SendWQE).
		k := copy(s.hdr[:], frame[:12])
		binary.BigEndian.PutUint16(s.hdr[k:], 0x8100)
		binary.BigEndian.PutUint16(s.hdr[k+2:], m.VLAN)
		k += 4
		k += copy(s.hdr[k:], frame[12:inline])
		hdr = s.hdr[:k]
	} else if vlan {
		w.VLAN, w.VLANTCI = true, m.VLAN
	}
	w.Inline = hdr
	payload := len(frame) - inline
	if uint64(payload) > uint64(len(s.ring.Bytes))-(s.head-s.tail) {
		return errTxBusy
	}
	segs, ok := s.ringSegs(s.segs[:0], s.head, payload)
	if !ok || mlxhw.SendDS(len(hdr), 0)+len(segs) > mlxhw.MaxDS {
		v.countTxDrop(ifnet.DropInvalid)
		return errTxDrop
	}
	ds := mlxhw.SendDS(len(hdr), len(segs))
	nbb := mlxhw.WQEBBs(ds)
	edge := mlxhw.WQEBBsToEdge(s.pc, s.logSize)
	need := nbb
	if edge < nbb {
		need += edge
	}
	if s.outstanding()+need > s.size() {
		return errTxBusy
	}
	if edge < nbb {
		s.padEdge(edge)
	}
	s.ringCopy(s.head, frame[inline:])
	s.head += uint64(payload)
	idx := int(s.pc) & (s.size() - 1)
	w.WQEIndex = s.pc
	off := idx * mlxhw.WQEBBSize
	if _, err := mlxhw.PutSendWQE(s.wq[off:off+nbb*mlxhw.WQEBBSize], w, segs); err != nil {
		// Cannot happen with the checks above; take and count it.
		s.head -= uint64(payload)
		v.countTxDrop(ifnet.DropInvalid)
		return errTxDrop
	}
	s.info[idx] = txInfo{nbb: uint16(nbb), data: true, bytes: uint32(len(frame)), end: s.head}
	s.lastDB[0], s.lastDB[1] = mlxhw.SQDoorbellWords(s.wq[off:])
	s.pc += uint16(nbb)
	s.pending = true
	return nil
}

// padEdge fills the rest of the ring with NOPs (no completion requested),
// so the next WQE starts at index 0 (spec §3.1).
func (s *sq) padEdge(n int) {
	nop := mlxhw.SendWQE{Opcode: mlxhw.WQEOpNOP, SQN: s.n}
	for range n {
		idx := int(s.pc) & (s.size() - 1)
		nop.WQEIndex = s.pc
		off := idx * mlxhw.WQEBBSize
		_, _ = mlxhw.PutSendWQE(s.wq[off:off+mlxhw.WQEBBSize], &nop, nil)
		s.info[idx] = txInfo{nbb: 1, end: s.head}
		s.lastDB[0], s.lastDB[1] = mlxhw.SQDoorbellWords(s.wq[off:])
		s.pc++
	}
	s.pending = true
}

// ringDoorbell publishes the producer counter in the doorbell record, then
// writes the last WQE's first 8 bytes to the bfreg (spec §3.5), alternating
// between its halves. Called with mu held.
func (s *sq) ringDoorbell() {
	if !s.pending {
		return
	}
	s.pending = false
	storeBE32(s.dbr, mlxhw.DBRSendOff, uint32(s.pc))
	s.v.bar.Write64(s.uarOff+s.bfOff[s.bf], uint64(s.lastDB[0])<<32|uint64(s.lastDB[1]))
	s.bf ^= 1
}

// complete consumes the send CQ (worker goroutine) and re-arms it. It
// returns how many CQEs it consumed.
func (s *sq) complete(bar pci.BAR, budget int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.consume(budget)
	s.cq.armSN++
	s.cq.arm(bar, s.uarOff)
	if s.err {
		s.v.kick(workRecoverSQ)
	}
	return n
}

// consume handles up to budget CQEs without touching the device. Called
// with mu held.
func (s *sq) consume(budget int) int {
	v := s.v
	var c mlxhw.CQE
	n := 0
	for n < budget {
		ok, err := s.cq.next(&c)
		if !ok {
			break
		}
		s.cq.cc++
		n++
		if err != nil {
			v.deviceError("tx cqe", err)
			continue
		}
		if c.QPN() != s.n {
			v.deviceError("tx cqe", fmt.Errorf("%w: CQE for queue %#x on SQ %#x's CQ", ErrDevice, c.QPN(), s.n))
			continue
		}
		switch {
		case c.Opcode == mlxhw.CQEReq:
			s.retire(c.WQECounter, false, 0)
		case c.Opcode == mlxhw.CQEReqErr:
			if !s.err {
				s.err = true
				v.stats.txErrCQEs.Add(1)
				v.log.Warn("mlx: send queue error", "sq", s.n, "syndrome", c.Syndrome, "wqe", c.WQECounter)
			}
			s.retire(c.WQECounter, true, c.Syndrome)
		default:
			v.deviceError("tx cqe", fmt.Errorf("%w: CQE opcode %d on a send CQ", ErrDevice, c.Opcode))
		}
	}
	s.cq.update()
	return n
}

// retire completes every WQE from cc up to and including the one at wc,
// after checking that wc names an outstanding WQE start.
func (s *sq) retire(wc uint16, failed bool, synd uint8) {
	v := s.v
	d := wc - s.cc
	if int(d) >= s.outstanding() || s.info[int(wc)&(s.size()-1)].nbb == 0 {
		v.deviceError("tx cqe", fmt.Errorf("%w: completion for WQE %d outside [%d, %d)", ErrDevice, wc, s.cc, s.pc))
		return
	}
	for {
		idx := int(s.cc) & (s.size() - 1)
		in := s.info[idx]
		last := s.cc == wc
		if in.data {
			if failed && last {
				if synd == mlxhw.SyndWRFlush {
					v.countTxLost(1, ifnet.DropDown)
				} else {
					v.countTxLost(1, ifnet.DropInvalid)
				}
			} else {
				v.stats.txPackets.Add(1)
				v.stats.txBytes.Add(uint64(in.bytes))
			}
		}
		s.tail = in.end
		s.info[idx] = txInfo{}
		s.cc += in.nbb
		if last || in.nbb == 0 {
			return
		}
	}
}

// abandon forgets every outstanding WQE (the device is gone or the SQ was
// reset): their frames are counted as dropped for reason. Called with mu
// held.
func (s *sq) abandon(reason ifnet.DropReason) {
	for s.cc != s.pc {
		idx := int(s.cc) & (s.size() - 1)
		in := s.info[idx]
		if in.nbb == 0 {
			break
		}
		if in.data {
			s.v.countTxLost(1, reason)
		}
		s.info[idx] = txInfo{}
		s.cc += in.nbb
	}
	s.cc = s.pc
	s.tail = s.head
}

// csFlags maps the stack's checksum requests to eth segment cs_flags.
func csFlags(c packet.Csum) uint8 {
	var f uint8
	if c&(packet.CsumTxIPv4|packet.CsumTxTSOv4) != 0 {
		f |= mlxhw.CSL3
	}
	if c&(packet.CsumTxTCPv4|packet.CsumTxUDPv4|packet.CsumTxTCPv6|packet.CsumTxUDPv6|packet.CsumTxTSO) != 0 {
		f |= mlxhw.CSL4
	}
	return f
}

// lsoHeaderLen returns the length of the Ethernet (+802.1Q), IPv4/IPv6 and
// TCP headers of frame: what an LSO WQE must inline (spec §3.1).
func lsoHeaderLen(f []byte) (int, bool) {
	if len(f) < 14 {
		return 0, false
	}
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	off += 2
	if et == 0x8100 {
		if len(f) < off+4 {
			return 0, false
		}
		et = binary.BigEndian.Uint16(f[off+2:])
		off += 4
	}
	var proto byte
	switch et {
	case 0x0800:
		if len(f) < off+20 || f[off]>>4 != 4 {
			return 0, false
		}
		ihl := int(f[off]&0xf) * 4
		if ihl < 20 {
			return 0, false
		}
		proto = f[off+9]
		off += ihl
	case 0x86dd:
		if len(f) < off+40 {
			return 0, false
		}
		proto = f[off+6]
		off += 40
	default:
		return 0, false
	}
	if proto != 6 || len(f) < off+20 {
		return 0, false
	}
	thl := int(f[off+12]>>4) * 4
	if thl < 20 || len(f) < off+thl {
		return 0, false
	}
	return off + thl, true
}
