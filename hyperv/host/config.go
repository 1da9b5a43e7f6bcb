package host

import (
	"log/slog"
	"slices"

	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// ConnIDScheme is how the server numbers the connection ids the guest
// signals (HvSignalEvent) for each channel. Guests treat them as opaque
// (spec §1.7); the choice is the host's.
type ConnIDScheme uint8

const (
	// ConnIDOpenVMM is relid | sint<<12 with SINT 2, i.e. relid|0x2000,
	// as OpenVMM numbers VTL0 channels. Relids go up to 2047.
	ConnIDOpenVMM ConnIDScheme = iota
	// ConnIDCompact is relid+16, as QEMU numbers them, with relids capped
	// at 2031 so every id stays below 2048: the shared-memory transport
	// carries guest signals as a 2048-bit bitmap indexed by connection id.
	ConnIDCompact
)

// connID returns the connection id of relid.
func (s ConnIDScheme) connID(relid uint32) uint32 {
	if s == ConnIDCompact {
		return relid + 16
	}
	return relid | uint32(tlfs.VMBusMessageSINT)<<12
}

// relid inverts connID; ok is false for an id the scheme never hands out.
func (s ConnIDScheme) relid(conn uint32) (uint32, bool) {
	if s == ConnIDCompact {
		if conn <= 16 || conn-16 > s.maxRelID() {
			return 0, false
		}
		return conn - 16, true
	}
	r := conn &^ (uint32(tlfs.VMBusMessageSINT) << 12)
	if conn&(uint32(tlfs.VMBusMessageSINT)<<12) == 0 || r == 0 || r > s.maxRelID() {
		return 0, false
	}
	return r, true
}

// maxRelID is the highest relid the scheme can number.
func (s ConnIDScheme) maxRelID() uint32 {
	if s == ConnIDCompact {
		return 2047 - 16
	}
	return synic.MaxRelID
}

// Defaults and bounds.
const (
	// DefaultMessageConnID is the msg_conn_id a ≥ 5.0 VERSION_RESPONSE
	// names: OpenVMM's VTL0 server answers with its message port, 1.
	DefaultMessageConnID = tlfs.VMBusMessageConnectionID
	// DefaultMaxGPADLPages bounds one GPADL: range_buflen is a u16, so a
	// single range cannot describe more than 8190 pages (≈ 32 MiB).
	DefaultMaxGPADLPages = 8190
	// DefaultMaxGPADLs bounds the GPADLs (complete or in progress) one
	// connection may hold.
	DefaultMaxGPADLs = 4096
	// DefaultMaxSubchannels bounds the subchannels of one primary.
	DefaultMaxSubchannels = 64
	// DefaultQueueLen is how many posted messages may wait for the
	// control goroutine before HandlePost answers insufficient buffers.
	DefaultQueueLen = 1024
)

// StatusUnsuccessful is the failure status the server writes into
// GPADL_CREATED and OPENCHANNEL_RESULT (OpenVMM protocol::STATUS_UNSUCCESSFUL).
const StatusUnsuccessful = 0x8000FFFF

// Config configures a Server. Only Memory is required.
type Config struct {
	// Memory is guest memory by page frame number; GPADL PFNs are checked
	// against it and rings and buffers are read and written through it.
	Memory kernel.PhysMem
	// Versions are the protocol versions the host accepts (exact match).
	// Nil means all eleven of spec §2.1, as OpenVMM. A host that accepts
	// nothing at or above 5.0 (QEMU accepts ≤ 4.0) has no connection id 4:
	// a 5.0+ INITIATE_CONTACT posted there fails with
	// HV_STATUS_INVALID_CONNECTION_ID and the guest falls back.
	Versions []vmbusmsg.Version
	// Features are the 6.0 feature flags the host offers; the negotiated
	// set is their intersection with the guest's. Default none.
	Features vmbusmsg.FeatureFlags
	// MessageConnID is the msg_conn_id of a ≥ 5.0 VERSION_RESPONSE; the
	// server accepts posts on it, on 1, and (when it accepts a ≥ 5.0
	// version) on 4. Zero means DefaultMessageConnID.
	MessageConnID uint32
	// ConnIDs selects the channel connection-id numbering.
	ConnIDs ConnIDScheme
	// Clock times injected delays (Faults). Nil means the real clock.
	Clock kernel.Clock
	// Logger receives the server's log; records a guest can trigger are
	// rate-limited. Nil discards.
	Logger *slog.Logger
	// Bounds; zero means the default.
	MaxGPADLPages  int
	MaxGPADLs      int
	MaxSubchannels int
	QueueLen       int
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Versions == nil {
		d.Versions = vmbusmsg.AllVersions()
	} else {
		d.Versions = slices.Clone(d.Versions)
	}
	if d.MessageConnID == 0 {
		d.MessageConnID = DefaultMessageConnID
	}
	if d.Clock == nil {
		d.Clock = kernel.RealClock{}
	}
	if d.MaxGPADLPages <= 0 {
		d.MaxGPADLPages = DefaultMaxGPADLPages
	}
	if d.MaxGPADLs <= 0 {
		d.MaxGPADLs = DefaultMaxGPADLs
	}
	if d.MaxSubchannels <= 0 {
		d.MaxSubchannels = DefaultMaxSubchannels
	}
	if d.QueueLen <= 0 {
		d.QueueLen = DefaultQueueLen
	}
	return d
}

// supports reports whether v is an accepted version.
func (c *Config) supports(v vmbusmsg.Version) bool { return slices.Contains(c.Versions, v) }

// hasConn4 reports whether the host implements the ≥ 5.0 contact port.
func (c *Config) hasConn4() bool {
	return slices.ContainsFunc(c.Versions, func(v vmbusmsg.Version) bool { return v >= vmbusmsg.VersionWin10V5 })
}
