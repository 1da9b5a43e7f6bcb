package tlfs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// SynIC page geometry (TLFS "SynIC message page" and "SynIC event flags
// page"; Linux struct hv_message_page, struct hv_synic_event_flags_page).
const (
	PageSize            = 4096
	SINTCount           = 16
	EventFlagsAreaSize  = PageSize / SINTCount   // 256 bytes per SINT
	EventFlagsPerSINT   = EventFlagsAreaSize * 8 // 2048 bits per SINT
	eventWordsPerSINT   = EventFlagsAreaSize / 8
	messageTypeOffset   = 0 // u32
	messageSizeFlagsOff = 4 // u32 word: size byte, flags byte, reserved u16
)

// checkPage validates memory for a page view: at least 4096 bytes, 8-byte
// aligned, on a little-endian host (the hypervisor numbers event-flag bit n
// as bit n%8 of byte n/8, which is what a little-endian u64 view gives).
func checkPage(b []byte, what string) error {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return ErrHostEndian
	}
	if len(b) < PageSize {
		return fmt.Errorf("%w: %d bytes for a %s page", ErrShort, len(b), what)
	}
	if uintptr(unsafe.Pointer(&b[0]))%8 != 0 {
		return fmt.Errorf("%w: %s page at %p", ErrAlignment, what, &b[0])
	}
	return nil
}

// MessagePage is a view of a SynIC message page (SIMP): 16 slots of 256
// bytes, slot n for SINT n. VMBus uses SINT 2, page offset 512.
//
// The view works over any memory the hypervisor (or a simulated one in this
// or another process) shares with the guest: a Go slice or an mmapped
// file. The memory must be 8-byte aligned (page-aligned memory is) and at
// least 4096 bytes long; NewMessagePage checks both. The message type word
// and the size/flags word of each slot are only accessed with sync/atomic,
// which orders the plain copies of the rest of the slot:
//
//   - producer (hypervisor): writes the slot only while its type is
//     HVMSG_NONE, then publishes it with an atomic store of the type;
//   - consumer (guest): reads the slot only while its type is not
//     HVMSG_NONE, then frees it with an atomic compare-and-swap of the type
//     to HVMSG_NONE, and only then looks at MessagePending (TLFS HV_MESSAGE:
//     the flag is tested after the slot has been emptied).
//
// There must be one producer and one consumer per slot.
type MessagePage struct{ b []byte }

// NewMessagePage returns a view of the message page in b (use p[:] for a
// *[4096]byte).
func NewMessagePage(b []byte) (*MessagePage, error) {
	if err := checkPage(b, "SynIC message"); err != nil {
		return nil, err
	}
	return &MessagePage{b: b[:PageSize:PageSize]}, nil
}

// Slot returns the message slot of a SINT. It panics if sint is not in
// 0..15, like an out-of-range slice index: SINT numbers are the caller's
// constants, not input.
func (p *MessagePage) Slot(sint int) MessageSlot {
	if uint(sint) >= SINTCount {
		panic(fmt.Sprintf("tlfs: SINT %d out of range", sint))
	}
	off := sint * MessageSize
	return MessageSlot{b: p.b[off : off+MessageSize : off+MessageSize]}
}

// MessageSlot is one 256-byte HV_MESSAGE slot of a MessagePage.
type MessageSlot struct{ b []byte }

func (s MessageSlot) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.b[off])) }

// Type atomically reads the slot's message type; MsgNone means empty.
func (s MessageSlot) Type() MessageType {
	return MessageType(atomic.LoadUint32(s.word(messageTypeOffset)))
}

// Pending atomically reads the slot's MessagePending flag.
func (s MessageSlot) Pending() bool {
	return atomic.LoadUint32(s.word(messageSizeFlagsOff))>>8&uint32(MessagePending) != 0
}

// SetPending atomically sets the slot's MessagePending flag (the
// hypervisor does this when it queues a message behind a full slot).
func (s MessageSlot) SetPending() {
	atomic.OrUint32(s.word(messageSizeFlagsOff), uint32(MessagePending)<<8)
}

// Receive is the guest side. If the slot holds a message it copies it into
// m, frees the slot (atomic compare-and-swap of the type to HVMSG_NONE,
// which is a full barrier) and then reports whether MessagePending was set:
// if so the caller must write the EOM register (or tell its simulated
// hypervisor) so the next queued message is delivered. ok is false when
// the slot was empty. A slot whose payload size is above 240 is freed as
// well and reported with ErrPayloadSize; m then holds the header only.
func (s MessageSlot) Receive(m *Message) (ok, pending bool, err error) {
	t := atomic.LoadUint32(s.word(messageTypeOffset))
	if t == uint32(MsgNone) {
		return false, false, nil
	}
	sf := atomic.LoadUint32(s.word(messageSizeFlagsOff))
	m.Type = MessageType(t)
	m.PayloadSize = uint8(sf)
	m.Flags = MessageFlags(sf >> 8)
	m.OriginationID = binary.LittleEndian.Uint64(s.b[8:])
	if m.PayloadSize > MessagePayloadMax {
		err = fmt.Errorf("%w: SynIC slot payload size %d > %d", ErrPayloadSize, m.PayloadSize, MessagePayloadMax)
		m.PayloadSize = 0
	} else {
		copy(m.Payload[:], s.b[MessageHeaderSize:])
	}
	if !atomic.CompareAndSwapUint32(s.word(messageTypeOffset), t, uint32(MsgNone)) {
		atomic.StoreUint32(s.word(messageTypeOffset), uint32(MsgNone))
	}
	pending = atomic.LoadUint32(s.word(messageSizeFlagsOff))>>8&uint32(MessagePending) != 0
	return true, pending, err
}

// Deliver is the hypervisor side. If the slot is empty it writes m, with
// MessagePending set when more is true, and publishes it by storing the
// type last; delivered is true. If the slot is busy it sets MessagePending
// so the guest will signal EOM, and returns false: the caller keeps m
// queued and retries on EOM. (A guest that freed the slot just before the
// flag was set is caught by a second look at the type.) m.Type must be
// non-zero and m.PayloadSize at most 240.
func (s MessageSlot) Deliver(m *Message, more bool) (delivered bool, err error) {
	if m.Type == MsgNone {
		return false, fmt.Errorf("%w: cannot deliver HVMSG_NONE", ErrMessageType)
	}
	if m.PayloadSize > MessagePayloadMax {
		return false, fmt.Errorf("%w: %d", ErrPayloadSize, m.PayloadSize)
	}
	if atomic.LoadUint32(s.word(messageTypeOffset)) != uint32(MsgNone) {
		s.SetPending()
		if atomic.LoadUint32(s.word(messageTypeOffset)) != uint32(MsgNone) {
			return false, nil
		}
	}
	binary.LittleEndian.PutUint64(s.b[8:], m.OriginationID)
	copy(s.b[MessageHeaderSize:], m.Payload[:])
	flags := m.Flags &^ MessagePending
	if more {
		flags |= MessagePending
	}
	atomic.StoreUint32(s.word(messageSizeFlagsOff), uint32(m.PayloadSize)|uint32(flags)<<8)
	atomic.StoreUint32(s.word(messageTypeOffset), uint32(m.Type))
	return true, nil
}

// EventFlagsPage is a view of a SynIC event-flags page (SIEFP): 16 areas of
// 256 bytes (2048 bits), area n for SINT n. On Win8+ hosts VMBus sets bit
// child_relid in the SINT 2 area (page offset 512); bit 0 is no channel.
//
// Bits are accessed as 64-bit words with sync/atomic, so the memory must be
// 8-byte aligned; NewEventFlagsPage checks. Bit n lives in bit n%8 of byte
// n/8 (the hypervisor's numbering), which is what a little-endian u64 view
// gives.
type EventFlagsPage struct{ b []byte }

// NewEventFlagsPage returns a view of the event-flags page in b.
func NewEventFlagsPage(b []byte) (*EventFlagsPage, error) {
	if err := checkPage(b, "SynIC event-flags"); err != nil {
		return nil, err
	}
	return &EventFlagsPage{b: b[:PageSize:PageSize]}, nil
}

// wordFor returns the word holding bit of sint's area and the bit's mask.
// It panics on an out-of-range SINT or bit: both are the caller's numbers
// (a SINT constant, a relid the host assigned), not input to decode.
func (p *EventFlagsPage) wordFor(sint, bit int) (*uint64, uint64) {
	if uint(sint) >= SINTCount || uint(bit) >= EventFlagsPerSINT {
		panic(fmt.Sprintf("tlfs: event flag SINT %d bit %d out of range", sint, bit))
	}
	off := sint*EventFlagsAreaSize + bit/64*8
	return (*uint64)(unsafe.Pointer(&p.b[off])), 1 << (bit % 64)
}

// Set atomically sets a flag and reports whether it was already set.
func (p *EventFlagsPage) Set(sint, bit int) (wasSet bool) {
	w, m := p.wordFor(sint, bit)
	return atomic.OrUint64(w, m)&m != 0
}

// Test atomically reads a flag.
func (p *EventFlagsPage) Test(sint, bit int) bool {
	w, m := p.wordFor(sint, bit)
	return atomic.LoadUint64(w)&m != 0
}

// TestAndClear atomically clears a flag and reports whether it was set.
func (p *EventFlagsPage) TestAndClear(sint, bit int) bool {
	w, m := p.wordFor(sint, bit)
	return atomic.AndUint64(w, ^m)&m != 0
}

// ScanAndClear consumes every flag set in sint's area: each non-zero word
// is atomically swapped with zero and fn is called for each bit that was
// set, in ascending order. A flag set concurrently is either seen now or
// left for the next scan, never lost. It returns the number of bits seen.
// fn must treat the bit as untrusted (e.g. a relid with no channel).
func (p *EventFlagsPage) ScanAndClear(sint int, fn func(bit int)) int {
	n := 0
	for i := range eventWordsPerSINT {
		w, _ := p.wordFor(sint, i*64)
		if atomic.LoadUint64(w) == 0 {
			continue
		}
		v := atomic.SwapUint64(w, 0)
		for v != 0 {
			b := bits.TrailingZeros64(v)
			v &= v - 1
			n++
			fn(i*64 + b)
		}
	}
	return n
}

// Scan calls fn for each flag set in sint's area without clearing it.
func (p *EventFlagsPage) Scan(sint int, fn func(bit int)) int {
	n := 0
	for i := range eventWordsPerSINT {
		w, _ := p.wordFor(sint, i*64)
		for v := atomic.LoadUint64(w); v != 0; v &= v - 1 {
			n++
			fn(i*64 + bits.TrailingZeros64(v))
		}
	}
	return n
}
