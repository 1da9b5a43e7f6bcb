package mlx

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Config configures one VF.
type Config struct {
	// Name is the interface name (required, e.g. "mlx0").
	Name string
	// Registry is where the interface is attached (required).
	Registry *ifnet.Registry
	// Memory provides DMA memory (required).
	Memory kernel.Memory
	// Clock times command waits and health checks (default real clock).
	Clock kernel.Clock
	// Logger receives the driver's logs (default discard); messages the
	// device can trigger go through a rate limiter.
	Logger *slog.Logger
	// Queues is the number of send/receive queue pairs (default 1, at
	// most 4: the model has 8 EQs, two of which are the command and
	// asynchronous EQs). Several queues use RSS (an indirect TIR).
	Queues int
	// SQSize is the send queue size in 64-byte WQEBBs and RQSize the
	// receive queue size in WQEs (powers of two; defaults 1024 and 1024,
	// mlx5e's MLX5E_PARAMS_DEFAULT_LOG_RQ_SIZE: 512 buffers last 10 ms at
	// 50k frames/s, less than a scheduling stall on a small VM).
	SQSize, RQSize int
	// MTU is the initial MTU (default 1500) and MaxMTU the largest one
	// SetMTU accepts (default 1500; receive buffers are sized for it).
	MTU, MaxMTU int
	// CommandTimeout bounds every command (default 5 s) and InitTimeout
	// the wait for the init segment's initializing bit (default 10 s).
	CommandTimeout, InitTimeout time.Duration
	// HealthInterval is how often the control goroutine reads the health
	// registers to notice a vanished device (default 1 s; negative: never).
	HealthInterval time.Duration
}

// Device is what the bus hands over for one function.
type Device struct {
	// Config is the function's configuration space.
	Config pci.ConfigSpace
	// BAR0 is register access to BAR0 (init segment, MSI-X table, UARs).
	BAR0 pci.BAR
	// Serial is the vPCI serial (netvsc's pairing key).
	Serial uint32
	// Gone, if not nil, closes when the function disappears.
	Gone <-chan struct{}
	// MSIX are the messages to program into the MSI-X table, one per
	// vector (from hvpci CREATE_INTERRUPT); nil programs vector i with
	// a placeholder message whose data is i.
	MSIX []MSIXMessage
	// OnCreate, if set, is called with the VF before bring-up starts, so
	// the platform can route its interrupts (the command EQ fires during
	// Attach).
	OnCreate func(*VF)
}

// MSIXMessage is one MSI-X address/data pair.
type MSIXMessage struct {
	Address uint64
	Data    uint32
}

// Stats are the VF's counters.
type Stats struct {
	TxPackets, TxBytes uint64 // completed by the device
	TxDrops            uint64 // taken by Transmit, then dropped (counted on the interface with a reason)
	RxPackets, RxBytes uint64 // handed to the interface
	RxDrops            uint64
	TxErrCQEs          uint64
	RxErrCQEs          uint64
	DeviceErrors       uint64 // bad CQEs, EQEs, outputs: what a hostile device sends
	Interrupts         uint64
	Events             uint64 // EQEs consumed
	Commands           uint64
	CommandTimeouts    uint64
	CommandFailures    uint64
	FirmwarePages      int // pages the device holds now
	SQRecoveries       uint64
	LinkEvents         uint64
	VportEvents        uint64 // NIC_VPORT_CHANGE events handled (host-initiated MAC/MTU changes)
	DetachedDrops      uint64 // TxDrops and RxDrops counted as ifnet.DropDetached (removal, teardown)
	FatalErrors        uint64 // health checks that found the device dead
}

type vfStats struct {
	txPackets, txBytes, txDrops, rxPackets, rxBytes, rxDrops atomic.Uint64
	txErrCQEs, rxErrCQEs, devErrors, interrupts, events      atomic.Uint64
	sqRecoveries, linkEvents, detachedDrops, fatal           atomic.Uint64
	vportEvents                                              atomic.Uint64
}

// healthMisses is how many health checks in a row may see the same health
// counter (Linux MAX_MISSES).
const (
	healthMisses = 3
	healthStall  = 2 * time.Second
	sqFlushWait  = 50 * time.Millisecond
)

// Work the control goroutine does for the worker (bits of VF.work).
const (
	workLink = 1 << iota
	workPages
	workRecoverSQ
	workVport
)

// VF is one attached mlx-lite VF.
//
// Ownership: immutable after Attach: cfg, dev, bar, caps, uarOff, the
// queues (their own types say who touches what). ifp is set once before
// the interface is attached. cfgMu serializes ioctls and guards detached;
// undo belongs to bring-up and then to the one teardown that set detached.
// State changes go through goneOnce/stopOnce. Counters are atomics.
type VF struct {
	cfg    Config
	dev    Device
	bar    pci.BAR
	log    *slog.Logger
	dma    dmaPool
	cmd    *cmdq
	gen    mlxhw.GeneralCaps
	eth    mlxhw.EthCaps
	uar    uint32
	uarOff uint64
	pd, td uint32
	lkey   uint32
	mac    [6]byte

	eqList   atomic.Pointer[[]*eq] // command, async, completion...: replaced whole, read by the worker
	cmdEQ    *eq
	sqs      []*sq
	rqs      []*rq
	cqByN    map[uint32]func(budget int) int
	qsReady  atomic.Bool // queues ready for Transmit
	cqsSet   atomic.Bool // cqByN complete (set once): the worker may dispatch completions
	maxFrame int
	rxPool   *packet.Pool
	pages    fwPages

	ifp     atomic.Pointer[ifnet.Interface]
	caps    atomic.Uint32 // enabled ifnet.Cap, read by the data path
	linkUp  atomic.Bool
	speed   atomic.Uint64
	pending atomic.Int32 // page request balance (signed)

	healthLast uint32 // control goroutine only
	healthMiss int
	healthSeen time.Time  // when the counter last moved
	workMu     sync.Mutex // held by the worker for each pass; teardown takes it to retire a queue
	irq        *kernel.Event
	ctl        *kernel.Event
	work       atomic.Uint32
	stop       chan struct{}
	gone       chan struct{}
	goneOnce   sync.Once
	stopOnce   sync.Once
	wg         sync.WaitGroup

	cfgMu    sync.Mutex
	undo     []undo // teardown steps, run in reverse
	detached bool

	stats vfStats
}

type undo struct {
	what string
	fn   func(ctx context.Context) error
}

// Interface returns the VF's interface (nil before Attach finished).
func (v *VF) Interface() *ifnet.Interface { return v.ifp.Load() }

// MAC returns the permanent address read from the vport context at
// attach; a later change by the host shows in the interface's MAC.
func (v *VF) MAC() [6]byte { return v.mac }

// Interrupt is what the platform calls when MSI-X vector fires. It never
// blocks: it wakes the worker goroutine, which polls every EQ.
func (v *VF) Interrupt(vector int) {
	v.stats.interrupts.Add(1)
	v.irq.Signal()
}

// Gone is closed once the device is known to be gone.
func (v *VF) Gone() <-chan struct{} { return v.gone }

// Stats returns a snapshot of the counters.
func (v *VF) Stats() Stats {
	s := &v.stats
	st := Stats{
		TxPackets: s.txPackets.Load(), TxBytes: s.txBytes.Load(), TxDrops: s.txDrops.Load(),
		RxPackets: s.rxPackets.Load(), RxBytes: s.rxBytes.Load(), RxDrops: s.rxDrops.Load(),
		TxErrCQEs: s.txErrCQEs.Load(), RxErrCQEs: s.rxErrCQEs.Load(), DeviceErrors: s.devErrors.Load(),
		Interrupts: s.interrupts.Load(), Events: s.events.Load(), SQRecoveries: s.sqRecoveries.Load(),
		LinkEvents: s.linkEvents.Load(), FirmwarePages: v.pages.count(), DetachedDrops: s.detachedDrops.Load(),
		FatalErrors: s.fatal.Load(), VportEvents: s.vportEvents.Load(),
	}
	if v.cmd != nil {
		st.Commands, st.CommandTimeouts, st.CommandFailures = v.cmd.commands.Load(), v.cmd.timeouts.Load(), v.cmd.failures.Load()
	}
	return st
}

func (v *VF) capEnabled() ifnet.Cap { return ifnet.Cap(v.caps.Load()) }

func (v *VF) vlanInsert() bool {
	return v.eth.WQEVLANInsert && v.capEnabled()&ifnet.CapVLANHWTagging != 0
}

// deviceError counts and logs (rate-limited) something the device got
// wrong.
func (v *VF) deviceError(where string, err error) {
	v.stats.devErrors.Add(1)
	v.log.Warn("mlx: device error", "where", where, "err", err)
}

func (v *VF) countTxDrop(r ifnet.DropReason) {
	v.stats.txDrops.Add(1)
	if ifp := v.ifp.Load(); ifp != nil {
		ifp.CountDrops(r, 1)
	}
}

// countTxLost counts frames posted to the device that it did not send.
func (v *VF) countTxLost(n int, r ifnet.DropReason) {
	v.stats.txDrops.Add(uint64(n))
	if r == ifnet.DropDetached {
		v.stats.detachedDrops.Add(uint64(n))
	}
	if ifp := v.ifp.Load(); ifp != nil {
		ifp.CountDrops(r, n)
		ifp.CountOutErrors(n)
	}
}

func (v *VF) countRxDrop(ifp *ifnet.Interface, r ifnet.DropReason) {
	v.stats.rxDrops.Add(1)
	if r == ifnet.DropDetached {
		v.stats.detachedDrops.Add(1)
	}
	if ifp != nil {
		ifp.CountDrops(r, 1)
	}
}

// kick asks the control goroutine for work.
func (v *VF) kick(w uint32) {
	v.work.Or(w)
	v.ctl.Signal()
}

// start runs the worker and control goroutines.
func (v *VF) start() {
	v.wg.Add(2)
	go v.worker()
	go v.control()
}

// worker consumes the EQs on every interrupt.
func (v *VF) worker() {
	defer v.wg.Done()
	var e mlxhw.EQE
	handle := func(e *mlxhw.EQE) { v.event(e) }
	for {
		select {
		case <-v.stop:
			return
		case <-v.irq.C():
		}
		more := false
		v.workMu.Lock()
		if eqs := v.eqList.Load(); eqs != nil {
			for _, q := range *eqs {
				n, m := q.poll(v.bar, v.uarOff, 4*eqBatchCI, &e, handle)
				v.stats.events.Add(uint64(n))
				more = more || m
				q.arm(v.bar, v.uarOff)
			}
		}
		v.workMu.Unlock()
		if more {
			v.irq.Signal() // come back after the others had a turn
		}
	}
}

// event dispatches one EQE (worker goroutine). e is nil for an entry that
// failed to decode.
func (v *VF) event(e *mlxhw.EQE) {
	if e == nil {
		v.deviceError("eqe", ErrDevice)
		return
	}
	switch e.Type {
	case mlxhw.EventComp:
		if !v.cqsSet.Load() {
			v.deviceError("eqe", fmt.Errorf("%w: completion event before any CQ is armed", ErrDevice))
			return
		}
		fn, ok := v.cqByN[e.CompCQN()]
		if !ok {
			v.deviceError("eqe", fmt.Errorf("%w: completion event for unknown CQ %#x", ErrDevice, e.CompCQN()))
			return
		}
		fn(1 << 16)
	case mlxhw.EventCmd:
		if e.CmdVector()&(1<<cmdSlot) != 0 {
			v.cmd.done.Signal()
		}
	case mlxhw.EventPortChange:
		v.stats.linkEvents.Add(1)
		v.kick(workLink)
	case mlxhw.EventNICVportChange:
		v.kick(workVport | workLink)
	case mlxhw.EventPageRequest:
		_, n := e.PageRequest()
		if n > -mlxhw.MaxPages && n < mlxhw.MaxPages {
			v.pending.Add(n)
			v.kick(workPages)
		} else {
			v.deviceError("eqe", fmt.Errorf("%w: page request for %d pages", ErrDevice, n))
		}
	case mlxhw.EventCQError, mlxhw.EventWQCatastrophic, mlxhw.EventWQInvalReq, mlxhw.EventWQAccessError:
		v.deviceError("eqe", fmt.Errorf("%w: error event %#x", ErrDevice, uint8(e.Type)))
		v.kick(workRecoverSQ)
	default:
		v.deviceError("eqe", fmt.Errorf("%w: unexpected event type %#x", ErrDevice, uint8(e.Type)))
	}
}

// control runs the work that needs commands, and the health check.
func (v *VF) control() {
	defer v.wg.Done()
	var tick <-chan time.Time
	var t kernel.Timer
	arm := func() {
		if v.cfg.HealthInterval > 0 {
			t = v.cfg.Clock.NewTimer(v.cfg.HealthInterval)
			tick = t.C()
		}
	}
	arm()
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	ctx := context.Background()
	for {
		select {
		case <-v.stop:
			return
		case <-tick:
			if why := v.healthCheck(); why != "" {
				v.log.Warn("mlx: device failed, stopping it", "why", why)
				v.stats.fatal.Add(1)
				go v.Surprise()
				return
			}
			arm()
		case <-v.ctl.C():
		}
		w := v.work.Swap(0)
		if w&workPages != 0 {
			v.servicePages(ctx)
		}
		if w&workVport != 0 {
			v.vportChanged(ctx)
		}
		if w&workLink != 0 {
			v.updateLink(ctx)
		}
		if w&workRecoverSQ != 0 {
			v.recoverSQs(ctx)
		}
	}
}

// healthCheck applies the fatal sensors of spec §1.2 (L-health): all-ones
// registers (the function is gone), a NIC interface state of DISABLED or
// SW_RESET, a nonzero health syndrome, or a health counter that stopped
// for healthMisses checks. It returns why the device is dead, or "".
// Called from the control goroutine only (healthLast, healthMiss).
func (v *VF) healthCheck() string {
	if mlxhw.DeviceGone(v.bar.Read32(mlxhw.RegHealthFWVer)) {
		return "registers read all-ones (surprise removal)"
	}
	if g := mlxhw.ParseCmdqAddrLSz(v.bar.Read32(mlxhw.RegCmdqAddrLSz)); g.NICIfc == mlxhw.NICIfcDisabled || g.NICIfc == mlxhw.NICIfcSWReset {
		return fmt.Sprintf("NIC interface state %d", g.NICIfc)
	}
	if _, synd, ext := mlxhw.HealthSynd(v.bar.Read32(mlxhw.RegHealthSynd)); synd != 0 {
		return fmt.Sprintf("health syndrome %#x/%#x", synd, ext)
	}
	c := v.bar.Read32(mlxhw.RegHealthCounter) & mlxhw.HealthCounterMask
	now := v.cfg.Clock.Now()
	if c != v.healthLast || v.healthSeen.IsZero() {
		v.healthLast, v.healthMiss, v.healthSeen = c, 0, now
		return ""
	}
	// Misses count only once the counter had time to move (the device
	// ticks it every 100 ms; Linux polls every 2 s).
	if v.healthMiss++; v.healthMiss >= healthMisses && now.Sub(v.healthSeen) >= healthStall {
		return "health counter stopped"
	}
	return ""
}

// updateLink reads the vport state and the port speed (spec §4.1, §4.2)
// and publishes them.
func (v *VF) updateLink(ctx context.Context) {
	var st mlxhw.QueryVportStateOut
	if err := v.cmd.exec(ctx, &mlxhw.QueryVportStateIn{}, &st); err != nil {
		v.log.Warn("mlx: query vport state", "err", err)
		return
	}
	up := st.State == mlxhw.VportUp
	v.linkUp.Store(up)
	var speed uint64
	if p, err := v.queryPTYS(ctx); err == nil {
		speed = uint64(mlxhw.EthProtoSpeed(p.Oper)) * 1_000_000
	}
	v.speed.Store(speed)
	if ifp := v.ifp.Load(); ifp != nil {
		ifp.SetMediaState(v.media())
		if up {
			ifp.SetLinkState(ifnet.LinkUp)
		} else {
			ifp.SetLinkState(ifnet.LinkDown)
		}
	}
}

func (v *VF) queryPTYS(ctx context.Context) (mlxhw.PTYS, error) {
	var p mlxhw.PTYS
	req := make([]byte, mlxhw.PTYSSize)
	p.LocalPort, p.ProtoMask = 1, mlxhw.PTYSProtoEth
	p.Put(req)
	var out mlxhw.AccessRegOut
	out.Data = make([]byte, 0, mlxhw.PTYSSize)
	if err := v.cmd.exec(ctx, &mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegRead, RegisterID: mlxhw.RegIDPTYS, Data: req}, &out); err != nil {
		return p, err
	}
	err := p.Parse(out.Data)
	return p, err
}

func (v *VF) media() ifnet.MediaState {
	m := ifnet.Media{Type: ifnet.MediaEthernet, Auto: true, Speed: v.speed.Load(), FullDuplex: true}
	st := ifnet.MediaState{Current: ifnet.Media{Type: ifnet.MediaEthernet, Auto: true}, Active: m, Status: ifnet.MediaValid}
	if v.linkUp.Load() {
		st.Status |= ifnet.MediaActive
	}
	return st
}

// recoverSQs brings send queues that hit an error CQE back (spec §7.15
// item 14, mlx5e's TX error recovery): stop the queue, give the device a
// moment to flush what is posted, MODIFY_SQ ERR→RST, count whatever never
// completed as dropped, restart the counters at 0, RST→RDY.
func (v *VF) recoverSQs(ctx context.Context) {
	for _, s := range v.sqs {
		s.mu.Lock()
		if !s.err || !s.ready {
			s.mu.Unlock()
			continue
		}
		s.ready = false
		s.mu.Unlock()
		v.waitFlushed(s)
		err := v.modifySQ(ctx, s, mlxhw.QueueERR, mlxhw.QueueRST)
		if err == nil {
			s.mu.Lock()
			s.consume(s.size())
			s.abandon(ifnet.DropDown)
			s.pc, s.cc, s.head, s.tail = 0, 0, 0, 0
			clear(s.info)
			storeBE32(s.dbr, mlxhw.DBRSendOff, 0)
			s.mu.Unlock()
			err = v.modifySQ(ctx, s, mlxhw.QueueRST, mlxhw.QueueRDY)
		}
		if err != nil {
			v.log.Warn("mlx: send queue recovery failed", "sq", s.n, "err", err)
			continue
		}
		s.mu.Lock()
		s.err, s.ready = false, !s.closing
		s.mu.Unlock()
		v.stats.sqRecoveries.Add(1)
	}
}

// waitFlushed waits (bounded by sqFlushWait) for the worker to see
// completions for everything posted on s; WQEs posted after the error may
// never complete (a device ignores doorbells in ERR).
func (v *VF) waitFlushed(s *sq) {
	deadline := v.cfg.Clock.Now().Add(sqFlushWait)
	for {
		s.mu.Lock()
		n := s.outstanding()
		s.mu.Unlock()
		if n == 0 || !v.cfg.Clock.Now().Before(deadline) {
			return
		}
		v.irq.Signal()
		t := v.cfg.Clock.NewTimer(time.Millisecond)
		select {
		case <-t.C():
		case <-v.stop:
			t.Stop()
			return
		}
	}
}

// Transmit implements ifnet.Driver: the queue is Meta.Queue modulo the
// queue count.
func (v *VF) Transmit(b *packet.Batch) (int, error) {
	if b.Len() == 0 {
		return 0, nil
	}
	if !v.qsReady.Load() {
		return 0, errTxDown
	}
	q := int(b.At(0).Meta.Queue) % len(v.sqs)
	return v.sqs[q].transmit(b)
}
