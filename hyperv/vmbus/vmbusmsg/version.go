package vmbusmsg

import (
	"fmt"
	"strings"
)

// Version is a VMBus protocol version, major<<16 | minor (Linux
// include/linux/hyperv.h VERSION_*; OpenVMM protocol.rs Version).
type Version uint32

// MakeVersion builds a Version from its parts.
func MakeVersion(major, minor uint16) Version { return Version(uint32(major)<<16 | uint32(minor)) }

// Protocol versions, spec §2.1. Names follow Linux.
const (
	VersionWS2008    Version = 0x0000000D // 0.13, OpenVMM V1
	VersionWin7      Version = 0x00010001 // 1.1
	VersionWin8      Version = 0x00020004 // 2.4: SIEF relid bits, sub-channels, target_vp
	VersionWin8_1    Version = 0x00030000 // 3.0: target_vcpu honoured; Linux sends UNLOAD
	VersionWin10     Version = 0x00040000 // 4.0: TL_CONNECT_REQUEST, reserved channels
	VersionWin10V4_1 Version = 0x00040001 // 4.1: MODIFYCHANNEL, TL_CONNECT_RESULT (OpenVMM Win10Rs3_0)
	VersionWin10V5   Version = 0x00050000 // 5.0: conn id 4, msg_sint, msg_conn_id (OpenVMM Win10Rs3_1)
	VersionWin10V5_1 Version = 0x00050001 // 5.1 (OpenVMM Win10Rs4)
	VersionWin10V5_2 Version = 0x00050002 // 5.2: TlConnectRequest2 (OpenVMM Win10Rs5)
	VersionWin10V5_3 Version = 0x00050003 // 5.3: MODIFYCHANNEL_RESPONSE (OpenVMM Iron)
	VersionWin10V6_0 Version = 0x00060000 // 6.0: feature flags (OpenVMM Copper)
)

var versionNames = map[Version]string{
	VersionWS2008: "WS2008", VersionWin7: "WIN7", VersionWin8: "WIN8",
	VersionWin8_1: "WIN8_1", VersionWin10: "WIN10", VersionWin10V4_1: "WIN10_V4_1",
	VersionWin10V5: "WIN10_V5", VersionWin10V5_1: "WIN10_V5_1", VersionWin10V5_2: "WIN10_V5_2",
	VersionWin10V5_3: "WIN10_V5_3", VersionWin10V6_0: "WIN10_V6_0",
}

// Major and Minor split the version.
func (v Version) Major() uint16 { return uint16(v >> 16) }
func (v Version) Minor() uint16 { return uint16(v) }

// Known reports whether v is one of the eleven defined versions.
func (v Version) Known() bool { _, ok := versionNames[v]; return ok }

// Name returns the Linux name without the VERSION_ prefix, or "".
func (v Version) Name() string { return versionNames[v] }

// String returns "major.minor (NAME)", or "major.minor" when unnamed.
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d", v.Major(), v.Minor())
	if n := versionNames[v]; n != "" {
		s += " (" + n + ")"
	}
	return s
}

// InitiateContactConnectionID returns the HvCallPostMessage connection id
// INITIATE_CONTACT for this version goes to: 4 from 5.0 on, 1 below
// (Linux drivers/hv/connection.c vmbus_negotiate_version). From 5.0 on,
// later messages use VersionResponse.MsgConnID instead.
func (v Version) InitiateContactConnectionID() uint32 {
	if v >= VersionWin10V5 {
		return 4
	}
	return 1
}

// HasFeatureFlags reports whether INITIATE_CONTACT and VERSION_RESPONSE
// carry 6.0 feature flags at this version.
func (v Version) HasFeatureFlags() bool { return v >= VersionWin10V6_0 }

// guestTryOrder is what a current guest offers, newest first, down to WIN8
// (Linux vmbus_versions[], plus 6.0).
var guestTryOrder = []Version{
	VersionWin10V6_0, VersionWin10V5_3, VersionWin10V5_2, VersionWin10V5_1, VersionWin10V5,
	VersionWin10V4_1, VersionWin10, VersionWin8_1, VersionWin8,
}

// GuestVersions returns the versions a guest tries, newest first, ending
// at WIN8 (2.4): the first VERSION_RESPONSE with version_supported != 0
// wins. The slice is a copy.
func GuestVersions() []Version { return append([]Version(nil), guestTryOrder...) }

// AllVersions returns every defined version, oldest first (OpenVMM's
// server accepts all of them).
func AllVersions() []Version {
	return []Version{VersionWS2008, VersionWin7, VersionWin8, VersionWin8_1, VersionWin10,
		VersionWin10V4_1, VersionWin10V5, VersionWin10V5_1, VersionWin10V5_2, VersionWin10V5_3, VersionWin10V6_0}
}

// FeatureFlags are the 6.0 feature bits carried in INITIATE_CONTACT
// (bits 63:32 of the target-info word) and VERSION_RESPONSE (OpenVMM
// protocol.rs FeatureFlags; spec §2.4). The negotiated set is the
// intersection of the guest's and the host's.
type FeatureFlags uint32

const (
	FeatureGuestSpecifiedSignalParameters FeatureFlags = 0x01 // OpenChannel2 connection_id/event_flag
	FeatureChannelInterruptRedirection    FeatureFlags = 0x02 // OpenChannel2 flags bit 0
	FeatureModifyConnection               FeatureFlags = 0x04
	FeatureClientID                       FeatureFlags = 0x08 // InitiateContact2
	FeatureConfidentialChannels           FeatureFlags = 0x10
	FeaturePauseResume                    FeatureFlags = 0x20
	FeatureServerSpecifiedMonitorPages    FeatureFlags = 0x40 // VersionResponse3
	FeatureGPAPinning                     FeatureFlags = 0x80
)

var featureNames = []string{"signal-params", "interrupt-redirect", "modify-connection", "client-id",
	"confidential", "pause-resume", "server-monitor-pages", "gpa-pinning"}

// Has reports whether all of want are set.
func (f FeatureFlags) Has(want FeatureFlags) bool { return f&want == want }

func (f FeatureFlags) String() string {
	var parts []string
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if rest := f &^ (1<<len(featureNames) - 1); rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	return strings.Join(parts, "|")
}

// ConnectionState is VERSION_RESPONSE.connection_state and
// MODIFY_CONNECTION_RESPONSE.connection_state (OpenVMM ConnectionState).
type ConnectionState uint8

const (
	ConnectionSuccessful           ConnectionState = 0
	ConnectionFailedLowResources   ConnectionState = 1
	ConnectionFailedUnknownFailure ConnectionState = 2
)

func (s ConnectionState) String() string {
	switch s {
	case ConnectionSuccessful:
		return "successful"
	case ConnectionFailedLowResources:
		return "failed-low-resources"
	case ConnectionFailedUnknownFailure:
		return "failed-unknown"
	}
	return fmt.Sprintf("connection-state(%d)", uint8(s))
}
