package nvsp

// ChannelType is the RNDIS channel of SEND_RNDIS_PKT (spec §2.8).
type ChannelType uint32

const (
	// ChannelData (RMC_DATA) carries RNDIS PACKET messages.
	ChannelData ChannelType = 0
	// ChannelControl (RMC_CONTROL) carries RNDIS control messages,
	// their completions and status indications.
	ChannelControl ChannelType = 1
)

// NoSection in SendRNDISPacket.SectionIndex says the send buffer is not
// used: the RNDIS bytes travel in the packet's page ranges (GPA direct)
// or, host to guest, in transfer pages.
const NoSection = 0xFFFFFFFF

// SendRNDISPacket is SEND_RNDIS_PKT (107), both directions, 16 bytes
// (Linux struct nvsp_1_message_send_rndis_packet). Guest to host it is an
// inband packet naming a send-buffer section, or a GPA-direct packet with
// SectionIndex = NoSection (a partial copy names a section and adds page
// ranges: the section's bytes come first). Host to guest it is the inline
// message of a transfer-page packet, SectionIndex = NoSection and
// SectionSize = 0.
//
//	off 4   u32 ChannelType (0 data, 1 control)
//	off 8   u32 SectionIndex (NoSection: send buffer not used)
//	off 12  u32 SectionSize (bytes used in the section; 0 with NoSection)
type SendRNDISPacket struct {
	ChannelType  ChannelType
	SectionIndex uint32
	SectionSize  uint32
}

func (m *SendRNDISPacket) Type() MessageType { return MsgSendRNDISPacket }
func (m *SendRNDISPacket) EncodedLen() int   { return 16 }
func (m *SendRNDISPacket) Encode() []byte    { return encode(m) }
func (m *SendRNDISPacket) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSendRNDISPacket))
	b = le.AppendUint32(b, uint32(m.ChannelType))
	b = le.AppendUint32(b, m.SectionIndex)
	return le.AppendUint32(b, m.SectionSize)
}
func (m *SendRNDISPacket) decode(b []byte, _ Version) error {
	m.ChannelType, m.SectionIndex, m.SectionSize = ChannelType(u32(b, 4)), u32(b, 8), u32(b, 12)
	return nil
}

// SendRNDISPacketComplete is SEND_RNDIS_PKT_COMPLETE (108), both
// directions, in the completion packet of a SEND_RNDIS_PKT, 8 bytes (Linux
// struct nvsp_1_message_send_rndis_packet_complete; Linux sends exactly 8
// bytes for receive completions, DPDK 40).
//
//	off 4  u32 Status (1 success; 2 failure, e.g. a malformed RNDIS message)
type SendRNDISPacketComplete struct{ Status Status }

func (m *SendRNDISPacketComplete) Type() MessageType { return MsgSendRNDISPacketComplete }
func (m *SendRNDISPacketComplete) EncodedLen() int   { return 8 }
func (m *SendRNDISPacketComplete) Encode() []byte    { return encode(m) }
func (m *SendRNDISPacketComplete) AppendTo(b []byte) []byte {
	return le.AppendUint32(le.AppendUint32(b, uint32(MsgSendRNDISPacketComplete)), uint32(m.Status))
}
func (m *SendRNDISPacketComplete) decode(b []byte, _ Version) error {
	m.Status = Status(u32(b, 4))
	return nil
}

// Host limits on NDIS config's MTU (OpenVMM: outside the range, 1514).
const (
	MinConfigMTU     = 1514
	MaxConfigMTU     = 9216
	EthernetHeaderSz = 14
)

// SendNDISConfig is SEND_NDIS_CONFIG (125), guest to host from Version2,
// 20 bytes, no reply (Linux struct nvsp_2_send_ndis_config). Guests send
// it right after INIT succeeds; the host needs it before SEND_RECV_BUF.
//
//	off 4   u32 MTU (L2 frame size: MTU + 14)
//	off 8   u32 reserved
//	off 12  u64 Capabilities (unaligned)
type SendNDISConfig struct {
	MTU          uint32
	Capabilities Capabilities
}

func (m *SendNDISConfig) Type() MessageType { return MsgSendNDISConfig }
func (m *SendNDISConfig) EncodedLen() int   { return 20 }
func (m *SendNDISConfig) Encode() []byte    { return encode(m) }
func (m *SendNDISConfig) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgSendNDISConfig))
	b = le.AppendUint32(b, m.MTU)
	b = le.AppendUint32(b, 0)
	return le.AppendUint64(b, uint64(m.Capabilities))
}
func (m *SendNDISConfig) decode(b []byte, _ Version) error {
	m.MTU, m.Capabilities = u32(b, 4), Capabilities(u64(b, 12))
	return nil
}

// SendVFAssociation is SEND_VF_ASSOCIATION (128), host to guest from
// Version4, inband, 12 bytes (Linux struct nvsp_4_send_vf_association).
// The host sends it only if the guest set CapSRIOV; OpenVMM requests a
// completion that no guest sends.
//
//	off 4  u32 Allocated (1: VF present, Serial valid; 0: VF removed)
//	off 8  u32 Serial (the VF's vPCI slot serial number)
type SendVFAssociation struct {
	Allocated bool
	Serial    uint32
}

func (m *SendVFAssociation) Type() MessageType { return MsgSendVFAssociation }
func (m *SendVFAssociation) EncodedLen() int   { return 12 }
func (m *SendVFAssociation) Encode() []byte    { return encode(m) }
func (m *SendVFAssociation) AppendTo(b []byte) []byte {
	var a uint32
	if m.Allocated {
		a = 1
	}
	b = le.AppendUint32(b, uint32(MsgSendVFAssociation))
	b = le.AppendUint32(b, a)
	return le.AppendUint32(b, m.Serial)
}
func (m *SendVFAssociation) decode(b []byte, _ Version) error {
	m.Allocated, m.Serial = u32(b, 4) != 0, u32(b, 8)
	return nil
}

// DataPath is the active data path of SWITCH_DATA_PATH (Linux enum
// nvsp_vm_datapath).
type DataPath uint32

const (
	DataPathSynthetic DataPath = 0
	DataPathVF        DataPath = 1
)

// SwitchDataPath is SWITCH_DATA_PATH (129) from Version4, 8 bytes (Linux
// struct nvsp_4_sw_datapath). Guest to host, with a completion requested
// by Linux ≥ 5.12: the host answers with an empty completion packet once
// switched. Host to guest (OpenVMM), DataPathSynthetic when a VF is
// yanked while in use.
//
//	off 4  u32 DataPath (0 synthetic, 1 VF)
type SwitchDataPath struct{ DataPath DataPath }

func (m *SwitchDataPath) Type() MessageType { return MsgSwitchDataPath }
func (m *SwitchDataPath) EncodedLen() int   { return 8 }
func (m *SwitchDataPath) Encode() []byte    { return encode(m) }
func (m *SwitchDataPath) AppendTo(b []byte) []byte {
	return le.AppendUint32(le.AppendUint32(b, uint32(MsgSwitchDataPath)), uint32(m.DataPath))
}
func (m *SwitchDataPath) decode(b []byte, _ Version) error {
	m.DataPath = DataPath(u32(b, 4))
	return nil
}

// OIDQueryEx is OID_QUERY_EX (131), guest to host from Version5, 12 bytes
// (Windows NVSP_5_OID_QUERY_EX). No known guest sends it; OpenVMM answers
// RNDIS NOT_SUPPORTED.
//
//	off 4  u32 Header (an NDIS object header, kept raw)
//	off 8  u32 OID
type OIDQueryEx struct {
	Header uint32
	OID    uint32
}

func (m *OIDQueryEx) Type() MessageType { return MsgOIDQueryEx }
func (m *OIDQueryEx) EncodedLen() int   { return 12 }
func (m *OIDQueryEx) Encode() []byte    { return encode(m) }
func (m *OIDQueryEx) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgOIDQueryEx))
	b = le.AppendUint32(b, m.Header)
	return le.AppendUint32(b, m.OID)
}
func (m *OIDQueryEx) decode(b []byte, _ Version) error {
	m.Header, m.OID = u32(b, 4), u32(b, 8)
	return nil
}

// OIDQueryExComplete is OID_QUERY_EX_COMPLETE (132), host to guest, 12
// bytes.
//
//	off 4  u32 Status (an RNDIS/NDIS status)
//	off 8  u32 Bytes
type OIDQueryExComplete struct {
	Status uint32
	Bytes  uint32
}

func (m *OIDQueryExComplete) Type() MessageType { return MsgOIDQueryExComplete }
func (m *OIDQueryExComplete) EncodedLen() int   { return 12 }
func (m *OIDQueryExComplete) Encode() []byte    { return encode(m) }
func (m *OIDQueryExComplete) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(MsgOIDQueryExComplete))
	b = le.AppendUint32(b, m.Status)
	return le.AppendUint32(b, m.Bytes)
}
func (m *OIDQueryExComplete) decode(b []byte, _ Version) error {
	m.Status, m.Bytes = u32(b, 4), u32(b, 8)
	return nil
}
