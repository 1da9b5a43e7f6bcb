package netstack

import (
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// txBatch is one WritePackets call's working state, reused through
// Endpoint.batches so that steady-state writes allocate nothing.
type txBatch struct {
	b *packet.Batch
	// src[i] is the index in the stack's list of the packet that produced
	// b.At(i) (a software-segmented GSO packet produces several).
	src []int
	// scratch holds a GSO packet that is segmented in software.
	scratch []byte
	// Result of the flushes so far.
	done int         // list packets whose frames were all accepted
	err  tcpip.Error // first error
}

func newTxBatch(n int) *txBatch {
	return &txBatch{b: packet.NewBatch(n), src: make([]int, 0, n)}
}

// Errors returned to the stack; tcpip errors are pointer-free values, so
// returning these preallocated ones allocates nothing.
var (
	errClosedForSend  = &tcpip.ErrClosedForSend{}
	errNoBufferSpace  = &tcpip.ErrNoBufferSpace{}
	errMessageTooLong = &tcpip.ErrMessageTooLong{}
	errMalformed      = &tcpip.ErrMalformedHeader{}
)

// WritePackets implements stack.LinkWriter. It converts the list into
// frames in one packet.Batch, with offload metadata, and makes one ifnet
// Transmit of it (more than one only when the frames outnumber the batch
// capacity). It returns how many of the stack's packets were accepted by
// the driver; the stack keeps its references to all of them.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	list := pkts.AsSlice()
	if len(list) == 0 {
		return 0, nil
	}
	if !e.linkUsable() {
		e.ifp.CountDrops(ifnet.DropDown, len(list))
		return 0, errClosedForSend
	}
	tb := e.batches.Get().(*txBatch)
	tb.done, tb.err = 0, nil
	assist := e.ifp.HWAssist()
	offloadAdvertised := e.Capabilities()&stack.CapabilityTXChecksumOffload != 0
	for i, pkt := range list {
		if err := e.convert(tb, i, pkt, assist, offloadAdvertised); err != nil {
			// This packet cannot be sent: send what came before it.
			e.ifp.CountOutErrors(1)
			e.flush(tb, i)
			if tb.err == nil {
				tb.err = err
			}
			break
		}
		if tb.err != nil {
			break // a flush failed: the driver is down or full
		}
	}
	if tb.err == nil {
		e.flush(tb, len(list))
	}
	if b := tb.b; b.Len() > 0 { // frames converted after a failed flush
		e.ifp.CountDrops(ifnet.DropQueueFull, b.Len())
		b.Free()
		tb.src = tb.src[:0]
	}
	n, err := tb.done, tb.err
	tb.err = nil
	e.batches.Put(tb)
	if n == len(list) {
		return n, nil
	}
	if err == nil {
		err = errNoBufferSpace
	}
	return n, err
}

// convert appends the frames for list[i] to the batch, flushing when it is
// full.
func (e *Endpoint) convert(tb *txBatch, i int, pkt *stack.PacketBuffer, assist ifnet.HWAssist, offloadAdvertised bool) tcpip.Error {
	size := pkt.Size()
	gso := pkt.GSOOptions
	isTSO := (gso.Type == stack.GSOTCPv4 || gso.Type == stack.GSOTCPv6) && gso.MSS > 0
	if isTSO {
		l3 := size - ethHdrLen
		if l3 > maxGSOSize {
			return errMessageTooLong
		}
		hw := ifnet.AssistIPTSO
		if gso.Type == stack.GSOTCPv6 {
			hw = ifnet.AssistIP6TSO
		}
		if assist&hw == 0 || size > e.largePool().Size() {
			return e.segment(tb, i, pkt, assist)
		}
	}
	pool := e.pool
	if size > pool.Size() || isTSO {
		pool = e.largePool()
		if size > pool.Size() {
			return errMessageTooLong
		}
	}
	p := pool.Get()
	if p == nil {
		e.ifp.CountDrops(ifnet.DropNoBuffer, 1)
		return errNoBufferSpace
	}
	frame, err := p.Append(size)
	if err != nil {
		p.Free()
		return errMessageTooLong
	}
	copyPacket(frame, pkt)
	needL4 := offloadAdvertised || gso.NeedsCsum
	if err := txOffload(p, frame, assist, needL4, isTSO, gso.MSS); err != nil {
		p.Free()
		return err
	}
	e.add(tb, i, p)
	return nil
}

// add puts a frame into the batch, flushing first if the batch is full.
func (e *Endpoint) add(tb *txBatch, i int, p *packet.Packet) {
	if tb.b.Full() {
		e.flush(tb, i)
	}
	tb.b.Add(p)
	tb.src = append(tb.src, i)
}

// flush transmits the batch. next is the index of the first list packet
// that has no frame in the batch yet (every packet before it has all its
// frames either sent earlier or in the batch).
func (e *Endpoint) flush(tb *txBatch, next int) {
	b := tb.b
	if b.Len() == 0 {
		if tb.err == nil {
			tb.done = next
		}
		return
	}
	total := b.Len()
	sent, err := e.ifp.Transmit(b)
	if sent == total {
		if tb.err == nil {
			tb.done = next
		}
	} else {
		// Frames from tb.src[sent] on were not taken: their packets are not
		// done (a segmented packet that lost only some frames is retried
		// whole by TCP anyway).
		if tb.err == nil {
			tb.done = tb.src[sent]
			tb.err = mapTxError(err)
		}
		e.ifp.CountDrops(ifnet.DropQueueFull, b.Len())
		b.Free()
	}
	tb.src = tb.src[:0]
}

// mapTxError turns an ifnet transmit error into a tcpip error.
func mapTxError(err error) tcpip.Error {
	switch {
	case errors.Is(err, ifnet.ErrDown), errors.Is(err, ifnet.ErrDetached):
		return errClosedForSend
	default:
		return errNoBufferSpace
	}
}

// copyPacket copies the whole packet (headers and data) into dst, which
// must be pkt.Size() bytes, without allocating.
func copyPacket(dst []byte, pkt *stack.PacketBuffer) {
	vl, off := pkt.AsViewList()
	n := 0
	for v := vl.Front(); v != nil && n < len(dst); v = v.Next() {
		s := v.AsSlice()
		if off >= len(s) {
			off -= len(s)
			continue
		}
		n += copy(dst[n:], s[off:])
		off = 0
	}
}
