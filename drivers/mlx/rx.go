package mlx

import (
	"encoding/binary"
	"fmt"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Receive path (spec §3.2, §3.6, §7.9). A cyclic RQ whose WQE i always
// points at buffer i: the WQEs are written once when the queue is created,
// and reposting a consumed buffer is only advancing the producer counter
// in the doorbell record (RQs have no MMIO doorbell). A completed frame is
// copied into a pooled packet, so the buffer goes straight back to the
// device.

// rq is one receive queue with its completion queue.
//
// Ownership: everything mutable (pc, cc, the cq counters, batch) belongs
// to the worker goroutine; the rest is immutable after creation.
type rq struct {
	v       *VF
	idx     int
	n       uint32 // rqn
	logSize uint8  // in WQEs
	stride  int    // bytes per WQE
	wq      []byte
	dbr     []byte
	cq      *cq
	bufs    *kernel.Region
	bufSize int
	pc, cc  uint16
	batch   *packet.Batch
}

func (r *rq) size() int { return 1 << r.logSize }

// segsPerBuf is how many data segments describe one receive buffer: one
// per page it may touch.
func segsPerBuf(bufSize int) int {
	if bufSize <= kernel.PageSize {
		return 1
	}
	return (bufSize + kernel.PageSize - 1) / kernel.PageSize
}

// fill writes every WQE (buffer i for WQE i, split at non-contiguous page
// boundaries) and hands them all to the device.
func (r *rq) fill(lkey uint32) error {
	segs := make([]mlxhw.DataSeg, 0, segsPerBuf(r.bufSize))
	for i := range r.size() {
		segs = segs[:0]
		base := i * r.bufSize
		for off := 0; off < r.bufSize; {
			p := (base + off) / kernel.PageSize
			chunk := min(r.bufSize-off, (p+1)*kernel.PageSize-(base+off))
			a := r.bufs.GPA(base + off)
			if n := len(segs); n > 0 && segs[n-1].Addr+uint64(segs[n-1].ByteCount) == a {
				segs[n-1].ByteCount += uint32(chunk)
			} else {
				if n == cap(segs) {
					return fmt.Errorf("mlx: receive buffer %d needs more than %d segments: %w", i, cap(segs), ErrConfig)
				}
				segs = append(segs, mlxhw.DataSeg{ByteCount: uint32(chunk), LKey: lkey, Addr: a})
			}
			off += chunk
		}
		if err := mlxhw.PutRecvWQE(r.wq[i*r.stride:(i+1)*r.stride], false, 0, segs); err != nil {
			return fmt.Errorf("mlx: receive WQE %d: %w", i, err)
		}
	}
	r.pc = uint16(r.size())
	storeBE32(r.dbr, mlxhw.DBRRecvOff, uint32(r.pc))
	return nil
}

// complete consumes the receive CQ (worker goroutine): each good frame is
// copied into a packet and handed to the interface in batches, each
// buffer is reposted. It returns how many CQEs it consumed.
func (r *rq) complete(bar pci.BAR, budget int) int {
	v := r.v
	var c mlxhw.CQE
	ifp := v.ifp.Load()
	n := 0
	for n < budget {
		ok, err := r.cq.next(&c)
		if !ok {
			break
		}
		r.cq.cc++
		n++
		if err != nil {
			v.deviceError("rx cqe", err)
			v.countRxDrop(ifp, ifnet.DropInvalid)
			r.recycle()
			continue
		}
		idx := int(r.cc) & (r.size() - 1)
		if c.QPN() != r.n || int(c.WQECounter)&(r.size()-1) != idx || r.cc == r.pc {
			v.deviceError("rx cqe", fmt.Errorf("%w: RX CQE rq %#x wqe %d, expected rq %#x wqe %d",
				ErrDevice, c.QPN(), c.WQECounter, r.n, idx))
			if r.cc != r.pc {
				v.countRxDrop(ifp, ifnet.DropInvalid)
				r.recycle()
			}
			continue
		}
		switch {
		case c.Opcode == mlxhw.CQERespSend:
			r.deliver(ifp, &c, idx)
		case c.Opcode == mlxhw.CQERespErr:
			v.stats.rxErrCQEs.Add(1)
			if c.Syndrome == mlxhw.SyndWRFlush {
				v.countRxDrop(ifp, ifnet.DropDown)
			} else {
				v.countRxDrop(ifp, ifnet.DropInvalid)
			}
		default:
			v.deviceError("rx cqe", fmt.Errorf("%w: CQE opcode %d on a receive CQ", ErrDevice, c.Opcode))
			v.countRxDrop(ifp, ifnet.DropInvalid)
		}
		r.recycle()
		if n%rxPublishEvery == 0 {
			r.publish()
		}
	}
	r.flush(ifp)
	r.publish()
	r.cq.armSN++
	r.cq.arm(bar, r.v.uarOff)
	return n
}

// rxPublishEvery is how many CQEs the consumer handles before it gives
// the buffers back, so a long run never starves the device.
const rxPublishEvery = 64

// publish gives consumed CQEs and their buffers back to the device: the
// CQ's consumer index first, then the RQ producer counter, since the
// device may fill a buffer the moment it sees it and its CQE must find
// room.
func (r *rq) publish() {
	r.cq.update()
	storeBE32(r.dbr, mlxhw.DBRRecvOff, uint32(r.pc))
}

// dropPending counts the frames the device completed but the driver will
// never deliver (teardown or removal), so none is lost uncounted.
func (r *rq) dropPending() {
	var c mlxhw.CQE
	ifp := r.v.ifp.Load()
	for range r.size() {
		ok, err := r.cq.next(&c)
		if !ok {
			return
		}
		r.cq.cc++
		if err == nil && c.Opcode == mlxhw.CQERespSend {
			r.v.countRxDrop(ifp, ifnet.DropDetached)
		}
	}
}

// recycle gives the buffer at cc back to the device.
func (r *rq) recycle() {
	r.cc++
	r.pc++
}

func (r *rq) deliver(ifp *ifnet.Interface, c *mlxhw.CQE, idx int) {
	v := r.v
	cnt := int(c.ByteCnt)
	if cnt < 14 || cnt > r.bufSize {
		v.deviceError("rx cqe", fmt.Errorf("%w: RX byte count %d, buffer %d", ErrDevice, cnt, r.bufSize))
		v.countRxDrop(ifp, ifnet.DropInvalid)
		return
	}
	p := v.rxPool.Get()
	if p == nil {
		v.countRxDrop(ifp, ifnet.DropNoBuffer)
		return
	}
	data := r.bufs.Bytes[idx*r.bufSize : idx*r.bufSize+cnt]
	caps := v.capEnabled()
	if c.VLANStripped() && caps&ifnet.CapVLANHWTagging == 0 {
		// Tagging is off for the stack: put the tag back in the frame.
		buf, err := p.Append(cnt + 4)
		if err != nil {
			p.Free()
			v.countRxDrop(ifp, ifnet.DropTooBig)
			return
		}
		copy(buf, data[:12])
		binary.BigEndian.PutUint16(buf[12:], 0x8100)
		binary.BigEndian.PutUint16(buf[14:], c.VLANInfo)
		copy(buf[16:], data[12:])
	} else {
		if err := p.AppendBytes(data); err != nil {
			p.Free()
			v.countRxDrop(ifp, ifnet.DropTooBig)
			return
		}
		if c.VLANStripped() {
			p.Meta.SetVLAN(c.VLANInfo)
		}
	}
	rxMeta(&p.Meta, c, caps)
	p.Meta.Queue = uint16(r.idx)
	if ifp == nil {
		p.Free()
		v.countRxDrop(nil, ifnet.DropDetached)
		return
	}
	v.stats.rxPackets.Add(1)
	v.stats.rxBytes.Add(uint64(cnt))
	r.batch.Add(p)
	if r.batch.Full() {
		r.flush(ifp)
	}
}

func (r *rq) flush(ifp *ifnet.Interface) {
	if r.batch.Len() == 0 {
		return
	}
	if ifp == nil {
		r.batch.Free()
		return
	}
	ifp.Input(r.batch)
}

// rxMeta fills the checksum verdicts and the RSS hash from a CQE (spec
// §3.3, §7.10). A verdict is reported only for a header the device says it
// parsed, and only while receive checksum offload is enabled.
func rxMeta(m *packet.Meta, c *mlxhw.CQE, caps ifnet.Cap) {
	l3, l4 := c.L3Type(), c.L4Type()
	if l3 == mlxhw.CQEL3IPv4 && caps&ifnet.CapRxCsum != 0 {
		if c.L3OK() {
			m.Csum |= packet.CsumRxIPOK
		} else {
			m.Csum |= packet.CsumRxIPBad
		}
	}
	want := ifnet.CapRxCsum
	if l3 == mlxhw.CQEL3IPv6 {
		want = ifnet.CapRxCsumIPv6
	}
	if l4 != mlxhw.CQEL4None && l3 != mlxhw.CQEL3None && caps&want != 0 {
		if c.L4OK() {
			m.Csum |= packet.CsumRxL4OK
		} else {
			m.Csum |= packet.CsumRxL4Bad
		}
	}
	if c.RSSHashType != 0 {
		m.Hash = c.RSSHash
		tcp := l4 == mlxhw.CQEL4TCP || l4 == mlxhw.CQEL4TCPAck || l4 == mlxhw.CQEL4TCPAckDat
		l4hash := c.RSSHashType&mlxhw.RSSHashTypeL4 != 0
		switch {
		case l3 == mlxhw.CQEL3IPv4 && l4hash && tcp:
			m.HashType = packet.HashTCPv4
		case l3 == mlxhw.CQEL3IPv4 && l4hash && l4 == mlxhw.CQEL4UDP:
			m.HashType = packet.HashUDPv4
		case l3 == mlxhw.CQEL3IPv4:
			m.HashType = packet.HashIPv4
		case l3 == mlxhw.CQEL3IPv6 && l4hash && tcp:
			m.HashType = packet.HashTCPv6
		case l3 == mlxhw.CQEL3IPv6 && l4hash && l4 == mlxhw.CQEL4UDP:
			m.HashType = packet.HashUDPv6
		case l3 == mlxhw.CQEL3IPv6:
			m.HashType = packet.HashIPv6
		default:
			m.HashType = packet.HashOpaque
		}
	}
}
