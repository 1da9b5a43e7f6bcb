package vmbusmsg

import "github.com/hvguest/hvguest/hyperv/tlfs"

// Sizes of the INITIATE_CONTACT forms, header included.
const (
	InitiateContactSize  = 40
	InitiateContact2Size = 56
)

// InitiateContact is INITIATE_CONTACT (14), guest to host (Linux struct
// vmbus_channel_initiate_contact; FreeBSD vmbus_chanmsg_connect; OpenVMM
// InitiateContact and InitiateContact2):
//
//	off 8   u32  VersionRequested
//	off 12  u32  TargetVCPU (VP index that receives VMBus messages)
//	off 16  u64  InterruptPageOrTarget:
//	             below 5.0: the interrupt page GPA;
//	             from 5.0: u8 msg_sint @16, u8 msg_vtl @17, u16 reserved @18,
//	             u32 feature_flags @20 (6.0)
//	off 24  u64  MonitorPage1 (parent-to-child monitor page GPA)
//	off 32  u64  MonitorPage2 (child-to-parent monitor page GPA)
//	-- InitiateContact2 (56 bytes; 6.0 with the client-id feature)
//	off 40  GUID ClientID
//
// V2 selects the 56-byte form; a message of 56 bytes or more decodes with
// V2 set. Use TargetInfo/SetTargetInfo for the 5.0 meaning of offset 16.
type InitiateContact struct {
	VersionRequested      Version
	TargetVCPU            uint32
	InterruptPageOrTarget uint64
	MonitorPage1          uint64
	MonitorPage2          uint64
	V2                    bool
	ClientID              tlfs.GUID
}

// NewInitiateContact builds the INITIATE_CONTACT a guest sends for
// version v, as Linux vmbus_negotiate_version does: below 5.0 offset 16
// carries interruptPage; from 5.0 on it carries msg_sint = 2 (VMBus),
// msg_vtl = 0 and, from 6.0 on, features. monitorPage1 is the
// parent-to-child page, monitorPage2 the child-to-parent one. Post it to
// v.InitiateContactConnectionID().
func NewInitiateContact(v Version, targetVCPU uint32, interruptPage, monitorPage1, monitorPage2 uint64, features FeatureFlags) *InitiateContact {
	m := &InitiateContact{VersionRequested: v, TargetVCPU: targetVCPU, MonitorPage1: monitorPage1, MonitorPage2: monitorPage2}
	switch {
	case v < VersionWin10V5:
		m.InterruptPageOrTarget = interruptPage
	case v.HasFeatureFlags():
		m.SetTargetInfo(messageSINT, 0, features)
	default:
		m.SetTargetInfo(messageSINT, 0, 0)
	}
	return m
}

// messageSINT is the SINT VMBus messages arrive on (tlfs.VMBusMessageSINT).
const messageSINT = tlfs.VMBusMessageSINT

// TargetInfo reads offset 16 as the 5.0+ target info.
func (m *InitiateContact) TargetInfo() (msgSINT, msgVTL uint8, features FeatureFlags) {
	v := m.InterruptPageOrTarget
	return uint8(v), uint8(v >> 8), FeatureFlags(v >> 32)
}

// SetTargetInfo writes the 5.0+ target info into offset 16.
func (m *InitiateContact) SetTargetInfo(msgSINT, msgVTL uint8, features FeatureFlags) {
	m.InterruptPageOrTarget = uint64(msgSINT) | uint64(msgVTL)<<8 | uint64(features)<<32
}

func (m *InitiateContact) Type() MessageType { return MsgInitiateContact }
func (m *InitiateContact) Encode() []byte    { return encode(m) }
func (m *InitiateContact) EncodedLen() int {
	if m.V2 {
		return InitiateContact2Size
	}
	return InitiateContactSize
}

func (m *InitiateContact) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgInitiateContact)
	b = le.AppendUint32(b, uint32(m.VersionRequested))
	b = le.AppendUint32(b, m.TargetVCPU)
	b = le.AppendUint64(b, m.InterruptPageOrTarget)
	b = le.AppendUint64(b, m.MonitorPage1)
	b = le.AppendUint64(b, m.MonitorPage2)
	if m.V2 {
		b = append(b, m.ClientID[:]...)
	}
	return b
}

func (m *InitiateContact) decode(b []byte) error {
	m.VersionRequested = Version(u32(b, 8))
	m.TargetVCPU = u32(b, 12)
	m.InterruptPageOrTarget = u64(b, 16)
	m.MonitorPage1 = u64(b, 24)
	m.MonitorPage2 = u64(b, 32)
	if m.V2 = len(b) >= InitiateContact2Size; m.V2 {
		m.ClientID = guid(b, 40)
	}
	return nil
}

// Sizes of the three VERSION_RESPONSE forms, header included.
const (
	VersionResponseSize  = 16
	VersionResponse2Size = 20
	VersionResponse3Size = 40
)

// VersionResponseForm selects one of the VERSION_RESPONSE layouts.
type VersionResponseForm uint8

const (
	// VersionResponseForm1 is the 16-byte form (before 6.0, or a refusal).
	VersionResponseForm1 VersionResponseForm = iota
	// VersionResponseForm2 adds SupportedFeatures (20 bytes, 6.0).
	VersionResponseForm2
	// VersionResponseForm3 adds server-provided monitor pages (40 bytes).
	VersionResponseForm3
)

// VersionResponse is VERSION_RESPONSE (15), host to guest (Linux struct
// vmbus_channel_version_response; FreeBSD vmbus_chanmsg_connect_resp;
// OpenVMM VersionResponse, VersionResponse2, VersionResponse3):
//
//	off 8   u8  VersionSupported (0: try a lower version)
//	off 9   u8  ConnectionState
//	off 10  u16 padding
//	off 12  u32 MsgConnID (5.0+: the connection id for every later message;
//	            OpenVMM writes the selected version here below 5.0)
//	-- form 2 (20 bytes)
//	off 16  u32 SupportedFeatures
//	-- form 3 (40 bytes, feature server_specified_monitor_pages)
//	off 20  u32 padding
//	off 24  u64 ParentToChildMonitorPage
//	off 32  u64 ChildToParentMonitorPage
//
// Decoding picks the largest form the message holds.
type VersionResponse struct {
	VersionSupported         uint8
	ConnectionState          ConnectionState
	MsgConnID                uint32
	Form                     VersionResponseForm
	SupportedFeatures        FeatureFlags
	ParentToChildMonitorPage uint64
	ChildToParentMonitorPage uint64
}

// Supported reports version_supported != 0.
func (m *VersionResponse) Supported() bool { return m.VersionSupported != 0 }

func (m *VersionResponse) Type() MessageType { return MsgVersionResponse }
func (m *VersionResponse) Encode() []byte    { return encode(m) }
func (m *VersionResponse) EncodedLen() int {
	switch m.Form {
	case VersionResponseForm1:
		return VersionResponseSize
	case VersionResponseForm2:
		return VersionResponse2Size
	}
	return VersionResponse3Size
}

func (m *VersionResponse) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgVersionResponse)
	b = append(b, m.VersionSupported, byte(m.ConnectionState), 0, 0)
	b = le.AppendUint32(b, m.MsgConnID)
	if m.Form == VersionResponseForm1 {
		return b
	}
	b = le.AppendUint32(b, uint32(m.SupportedFeatures))
	if m.Form == VersionResponseForm2 {
		return b
	}
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, m.ParentToChildMonitorPage)
	return le.AppendUint64(b, m.ChildToParentMonitorPage)
}

func (m *VersionResponse) decode(b []byte) error {
	*m = VersionResponse{VersionSupported: b[8], ConnectionState: ConnectionState(b[9]), MsgConnID: u32(b, 12)}
	if len(b) >= VersionResponse2Size {
		m.Form = VersionResponseForm2
		m.SupportedFeatures = FeatureFlags(u32(b, 16))
	}
	if len(b) >= VersionResponse3Size {
		m.Form = VersionResponseForm3
		m.ParentToChildMonitorPage = u64(b, 24)
		m.ChildToParentMonitorPage = u64(b, 32)
	}
	return nil
}

// ModifyConnection is MODIFY_CONNECTION (25), guest to host, 24 bytes (6.0
// + modify_connection; OpenVMM ModifyConnection):
//
//	off 8   u64 ParentToChildMonitorPage
//	off 16  u64 ChildToParentMonitorPage
type ModifyConnection struct {
	ParentToChildMonitorPage uint64
	ChildToParentMonitorPage uint64
}

func (m *ModifyConnection) Type() MessageType { return MsgModifyConnection }
func (m *ModifyConnection) EncodedLen() int   { return 24 }
func (m *ModifyConnection) Encode() []byte    { return encode(m) }
func (m *ModifyConnection) AppendTo(b []byte) []byte {
	b = le.AppendUint64(appendHeader(b, MsgModifyConnection), m.ParentToChildMonitorPage)
	return le.AppendUint64(b, m.ChildToParentMonitorPage)
}
func (m *ModifyConnection) decode(b []byte) error {
	m.ParentToChildMonitorPage, m.ChildToParentMonitorPage = u64(b, 8), u64(b, 16)
	return nil
}

// ModifyConnectionResponse is MODIFY_CONNECTION_RESPONSE (26), host to
// guest, 9 bytes (OpenVMM ModifyConnectionResponse):
//
//	off 8  u8 ConnectionState
type ModifyConnectionResponse struct{ ConnectionState ConnectionState }

func (m *ModifyConnectionResponse) Type() MessageType { return MsgModifyConnectionResponse }
func (m *ModifyConnectionResponse) EncodedLen() int   { return 9 }
func (m *ModifyConnectionResponse) Encode() []byte    { return encode(m) }
func (m *ModifyConnectionResponse) AppendTo(b []byte) []byte {
	return append(appendHeader(b, MsgModifyConnectionResponse), byte(m.ConnectionState))
}
func (m *ModifyConnectionResponse) decode(b []byte) error {
	m.ConnectionState = ConnectionState(b[8])
	return nil
}

// Sizes of the TL_CONNECT_REQUEST forms, header included.
const (
	TLConnectRequestSize  = 40
	TLConnectRequest2Size = 56
)

// TLConnectRequest is TL_CONNECT_REQUEST (21), guest to host: an hv_sock
// connect (4.0+; Linux struct vmbus_channel_tl_connect_request; OpenVMM
// TlConnectRequest and TlConnectRequest2):
//
//	off 8   GUID GuestEndpointID
//	off 24  GUID HostServiceID
//	-- TlConnectRequest2 (56 bytes, 5.2+)
//	off 40  GUID SiloID
//
// V2 selects the 56-byte form; some guests send the 40-byte form at any
// version, so a 40-byte message always decodes.
type TLConnectRequest struct {
	GuestEndpointID tlfs.GUID
	HostServiceID   tlfs.GUID
	V2              bool
	SiloID          tlfs.GUID
}

func (m *TLConnectRequest) Type() MessageType { return MsgTLConnectRequest }
func (m *TLConnectRequest) Encode() []byte    { return encode(m) }
func (m *TLConnectRequest) EncodedLen() int {
	if m.V2 {
		return TLConnectRequest2Size
	}
	return TLConnectRequestSize
}
func (m *TLConnectRequest) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgTLConnectRequest)
	b = append(b, m.GuestEndpointID[:]...)
	b = append(b, m.HostServiceID[:]...)
	if m.V2 {
		b = append(b, m.SiloID[:]...)
	}
	return b
}
func (m *TLConnectRequest) decode(b []byte) error {
	*m = TLConnectRequest{GuestEndpointID: guid(b, 8), HostServiceID: guid(b, 24)}
	if m.V2 = len(b) >= TLConnectRequest2Size; m.V2 {
		m.SiloID = guid(b, 40)
	}
	return nil
}

// TLConnectResult is TL_CONNECT_RESULT (23), host to guest, 44 bytes
// (4.1+; OpenVMM TlConnectResult):
//
//	off 8   GUID EndpointID
//	off 24  GUID ServiceID
//	off 40  i32  Status
type TLConnectResult struct {
	EndpointID tlfs.GUID
	ServiceID  tlfs.GUID
	Status     int32
}

func (m *TLConnectResult) Type() MessageType { return MsgTLConnectResult }
func (m *TLConnectResult) EncodedLen() int   { return 44 }
func (m *TLConnectResult) Encode() []byte    { return encode(m) }
func (m *TLConnectResult) AppendTo(b []byte) []byte {
	b = appendHeader(b, MsgTLConnectResult)
	b = append(b, m.EndpointID[:]...)
	b = append(b, m.ServiceID[:]...)
	return le.AppendUint32(b, uint32(m.Status))
}
func (m *TLConnectResult) decode(b []byte) error {
	m.EndpointID, m.ServiceID, m.Status = guid(b, 8), guid(b, 24), int32(u32(b, 40))
	return nil
}
