package vpciwire

import "fmt"

// Interrupt delivery modes in an MSI descriptor (x86 APIC modes).
const (
	DeliveryFixed          = 0
	DeliveryLowestPriority = 1
)

// MaxProcessors is the length of processor_array in hv_msi_desc2/3.
const MaxProcessors = 32

// Sizes of CREATE_INTERRUPT forms: Linux packs them to 24/78/82 bytes;
// OpenVMM's structs carry a trailing u16 and are 24/80/84. Encoders emit
// the OpenVMM size, decoders accept the Linux size.
const (
	CreateInterruptSize     = 24
	CreateInterrupt2MinSize = 78
	CreateInterrupt2Size    = 80
	CreateInterrupt3MinSize = 82
	CreateInterrupt3Size    = 84
)

// CreateInterrupt is CREATE_INTERRUPT (0x42490014, Variant 1),
// CREATE_INTERRUPT2 (0x42490017, Variant 2) or CREATE_INTERRUPT3
// (0x4249001B, Variant 3), guest to host, completion requested (Linux
// struct pci_create_interrupt(2,3) with hv_msi_desc(2,3); OpenVMM
// CreateInterrupt(2,3) with MsiResourceDescriptor(2,3)). The reply is a
// CreateInterruptReply whose TranslatedInterrupt the guest programs into
// the function's MSI/MSI-X registers.
//
//	off 0   u32 type
//	off 4   u32 win_slot
//	Variant 1 (hv_msi_desc, 24 bytes):
//	off 8   u8  vector
//	off 9   u8  delivery_mode
//	off 10  u16 vector_count
//	off 12  u32 reserved
//	off 16  u64 cpu_mask
//	Variant 2 (hv_msi_desc2, protocol 1.2+):
//	off 8   u8  vector
//	off 9   u8  delivery_mode
//	off 10  u16 vector_count
//	off 12  u16 processor_count (<= 32)
//	off 14  u16 processor_array[32]
//	off 78  u16 reserved (OpenVMM)
//	Variant 3 (hv_msi_desc3, protocol 1.4+):
//	off 8   u32 vector
//	off 12  u8  delivery_mode
//	off 13  u8  reserved
//	off 14  u16 vector_count
//	off 16  u16 processor_count (<= 32)
//	off 18  u16 processor_array[32]
//	off 82  u16 reserved (OpenVMM)
//
// Processors holds processor_count entries (variants 2 and 3); entries
// past processor_count are not carried.
type CreateInterrupt struct {
	Variant      uint8 // 1, 2 or 3
	Slot         Slot
	Vector       uint32 // u8 in variants 1 and 2
	DeliveryMode uint8
	VectorCount  uint16
	CPUMask      uint64   // variant 1
	Processors   []uint16 // variants 2 and 3
}

func (m *CreateInterrupt) Type() MessageType {
	switch m.Variant {
	case 2:
		return MsgCreateInterrupt2
	case 3:
		return MsgCreateInterrupt3
	}
	return MsgCreateInterrupt
}

func (m *CreateInterrupt) EncodedLen() int {
	switch m.Variant {
	case 2:
		return CreateInterrupt2Size
	case 3:
		return CreateInterrupt3Size
	}
	return CreateInterruptSize
}

func (m *CreateInterrupt) Encode() []byte { return encode(m) }

func (m *CreateInterrupt) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), uint32(m.Slot))
	switch m.Variant {
	case 2, 3:
		if m.Variant == 2 {
			b = append(b, uint8(m.Vector), m.DeliveryMode)
		} else {
			b = le.AppendUint32(b, m.Vector)
			b = append(b, m.DeliveryMode, 0)
		}
		b = le.AppendUint16(b, m.VectorCount)
		n := min(len(m.Processors), MaxProcessors)
		b = le.AppendUint16(b, uint16(n))
		for i := range MaxProcessors {
			var p uint16
			if i < n {
				p = m.Processors[i]
			}
			b = le.AppendUint16(b, p)
		}
		return le.AppendUint16(b, 0)
	}
	b = append(b, uint8(m.Vector), m.DeliveryMode)
	b = le.AppendUint16(b, m.VectorCount)
	b = le.AppendUint32(b, 0)
	return le.AppendUint64(b, m.CPUMask)
}

func (m *CreateInterrupt) decode(b []byte) error {
	m.Slot = Slot(le.Uint32(b[4:]))
	m.Processors = nil
	var arr int
	switch MessageType(le.Uint32(b)) {
	case MsgCreateInterrupt:
		m.Variant = 1
		m.Vector = uint32(b[8])
		m.DeliveryMode = b[9]
		m.VectorCount = le.Uint16(b[10:])
		m.CPUMask = le.Uint64(b[16:])
		return nil
	case MsgCreateInterrupt2:
		m.Variant = 2
		m.Vector = uint32(b[8])
		m.DeliveryMode = b[9]
		m.VectorCount = le.Uint16(b[10:])
		arr = 12
	default:
		m.Variant = 3
		m.Vector = le.Uint32(b[8:])
		m.DeliveryMode = b[12]
		m.VectorCount = le.Uint16(b[14:])
		arr = 16
	}
	n := int(le.Uint16(b[arr:]))
	if n > MaxProcessors {
		return fmt.Errorf("%w: %s names %d processors, at most %d", ErrInconsistent, m.Type(), n, MaxProcessors)
	}
	if n > 0 {
		m.Processors = make([]uint16, n)
		for i := range m.Processors {
			m.Processors[i] = le.Uint16(b[arr+2+2*i:])
		}
	}
	return nil
}

// TranslatedInterrupt is what the host assigned for an interrupt: the MSI
// address and data the function must write (Linux struct tran_int_desc,
// OpenVMM MsiResourceRemapped), 16 bytes:
//
//	off 0  u16 reserved
//	off 2  u16 vector_count
//	off 4  u32 data
//	off 8  u64 address
type TranslatedInterrupt struct {
	VectorCount uint16
	Data        uint32
	Address     uint64
}

// TranslatedInterruptSize is the size of a TranslatedInterrupt.
const TranslatedInterruptSize = 16

func (t *TranslatedInterrupt) appendTo(b []byte) []byte {
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, t.VectorCount)
	b = le.AppendUint32(b, t.Data)
	return le.AppendUint64(b, t.Address)
}

func (t *TranslatedInterrupt) decode(b []byte) {
	t.VectorCount = le.Uint16(b[2:])
	t.Data = le.Uint32(b[4:])
	t.Address = le.Uint64(b[8:])
}

// DeleteInterrupt is DELETE_INTERRUPT (0x42490015), guest to host, no
// completion from Linux's point of view (Linux struct
// pci_delete_interrupt, OpenVMM DeleteInterrupt): it hands back the
// TranslatedInterrupt the host returned.
//
//	off 0  u32 type
//	off 4  u32 win_slot
//	off 8  TranslatedInterrupt (16 bytes)
type DeleteInterrupt struct {
	Slot      Slot
	Interrupt TranslatedInterrupt
}

func (m *DeleteInterrupt) Type() MessageType { return MsgDeleteInterrupt }
func (m *DeleteInterrupt) EncodedLen() int   { return 24 }
func (m *DeleteInterrupt) Encode() []byte    { return encode(m) }
func (m *DeleteInterrupt) AppendTo(b []byte) []byte {
	b = le.AppendUint32(appendType(b, m.Type()), uint32(m.Slot))
	return m.Interrupt.appendTo(b)
}
func (m *DeleteInterrupt) decode(b []byte) error {
	m.Slot = Slot(le.Uint32(b[4:]))
	m.Interrupt.decode(b[8:])
	return nil
}
