package vpciwire

import (
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

// MessageType is the u32 at offset 0 of every vPCI message (Linux enum
// pci_message_type, OpenVMM MessageType).
type MessageType uint32

// MessageBase is PCI_MESSAGE_BASE; every message type is MessageBase + n.
const MessageBase MessageType = 0x42490000

// Message types. Comments name the Linux and, where it differs, the
// OpenVMM spelling.
const (
	MsgBusRelations              MessageType = MessageBase + 0x00 // PCI_BUS_RELATIONS
	MsgQueryBusRelations         MessageType = MessageBase + 0x01 // PCI_QUERY_BUS_RELATIONS
	MsgInvalidateDevice          MessageType = MessageBase + 0x02 // OpenVMM INVALIDATE_DEVICE (layout unknown)
	MsgInvalidateBus             MessageType = MessageBase + 0x03 // OpenVMM INVALIDATE_BUS (layout unknown)
	MsgPowerStateChange          MessageType = MessageBase + 0x04 // PCI_POWER_STATE_CHANGE / DEVICE_POWER_STATE_CHANGE
	MsgQueryResourceRequirements MessageType = MessageBase + 0x05 // PCI_QUERY_RESOURCE_REQUIREMENTS / CURRENT_RESOURCE_REQUIREMENTS
	MsgQueryResources            MessageType = MessageBase + 0x06 // PCI_QUERY_RESOURCE_RESOURCES / GET_RESOURCES
	MsgBusD0Entry                MessageType = MessageBase + 0x07 // PCI_BUS_D0ENTRY / FDO_D0_ENTRY
	MsgBusD0Exit                 MessageType = MessageBase + 0x08 // PCI_BUS_D0EXIT / FDO_D0_EXIT
	MsgReadBlock                 MessageType = MessageBase + 0x09 // PCI_READ_BLOCK
	MsgWriteBlock                MessageType = MessageBase + 0x0A // PCI_WRITE_BLOCK
	MsgEject                     MessageType = MessageBase + 0x0B // PCI_EJECT
	MsgQueryStop                 MessageType = MessageBase + 0x0C // PCI_QUERY_STOP
	MsgReenable                  MessageType = MessageBase + 0x0D // PCI_REENABLE
	MsgQueryStopFailed           MessageType = MessageBase + 0x0E // PCI_QUERY_STOP_FAILED
	MsgEjectionComplete          MessageType = MessageBase + 0x0F // PCI_EJECTION_COMPLETE / EJECT_COMPLETE
	MsgResourcesAssigned         MessageType = MessageBase + 0x10 // PCI_RESOURCES_ASSIGNED / ASSIGNED_RESOURCES
	MsgResourcesReleased         MessageType = MessageBase + 0x11 // PCI_RESOURCES_RELEASED / RELEASE_RESOURCES
	MsgInvalidateBlock           MessageType = MessageBase + 0x12 // PCI_INVALIDATE_BLOCK
	MsgQueryProtocolVersion      MessageType = MessageBase + 0x13 // PCI_QUERY_PROTOCOL_VERSION
	MsgCreateInterrupt           MessageType = MessageBase + 0x14 // PCI_CREATE_INTERRUPT_MESSAGE
	MsgDeleteInterrupt           MessageType = MessageBase + 0x15 // PCI_DELETE_INTERRUPT_MESSAGE
	MsgResourcesAssigned2        MessageType = MessageBase + 0x16 // PCI_RESOURCES_ASSIGNED2
	MsgCreateInterrupt2          MessageType = MessageBase + 0x17 // PCI_CREATE_INTERRUPT_MESSAGE2
	MsgDeleteInterrupt2          MessageType = MessageBase + 0x18 // PCI_DELETE_INTERRUPT_MESSAGE2 (unused by Linux)
	MsgBusRelations2             MessageType = MessageBase + 0x19 // PCI_BUS_RELATIONS2
	MsgResourcesAssigned3        MessageType = MessageBase + 0x1A // PCI_RESOURCES_ASSIGNED3 (not sent by Linux)
	MsgCreateInterrupt3          MessageType = MessageBase + 0x1B // PCI_CREATE_INTERRUPT_MESSAGE3
	MsgResetDevice               MessageType = MessageBase + 0x1C // OpenVMM RESET_DEVICE (protocol >= 1.5)
)

var typeNames = map[MessageType]string{
	MsgBusRelations: "BUS_RELATIONS", MsgQueryBusRelations: "QUERY_BUS_RELATIONS",
	MsgInvalidateDevice: "INVALIDATE_DEVICE", MsgInvalidateBus: "INVALIDATE_BUS",
	MsgPowerStateChange: "POWER_STATE_CHANGE", MsgQueryResourceRequirements: "QUERY_RESOURCE_REQUIREMENTS",
	MsgQueryResources: "QUERY_RESOURCES", MsgBusD0Entry: "BUS_D0ENTRY", MsgBusD0Exit: "BUS_D0EXIT",
	MsgReadBlock: "READ_BLOCK", MsgWriteBlock: "WRITE_BLOCK", MsgEject: "EJECT",
	MsgQueryStop: "QUERY_STOP", MsgReenable: "REENABLE", MsgQueryStopFailed: "QUERY_STOP_FAILED",
	MsgEjectionComplete: "EJECTION_COMPLETE", MsgResourcesAssigned: "RESOURCES_ASSIGNED",
	MsgResourcesReleased: "RESOURCES_RELEASED", MsgInvalidateBlock: "INVALIDATE_BLOCK",
	MsgQueryProtocolVersion: "QUERY_PROTOCOL_VERSION", MsgCreateInterrupt: "CREATE_INTERRUPT",
	MsgDeleteInterrupt: "DELETE_INTERRUPT", MsgResourcesAssigned2: "RESOURCES_ASSIGNED2",
	MsgCreateInterrupt2: "CREATE_INTERRUPT2", MsgDeleteInterrupt2: "DELETE_INTERRUPT2",
	MsgBusRelations2: "BUS_RELATIONS2", MsgResourcesAssigned3: "RESOURCES_ASSIGNED3",
	MsgCreateInterrupt3: "CREATE_INTERRUPT3", MsgResetDevice: "RESET_DEVICE",
}

func (t MessageType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MessageType(%#x)", uint32(t))
}

// Version is a vPCI protocol version, major<<16 | minor (Linux
// pci_protocol_version_t, OpenVMM ProtocolVersion).
type Version uint32

// Protocol versions. Linux offers 1.4, 1.3, 1.2, 1.1 in that order and
// stops at the first status other than StatusRevisionMismatch.
const (
	VersionWin8 Version = 0x00010000 // OpenVMM WIN8
	Version1_1  Version = 0x00010001 // Win10: CREATE_INTERRUPT, RESOURCES_ASSIGNED
	Version1_2  Version = 0x00010002 // RS1: CREATE_INTERRUPT2, RESOURCES_ASSIGNED2
	Version1_3  Version = 0x00010003 // Vibranium: host sends BUS_RELATIONS2
	Version1_4  Version = 0x00010004 // WS2022 ("Fe"): CREATE_INTERRUPT3
	Version1_5  Version = 0x00010005 // OpenVMM GE: RESET_DEVICE
	Version1_6  Version = 0x00010006 // OpenVMM DT
)

// GuestVersions is the order in which a Linux-like guest offers versions.
var GuestVersions = []Version{Version1_4, Version1_3, Version1_2, Version1_1}

func (v Version) Major() uint16 { return uint16(v >> 16) }
func (v Version) Minor() uint16 { return uint16(v) }
func (v Version) String() string {
	return fmt.Sprintf("%d.%d", v.Major(), v.Minor())
}

// Status is the NTSTATUS at the start of every completion. Linux treats a
// negative value (as s32) as failure.
type Status uint32

const (
	StatusSuccess          Status = 0
	StatusUnsuccessful     Status = 0xC0000001
	StatusRevisionMismatch Status = 0xC0000059
	StatusBadData          Status = 0xC000090B
	StatusNotSupported     Status = 0xC00000BB
)

// Failed reports whether s is a failure (negative as s32).
func (s Status) Failed() bool { return int32(s) < 0 }

func (s Status) String() string { return fmt.Sprintf("%#08x", uint32(s)) }

// Direction says which way a message travels.
type Direction uint8

const (
	GuestToHost Direction = 1
	HostToGuest Direction = 2
)

func (d Direction) String() string {
	switch d {
	case GuestToHost:
		return "guest-to-host"
	case HostToGuest:
		return "host-to-guest"
	}
	return "any direction"
}

// Message is a decoded vPCI message. Type-switch on the pointer types.
type Message interface {
	Type() MessageType
	// EncodedLen is the length of Encode's output.
	EncodedLen() int
	// AppendTo appends the wire bytes to b.
	AppendTo(b []byte) []byte
	// Encode returns the wire bytes.
	Encode() []byte
	decode(b []byte) error
}

func encode(m interface {
	EncodedLen() int
	AppendTo([]byte) []byte
}) []byte {
	return m.AppendTo(make([]byte, 0, m.EncodedLen()))
}

// Padding is the most trailing bytes a variable-size message may carry
// past its last element: VMBus pads in-band packets to 8 bytes.
const Padding = 7
