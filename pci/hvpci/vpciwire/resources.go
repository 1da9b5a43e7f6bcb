package vpciwire

import "fmt"

// Resource types in a PartialResourceDescriptor (Windows
// CmResourceType*, OpenVMM ResourceType).
const (
	ResourceNull           = 0
	ResourcePort           = 1
	ResourceInterrupt      = 2
	ResourceMemory         = 3
	ResourceDMA            = 4
	ResourceDeviceSpecific = 5
	ResourceBusNumber      = 6
	ResourceMemoryLarge    = 7
)

// PartialResourceDescriptor flags for ResourceMemoryLarge: AdjustedLen is
// the length shifted right by 8, 16 or 32 bits (OpenVMM ResourceFlags).
const (
	ResourceFlagLarge40 = 1 << 9
	ResourceFlagLarge48 = 1 << 10
	ResourceFlagLarge64 = 1 << 11
)

// PartialResourceDescriptorSize is the size of one descriptor.
const PartialResourceDescriptorSize = 20

// PartialResourceDescriptor describes one BAR's assigned range (Windows
// CM_PARTIAL_RESOURCE_DESCRIPTOR as OpenVMM PartialResourceDescriptor
// lays it out; Linux sends zeros, "u8 memory_range[0x14][6]"), 20 bytes:
//
//	off 0   u8  type
//	off 1   u8  share_disposition
//	off 2   u16 flags
//	off 4   u64 address (unaligned)
//	off 12  u32 adjusted_len
//	off 16  u32 padding
type PartialResourceDescriptor struct {
	ResourceType uint8
	Share        uint8
	Flags        uint16
	Address      uint64
	AdjustedLen  uint32
}

// Length decodes AdjustedLen according to the large-memory flags.
func (d *PartialResourceDescriptor) Length() uint64 {
	l := uint64(d.AdjustedLen)
	if d.ResourceType == ResourceMemoryLarge {
		switch {
		case d.Flags&ResourceFlagLarge64 != 0:
			return l << 32
		case d.Flags&ResourceFlagLarge48 != 0:
			return l << 16
		case d.Flags&ResourceFlagLarge40 != 0:
			return l << 8
		}
	}
	return l
}

func (d *PartialResourceDescriptor) appendTo(b []byte) []byte {
	b = append(b, d.ResourceType, d.Share)
	b = le.AppendUint16(b, d.Flags)
	b = le.AppendUint64(b, d.Address)
	b = le.AppendUint32(b, d.AdjustedLen)
	return le.AppendUint32(b, 0)
}

func (d *PartialResourceDescriptor) decode(b []byte) {
	d.ResourceType, d.Share = b[0], b[1]
	d.Flags = le.Uint16(b[2:])
	d.Address = le.Uint64(b[4:])
	d.AdjustedLen = le.Uint32(b[12:])
}

// Sizes for RESOURCES_ASSIGNED. The common part is 136 bytes (OpenVMM
// DeviceTranslate); Linux pads variant 1 to 148 bytes and variant 2 to
// 202. An MSI resource that follows takes 16, 72 or 80 bytes (OpenVMM
// MsiResource, MsiResource2, MsiResource3).
const (
	ResourcesAssignedHeaderSize = 136
	ResourcesAssignedSize       = 148
	ResourcesAssigned2Size      = 202
	// MaxMSIResources bounds msi_resource_count (OpenVMM
	// MAX_SUPPORTED_INTERRUPT_MESSAGES: 500 resources less 6 BARs).
	MaxMSIResources = 494
)

func msiResourceSize(variant uint8) int {
	switch variant {
	case 2:
		return 72
	case 3:
		return 80
	}
	return 16
}

// ResourcesAssigned is RESOURCES_ASSIGNED (0x42490010, Variant 1),
// RESOURCES_ASSIGNED2 (0x42490016, Variant 2) or RESOURCES_ASSIGNED3
// (0x4249001A, Variant 3), guest to host, completion requested: the guest
// has placed the function's BARs (Linux struct pci_resources_assigned(2);
// OpenVMM DeviceTranslate):
//
//	off 0    u32 type
//	off 4    u32 win_slot
//	off 8    PartialResourceDescriptor[6] (Linux: zeros)
//	off 128  u32 msi_resource_count (Linux: 0)
//	off 132  u32 reserved
//	off 136  MSI resources[msi_resource_count] (16/72/80 bytes each; Linux:
//	         reserved bytes up to 148 or 202)
//
// MSI resource entries are not carried: MSICount must fit in the packet
// (and be at most MaxMSIResources) but the entries decode to nothing, and
// Encode writes them as zeros. Encode emits max(Linux size, 136 + entries).
type ResourcesAssigned struct {
	Variant  uint8 // 1, 2 or 3
	Slot     Slot
	Memory   [6]PartialResourceDescriptor
	MSICount uint32
}

func (m *ResourcesAssigned) Type() MessageType {
	switch m.Variant {
	case 2:
		return MsgResourcesAssigned2
	case 3:
		return MsgResourcesAssigned3
	}
	return MsgResourcesAssigned
}

func (m *ResourcesAssigned) EncodedLen() int {
	n := ResourcesAssignedHeaderSize + int(min(m.MSICount, MaxMSIResources))*msiResourceSize(m.Variant)
	switch m.Variant {
	case 2:
		return max(n, ResourcesAssigned2Size)
	case 3:
		return n
	}
	return max(n, ResourcesAssignedSize)
}

func (m *ResourcesAssigned) Encode() []byte { return encode(m) }

func (m *ResourcesAssigned) AppendTo(b []byte) []byte {
	start := len(b)
	b = le.AppendUint32(appendType(b, m.Type()), uint32(m.Slot))
	for i := range m.Memory {
		b = m.Memory[i].appendTo(b)
	}
	b = le.AppendUint32(b, min(m.MSICount, MaxMSIResources))
	b = le.AppendUint32(b, 0)
	for len(b)-start < m.EncodedLen() {
		b = append(b, 0)
	}
	return b
}

func (m *ResourcesAssigned) decode(b []byte) error {
	switch MessageType(le.Uint32(b)) {
	case MsgResourcesAssigned2:
		m.Variant = 2
	case MsgResourcesAssigned3:
		m.Variant = 3
	default:
		m.Variant = 1
	}
	m.Slot = Slot(le.Uint32(b[4:]))
	for i := range m.Memory {
		m.Memory[i].decode(b[8+i*PartialResourceDescriptorSize:])
	}
	m.MSICount = le.Uint32(b[128:])
	if m.MSICount > MaxMSIResources {
		return fmt.Errorf("%w: %s with %d MSI resources, at most %d", ErrInconsistent, m.Type(), m.MSICount, MaxMSIResources)
	}
	need := ResourcesAssignedHeaderSize + int(m.MSICount)*msiResourceSize(m.Variant)
	if len(b) < need {
		return fmt.Errorf("%w: %s with %d MSI resources needs %d bytes, has %d", ErrInconsistent, m.Type(), m.MSICount, need, len(b))
	}
	return nil
}
