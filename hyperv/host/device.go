package host

import (
	"encoding/binary"

	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
)

// Offer is what a device tells the guest about itself in OFFERCHANNEL
// (spec §2.4). The server fills in the relid, connection id, subchannel
// index and interrupt fields.
type Offer struct {
	Class    tlfs.GUID // if_type: the device class (spec §6)
	Instance tlfs.GUID // if_instance: names this device
	Flags    vmbusmsg.OfferFlags
	// MMIOMegabytes is the MMIO space the device wants (vPCI), and
	// MMIOMegabytesOptional the optional part.
	MMIOMegabytes         uint16
	MMIOMegabytesOptional uint16
	// UserDefined is copied into the offer's 120-byte user-defined area;
	// SetPipeMode fills its first u32 for named-pipe offers.
	UserDefined [vmbusmsg.UserDefinedSize]byte
}

// SetPipeMode marks the offer a named pipe in the given mode
// (vmbusmsg.PipeModeByte or PipeModeMessage).
func (o *Offer) SetPipeMode(mode uint32) {
	o.Flags |= vmbusmsg.OfferNamedPipeMode
	binary.LittleEndian.PutUint32(o.UserDefined[:], mode)
}

// Device is a VMBus device the host offers to the guest.
//
// Open is called, on the new channel's own goroutine, each time the guest
// opens one of the device's channels (the primary, SubchannelIndex 0, or a
// subchannel). The returned Handler receives that channel's packets on the
// same goroutine and is closed there when the channel closes. An error
// fails the open: the guest gets OPENCHANNEL_RESULT with a non-zero
// status. Open may block (the control goroutine does not wait for it) and
// may call any Channel method.
type Device interface {
	Offer() Offer
	Open(ch *Channel) (Handler, error)
}

// Handler serves one open channel. All calls come from the channel's
// goroutine, one at a time.
type Handler interface {
	// Packet is called for each packet the guest wrote, in ring order.
	// The packet and its slices are valid only during the call. An error
	// stops the host reading this channel (as a real host stops a
	// misbehaving channel); the channel stays open until the guest or
	// the host closes it.
	Packet(p *ring.Packet) error
	// Close is called once, after the last Packet, when the guest closes
	// the channel, the channel is rescinded, the bus is reset or unloaded,
	// or the server is closed. Sends fail from then on.
	Close()
}
