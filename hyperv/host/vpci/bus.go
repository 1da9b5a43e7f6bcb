package vpci

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// Defaults.
const (
	// DefaultMMIOMegabytes is the MMIO space the offer asks for: the
	// 8 KiB config window rounded up to the offer's unit (unverified
	// against Hyper-V, which Linux does not consult for vPCI).
	DefaultMMIOMegabytes = 1
	// DefaultEjectTimeout is how long Eject waits for EJECTION_COMPLETE
	// (Linux waits 10 s for its own D0 exit; Hyper-V's wait is not
	// documented).
	DefaultEjectTimeout = 10 * time.Second
)

// DefaultVersions is the protocol set the bus accepts by default: 1.1 to
// 1.4, what Linux offers.
var DefaultVersions = []vpciwire.Version{vpciwire.Version1_1, vpciwire.Version1_2, vpciwire.Version1_3, vpciwire.Version1_4}

// Errors from the Bus API.
var (
	ErrSlot         = errors.New("vpci: slot in use, invalid or empty")
	ErrBusFull      = errors.New("vpci: no free slot")
	ErrEjectTimeout = errors.New("vpci: guest did not complete the ejection in time")
	ErrEjecting     = errors.New("vpci: ejection already in progress")
)

// Config configures a Bus.
type Config struct {
	// Instance is the bus instance GUID (it names the bus; Linux derives
	// the PCI domain from it). Zero derives one from the class GUID with
	// Data1 = 1.
	Instance tlfs.GUID
	// Versions are the protocol versions the bus accepts (exact match);
	// nil means DefaultVersions.
	Versions []vpciwire.Version
	// MMIOMegabytes is the offer's mmio_megabytes; 0 means the default.
	MMIOMegabytes uint16
	// Clock times Eject's wait; nil means the real clock.
	Clock kernel.Clock
	// EjectTimeout bounds Eject's wait; 0 means the default.
	EjectTimeout time.Duration
	// Logger receives guest protocol errors; nil discards.
	Logger *slog.Logger
}

// Interrupt is one interrupt the guest created and the bus translated.
type Interrupt struct {
	Request   vpciwire.CreateInterrupt
	Translate vpciwire.TranslatedInterrupt
}

// fn is one function on the bus.
type fn struct {
	f        Function
	desc     vpciwire.Description
	probed   [pci.NumBARs]uint32
	assigned *vpciwire.ResourcesAssigned
	irqs     []Interrupt
	ejecting chan struct{} // closed on EJECTION_COMPLETE; nil when not ejecting
}

// Bus is a virtual PCI root bus as Hyper-V offers it: a host.Device on
// the PCI pass-through class whose functions the guest finds through the
// vPCI protocol. Its methods are safe for concurrent use.
type Bus struct {
	cfg    Config
	clock  kernel.Clock
	log    *slog.Logger
	sendMu sync.Mutex // orders relations snapshots with their sends

	mu       sync.Mutex
	funcs    map[vpciwire.Slot]*fn
	ch       *host.Channel // open channel, or nil
	version  vpciwire.Version
	d0       bool
	mmioBase uint64
	selected vpciwire.Slot
	stats    Stats
}

// Stats count what the guest sent.
type Stats struct {
	Packets  uint64
	Rejected uint64 // messages answered with a failure or dropped
	Ejected  uint64
	Timeouts uint64
}

// New returns a bus with no functions.
func New(cfg Config) *Bus {
	if cfg.Instance.IsZero() {
		cfg.Instance = tlfs.GUIDPCIPassthrough
		cfg.Instance[0], cfg.Instance[1], cfg.Instance[2], cfg.Instance[3] = 1, 0, 0, 0
	}
	if cfg.Versions == nil {
		cfg.Versions = DefaultVersions
	}
	if cfg.MMIOMegabytes == 0 {
		cfg.MMIOMegabytes = DefaultMMIOMegabytes
	}
	if cfg.EjectTimeout == 0 {
		cfg.EjectTimeout = DefaultEjectTimeout
	}
	b := &Bus{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, funcs: map[vpciwire.Slot]*fn{}}
	if b.clock == nil {
		b.clock = kernel.RealClock{}
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b
}

// Offer implements host.Device.
func (b *Bus) Offer() host.Offer {
	return host.Offer{Class: tlfs.GUIDPCIPassthrough, Instance: b.cfg.Instance, MMIOMegabytes: b.cfg.MMIOMegabytes}
}

// Open implements host.Device: the guest opened the bus channel. Protocol
// state starts afresh on every open.
func (b *Bus) Open(ch *host.Channel) (host.Handler, error) {
	if ch.SubchannelIndex() != 0 {
		return nil, fmt.Errorf("vpci: no subchannels")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ch = ch
	b.resetLocked()
	return &handler{b: b, ch: ch}, nil
}

// resetLocked forgets the protocol state of a channel.
func (b *Bus) resetLocked() {
	b.version, b.d0, b.mmioBase, b.selected = 0, false, 0, 0
	for _, f := range b.funcs {
		f.assigned, f.irqs = nil, nil
	}
}

// Stats returns a snapshot of the counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// State is the protocol state the guest has reached.
type State struct {
	Open     bool
	Version  vpciwire.Version // 0 before negotiation
	D0       bool
	MMIOBase uint64 // valid in D0
}

// State returns the protocol state.
func (b *Bus) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return State{Open: b.ch != nil, Version: b.version, D0: b.d0, MMIOBase: b.mmioBase}
}

// Resources returns what the guest assigned to slot, if anything.
func (b *Bus) Resources(slot vpciwire.Slot) (vpciwire.ResourcesAssigned, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.funcs[slot]; f != nil && f.assigned != nil {
		return *f.assigned, true
	}
	return vpciwire.ResourcesAssigned{}, false
}

// Interrupts returns the interrupts the guest holds on slot.
func (b *Bus) Interrupts(slot vpciwire.Slot) []Interrupt {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.funcs[slot]; f != nil {
		return slices.Clone(f.irqs)
	}
	return nil
}

// Slots returns the slots of the functions on the bus, in order.
func (b *Bus) Slots() []vpciwire.Slot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := make([]vpciwire.Slot, 0, len(b.funcs))
	for k := range b.funcs {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// AddFunction puts f on the first free device number (function 0) and,
// if the guest has negotiated a version, sends it new bus relations (hot
// add).
func (b *Bus) AddFunction(f Function) (vpciwire.Slot, error) {
	b.mu.Lock()
	slot, ok := vpciwire.Slot(0), false
	for d := range uint8(32) {
		if s := vpciwire.MakeSlot(d, 0); b.funcs[s] == nil {
			slot, ok = s, true
			break
		}
	}
	b.mu.Unlock()
	if !ok {
		return 0, ErrBusFull
	}
	return slot, b.AddFunctionAt(slot, f)
}

// AddFunctionAt puts f at slot (see AddFunction).
func (b *Bus) AddFunctionAt(slot vpciwire.Slot, f Function) error {
	if !slot.Valid() || f == nil {
		return ErrSlot
	}
	e := &fn{f: f, desc: Describe(f, slot), probed: ProbeBARs(f.Config())}
	b.mu.Lock()
	if b.funcs[slot] != nil {
		b.mu.Unlock()
		return ErrSlot
	}
	b.funcs[slot] = e
	b.mu.Unlock()
	b.sendRelations(false)
	return nil
}

// Remove takes the function at slot away without asking the guest
// (surprise removal): its config space reads all-ones at once, and the
// guest gets bus relations without it.
func (b *Bus) Remove(slot vpciwire.Slot) error {
	b.mu.Lock()
	f := b.funcs[slot]
	if f == nil {
		b.mu.Unlock()
		return ErrSlot
	}
	delete(b.funcs, slot)
	if f.ejecting != nil {
		close(f.ejecting)
	}
	b.mu.Unlock()
	b.sendRelations(false)
	return nil
}

// Eject asks the guest to let go of the function at slot, as Hyper-V
// does for a planned removal: PCI_EJECT, a wait for EJECTION_COMPLETE of
// at most Config.EjectTimeout on Config.Clock, then the function leaves
// the bus and the guest gets bus relations without it. On timeout the
// function is removed anyway and Eject returns ErrEjectTimeout. Without
// an open, negotiated channel the function is just removed.
func (b *Bus) Eject(slot vpciwire.Slot) error {
	b.mu.Lock()
	f := b.funcs[slot]
	switch {
	case f == nil:
		b.mu.Unlock()
		return ErrSlot
	case f.ejecting != nil:
		b.mu.Unlock()
		return ErrEjecting
	}
	ch := b.ch
	if ch == nil || b.version == 0 {
		delete(b.funcs, slot)
		b.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	f.ejecting = done
	b.mu.Unlock()

	var err error
	msg := (&vpciwire.SlotMessage{MsgType: vpciwire.MsgEject, Slot: slot}).Encode()
	b.sendMu.Lock() // in order with the relations
	serr := ch.SendInBand(0, false, msg)
	b.sendMu.Unlock()
	if serr == nil {
		t := b.clock.NewTimer(b.cfg.EjectTimeout)
		select {
		case <-done:
		case <-ch.Done():
		case <-t.C():
			err = ErrEjectTimeout
		}
		t.Stop()
	}
	b.mu.Lock()
	if b.funcs[slot] == f {
		delete(b.funcs, slot)
		b.stats.Ejected++
		if err != nil {
			b.stats.Timeouts++
		}
	}
	b.mu.Unlock()
	b.sendRelations(false)
	return err
}

// relationsLocked builds the bus relations for the negotiated version.
func (b *Bus) relationsLocked() *vpciwire.BusRelations {
	m := &vpciwire.BusRelations{V2: b.version >= vpciwire.Version1_3}
	for _, s := range slices.Sorted(maps.Keys(b.funcs)) {
		m.Devices = append(m.Devices, b.funcs[s].desc)
	}
	return m
}

// sendRelations sends the current relations if the guest has negotiated
// a version (or force, on QUERY_BUS_RELATIONS handled by the caller).
func (b *Bus) sendRelations(force bool) {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	b.mu.Lock()
	ch := b.ch
	if ch == nil || (b.version == 0 && !force) {
		b.mu.Unlock()
		return
	}
	msg := b.relationsLocked().Encode()
	b.mu.Unlock()
	if err := ch.SendInBand(0, false, msg); err != nil {
		b.log.Debug("vpci: bus relations not sent", "err", err)
	}
}
