// Package pci is PCI plumbing shared by both sides: configuration-space
// register offsets and bits (as the PCI Local Bus and PCI Express
// specifications define them and Linux include/uapi/linux/pci_regs.h
// encodes them), the ConfigSpace and BAR access seams, an in-memory
// configuration space for device models (MemConfig: write masks, RW1C bits,
// BAR sizing, a capability list builder), and guest-side helpers that size
// and decode BARs, walk capability lists defensively, and program MSI and
// MSI-X.
//
// Guest helpers treat config space and BAR contents as untrusted: every
// pointer is bounds- and alignment-checked, walks are loop-protected, and
// a hostile device gets an error, never a panic or a hang.
package pci

// Type 0 configuration header offsets.
const (
	VendorID          = 0x00 // u16
	DeviceID          = 0x02 // u16
	Command           = 0x04 // u16
	Status            = 0x06 // u16
	RevisionID        = 0x08 // u8
	ClassProgIf       = 0x09 // u8 programming interface
	ClassSubClass     = 0x0A // u8
	ClassBase         = 0x0B // u8
	CacheLineSize     = 0x0C // u8
	LatencyTimer      = 0x0D // u8
	HeaderType        = 0x0E // u8
	BIST              = 0x0F // u8
	BAR0              = 0x10 // u32, BARs 0..5 at 0x10 + 4*i
	CardbusCIS        = 0x28 // u32
	SubsystemVendorID = 0x2C // u16
	SubsystemID       = 0x2E // u16
	ExpansionROM      = 0x30 // u32
	CapabilitiesPtr   = 0x34 // u8
	InterruptLine     = 0x3C // u8
	InterruptPin      = 0x3D // u8
	MinGrant          = 0x3E // u8
	MaxLatency        = 0x3F // u8

	// NumBARs is the number of BARs in a type 0 header.
	NumBARs = 6
	// HeaderSize is the size of the type 0 header; capabilities follow.
	HeaderSize = 0x40
	// ConfigSize is the size of conventional PCI config space.
	ConfigSize = 0x100
	// ExtConfigSize is the size of PCI Express extended config space.
	ExtConfigSize = 0x1000
)

// BAROffset returns the config offset of BAR i (0..5).
func BAROffset(i int) int { return BAR0 + 4*i }

// Command register bits.
const (
	CommandIO          = 0x0001
	CommandMemory      = 0x0002
	CommandMaster      = 0x0004
	CommandSpecial     = 0x0008
	CommandInvalidate  = 0x0010
	CommandVGAPalette  = 0x0020
	CommandParity      = 0x0040
	CommandWait        = 0x0080
	CommandSERR        = 0x0100
	CommandFastBack    = 0x0200
	CommandINTxDisable = 0x0400
	// CommandWritable is the bits of Command software may change.
	CommandWritable = 0x07FF
)

// Header type register: layout in bits 6:0, multi-function in bit 7.
const (
	HeaderTypeNormal     = 0x00
	HeaderTypeBridge     = 0x01
	HeaderTypeLayoutMask = 0x7F
	HeaderTypeMultiFunc  = 0x80
)

// Status register bits. Bits 8 and 11..15 are RW1C.
const (
	StatusImmReady       = 0x0001
	StatusInterrupt      = 0x0008
	StatusCapList        = 0x0010
	Status66MHz          = 0x0020
	StatusUDF            = 0x0040
	StatusFastBack       = 0x0080
	StatusMasterParity   = 0x0100 // RW1C
	StatusDevselMask     = 0x0600
	StatusSigTargetAbort = 0x0800 // RW1C
	StatusRecTargetAbort = 0x1000 // RW1C
	StatusRecMasterAbort = 0x2000 // RW1C
	StatusSigSystemError = 0x4000 // RW1C
	StatusDetectedParity = 0x8000 // RW1C
	// StatusRW1C is the status bits cleared by writing 1.
	StatusRW1C = 0xF900
)

// BAR register bits.
const (
	BARSpaceIO        = 0x01 // bit 0: I/O space BAR
	BARMemTypeMask    = 0x06
	BARMemType32      = 0x00
	BARMemType1M      = 0x02 // legacy, below 1 MiB
	BARMemType64      = 0x04
	BARMemPrefetch    = 0x08
	BARMemAddressMask = ^uint32(0x0F)
	BARIOAddressMask  = ^uint32(0x03)
)

// Capability ids (standard list, offset 0x40..0xFF).
const (
	CapPM      = 0x01
	CapMSI     = 0x05
	CapVendor  = 0x09
	CapExpress = 0x10
	CapMSIX    = 0x11

	CapID   = 0 // u8 capability id
	CapNext = 1 // u8 next pointer
)

// MSI capability layout (offsets from the capability).
const (
	MSIFlags     = 0x02 // u16 message control
	MSIAddressLo = 0x04 // u32
	MSIAddressHi = 0x08 // u32, 64-bit capable only
	MSIData32    = 0x08 // u16 data without 64-bit address
	MSIData64    = 0x0C // u16 data with 64-bit address
	MSIMask32    = 0x0C // u32 mask bits, per-vector masking, 32-bit
	MSIMask64    = 0x10
	MSIPending32 = 0x10
	MSIPending64 = 0x14

	MSIFlagsEnable   = 0x0001
	MSIFlagsQMask    = 0x000E // log2 of vectors capable
	MSIFlagsQSize    = 0x0070 // log2 of vectors enabled
	MSIFlags64Bit    = 0x0080
	MSIFlagsMaskBit  = 0x0100 // per-vector masking capable
	msiQSizeShift    = 4
	msiQMaskShift    = 1
	msiFlagsWritable = MSIFlagsEnable | MSIFlagsQSize
)

// MSI-X capability layout (offsets from the capability) and table entry
// layout.
const (
	MSIXFlags = 0x02 // u16 message control
	MSIXTable = 0x04 // u32: BIR in bits 2:0, offset in the rest
	MSIXPBA   = 0x08 // u32: BIR in bits 2:0, offset in the rest

	MSIXFlagsQSize   = 0x07FF // table size - 1
	MSIXFlagsMaskAll = 0x4000
	MSIXFlagsEnable  = 0x8000
	MSIXBIRMask      = 0x7
	MSIXOffsetMask   = ^uint32(0x7)

	MSIXEntrySize       = 16
	MSIXEntryAddrLo     = 0x0
	MSIXEntryAddrHi     = 0x4
	MSIXEntryData       = 0x8
	MSIXEntryVectorCtrl = 0xC
	MSIXEntryMasked     = 0x1 // vector control bit 0
)

// Extended capability header (PCI Express, from 0x100): id bits 15:0,
// version bits 19:16, next offset bits 31:20.
const ExtCapStart = 0x100
