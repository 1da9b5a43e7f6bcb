package tlfs

// x64 synthetic MSRs a bare-metal SynIC transport programs (TLFS
// "Synthetic MSRs"; Linux include/hyperv/hvgdk_mini.h HV_X64_MSR_*).
const (
	MSRGuestOSID = 0x40000000
	MSRHypercall = 0x40000001
	MSRVPIndex   = 0x40000002
	MSRSControl  = 0x40000080
	MSRSVersion  = 0x40000081
	MSRSIEFP     = 0x40000082
	MSRSIMP      = 0x40000083
	MSREOM       = 0x40000084
	MSRSINT0     = 0x40000090 // SINTn = MSRSINT0 + n; VMBus uses SINT2 = 0x40000092
)

// Bits of the SCONTROL, SIMP, SIEFP and hypercall MSRs (bit 0 enables;
// SIMP, SIEFP and hypercall carry the page's GPA in bits 63:12).
const (
	MSREnable       = 1 << 0
	MSRPageGPAShift = 12
)

// SINT register bits.
const (
	SINTVectorMask  = 0xFF    // bits 7:0, valid vectors 16..255
	SINTMasked      = 1 << 16 // interrupt masked
	SINTAutoEOI     = 1 << 17
	SINTPolling     = 1 << 18
	SINTFirstVector = 16
	MSRSINTForVMBus = MSRSINT0 + VMBusMessageSINT
	LinuxSINTVector = 0xF3 // HYPERVISOR_CALLBACK_VECTOR on Linux x86
)

// LinuxGuestOSIDBase is the GUEST_OS_ID shape Linux uses: open-source bit
// 63 and OS type 0x01 in bits 63:48; the low bits carry the kernel version
// and are the caller's choice. The MSR must be non-zero before the
// hypercall page is enabled.
const LinuxGuestOSIDBase uint64 = 0x8100 << 48
