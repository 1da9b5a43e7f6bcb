package ifnet

import "net"

// Request is a typed ioctl request. The request types of this package cover
// what the stack and hn(4)'s transparent VF mode need; a driver may accept
// its own request types too (the escape hatch): any type with a
// RequestName method is passed to the driver after the ownership check, and
// a driver that does not know it returns ErrNotSupported.
//
// Requests are passed by pointer. Get requests are answered in their result
// fields; set requests may be narrowed by the driver where documented.
type Request interface {
	// RequestName names the request in errors and logs ("SetMTU").
	RequestName() string
}

// Query marks a request that only reads: it changes nothing on the
// interface or its device. A claim keeps others from configuring an
// interface, not from looking at it, so queries pass a claim (hn reads the
// RSS key of a VF that a failover aggregate claimed; a monitor reads the
// media of hn's VF). GetMedia, GetRSSKey, GetRSSHash and GetReady are
// queries; a driver's own request type is one if it has this method and
// it returns true.
type Query interface {
	Request
	ReadOnly() bool
}

// IsQuery says whether req only reads (see Query).
func IsQuery(req Request) bool {
	q, ok := req.(Query)
	return ok && q.ReadOnly()
}

// SetFlags sets the user-settable flags (UserFlags: UP, PROMISC, ALLMULTI).
// The other bits of Flags are ignored, so a caller may pass a copy of another
// interface's flags (as hn does for its VF). The driver sees the old flags in
// Interface.Flags during the call and may set FlagRunning with SetRunning;
// after it returns nil the user bits are committed.
type SetFlags struct{ Flags Flags }

// SetMTU sets the MTU. It must lie within the interface's [MinMTU, MaxMTU].
// The driver sees the old MTU during the call; the new one is committed
// after it returns nil.
type SetMTU struct{ MTU int }

// AddMulti joins a link-layer multicast group. The list is reference
// counted: the driver is called only when the address is new, and sees the
// list without it (it is added after the driver returns nil).
type AddMulti struct{ Addr net.HardwareAddr }

// DelMulti leaves a link-layer multicast group. The driver is called only
// when the last reference goes, and sees the list still holding it.
type DelMulti struct{ Addr net.HardwareAddr }

// SetCapabilities sets the enabled capabilities. Enable must be a subset of
// the interface's capabilities, and dependent capabilities need their base
// (TSO4 needs TXCSUM, TSO6 needs TXCSUM_IPV6, VLAN_HWCSUM/VLAN_HWTSO need
// VLAN_HWTAGGING); otherwise the request fails with ErrInvalid.
//
// Before the driver is called, HWAssist is set to DeriveHWAssist(Enable).
// The driver may narrow Enable (bits it could not turn on) and may replace
// HWAssist (hn copies its VF's); both are committed when it returns nil, so
// on return they hold what is now in effect.
type SetCapabilities struct {
	Enable   Cap
	HWAssist HWAssist
}

// GetMedia asks for the media state. State is prefilled from what the
// driver published with SetMediaState; a driver may replace it (hn forwards
// to its VF) and returns nil.
type GetMedia struct{ State MediaState }

// SetMedia selects a medium (Auto for autoselect). The driver validates it;
// on nil the selection becomes MediaState.Current.
type SetMedia struct{ Media Media }

// SetMAC changes the link-layer address: 6 bytes, unicast, not all zero.
type SetMAC struct{ MAC net.HardwareAddr }

// GetRSSKey asks for the RSS hash function and key (SIOCGIFRSSKEY). Prefilled
// from the driver's published RSSConfig; the driver may replace it.
type GetRSSKey struct {
	Func RSSFunc
	Key  []byte
}

// GetRSSHash asks for the RSS hash function and hashed packet types
// (SIOCGIFRSSHASH). Prefilled like GetRSSKey.
type GetRSSHash struct {
	Func  RSSFunc
	Types RSSTypes
}

func (*SetFlags) RequestName() string        { return "SetFlags" }
func (*SetMTU) RequestName() string          { return "SetMTU" }
func (*AddMulti) RequestName() string        { return "AddMulti" }
func (*DelMulti) RequestName() string        { return "DelMulti" }
func (*SetCapabilities) RequestName() string { return "SetCapabilities" }
func (*GetMedia) RequestName() string        { return "GetMedia" }
func (*SetMedia) RequestName() string        { return "SetMedia" }
func (*SetMAC) RequestName() string          { return "SetMAC" }
func (*GetRSSKey) RequestName() string       { return "GetRSSKey" }
func (*GetRSSHash) RequestName() string      { return "GetRSSHash" }

func (*GetMedia) ReadOnly() bool   { return true }
func (*GetRSSKey) ReadOnly() bool  { return true }
func (*GetRSSHash) ReadOnly() bool { return true }
