package nvsp

import "fmt"

// Version is an NVSP protocol version as carried in INIT (spec §2.1;
// Linux NVSP_PROTOCOL_VERSION_*, FreeBSD HN_NVS_VERSION_*).
type Version uint32

// Protocol versions. Names follow Linux; there is no version 3.
const (
	Version1  Version = 0x00000002
	Version2  Version = 0x00030002
	Version4  Version = 0x00040000 // VF association, data-path switch
	Version5  Version = 0x00050000 // subchannels, send table, NDIS 6.30
	Version6  Version = 0x00060000 // PacketDirect numbers; host send-table offset bug
	Version61 Version = 0x00060001 // 40-byte messages, RSC

	// VersionInvalid is NVSP_INVALID_PROTOCOL_VERSION, what OpenVMM puts
	// in INIT_COMPLETE's deprecated version field.
	VersionInvalid Version = 0xFFFFFFFF
)

// Versions lists the versions a guest offers, newest first, one INIT each
// (Linux and DPDK order; FreeBSD starts at Version5).
var Versions = []Version{Version61, Version6, Version5, Version4, Version2, Version1}

// Known reports whether v is one of the six defined versions, the only
// values a host accepts (OpenVMM check_version: exact match).
func (v Version) Known() bool {
	switch v {
	case Version1, Version2, Version4, Version5, Version6, Version61:
		return true
	}
	return false
}

func (v Version) String() string {
	switch v {
	case Version1:
		return "NVSP1"
	case Version2:
		return "NVSP2"
	case Version4:
		return "NVSP4"
	case Version5:
		return "NVSP5"
	case Version6:
		return "NVSP6"
	case Version61:
		return "NVSP6.1"
	}
	return fmt.Sprintf("NVSP(%#x)", uint32(v))
}

// NDIS returns the NDIS version a guest announces with SEND_NDIS_VERSION
// after negotiating v: 6.1 up to Version4, 6.30 from Version5 (Linux,
// FreeBSD and DPDK agree, spec §2.1).
func (v Version) NDIS() NDISVersion {
	if v >= Version5 {
		return NDIS630
	}
	return NDIS61
}

// MaxMessageType is the highest message type defined at version v (spec
// §2.3). Windows treats version 6 as having only the v5 set; this returns
// the numbers the headers define.
func (v Version) MaxMessageType() MessageType {
	switch {
	case v >= Version6:
		return MsgPDPostBatch
	case v >= Version5:
		return MsgSendIndirectionTable
	case v >= Version4:
		return MsgUplinkConnectState
	case v >= Version2:
		return MsgAllocChimneyHandleComplete
	}
	return MsgSendRNDISPacketComplete
}

// NDISVersion is major<<16 | minor (FreeBSD HN_NDIS_VERSION_*).
type NDISVersion uint32

// NDIS versions used on Hyper-V.
const (
	NDIS61  NDISVersion = 0x00060001
	NDIS620 NDISVersion = 0x00060014 // FreeBSD: RSS needs at least this
	NDIS630 NDISVersion = 0x0006001E
)

// Major returns the high 16 bits.
func (n NDISVersion) Major() uint32 { return uint32(n) >> 16 }

// Minor returns the low 16 bits.
func (n NDISVersion) Minor() uint32 { return uint32(n) & 0xFFFF }

func (n NDISVersion) String() string { return fmt.Sprintf("NDIS%d.%d", n.Major(), n.Minor()) }

// Fixed message sizes (spec §2.2). OpenVMM PACKET_SIZE_V1 = 28 is the
// header plus the largest v1 body (SEND_RECV_BUF_COMPLETE); PACKET_SIZE_V61
// = 40 is the header plus the largest v6 body (PD_API completion), Linux
// sizeof(struct nvsp_message).
const (
	MessageSizeV1  = 28
	MessageSizeV61 = 40

	// GuestMessageSize is what a guest should send for every message, at
	// every version: Linux and DPDK send 40 zero-padded bytes, and the
	// host accepts anything at least as long as the body.
	GuestMessageSize = MessageSizeV61
)

// HostMessageSize is the size a host (OpenVMM) pads its messages to once
// version v is negotiated: 28 bytes before 6.1, 40 from 6.1 on.
func HostMessageSize(v Version) int {
	if v >= Version61 {
		return MessageSizeV61
	}
	return MessageSizeV1
}

// AppendPadded appends m and zero bytes up to size bytes in all; a
// message longer than size is appended whole.
func AppendPadded(b []byte, m Message, size int) []byte {
	start := len(b)
	b = m.AppendTo(b)
	for len(b)-start < size {
		b = append(b, 0)
	}
	return b
}

// Status is an NVSP status (Linux NVSP_STAT_*, Windows NVSP_STATUS).
// Guests only test for StatusSuccess.
type Status uint32

// NVSP status values (spec §2.4).
const (
	StatusNone                Status = 0
	StatusSuccess             Status = 1
	StatusFailure             Status = 2
	StatusProtocolTooNew      Status = 3 // deprecated
	StatusProtocolTooOld      Status = 4 // deprecated
	StatusInvalidRNDISPacket  Status = 5
	StatusBusy                Status = 6
	StatusProtocolUnsupported Status = 7 // OpenVMM: not actually used
)

var statusNames = [...]string{"NONE", "SUCCESS", "FAILURE", "PROTOCOL_TOO_NEW", "PROTOCOL_TOO_OLD", "INVALID_RNDIS_PACKET", "BUSY", "PROTOCOL_UNSUPPORTED"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("NVSP_STATUS(%d)", uint32(s))
}

// Capabilities is the u64 capability mask of SEND_NDIS_CONFIG (Linux
// struct nvsp_2_vsc_capability, OpenVMM NdisConfigCapabilities).
type Capabilities uint64

// Capability bits (spec §2.5).
const (
	CapVMQ             Capabilities = 1 << 0
	CapChimney         Capabilities = 1 << 1
	CapSRIOV           Capabilities = 1 << 2 // the host sends VF association only if set
	CapIEEE8021Q       Capabilities = 1 << 3
	CapCorrelationID   Capabilities = 1 << 4
	CapTeaming         Capabilities = 1 << 5 // Linux: needed for link-speed indications
	CapVirtualSubnetID Capabilities = 1 << 6
	CapRSC             Capabilities = 1 << 7 // RSC over VMBus, NVSP 6.1
)

// GuestCapabilities returns what Linux announces after negotiating v:
// IEEE 802.1Q always; SR-IOV (unless isolated, i.e. a confidential VM) and
// teaming from Version5; RSC from Version61.
func GuestCapabilities(v Version, isolated bool) Capabilities {
	c := CapIEEE8021Q
	if v >= Version5 {
		c |= CapTeaming
		if !isolated {
			c |= CapSRIOV
		}
	}
	if v >= Version61 {
		c |= CapRSC
	}
	return c
}
