package vpciwire

import "fmt"

func appendType(b []byte, t MessageType) []byte { return le.AppendUint32(b, uint32(t)) }

// QueryProtocolVersion is QUERY_PROTOCOL_VERSION (0x42490013), guest to
// host, completion requested (Linux struct pci_version_request, OpenVMM
// QueryProtocolVersion). The reply is a VersionReply.
//
//	off 0  u32 type
//	off 4  u32 protocol_version
type QueryProtocolVersion struct {
	Version Version
}

func (m *QueryProtocolVersion) Type() MessageType { return MsgQueryProtocolVersion }
func (m *QueryProtocolVersion) EncodedLen() int   { return 8 }
func (m *QueryProtocolVersion) Encode() []byte    { return encode(m) }
func (m *QueryProtocolVersion) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendType(b, m.Type()), uint32(m.Version))
}
func (m *QueryProtocolVersion) decode(b []byte) error {
	m.Version = Version(le.Uint32(b[4:]))
	return nil
}

// BusD0Entry is BUS_D0ENTRY (0x42490007), guest to host, completion
// requested (Linux struct pci_bus_d0_entry, OpenVMM FdoD0Entry): the bus
// powers up and the config window lives at MMIOBase.
//
//	off 0  u32 type
//	off 4  u32 reserved
//	off 8  u64 mmio_base (guest-physical base of the 8 KiB window)
type BusD0Entry struct {
	MMIOBase uint64
}

func (m *BusD0Entry) Type() MessageType { return MsgBusD0Entry }
func (m *BusD0Entry) EncodedLen() int   { return 16 }
func (m *BusD0Entry) Encode() []byte    { return encode(m) }
func (m *BusD0Entry) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), 0)
	return le.AppendUint64(b, m.MMIOBase)
}
func (m *BusD0Entry) decode(b []byte) error {
	m.MMIOBase = le.Uint64(b[8:])
	return nil
}

// Bare is a message that is only its type: BUS_D0EXIT (guest to host,
// completion requested) and QUERY_BUS_RELATIONS (guest to host; the host
// answers with BUS_RELATIONS(2), not a completion) (Linux struct
// pci_message).
//
//	off 0  u32 type
type Bare struct {
	MsgType MessageType
}

func (m *Bare) Type() MessageType        { return m.MsgType }
func (m *Bare) EncodedLen() int          { return 4 }
func (m *Bare) Encode() []byte           { return encode(m) }
func (m *Bare) AppendTo(b []byte) []byte { return appendType(b, m.MsgType) }
func (m *Bare) decode(b []byte) error {
	m.MsgType = MessageType(le.Uint32(b))
	return nil
}

// SlotMessage is a message that is a type and a slot (Linux struct
// pci_child_message and pci_dev_incoming; OpenVMM PdoMessage):
// QUERY_RESOURCE_REQUIREMENTS (guest to host, reply
// ResourceRequirementsReply), RESOURCES_RELEASED (guest to host), EJECT
// (host to guest), RESET_DEVICE (guest to host, protocol >= 1.5).
//
//	off 0  u32 type
//	off 4  u32 win_slot
type SlotMessage struct {
	MsgType MessageType
	Slot    Slot
}

func (m *SlotMessage) Type() MessageType { return m.MsgType }
func (m *SlotMessage) EncodedLen() int   { return 8 }
func (m *SlotMessage) Encode() []byte    { return encode(m) }
func (m *SlotMessage) AppendTo(b []byte) []byte {
	return le.AppendUint32(appendType(b, m.MsgType), uint32(m.Slot))
}
func (m *SlotMessage) decode(b []byte) error {
	m.MsgType = MessageType(le.Uint32(b))
	m.Slot = Slot(le.Uint32(b[4:]))
	return nil
}

// EjectionComplete is EJECTION_COMPLETE (0x4249000F), guest to host, no
// completion: the guest has let go of an ejected function (Linux struct
// pci_eject_response).
//
//	off 0  u32 type
//	off 4  u32 win_slot
//	off 8  u32 status (0)
type EjectionComplete struct {
	Slot   Slot
	Status Status
}

func (m *EjectionComplete) Type() MessageType { return MsgEjectionComplete }
func (m *EjectionComplete) EncodedLen() int   { return 12 }
func (m *EjectionComplete) Encode() []byte    { return encode(m) }
func (m *EjectionComplete) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), uint32(m.Slot))
	return le.AppendUint32(b, uint32(m.Status))
}
func (m *EjectionComplete) decode(b []byte) error {
	m.Slot = Slot(le.Uint32(b[4:]))
	m.Status = Status(le.Uint32(b[8:]))
	return nil
}

// Power states in PowerStateChange (Windows DEVICE_POWER_STATE).
const (
	PowerD0 = 1
	PowerD3 = 4
)

// PowerStateChange is POWER_STATE_CHANGE (0x42490004), guest to host,
// completion requested (Linux struct pci_set_power, 16 bytes; OpenVMM
// DevicePowerChange, 12 bytes without the reserved word). The reply is a
// PowerStateReply.
//
//	off 0   u32 type
//	off 4   u32 win_slot
//	off 8   u32 power_state (1 D0, 4 D3)
//	off 12  u32 reserved (Linux only)
type PowerStateChange struct {
	Slot  Slot
	State uint32
}

func (m *PowerStateChange) Type() MessageType { return MsgPowerStateChange }
func (m *PowerStateChange) EncodedLen() int   { return 16 }
func (m *PowerStateChange) Encode() []byte    { return encode(m) }
func (m *PowerStateChange) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), uint32(m.Slot))
	b = le.AppendUint32(b, m.State)
	return le.AppendUint32(b, 0)
}
func (m *PowerStateChange) decode(b []byte) error {
	m.Slot = Slot(le.Uint32(b[4:]))
	m.State = le.Uint32(b[8:])
	return nil
}

// InvalidateBlock is INVALIDATE_BLOCK (0x42490012), host to guest, no
// completion: the device's configuration blocks in BlockMask changed
// (Linux struct pci_dev_inval_block).
//
//	off 0  u32 type
//	off 4  u32 win_slot
//	off 8  u64 block_mask
type InvalidateBlock struct {
	Slot      Slot
	BlockMask uint64
}

func (m *InvalidateBlock) Type() MessageType { return MsgInvalidateBlock }
func (m *InvalidateBlock) EncodedLen() int   { return 16 }
func (m *InvalidateBlock) Encode() []byte    { return encode(m) }
func (m *InvalidateBlock) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), uint32(m.Slot))
	return le.AppendUint64(b, m.BlockMask)
}
func (m *InvalidateBlock) decode(b []byte) error {
	m.Slot = Slot(le.Uint32(b[4:]))
	m.BlockMask = le.Uint64(b[8:])
	return nil
}

// MaxBlockSize is the largest configuration block a READ_BLOCK or
// WRITE_BLOCK moves (Linux HV_CONFIG_BLOCK_SIZE_MAX).
const MaxBlockSize = 128

// ReadBlock is READ_BLOCK (0x42490009), guest to host, completion
// requested (Linux struct pci_read_block). The reply is read with
// DecodeReadBlockReply.
//
//	off 0   u32 type
//	off 4   u32 block_id
//	off 8   u32 win_slot
//	off 12  u32 bytes_requested (<= 128)
type ReadBlock struct {
	BlockID uint32
	Slot    Slot
	Length  uint32
}

func (m *ReadBlock) Type() MessageType { return MsgReadBlock }
func (m *ReadBlock) EncodedLen() int   { return 16 }
func (m *ReadBlock) Encode() []byte    { return encode(m) }
func (m *ReadBlock) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), m.BlockID)
	b = le.AppendUint32(b, uint32(m.Slot))
	return le.AppendUint32(b, m.Length)
}
func (m *ReadBlock) decode(b []byte) error {
	m.BlockID = le.Uint32(b[4:])
	m.Slot = Slot(le.Uint32(b[8:]))
	m.Length = le.Uint32(b[12:])
	if m.Length > MaxBlockSize {
		return fmt.Errorf("%w: READ_BLOCK of %d bytes, limit %d", ErrInconsistent, m.Length, MaxBlockSize)
	}
	return nil
}

// WriteBlock is WRITE_BLOCK (0x4249000A), guest to host, completion
// requested (Linux struct pci_write_block). Encode emits exactly
// 16 + len(Data) bytes; the decoder requires byte_count bytes to be
// present and ignores any after them (Linux sends 4 extra bytes for hosts
// of 2018 that misread the packet size).
//
//	off 0   u32 type
//	off 4   u32 block_id
//	off 8   u32 win_slot
//	off 12  u32 byte_count (<= 128)
//	off 16  u8  bytes[byte_count]
type WriteBlock struct {
	BlockID uint32
	Slot    Slot
	Data    []byte
}

func (m *WriteBlock) Type() MessageType { return MsgWriteBlock }
func (m *WriteBlock) EncodedLen() int   { return 16 + len(m.Data) }
func (m *WriteBlock) Encode() []byte    { return encode(m) }
func (m *WriteBlock) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), m.BlockID)
	b = le.AppendUint32(b, uint32(m.Slot))
	b = le.AppendUint32(b, uint32(len(m.Data)))
	return append(b, m.Data...)
}
func (m *WriteBlock) decode(b []byte) error {
	m.BlockID = le.Uint32(b[4:])
	m.Slot = Slot(le.Uint32(b[8:]))
	n := le.Uint32(b[12:])
	if n > MaxBlockSize {
		return fmt.Errorf("%w: WRITE_BLOCK of %d bytes, limit %d", ErrInconsistent, n, MaxBlockSize)
	}
	if int(n) > len(b)-16 {
		return fmt.Errorf("%w: WRITE_BLOCK claims %d bytes, %d present", ErrInconsistent, n, len(b)-16)
	}
	m.Data = nil
	if n > 0 {
		m.Data = append([]byte(nil), b[16:16+n]...)
	}
	return nil
}
