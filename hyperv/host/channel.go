package host

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// drainBatch bounds how many packets the reader hands to the device
// before it commits and looks at stop again.
const drainBatch = 256

// Channel is the host side of one open VMBus channel, as a device sees it.
// A new Channel exists for every open; it is dead once the device's
// Handler.Close has been called.
//
// The send methods may be called from any goroutine; writes are
// serialized by the Channel. The guest ring is read only by the channel's
// own goroutine.
type Channel struct {
	s       *Server
	dev     Device
	relid   uint32
	sub     uint16
	connID  uint32
	open    vmbusmsg.OpenChannel
	version vmbusmsg.Version
	noIRQ   bool // target_vp 0xFFFFFFFF: the guest wants no interrupts

	in *ring.Reader // owned by the session goroutine

	wmu sync.Mutex   // guards out
	out *ring.Writer // host -> guest ring

	rx, tx *kernel.Event // guest signalled: data to read / space to write
	stop   chan struct{} // closed when the session must end
	closed atomic.Bool

	// Owned by the loop goroutine.
	c       *channel
	ring    *gpadl
	views   []*GPADLView
	stopped bool // stopSession or a failed open detached it
	counted bool // counted in bus.stopped
}

// Relid returns the channel's child relid.
func (ch *Channel) Relid() uint32 { return ch.relid }

// SubchannelIndex returns 0 for the primary channel, ≥ 1 for subchannels.
func (ch *Channel) SubchannelIndex() uint16 { return ch.sub }

// ConnectionID returns the connection id the guest signals.
func (ch *Channel) ConnectionID() uint32 { return ch.connID }

// Version returns the negotiated VMBus protocol version.
func (ch *Channel) Version() vmbusmsg.Version { return ch.version }

// UserData returns OPENCHANNEL's 120-byte user data.
func (ch *Channel) UserData() [vmbusmsg.UserDefinedSize]byte { return ch.open.UserData }

// Memory returns guest memory by PFN, for GPA-direct ranges.
func (ch *Channel) Memory() kernel.PhysMem { return ch.s.cfg.Memory }

// Done is closed when the channel is closing; sends fail from then on.
func (ch *Channel) Done() <-chan struct{} { return ch.stop }

// SendInBand writes an in-band packet to the guest, waiting for ring
// space if needed. It fails with ErrClosed once the channel closes.
func (ch *Channel) SendInBand(transID uint64, completion bool, payload []byte) error {
	return ch.send(ring.InBandSize(len(payload)), func(w *ring.Writer) error {
		return w.WriteInBand(transID, completion, payload)
	})
}

// SendCompletion writes a completion packet answering transID.
func (ch *Channel) SendCompletion(transID uint64, payload []byte) error {
	return ch.send(ring.InBandSize(len(payload)), func(w *ring.Writer) error {
		return w.WriteCompletion(transID, payload)
	})
}

// SendXferPages writes a transfer-page packet (netvsc receive).
func (ch *Channel) SendXferPages(transID uint64, completion bool, setID uint16, ranges []ring.XferRange, payload []byte) error {
	return ch.send(ring.XferPagesSize(len(ranges), len(payload)), func(w *ring.Writer) error {
		return w.WriteXferPages(transID, completion, setID, false, ranges, payload)
	})
}

// WriteBatch stages any number of packets with fn and publishes them with
// one commit and at most one signal. It does not wait for space: fn sees
// ring.ErrFull from the Writer and stops; what it staged is still sent.
// Use WaitWritable to wait for space.
func (ch *Channel) WriteBatch(fn func(w *ring.Writer) error) error {
	ch.wmu.Lock()
	defer ch.wmu.Unlock()
	if ch.closed.Load() {
		return ErrClosed
	}
	err := fn(ch.out)
	if ch.out.Commit() {
		ch.signalGuest()
	}
	return err
}

// WaitWritable waits until total bytes of ring space (ring.InBandSize and
// friends) are free, or the channel closes.
func (ch *Channel) WaitWritable(total int) error {
	ch.wmu.Lock()
	defer ch.wmu.Unlock()
	return ch.waitSpace(total)
}

func (ch *Channel) send(total int, write func(*ring.Writer) error) error {
	ch.wmu.Lock()
	defer ch.wmu.Unlock()
	for {
		if ch.closed.Load() {
			return ErrClosed
		}
		err := write(ch.out)
		if err == nil {
			if ch.out.Commit() {
				ch.signalGuest()
			}
			return nil
		}
		if err != ring.ErrFull {
			return err
		}
		if err := ch.waitSpace(total); err != nil {
			return err
		}
	}
}

// waitSpace arms pending_send_sz and sleeps until the guest signals that
// the space is free. Called with wmu held.
func (ch *Channel) waitSpace(total int) error {
	for {
		if ch.closed.Load() {
			return ErrClosed
		}
		ready, err := ch.out.ArmPendingSend(total)
		if err != nil || ready {
			return err
		}
		select {
		case <-ch.stop:
			return ErrClosed
		case <-ch.tx.C():
		}
	}
}

// signalGuest sets the channel's event flag in the guest's SIEF.
func (ch *Channel) signalGuest() {
	if ch.noIRQ {
		return
	}
	if p := ch.s.sigPort.Load(); p != nil {
		if err := (*p).SignalGuest(ch.relid); err != nil {
			ch.s.log.Warn("vmbus host: signal guest failed", "relid", ch.relid, "err", err)
		}
	}
}

// wake is the guest's HvSignalEvent: data to read, or space to write.
func (ch *Channel) wake() {
	ch.rx.Signal()
	ch.tx.Signal()
}

// MapGPADL holds GPADL id of this channel for the device (see GPADLView).
func (ch *Channel) MapGPADL(id uint32) (*GPADLView, error) {
	var v *GPADLView
	var err error
	if e := ch.s.call(func() {
		if ch.stopped {
			err = ErrClosed
			return
		}
		var g *gpadl
		if g, err = ch.s.bus.acquire(ch.c, id); err != nil {
			return
		}
		v = &GPADLView{ID: id, Ranges: g.ranges, Size: g.size, mem: ch.s.cfg.Memory, g: g, ch: ch}
		ch.views = append(ch.views, v)
	}); e != nil {
		return nil, e
	}
	return v, err
}

// ReadRange copies the guest memory a GPA-direct range describes.
func (ch *Channel) ReadRange(r *gpa.Range, dst []byte) error {
	return ReadRange(ch.s.cfg.Memory, r, dst)
}

// OfferSubchannels asks the host to offer n more subchannels of this
// (primary) channel, with the same class and instance and indices after
// the existing ones. It returns how many were created, fewer than n when
// Config.MaxSubchannels is reached. They are offered at once if the guest
// has requested offers. They are withdrawn when the primary closes.
func (ch *Channel) OfferSubchannels(n int) (int, error) {
	got := 0
	var err error
	if e := ch.s.call(func() { got, err = ch.s.bus.addSubchannels(ch, n) }); e != nil {
		return 0, e
	}
	return got, err
}

// run is the session goroutine: Open, then read the guest ring until
// stopped, then Close.
func (ch *Channel) run() {
	s := ch.s
	defer s.sessions.Done()
	h, err := ch.dev.Open(ch)
	if err == nil && h == nil {
		err = errors.New("host: device returned no handler")
	}
	s.post(func() { s.bus.openDone(ch, err) })
	if err == nil {
		ch.serve(h)
		h.Close()
	}
	s.post(func() { s.bus.sessionExited(ch) })
}

func (ch *Channel) serve(h Handler) {
	r := ch.in
	for {
		select {
		case <-ch.stop:
			return
		default:
		}
		r.BeginRead()
		n, sig, err := r.Drain(drainBatch, h.Packet)
		if sig {
			ch.signalGuest()
		}
		if err != nil {
			ch.s.log.Warn("vmbus host: channel stopped reading", "relid", ch.relid, "err", err)
			<-ch.stop
			return
		}
		if n == drainBatch || r.EndRead() {
			continue
		}
		select {
		case <-ch.stop:
			return
		case <-ch.rx.C():
		}
	}
}
