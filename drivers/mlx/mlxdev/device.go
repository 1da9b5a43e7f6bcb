package mlxdev

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Errors returned by this package, wrapped with context.
var (
	// ErrConfig: a Config that cannot describe a device.
	ErrConfig = errors.New("mlxdev: invalid configuration")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("mlxdev: device closed")
	// errDMA is the DMA adapter's failure (the detail is in the violation log).
	errDMA = errors.New("mlxdev: DMA failed")
)

// Config configures a Device.
type Config struct {
	Mem       kernel.PhysMem   // guest memory; every DMA address is a guest-physical address
	MAC       [6]byte          // vport permanent_address
	Serial    uint32           // vPCI serial number (Function.Serial)
	DeviceID  uint16           // 0 = 0x1016 (ConnectX-4 Lx VF), or 0x1018
	Clock     kernel.Clock     // device clock (init delay, health counter, moderation); nil = real clock
	InitDelay time.Duration    // §7.3 initializing bit; 0 = default 1ms of device time
	Interrupt func(vector int) // MSI-X delivery (see package doc); nil drops
	Wire      Wire             // where transmitted frames go (after offloads); nil drops and counts
	Strict    bool             // §7.1 P1 reserved-field checks (delivery status 0x9)
	Logger    *slog.Logger

	// CommandLatency > 0 defers each command's execution by this much device
	// time (on Clock) instead of running it inside the doorbell write.
	CommandLatency time.Duration
	// BootPages and InitPages are what QUERY_PAGES asks for (0 = 4 and 8).
	BootPages, InitPages int
	// RequireL2Inline advertises wqe_inline_mode 0 (L2) and enforces it: a
	// SEND or LSO WQE whose inline headers do not cover the Ethernet header
	// fails with a LOCAL_QP_OP error CQE (§7.6).
	RequireL2Inline bool
	// LinkedListRQ also accepts linked-list RQs (wq_type 0) (§7.5).
	LinkedListRQ bool
	// LinkDown starts the device with the physical link down (default up;
	// the vport admin state starts AUTO).
	LinkDown bool
	// TxFrameSize bounds one transmitted frame after offloads (0 = 9216).
	TxFrameSize int
}

// Wire is where the device's transmitted frames go.
type Wire interface{ Transmit(b *packet.Batch) } // takes ownership of the packets

// AdminState is the vport admin state the hypervisor forces (§7.11).
type AdminState uint8

const (
	AdminDown AdminState = mlxhw.VportDown
	AdminUp   AdminState = mlxhw.VportUp
	AdminAuto AdminState = mlxhw.VportAuto // follow the link
)

// Phase is the device state of §7.4.
type Phase uint8

const (
	PhaseReset     Phase = iota // command queue not configured
	PhaseCmdqReady              // ENABLE_HCA, QUERY_ISSI, NOP
	PhaseEnabled                // bring-up commands until INIT_HCA
	PhaseRunning                // everything
)

func (p Phase) String() string {
	switch p {
	case PhaseReset:
		return "RESET"
	case PhaseCmdqReady:
		return "CMDQ_READY"
	case PhaseEnabled:
		return "ENABLED"
	case PhaseRunning:
		return "RUNNING"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// DeviceState is a snapshot of the device's lifecycle and object counts.
// After a proper teardown every object count and PagesGiven are 0.
type DeviceState struct {
	Phase      Phase
	Removed    bool
	NICIfc     uint8 // cmdq_addr_l_sz bits 10:8
	ISSI       uint16
	HealthSynd uint8
	LinkUp     bool // effective vport state

	PagesGiven                     int // pages the driver gave and has not taken back
	BootPagesGiven, InitPagesGiven int

	UARs, PDs, TDs, Mkeys, EQs, CQs, SQs, RQs, TISs, TIRs, RQTs int
	FlowTables, FlowGroups, FlowEntries, QCounters              int

	// DestroyedByReset counts objects a TEARDOWN_HCA, DISABLE_HCA or FLR
	// destroyed because the driver had not.
	DestroyedByReset int
}

// Objects returns the total number of live objects.
func (s DeviceState) Objects() int {
	return s.UARs + s.PDs + s.TDs + s.Mkeys + s.EQs + s.CQs + s.SQs + s.RQs + s.TISs + s.TIRs + s.RQTs +
		s.FlowTables + s.FlowGroups + s.FlowEntries + s.QCounters
}

// Device is one mlx-lite VF. Create it with New; it implements
// hyperv/host/vpci.Function and hyperv/host/vswitch.Port.
type Device struct {
	cfg    Config
	log    *slog.Logger
	clock  kernel.Clock
	pcfg   *pci.MemConfig
	bar    *bar0
	faults Faults
	// txSmall and txPool hold transmitted frames up to txSmallSize and up
	// to Config.TxFrameSize bytes.
	txSmall, txPool *packet.Pool
	// expOff and msixOff are the config offsets of the PCI Express and
	// MSI-X capabilities (fixed at New).
	expOff, msixOff int
	done            chan struct{} // closed by Close; stops timer goroutines
	gone            atomic.Bool   // surprise removal (also d.removed, under mu)
	wg              sync.WaitGroup

	// batches is a free list of transmit batches handed to the wire after
	// mu is released; batchMu guards it.
	batchMu sync.Mutex
	batches []*packet.Batch
	txctxs  []*txCtx

	mu sync.Mutex
	// ---- everything below is guarded by mu ----
	closed  bool
	gen     uint64 // incremented by every reset; stale timers do nothing
	phase   Phase
	removed bool
	epoch   time.Time // device clock origin (timer, health counter)
	// initUntil: the initializing bit reads 1 before this instant.
	initUntil time.Time
	cmdqH     uint32
	cmdqL     uint32
	cmdqSet   bool
	nicIfc    uint8
	pending   uint32 // command slots posted and not completed (timeout faults, latency)
	issi      uint16
	hsynd     uint8
	hextSynd  uint16
	hstall    bool
	hfrozen   uint32        // health counter value while stalled
	hskip     time.Duration // device time the counter did not count
	hstallAt  time.Time

	// cmdReg and msixCtl cache the config command register and MSI-X
	// control word; configWritten refreshes them after every config write.
	cmdReg, msixCtl uint16

	msix [mlxhw.MSIXVectors]msixEntry
	pba  uint32
	irq  uint32 // vectors to fire once mu is released

	pg    pages
	caps  capState
	objs  objects
	vport vport
	link  bool
	admin AdminState

	stats      Stats
	violations []Violation
	lostViol   int
	// tx collects the frames of the MMIO write being processed; it is
	// handed to the wire after mu is released.
	tx *txCtx

	outLen  int // the output length of the command being executed
	scratch scratch
}

type msixEntry struct{ addrLo, addrHi, data, ctrl uint32 }

// New returns a device in the RESET phase with its init delay running.
func New(cfg Config) (*Device, error) {
	if cfg.Mem == nil {
		return nil, fmt.Errorf("%w: Mem is nil", ErrConfig)
	}
	switch cfg.DeviceID {
	case 0:
		cfg.DeviceID = mlxhw.DeviceCX4LxVF
	case mlxhw.DeviceCX4LxVF, mlxhw.DeviceCX5VF:
	default:
		return nil, fmt.Errorf("%w: device id %#x (want 0x1016 or 0x1018)", ErrConfig, cfg.DeviceID)
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.RealClock{}
	}
	if cfg.InitDelay == 0 {
		cfg.InitDelay = time.Millisecond
	}
	if cfg.BootPages == 0 {
		cfg.BootPages = 4
	}
	if cfg.InitPages == 0 {
		cfg.InitPages = 8
	}
	if cfg.BootPages < 0 || cfg.InitPages < 0 || cfg.BootPages+cfg.InitPages > mlxhw.MaxPages {
		return nil, fmt.Errorf("%w: %d boot and %d init pages", ErrConfig, cfg.BootPages, cfg.InitPages)
	}
	if cfg.TxFrameSize == 0 {
		cfg.TxFrameSize = 9216
	}
	if cfg.TxFrameSize < 64 || cfg.TxFrameSize > 1<<16 {
		return nil, fmt.Errorf("%w: TxFrameSize %d", ErrConfig, cfg.TxFrameSize)
	}
	pool, err := packet.NewPool(packet.PoolConfig{Headroom: 64, Size: cfg.TxFrameSize})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	small, err := packet.NewPool(packet.PoolConfig{Headroom: 64, Size: txSmallSize})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := &Device{cfg: cfg, log: kernel.LoggerOr(cfg.Logger), clock: cfg.Clock, txPool: pool, txSmall: small,
		done: make(chan struct{})}
	d.faults.d = d
	d.bar = &bar0{d: d}
	if err := d.buildConfig(); err != nil {
		return nil, err
	}
	d.scratch.init()
	d.mu.Lock()
	d.epoch = d.clock.Now()
	d.refreshConfigLocked()
	d.resetLocked(false)
	d.link = !cfg.LinkDown
	d.admin = AdminAuto
	d.mu.Unlock()
	return d, nil
}

// buildConfig makes the PCI config space of §7.2.
func (d *Device) buildConfig() error {
	c := pci.NewMemConfig(pci.Header{
		VendorID: mlxhw.VendorMellanox, DeviceID: d.cfg.DeviceID, ClassCode: mlxhw.ClassEthernet,
		SubsystemVendorID: mlxhw.SubsystemVendor, SubsystemID: mlxhw.SubsystemDevice,
	})
	if err := c.SetBAR(0, mlxhw.BAR0Size, pci.BAR64|pci.BARPrefetch); err != nil {
		return fmt.Errorf("%w: BAR0: %w", ErrConfig, err)
	}
	// PCI Express capability (v2, endpoint): DevCap bit 28 = FLR capable;
	// DevCtl bit 15 = initiate FLR (writable, self-clearing).
	exp := make([]byte, 0x3a)
	exp[0] = 0x02 // capability version 2, device/port type 0 = endpoint
	exp[2+2] = 0  // DevCap at cap+4: body offset 2
	devcap := uint32(1 << 28)
	exp[2], exp[3], exp[4], exp[5] = byte(devcap), byte(devcap>>8), byte(devcap>>16), byte(devcap>>24)
	wmask := make([]byte, len(exp))
	wmask[6], wmask[7] = 0xff, 0xff // DevCtl at cap+8 (body offset 6)
	off, err := c.AddCapability(pci.CapExpress, exp, wmask)
	if err != nil {
		return fmt.Errorf("%w: PCIe capability: %w", ErrConfig, err)
	}
	d.expOff = off
	if _, err := c.AddMSIX(mlxhw.MSIXVectors, 0, mlxhw.MSIXTableOff, 0, mlxhw.MSIXPBAOff); err != nil {
		return fmt.Errorf("%w: MSI-X capability: %w", ErrConfig, err)
	}
	if d.msixOff, err = pci.FindCapability(c, pci.CapMSIX); err != nil {
		return fmt.Errorf("%w: MSI-X capability: %w", ErrConfig, err)
	}
	c.OnWrite(d.configWritten)
	d.pcfg = c
	return nil
}

// Serial is the vPCI serial number.
func (d *Device) Serial() uint32 { return d.cfg.Serial }

// Config returns the PCI configuration space.
func (d *Device) Config() pci.ConfigSpace { return goneConfig{d} }

// goneConfig is the config space as the bus sees it: after surprise
// removal reads return all ones and writes are dropped, as for any
// function that left the bus.
type goneConfig struct{ d *Device }

func (c goneConfig) Read8(off int) uint8 {
	if c.d.gone.Load() {
		return 0xff
	}
	return c.d.pcfg.Read8(off)
}

func (c goneConfig) Read16(off int) uint16 {
	if c.d.gone.Load() {
		return 0xffff
	}
	return c.d.pcfg.Read16(off)
}

func (c goneConfig) Read32(off int) uint32 {
	if c.d.gone.Load() {
		return 0xffffffff
	}
	return c.d.pcfg.Read32(off)
}

func (c goneConfig) Write8(off int, v uint8) {
	if !c.d.gone.Load() {
		c.d.pcfg.Write8(off, v)
	}
}

func (c goneConfig) Write16(off int, v uint16) {
	if !c.d.gone.Load() {
		c.d.pcfg.Write16(off, v)
	}
}

func (c goneConfig) Write32(off int, v uint32) {
	if !c.d.gone.Load() {
		c.d.pcfg.Write32(off, v)
	}
}

// BAR returns BAR0's registers; nil for any other index.
func (d *Device) BAR(i int) pci.BAR {
	if i == 0 {
		return d.bar
	}
	return nil
}

// Close stops the device's timers and drops further work. It does not free
// anything in guest memory.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("%w: Close called twice", ErrClosed)
	}
	d.closed = true
	close(d.done)
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// State returns a snapshot of the lifecycle state and object counts.
func (d *Device) State() DeviceState {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := &d.objs
	boot, init := d.pg.quotas(d)
	return DeviceState{
		Phase: d.phase, Removed: d.removed, NICIfc: d.nicIfc, ISSI: d.issi, HealthSynd: d.hsynd,
		LinkUp:     d.linkUpLocked(),
		PagesGiven: len(d.pg.list), BootPagesGiven: boot, InitPagesGiven: init,
		UARs: len(o.uars), PDs: len(o.pds), TDs: len(o.tds), Mkeys: len(o.mkeys), EQs: o.eqCount(),
		CQs: len(o.cqs), SQs: len(o.sqs), RQs: len(o.rqs), TISs: len(o.tiss), TIRs: len(o.tirs),
		RQTs: len(o.rqts), FlowTables: len(o.fts), FlowGroups: len(o.fgs), FlowEntries: o.fteCount(),
		QCounters: len(o.qcounters), DestroyedByReset: o.destroyedByReset,
	}
}

// unlock releases mu and then fires the interrupts raised while it was held.
func (d *Device) unlock() {
	v := d.irq
	d.irq = 0
	d.mu.Unlock()
	d.fire(v)
}

func (d *Device) fire(v uint32) {
	if v == 0 || d.cfg.Interrupt == nil {
		return
	}
	for i := range mlxhw.MSIXVectors {
		if v&(1<<i) != 0 {
			d.cfg.Interrupt(i)
		}
	}
}

// txCtx collects the frames one locked operation transmits. The contexts
// and their batches come from a free list guarded by batchMu, so steady-state
// transmission allocates nothing.
type txCtx struct{ batches []*packet.Batch }

const (
	txBatchSize = 64
	txSmallSize = 2048
)

func (d *Device) getTxCtx() *txCtx {
	d.batchMu.Lock()
	defer d.batchMu.Unlock()
	if n := len(d.txctxs); n > 0 {
		c := d.txctxs[n-1]
		d.txctxs = d.txctxs[:n-1]
		return c
	}
	return &txCtx{}
}

func (d *Device) getBatch() *packet.Batch {
	d.batchMu.Lock()
	defer d.batchMu.Unlock()
	if n := len(d.batches); n > 0 {
		b := d.batches[n-1]
		d.batches = d.batches[:n-1]
		return b
	}
	return packet.NewBatch(txBatchSize)
}

// beginTx is called with mu held before an operation that may transmit.
func (d *Device) beginTx() *txCtx {
	c := d.getTxCtx()
	d.tx = c
	return c
}

// endTx releases mu, fires the interrupts raised, and hands c's frames to
// the wire.
func (d *Device) endTx(c *txCtx) {
	d.tx = nil
	d.unlock()
	for i, b := range c.batches {
		if b.Len() > 0 {
			if d.cfg.Wire != nil {
				d.cfg.Wire.Transmit(b)
			} else {
				b.Free()
			}
		}
		b.Clear()
		c.batches[i] = nil
		d.batchMu.Lock()
		d.batches = append(d.batches, b)
		d.batchMu.Unlock()
	}
	c.batches = c.batches[:0]
	d.batchMu.Lock()
	d.txctxs = append(d.txctxs, c)
	d.batchMu.Unlock()
}

// emit queues a transmitted frame (mu held); the device gives up p.
func (d *Device) emit(p *packet.Packet) {
	c := d.tx
	if c == nil || d.cfg.Wire == nil {
		d.stats.TxDrops[DropNoWire]++
		p.Free()
		return
	}
	if n := len(c.batches); n == 0 || c.batches[n-1].Full() {
		c.batches = append(c.batches, d.getBatch())
	}
	c.batches[len(c.batches)-1].Add(p)
}

// after runs f with mu held once dur of device time has passed, unless the
// device is closed first. Callers hold mu.
func (d *Device) after(dur time.Duration, f func()) {
	t := d.clock.NewTimer(dur)
	gen := d.gen
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case <-t.C():
		case <-d.done:
			t.Stop()
			return
		}
		d.mu.Lock()
		tx := d.beginTx()
		if !d.closed && d.gen == gen { // an FLR in between cancels it
			f()
		}
		d.endTx(tx)
	}()
}
