// Package echo is a test device for the simulated Hyper-V host (host
// side): a VMBus device that sends back every packet the guest writes, so
// that rings, signalling, GPA-direct ranges and guest-memory access can be
// tested end to end with nothing device-specific in the way.
//
// Its class GUID is made up for hvguest and matches no Hyper-V device:
//
//	ClassGUID = 4c7f6a39-5e3b-4d7e-9a61-ec40ec40ec40
//
// Replies:
//
//   - In-band packet: the same payload (as it sits in the ring, padded to 8
//     bytes) with the same transaction id. If the guest asked for a
//     completion, the reply is that completion (type 11) carrying the
//     payload; otherwise it is an in-band packet (type 6) without the
//     completion flag.
//   - GPA-direct packet: the bytes its ranges describe, read from guest
//     memory and concatenated in range order (the packet's own in-band
//     payload is not echoed), as a completion if one was asked for, else
//     in-band, with the same transaction id. If a range cannot be read
//     (outside guest memory, or more than MaxGather bytes in all) the
//     reply carries no payload and Errors counts it.
//   - Completion and transfer-page packets from the guest are counted and
//     not answered.
//
// Every channel of the device (primary and subchannels) echoes the same
// way; Subchannels in New's options makes the primary's Open offer that
// many subchannels, to test them.
package echo

import (
	"slices"
	"sync/atomic"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/tlfs"
)

// ClassGUID is the echo device's made-up class (if_type).
var ClassGUID = tlfs.MustParseGUID("4c7f6a39-5e3b-4d7e-9a61-ec40ec40ec40")

// MaxGather bounds the bytes one GPA-direct packet may make the device
// read from guest memory.
const MaxGather = 1 << 20

// Options configure an echo device.
type Options struct {
	// Instance is the instance GUID; zero picks one from ClassGUID with
	// Data1 = 1.
	Instance tlfs.GUID
	// Subchannels is how many subchannels the primary offers when it
	// opens.
	Subchannels int
}

// Stats are the device's counters.
type Stats struct {
	Packets   uint64 // packets received
	Bytes     uint64 // payload bytes received (GPA-direct: bytes gathered)
	GPADirect uint64 // GPA-direct packets among them
	Replies   uint64 // packets sent back
	Errors    uint64 // packets answered without payload, or sends that failed
	Opens     uint64
	Closes    uint64
}

// Device is the echo device; it implements host.Device.
type Device struct {
	opts                                     Options
	packets, bytes, gpaDirect, replies, errs atomic.Uint64
	opens, closes                            atomic.Uint64
}

// New returns an echo device.
func New(opts Options) *Device {
	if opts.Instance.IsZero() {
		opts.Instance = ClassGUID
		opts.Instance[0], opts.Instance[1], opts.Instance[2], opts.Instance[3] = 1, 0, 0, 0
	}
	return &Device{opts: opts}
}

// Offer implements host.Device.
func (d *Device) Offer() host.Offer {
	return host.Offer{Class: ClassGUID, Instance: d.opts.Instance}
}

// Open implements host.Device.
func (d *Device) Open(ch *host.Channel) (host.Handler, error) {
	d.opens.Add(1)
	if ch.SubchannelIndex() == 0 && d.opts.Subchannels > 0 {
		if _, err := ch.OfferSubchannels(d.opts.Subchannels); err != nil {
			return nil, err
		}
	}
	return &handler{d: d, ch: ch}, nil
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() Stats {
	return Stats{Packets: d.packets.Load(), Bytes: d.bytes.Load(), GPADirect: d.gpaDirect.Load(),
		Replies: d.replies.Load(), Errors: d.errs.Load(), Opens: d.opens.Load(), Closes: d.closes.Load()}
}

type handler struct {
	d   *Device
	ch  *host.Channel
	buf []byte    // gather buffer, reused
	rg  gpa.Range // range decoding scratch, reused
}

func (h *handler) Packet(p *ring.Packet) error {
	d := h.d
	d.packets.Add(1)
	var payload []byte
	switch p.Type {
	case ring.TypeInBand:
		payload = p.Payload
		d.bytes.Add(uint64(len(payload)))
	case ring.TypeGPADirect:
		d.gpaDirect.Add(1)
		var ok bool
		payload, ok = h.gather(p)
		if !ok {
			d.errs.Add(1)
			payload = nil
		}
		d.bytes.Add(uint64(len(payload)))
	default:
		return nil
	}
	var err error
	if p.CompletionRequested() {
		err = h.ch.SendCompletion(p.TransID, payload)
	} else {
		err = h.ch.SendInBand(p.TransID, false, payload)
	}
	if err != nil {
		d.errs.Add(1)
		if err == host.ErrClosed {
			return nil
		}
		return err
	}
	d.replies.Add(1)
	return nil
}

// gather reads the bytes of every range of a GPA-direct packet.
func (h *handler) gather(p *ring.Packet) ([]byte, bool) {
	h.buf = h.buf[:0]
	it := p.GPARanges()
	for it.Next(&h.rg) {
		n := int(h.rg.ByteCount)
		if len(h.buf)+n > MaxGather {
			return nil, false
		}
		start := len(h.buf)
		h.buf = slices.Grow(h.buf, n)[:start+n]
		if err := h.ch.ReadRange(&h.rg, h.buf[start:]); err != nil {
			return nil, false
		}
	}
	if it.Err() != nil {
		return nil, false
	}
	return h.buf, true
}

func (h *handler) Close() { h.d.closes.Add(1) }
