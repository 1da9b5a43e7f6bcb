// Package synic is the seam between a VMBus guest and the hypervisor as far
// as VMBus needs one: posting a message to the host (HvCallPostMessage),
// signalling an event (HvCallSignalEvent), and receiving the SynIC's VMBus
// message slot (SINT 2) and event flags.
//
// It belongs to neither side's logic: the guest's vmbus client holds a
// GuestPort and the simulated host holds a HostPort, and the implementations
// here (an in-process pair, and one over shared memory for a guest in
// another process or in a QEMU VM) stand in for the hypervisor between
// them. A bare-metal platform implements GuestPort with real hypercalls and
// SynIC pages.
//
// The semantics follow the TLFS (see ../../shared/spec/vmbus-vpci.md §1):
// one message in the slot at a time, further messages queued with the
// "message pending" flag set and delivered when the guest frees the slot;
// event flags are one bit per channel (child relid) that the guest
// test-and-clears; an interrupt tells the guest to look, events first.
package synic

import (
	"errors"
	"sync/atomic"

	"github.com/hvguest/hvguest/hyperv/tlfs"
)

// MaxPayload is the largest message payload (HV_MESSAGE_PAYLOAD_BYTE_COUNT).
const MaxPayload = 240

// MaxRelID is the highest event flag a SINT's 2048-bit area can carry.
const MaxRelID = 2047

// Status is a hypercall result as the TLFS numbers it (tlfs.Status); the
// zero value is success. The constants below are the ones VMBus transports
// return.
type Status = tlfs.Status

// Hypercall status values the transports use.
const (
	StatusSuccess             = tlfs.StatusSuccess
	StatusInvalidParameter    = tlfs.StatusInvalidParameter
	StatusInvalidConnectionID = tlfs.StatusInvalidConnectionID
	StatusInsufficientBuffers = tlfs.StatusInsufficientBuffers
)

// ErrClosed is returned by a port after Close or once its peer is gone.
var ErrClosed = errors.New("synic: port closed")

// Message is one SynIC message as the guest copies it out of its slot.
type Message struct {
	Type    uint32 // HV_MESSAGE MessageType; 1 = VMBus channel message
	Size    uint8  // payload bytes used
	Payload [MaxPayload]byte
}

// Bytes returns the used part of the payload.
func (m *Message) Bytes() []byte { return m.Payload[:m.Size] }

// GuestPort is the guest's view of the hypervisor for VMBus. Post and
// Signal may be called from any goroutine; Interrupt, TakeMessage and
// ScanEvents belong to the one goroutine that services the SINT.
type GuestPort interface {
	// PostMessage is HvCallPostMessage: it returns when the hypervisor
	// has accepted or refused the message (a Status error), as the
	// hypercall does.
	PostMessage(connID, msgType uint32, payload []byte) error
	// SignalEvent is HvCallSignalEvent on a channel's connection id.
	SignalEvent(connID uint32) error
	// Interrupt fires (coalesced) when a message or an event flag may
	// be waiting.
	Interrupt() <-chan struct{}
	// TakeMessage copies the message in the VMBus slot into m, frees the
	// slot and, when more are pending, lets the next one in (EOM). It
	// reports false when the slot is empty.
	TakeMessage(m *Message) bool
	// ScanEvents test-and-clears every set event flag and calls fn with
	// each relid, lowest first.
	ScanEvents(fn func(relid uint32))
	// Close disconnects the port; later calls return ErrClosed.
	Close() error
}

// HostHandler receives what the guest sends. Both methods are called
// synchronously on the guest's hypercall path (as the hypervisor runs them
// on the calling VP), so they must not block: queue work and return the
// status the hypercall should give.
type HostHandler interface {
	HandlePost(connID, msgType uint32, payload []byte) Status
	HandleSignal(connID uint32) Status
}

// HostPort is the simulated host's view of the hypervisor.
type HostPort interface {
	// Deliver queues a message for the guest's VMBus slot. It fails with
	// StatusInsufficientBuffers when the queue is full.
	Deliver(msgType uint32, payload []byte) error
	// SignalGuest sets event flag relid and interrupts the guest.
	SignalGuest(relid uint32) error
	// Close disconnects the port.
	Close() error
}

// LateHandler forwards to a HostHandler set after construction, for hosts
// whose transport must exist before the server that handles it (the
// shared-memory transport creates the guest RAM the server needs). Until
// Set, posts and signals fail with StatusInvalidConnectionID, as they
// would on a hypervisor with no VMBus server behind the port.
type LateHandler struct{ h atomic.Pointer[HostHandler] }

// Set installs the handler.
func (l *LateHandler) Set(h HostHandler) { l.h.Store(&h) }

// HandlePost implements HostHandler.
func (l *LateHandler) HandlePost(connID, msgType uint32, payload []byte) Status {
	if h := l.h.Load(); h != nil {
		return (*h).HandlePost(connID, msgType, payload)
	}
	return StatusInvalidConnectionID
}

// HandleSignal implements HostHandler.
func (l *LateHandler) HandleSignal(connID uint32) Status {
	if h := l.h.Load(); h != nil {
		return (*h).HandleSignal(connID)
	}
	return StatusInvalidConnectionID
}
