package vpciwire

import "fmt"

// Sizes of the device descriptions in BUS_RELATIONS and BUS_RELATIONS2.
const (
	DescriptionSize  = 20
	Description2Size = 28
	// RelationsHeaderSize is type + device_count.
	RelationsHeaderSize = 8
)

// DescriptionFlagNUMA is bit 0 of Description.Flags: VirtualNUMANode is
// valid (Linux HV_PCI_DEVICE_FLAG_NUMA_AFFINITY).
const DescriptionFlagNUMA = 0x1

// Description is one function on the bus (Linux struct
// pci_function_description and pci_function_description2; OpenVMM
// DeviceDescription and DeviceDescription2; the PnP id is laid out as PCI
// config space):
//
//	off 0   u16 VendorID
//	off 2   u16 DeviceID
//	off 4   u8  Revision
//	off 5   u8  ProgIf
//	off 6   u8  SubClass
//	off 7   u8  BaseClass
//	off 8   u32 Subsystem (SubsystemVendorID | SubsystemID<<16, config 0x2C)
//	off 12  u32 Slot (win_slot)
//	off 16  u32 Serial (the VF serial netvsc pairs on)
//	-- description2 (28 bytes, BUS_RELATIONS2, protocol >= 1.3)
//	off 20  u32 Flags (bit 0: VirtualNUMANode valid)
//	off 24  u16 VirtualNUMANode
//	off 26  u16 reserved
type Description struct {
	VendorID          uint16
	DeviceID          uint16
	Revision          uint8
	ProgIf            uint8
	SubClass          uint8
	BaseClass         uint8
	SubsystemVendorID uint16
	SubsystemID       uint16
	Slot              Slot
	Serial            uint32
	Flags             uint32 // description2 only
	VirtualNUMANode   uint16 // description2 only
}

// ClassCode is the 24-bit class code as config space holds it at 0x09.
func (d *Description) ClassCode() uint32 {
	return uint32(d.BaseClass)<<16 | uint32(d.SubClass)<<8 | uint32(d.ProgIf)
}

func (d *Description) appendTo(b []byte, v2 bool) []byte {
	b = le.AppendUint16(b, d.VendorID)
	b = le.AppendUint16(b, d.DeviceID)
	b = append(b, d.Revision, d.ProgIf, d.SubClass, d.BaseClass)
	b = le.AppendUint16(b, d.SubsystemVendorID)
	b = le.AppendUint16(b, d.SubsystemID)
	b = le.AppendUint32(b, uint32(d.Slot))
	b = le.AppendUint32(b, d.Serial)
	if v2 {
		b = le.AppendUint32(b, d.Flags)
		b = le.AppendUint16(b, d.VirtualNUMANode)
		b = le.AppendUint16(b, 0)
	}
	return b
}

func (d *Description) decode(b []byte, v2 bool) {
	d.VendorID = le.Uint16(b[0:])
	d.DeviceID = le.Uint16(b[2:])
	d.Revision, d.ProgIf, d.SubClass, d.BaseClass = b[4], b[5], b[6], b[7]
	d.SubsystemVendorID = le.Uint16(b[8:])
	d.SubsystemID = le.Uint16(b[10:])
	d.Slot = Slot(le.Uint32(b[12:]))
	d.Serial = le.Uint32(b[16:])
	if v2 {
		d.Flags = le.Uint32(b[20:])
		d.VirtualNUMANode = le.Uint16(b[24:])
	}
}

// ConfigRead returns what a Linux-like guest answers from the
// description instead of reading the window: vendor/device (0x00-0x03),
// revision/class (0x08-0x0B) and subsystem (0x2C-0x2F). ok is false for
// every other offset, and for accesses that straddle these ranges.
func (d *Description) ConfigRead(where, size int) (v uint32, ok bool) {
	if checkConfigAccess(where, size) != nil {
		return 0, false
	}
	var dw uint32
	switch where &^ 3 {
	case 0x00:
		dw = uint32(d.VendorID) | uint32(d.DeviceID)<<16
	case 0x08:
		dw = uint32(d.Revision) | d.ClassCode()<<8
	case 0x2C:
		dw = uint32(d.SubsystemVendorID) | uint32(d.SubsystemID)<<16
	default:
		return 0, false
	}
	dw >>= 8 * uint(where&3)
	if size < 4 {
		dw &= 1<<(8*uint(size)) - 1
	}
	return dw, true
}

// BusRelations is BUS_RELATIONS (0x42490000) or, with V2, BUS_RELATIONS2
// (0x42490019), host to guest: the complete list of functions now on the
// bus (Linux struct pci_bus_relations(2), OpenVMM QueryBusRelations(2)):
//
//	off 0  u32 type
//	off 4  u32 device_count
//	off 8  Description[device_count] (20 bytes each; 28 with V2)
//
// The decoder requires exactly device_count descriptions, allowing only
// the up-to-7 bytes of packet padding after them: a count that claims more
// descriptions than the bytes hold, or fewer than they hold, is
// ErrInconsistent (Linux only refuses the former).
type BusRelations struct {
	V2      bool
	Devices []Description
}

func (m *BusRelations) Type() MessageType {
	if m.V2 {
		return MsgBusRelations2
	}
	return MsgBusRelations
}
func (m *BusRelations) descSize() int {
	if m.V2 {
		return Description2Size
	}
	return DescriptionSize
}
func (m *BusRelations) EncodedLen() int { return RelationsHeaderSize + len(m.Devices)*m.descSize() }
func (m *BusRelations) Encode() []byte  { return encode(m) }
func (m *BusRelations) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(m.Type()))
	b = le.AppendUint32(b, uint32(len(m.Devices)))
	for i := range m.Devices {
		b = m.Devices[i].appendTo(b, m.V2)
	}
	return b
}

func (m *BusRelations) decode(b []byte) error {
	m.V2 = MessageType(le.Uint32(b)) == MsgBusRelations2
	n := le.Uint32(b[4:])
	size := m.descSize()
	avail := (len(b) - RelationsHeaderSize) / size
	if uint64(n) > uint64(avail) {
		return fmt.Errorf("%w: %s claims %d devices, %d bytes hold %d", ErrInconsistent, m.Type(), n, len(b), avail)
	}
	if extra := len(b) - RelationsHeaderSize - int(n)*size; extra > Padding {
		return fmt.Errorf("%w: %s of %d devices carries %d extra bytes", ErrInconsistent, m.Type(), n, extra)
	}
	m.Devices = nil
	if n > 0 {
		m.Devices = make([]Description, n)
	}
	for i := range m.Devices {
		m.Devices[i].decode(b[RelationsHeaderSize+i*size:], m.V2)
	}
	return nil
}
