package failover

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Errors of this package; every error wraps one of them (or an ifnet
// sentinel, for errors a member returned).
var (
	ErrInvalid   = errors.New("failover: invalid configuration")
	ErrMismatch  = errors.New("failover: interface does not match the aggregate")
	ErrSlotTaken = errors.New("failover: member slot already taken")
	ErrNotMember = errors.New("failover: not a member")
	ErrClosed    = errors.New("failover: closed")
)

// Role is a member's role.
type Role uint8

// Roles.
const (
	Primary Role = iota // the VF
	Standby             // the synthetic NIC (hn)
	numRoles
)

func (r Role) String() string {
	switch r {
	case Primary:
		return "primary"
	case Standby:
		return "standby"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Config configures a Failover.
type Config struct {
	// Name of the aggregate interface (e.g. "failover0", "lagg0").
	Name string
	// MAC is the members' permanent address, which the aggregate takes.
	MAC net.HardwareAddr
	// Registry is where the aggregate is attached and members are found.
	Registry *ifnet.Registry
	// MTU is the aggregate's initial MTU (default ifnet.DefaultMTU);
	// MaxMTU bounds SetMTU (default ifnet.DefaultJumboMTU).
	MTU, MaxMTU int
	// Manual disables automatic enslaving: members join only through Add.
	Manual bool
	// Logger (default discards).
	Logger *slog.Logger
}

// MemberStats are the counters of one role: what the aggregate sent
// through it and received from it, across successive members.
type MemberStats struct {
	Name                   string // current member ("" if the slot is empty)
	TxPackets, TxBytes     uint64
	TxErrors               uint64 // batches the member refused in part or whole
	RxPackets, RxBytes     uint64
	Joins, Leaves          uint64
	JoinErrors             uint64 // automatic enslaving attempts that failed
	Active                 bool   // the member transmits now
	Up, Running, LinkReady bool
}

// Stats are the aggregate's counters.
type Stats struct {
	Primary, Standby MemberStats
	Failovers        uint64 // changes of the transmitting member
	TxNoMember       uint64 // packets refused because no member was ready
}

type roleCounters struct {
	txPackets, txBytes, txErrors, rxPackets, rxBytes atomic.Uint64
	joins, leaves, joinErrors                        atomic.Uint64
}

// member is one enslaved interface. Immutable once published in a slot.
type member struct {
	f     *Failover
	ifp   *ifnet.Interface
	role  Role
	claim *ifnet.Claim
	ovr   *ifnet.InputOverride
	ctr   *roleCounters
}

// Failover is the aggregate. See the package comment.
type Failover struct {
	cfg   Config
	log   *slog.Logger
	ifp   *ifnet.Interface
	reg   *ifnet.Registry
	mac   net.HardwareAddr
	owner string

	slots  [numRoles]atomic.Pointer[member] // written under mu
	ctr    [numRoles]roleCounters
	lastTx atomic.Pointer[member] // member of the last transmit, for Failovers

	failovers, txNoMember atomic.Uint64

	// mu serializes membership changes and the aggregate's ioctls; it
	// guards the fields below, the aggregate's configuration as the driver
	// accepted it (pushed to joining members).
	mu     sync.Mutex
	flags  ifnet.Flags // user flags
	mtu    int
	multi  []net.HardwareAddr
	closed bool
	sub    *ifnet.Subscription
	// excluded are interfaces given back with Remove: automatic enslaving
	// leaves them alone until they detach or are added again.
	excluded map[*ifnet.Interface]bool
}

// New creates the aggregate, attaches it to cfg.Registry and, unless
// cfg.Manual, enslaves the matching interfaces already attached and those
// that attach later.
func New(cfg Config) (*Failover, error) {
	if cfg.Registry == nil || len(cfg.MAC) != 6 || cfg.MAC[0]&1 != 0 || cfg.Name == "" {
		return nil, fmt.Errorf("failover %q: need a name, a registry and a unicast MAC: %w", cfg.Name, ErrInvalid)
	}
	if cfg.MTU == 0 {
		cfg.MTU = ifnet.DefaultMTU
	}
	if cfg.MaxMTU == 0 {
		cfg.MaxMTU = max(ifnet.DefaultJumboMTU, cfg.MTU)
	}
	f := &Failover{cfg: cfg, log: kernel.LoggerOr(cfg.Logger), reg: cfg.Registry, mac: slices.Clone(cfg.MAC),
		owner: "failover:" + cfg.Name, mtu: cfg.MTU, excluded: map[*ifnet.Interface]bool{}}
	ifp, err := ifnet.New(ifnet.Config{
		Name: cfg.Name, MAC: f.mac, MTU: cfg.MTU, MaxMTU: cfg.MaxMTU,
		Flags: ifnet.FlagBroadcast | ifnet.FlagMulticast, Kind: ifnet.KindAggregate,
		Media: ifnet.MediaState{Status: ifnet.MediaValid},
	}, (*driver)(f))
	if err != nil {
		return nil, fmt.Errorf("failover %s: %w", cfg.Name, err)
	}
	f.ifp = ifp
	ifp.SetLinkState(ifnet.LinkDown)
	if err := f.reg.Attach(ifp); err != nil {
		return nil, fmt.Errorf("failover %s: %w", cfg.Name, err)
	}
	if !cfg.Manual {
		sub, err := f.reg.Subscribe(f.event)
		if err != nil {
			_ = f.reg.Detach(ifp)
			return nil, fmt.Errorf("failover %s: %w", cfg.Name, err)
		}
		f.mu.Lock()
		f.sub = sub
		f.mu.Unlock()
		for _, cand := range f.reg.Interfaces() {
			f.autoJoin(cand)
		}
	}
	return f, nil
}

// Interface returns the aggregate interface.
func (f *Failover) Interface() *ifnet.Interface { return f.ifp }

// Member returns the interface in role r, or nil.
func (f *Failover) Member(r Role) *ifnet.Interface {
	if r >= numRoles {
		return nil
	}
	if m := f.slots[r].Load(); m != nil {
		return m.ifp
	}
	return nil
}

// Active returns the member a transmit would use now, or nil.
func (f *Failover) Active() *ifnet.Interface {
	if m := f.pick(); m != nil {
		return m.ifp
	}
	return nil
}

// Add enslaves ifp in role r: it must have the aggregate's MAC and the
// slot must be free. The member is claimed, its input overridden and it
// gets the aggregate's MTU, multicast list and flags.
func (f *Failover) Add(ifp *ifnet.Interface, r Role) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(ifp, r)
}

// Remove gives member ifp back: its input override and claim are removed;
// its configuration is left as it is. Automatic enslaving leaves it alone
// from now on, until it detaches or is added again.
func (f *Failover) Remove(ifp *ifnet.Interface) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r := range f.slots {
		if m := f.slots[r].Load(); m != nil && m.ifp == ifp {
			f.removeLocked(m)
			f.excluded[ifp] = true
			return nil
		}
	}
	return fmt.Errorf("failover %s: remove %s: %w", f.cfg.Name, ifp, ErrNotMember)
}

// Close stops following the registry, gives both members back and detaches
// the aggregate. It must not be called from a registry subscriber.
func (f *Failover) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	sub := f.sub
	f.mu.Unlock()
	if sub != nil {
		if err := sub.Unsubscribe(); err == nil {
			<-sub.Done()
		}
	}
	f.mu.Lock()
	for r := range f.slots {
		if m := f.slots[r].Load(); m != nil {
			f.removeLocked(m)
		}
	}
	f.mu.Unlock()
	if err := f.reg.Detach(f.ifp); err != nil && !errors.Is(err, ifnet.ErrDetached) {
		return fmt.Errorf("failover %s: close: %w", f.cfg.Name, err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (f *Failover) Stats() Stats {
	act := f.pick()
	st := Stats{Failovers: f.failovers.Load(), TxNoMember: f.txNoMember.Load()}
	for r, out := range []*MemberStats{&st.Primary, &st.Standby} {
		c := &f.ctr[r]
		*out = MemberStats{
			TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(), TxErrors: c.txErrors.Load(),
			RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
			Joins: c.joins.Load(), Leaves: c.leaves.Load(), JoinErrors: c.joinErrors.Load(),
		}
		if m := f.slots[r].Load(); m != nil {
			fl := m.ifp.Flags()
			out.Name, out.Active = m.ifp.Name(), m == act
			out.Up, out.Running = fl&ifnet.FlagUp != 0, fl&ifnet.FlagRunning != 0
			out.LinkReady = m.ifp.LinkState() == ifnet.LinkUp
		}
	}
	return st
}

// ready: the member can transmit (net_failover_xmit_ready: running with
// carrier; here also administratively up, which ifnet.Transmit requires).
func ready(m *member) bool {
	if m == nil || m.ifp.Detached() {
		return false
	}
	return m.ifp.Flags()&(ifnet.FlagUp|ifnet.FlagRunning) == ifnet.FlagUp|ifnet.FlagRunning &&
		m.ifp.LinkState() == ifnet.LinkUp
}

// pick chooses the transmit member: the primary if ready, else the standby
// if ready, else nil.
func (f *Failover) pick() *member {
	if m := f.slots[Primary].Load(); ready(m) {
		return m
	}
	if m := f.slots[Standby].Load(); ready(m) {
		return m
	}
	return nil
}

// transmit is the aggregate's data path. It takes no lock and allocates
// nothing.
func (f *Failover) transmit(b *packet.Batch) (int, error) {
	m := f.pick()
	if m == nil {
		f.txNoMember.Add(uint64(b.Len()))
		return 0, fmt.Errorf("failover %s: no member ready: %w", f.cfg.Name, ifnet.ErrDown)
	}
	n, err := f.sendOn(m, b)
	if n == 0 && (errors.Is(err, ifnet.ErrDown) || errors.Is(err, ifnet.ErrDetached)) {
		// The member went down or away between pick and Transmit: try
		// the other.
		if o := f.slots[1-m.role].Load(); ready(o) {
			return f.sendOn(o, b)
		}
	}
	return n, err
}

func (f *Failover) sendOn(m *member, b *packet.Batch) (int, error) {
	if f.lastTx.Load() != m {
		if old := f.lastTx.Swap(m); old != nil && old != m {
			f.failovers.Add(1)
		}
	}
	total := b.Bytes()
	n, err := m.ifp.Transmit(b)
	m.ctr.txPackets.Add(uint64(n))
	if n > 0 {
		m.ctr.txBytes.Add(uint64(total - b.Bytes()))
	}
	if err != nil {
		m.ctr.txErrors.Add(1)
	}
	return n, err
}

// input is a member's input override: count, then relabel as the
// aggregate's (its Input sets Meta.RcvIf and takes the packets).
func (m *member) input(_ *ifnet.Interface, b *packet.Batch) {
	m.ctr.rxPackets.Add(uint64(b.Len()))
	m.ctr.rxBytes.Add(uint64(b.Bytes()))
	m.f.ifp.Input(b)
}

// matches reports whether ifp may join in role r (MAC, kind, not self).
func (f *Failover) matches(ifp *ifnet.Interface, r Role, strictKind bool) error {
	if ifp == f.ifp || ifp.Kind() == ifnet.KindAggregate {
		return fmt.Errorf("failover %s: %s is an aggregate: %w", f.cfg.Name, ifp, ErrMismatch)
	}
	if !bytes.Equal(ifp.MAC(), f.mac) {
		return fmt.Errorf("failover %s: %s has another MAC: %w", f.cfg.Name, ifp, ErrMismatch)
	}
	if strictKind {
		want := ifnet.KindEthernet
		if r == Standby {
			want = ifnet.KindSynthetic
		}
		if ifp.Kind() != want {
			return fmt.Errorf("failover %s: %s is %s, %s must be %s: %w", f.cfg.Name, ifp, ifp.Kind(), r, want, ErrMismatch)
		}
	}
	return nil
}
