package mlxhw

import "fmt"

// Owner-bit arithmetic shared by EQs and CQs (spec §3.4, §3.7, §7.9).
// Queues hold 1<<logSize entries; counters run freely and wrap at 2^32.
// The device writes owner = (producer >> logSize) & 1, so an entry at
// consumer counter ci is software-owned iff its owner bit equals
// (ci >> logSize) & 1. Drivers initialise every entry with owner 1
// (EQE owner 1, CQE op_own 0xf1) so that lap 0 looks empty.

// OwnerBit returns the owner value the device writes for producer
// counter prod.
func OwnerBit(prod uint32, logSize uint8) uint8 { return uint8(prod>>(logSize&31)) & 1 }

// SWOwned reports whether an entry whose owner bit is owner belongs to
// software at consumer counter ci.
func SWOwned(owner uint8, ci uint32, logSize uint8) bool { return owner&1 == OwnerBit(ci, logSize) }

// EntryIndex returns the ring slot of counter c.
func EntryIndex(c uint32, logSize uint8) uint32 { return c & (1<<(logSize&31) - 1) }

// EQ sizing (spec §3.7): nent = roundup_pow_of_two(requested + spare) and
// the CI must be updated at least every EQPollingBudget entries.
const (
	EQESize          = 64
	EQNumSpare       = 0x80 // MLX5_NUM_SPARE_EQE
	EQPollingBudget  = 128
	EQEOwnerInit     = 1
	CQEOpOwnInit     = 0xf1 // opcode INVALID, owner 1
	MaxLogEQSize     = 13   // the model's log_max_eq_sz
	EQEDataOff       = 0x20
	EQEDataSize      = 28
	eqeTypeOff       = 0x01
	eqeSubTypeOff    = 0x03
	eqeSignatureOff  = 0x3e
	eqeOwnerOff      = 0x3f
	eqePortOff       = 0x28
	eqeCQNOff        = 0x38
	eqeCQErrSyndOff  = 0x2b
	eqeWQErrTypeOff  = 0x34
	eqeFuncIDOff     = 0x22
	eqeNumPagesOff   = 0x24
	eqeCmdVectorOff  = 0x20
	eqeCQErrCQNOff   = 0x20
	eqeVportNumOff   = 0x22
	eqePortShift     = 4
	eqeResourceMask  = 0xffffff
	eqeResourceBytes = 4
)

// EventType is the EQE type byte and the bit number in CREATE_EQ's
// event_bitmask (L-dev enum mlx5_event).
type EventType uint8

const (
	EventComp           EventType = 0x00
	EventPathMig        EventType = 0x01
	EventCommEst        EventType = 0x02
	EventSQDrained      EventType = 0x03
	EventCQError        EventType = 0x04
	EventWQCatastrophic EventType = 0x05
	EventInternalError  EventType = 0x08
	EventPortChange     EventType = 0x09
	EventCmd            EventType = 0x0a
	EventPageRequest    EventType = 0x0b
	EventPageFault      EventType = 0x0c
	EventNICVportChange EventType = 0x0d
	EventWQInvalReq     EventType = 0x10
	EventWQAccessError  EventType = 0x11
)

// Bit returns the event's event_bitmask bit.
func (t EventType) Bit() uint64 { return 1 << (t & 63) }

// PORT_CHANGE sub-types.
const (
	PortChangeDown   = 1
	PortChangeActive = 4
)

// WQ error resource types (EQE byte 0x34).
const (
	ResourceQP = 0
	ResourceRQ = 1
	ResourceSQ = 2
)

// EQE is one event queue entry, 64 bytes (struct mlx5_eqe):
//
//	0x01 u8  type
//	0x03 u8  sub_type
//	0x20 28 B data
//	0x3e u8  signature
//	0x3f u8  owner (bit 0)
//
// Data layouts by type, offsets from the EQE start:
//
//	COMP              cqn = be32 @0x38 & 0xffffff
//	CQ_ERROR          cqn = be32 @0x20 & 0xffffff; syndrome u8 @0x2b
//	WQ_* errors       resource type u8 @0x34; number = be32 @0x38 & 0xffffff
//	PORT_CHANGE       port = u8 @0x28 >> 4 (sub_type DOWN 1 / ACTIVE 4)
//	CMD               vector be32 @0x20 (bitmask of completed slots)
//	PAGE_REQUEST      func_id be16 @0x22; num_pages s32 @0x24
//	NIC_VPORT_CHANGE  vport_num be16 @0x22
type EQE struct {
	Type      EventType
	SubType   uint8
	Data      [EQEDataSize]byte
	Signature uint8
	Owner     uint8
}

// PutEQE writes e into b[:64] with reserved bytes zero. The device sets
// e.Owner = OwnerBit(prod, logSize) and should store the owner byte last.
func PutEQE(b []byte, e *EQE) error {
	if len(b) < EQESize {
		return fmt.Errorf("%w: EQE needs %d bytes, have %d", ErrBuffer, EQESize, len(b))
	}
	b = b[:EQESize]
	clear(b)
	b[eqeTypeOff] = uint8(e.Type)
	b[eqeSubTypeOff] = e.SubType
	copy(b[EQEDataOff:], e.Data[:])
	b[eqeSignatureOff] = e.Signature
	b[eqeOwnerOff] = e.Owner
	return nil
}

// DecodeEQE decodes b[:64] without looking at ownership.
func DecodeEQE(b []byte, e *EQE) error {
	if len(b) < EQESize {
		return fmt.Errorf("%w: EQE is %d bytes, have %d", ErrShort, EQESize, len(b))
	}
	e.Type = EventType(b[eqeTypeOff])
	e.SubType = b[eqeSubTypeOff]
	copy(e.Data[:], b[EQEDataOff:EQEDataOff+EQEDataSize])
	e.Signature = b[eqeSignatureOff]
	e.Owner = b[eqeOwnerOff]
	return nil
}

// ParseEQE decodes the entry for consumer counter ci of an EQ of 1<<logSize
// entries; ErrNotOwned when the device has not written it yet.
func ParseEQE(b []byte, ci uint32, logSize uint8, e *EQE) error {
	if len(b) < EQESize {
		return fmt.Errorf("%w: EQE is %d bytes, have %d", ErrShort, EQESize, len(b))
	}
	if !SWOwned(b[eqeOwnerOff], ci, logSize) {
		return ErrNotOwned
	}
	return DecodeEQE(b, e)
}

func (e *EQE) be32(off int) uint32 { return be.Uint32(e.Data[off-EQEDataOff:]) }
func (e *EQE) put32(off int, v uint32) {
	be.PutUint32(e.Data[off-EQEDataOff:], v)
}
func (e *EQE) be16(off int) uint16 { return be.Uint16(e.Data[off-EQEDataOff:]) }
func (e *EQE) put16(off int, v uint16) {
	be.PutUint16(e.Data[off-EQEDataOff:], v)
}

// CompCQN is the CQ number of a COMP event.
func (e *EQE) CompCQN() uint32 { return e.be32(eqeCQNOff) & eqeResourceMask }

// CQError returns the CQ number and syndrome of a CQ_ERROR event.
func (e *EQE) CQError() (cqn uint32, syndrome uint8) {
	return e.be32(eqeCQErrCQNOff) & eqeResourceMask, e.Data[eqeCQErrSyndOff-EQEDataOff]
}

// WQError returns the resource type and number of a WQ error event.
func (e *EQE) WQError() (resType uint8, num uint32) {
	return e.Data[eqeWQErrTypeOff-EQEDataOff], e.be32(eqeCQNOff) & eqeResourceMask
}

// Port is the port number of a PORT_CHANGE event.
func (e *EQE) Port() uint8 { return e.Data[eqePortOff-EQEDataOff] >> eqePortShift }

// CmdVector is the completed-slot bitmask of a CMD event.
func (e *EQE) CmdVector() uint32 { return e.be32(eqeCmdVectorOff) }

// PageRequest returns the function and signed page count of a
// PAGE_REQUEST event (> 0 give, < 0 reclaim).
func (e *EQE) PageRequest() (funcID uint16, numPages int32) {
	return e.be16(eqeFuncIDOff), int32(e.be32(eqeNumPagesOff))
}

// VportNum is the vport of a NIC_VPORT_CHANGE event.
func (e *EQE) VportNum() uint16 { return e.be16(eqeVportNumOff) }

// EQEComp builds a COMP event for cqn.
func EQEComp(cqn uint32) EQE {
	e := EQE{Type: EventComp}
	e.put32(eqeCQNOff, cqn&eqeResourceMask)
	return e
}

// EQECQError builds a CQ_ERROR event.
func EQECQError(cqn uint32, syndrome uint8) EQE {
	e := EQE{Type: EventCQError}
	e.put32(eqeCQErrCQNOff, cqn&eqeResourceMask)
	e.Data[eqeCQErrSyndOff-EQEDataOff] = syndrome
	return e
}

// EQEWQError builds a WQ error event of type t for a resource.
func EQEWQError(t EventType, resType uint8, num uint32) EQE {
	e := EQE{Type: t}
	e.Data[eqeWQErrTypeOff-EQEDataOff] = resType
	e.put32(eqeCQNOff, num&eqeResourceMask)
	return e
}

// EQEPortChange builds a PORT_CHANGE event (sub PortChangeDown/Active).
func EQEPortChange(sub, port uint8) EQE {
	e := EQE{Type: EventPortChange, SubType: sub}
	e.Data[eqePortOff-EQEDataOff] = port << eqePortShift
	return e
}

// EQECmd builds a CMD event for the completed slots in vector.
func EQECmd(vector uint32) EQE {
	e := EQE{Type: EventCmd}
	e.put32(eqeCmdVectorOff, vector)
	return e
}

// EQEPageRequest builds a PAGE_REQUEST event.
func EQEPageRequest(funcID uint16, numPages int32) EQE {
	e := EQE{Type: EventPageRequest}
	e.put16(eqeFuncIDOff, funcID)
	e.put32(eqeNumPagesOff, uint32(numPages))
	return e
}

// EQEVportChange builds a NIC_VPORT_CHANGE event.
func EQEVportChange(vport uint16) EQE {
	e := EQE{Type: EventNICVportChange}
	e.put16(eqeVportNumOff, vport)
	return e
}
