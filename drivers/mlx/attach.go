package mlx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Bring-up in the order the device's state machine enforces (spec §2.5,
// §7.4): init segment, command queue, ENABLE_HCA, ISSI, boot pages,
// capabilities, init pages, INIT_HCA, UAR, EQs (switching commands to
// events), PD/TD/mkey, CQs, TIS/SQs, RQs, RQT/TIR, vport context, link.
// Every object created pushes its destroy step on v.undo, so teardown is
// the exact reverse and a failed bring-up unwinds what it did.

const (
	defaultSQSize    = 1024
	defaultRQSize    = 1024
	maxQueues        = 4
	initPoll         = time.Millisecond
	hwMTUOverhead    = mlxhw.MTUOverhead
	dbrSlot          = 64 // one cache line per doorbell record
	rxBufAlign       = 64
	txRingPerWQEBB   = 1024
	minTxRingBytes   = 160 << 10
	asyncEQEntries   = 64
	cmdEQEntries     = mlxhw.CmdqSlots
	completionVecs   = 1 // vector 0: command and async EQs; completion EQs use 1..
	pageChunk        = 1024
	maxFirmwarePages = 4096 // 16 MiB: far above what the model asks for
	driverVersionID  = "hvguest,mlx,1.0"
)

// rssKey is the Toeplitz key programmed into the indirect TIR (the
// well-known Microsoft RSS verification key).
var rssKey = [mlxhw.ToeplitzKeySize]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

func (c *Config) setDefaults() error {
	if c.Name == "" || len(c.Name) > ifnet.MaxNameLen || c.Registry == nil || c.Memory == nil {
		return fmt.Errorf("%w: Name, Registry and Memory are required", ErrConfig)
	}
	if c.Clock == nil {
		c.Clock = kernel.RealClock{}
	}
	c.Logger = kernel.LoggerOr(c.Logger)
	if c.Queues <= 0 {
		c.Queues = 1
	}
	if c.SQSize == 0 {
		c.SQSize = defaultSQSize
	}
	if c.RQSize == 0 {
		c.RQSize = defaultRQSize
	}
	if c.MTU == 0 {
		c.MTU = ifnet.DefaultMTU
	}
	if c.MaxMTU == 0 {
		c.MaxMTU = max(c.MTU, ifnet.DefaultMTU)
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = 5 * time.Second
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = time.Second
	}
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case c.Queues > maxQueues:
		return fmt.Errorf("%w: %d queues, at most %d", ErrConfig, c.Queues, maxQueues)
	case !pow2(c.SQSize) || c.SQSize < 64 || c.SQSize > 1<<15:
		return fmt.Errorf("%w: SQSize %d", ErrConfig, c.SQSize)
	case !pow2(c.RQSize) || c.RQSize < 2 || c.RQSize > 1<<15:
		return fmt.Errorf("%w: RQSize %d", ErrConfig, c.RQSize)
	case c.MTU < ifnet.DefaultMinMTU || c.MTU > c.MaxMTU || c.MaxMTU > ifnet.DefaultJumboMTU:
		return fmt.Errorf("%w: MTU %d, MaxMTU %d", ErrConfig, c.MTU, c.MaxMTU)
	}
	return nil
}

func log2(n int) uint8 {
	l := uint8(0)
	for 1<<l < n {
		l++
	}
	return l
}

// Attach brings the VF up and attaches its interface to cfg.Registry.
// On failure everything it did is undone (best effort when the device
// misbehaves) and all memory is freed.
func Attach(ctx context.Context, cfg Config, dev Device) (*VF, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if dev.Config == nil || dev.BAR0 == nil {
		return nil, fmt.Errorf("%w: Device needs Config and BAR0", ErrConfig)
	}
	v := &VF{cfg: cfg, dev: dev, bar: dev.BAR0, irq: kernel.NewEvent(), ctl: kernel.NewEvent(),
		stop: make(chan struct{}), gone: make(chan struct{}), cqByN: map[uint32]func(int) int{}}
	v.log = slog.New(kernel.RateLimit(cfg.Logger.Handler(), 20, time.Second, cfg.Clock)).With("if", cfg.Name)
	v.dma.mem = cfg.Memory
	v.pages.mem = cfg.Memory
	if dev.OnCreate != nil {
		dev.OnCreate(v)
	}
	if err := v.bringUp(ctx); err != nil {
		v.log.Warn("mlx: bring-up failed", "err", err)
		v.unwind(ctx)
		return nil, err
	}
	return v, nil
}

func (v *VF) push(what string, fn func(ctx context.Context) error) {
	v.undo = append(v.undo, undo{what, fn})
}

// destroy pushes a DESTROY/DEALLOC of an object.
func (v *VF) destroy(op mlxhw.Opcode, id uint32) {
	v.push(op.String(), func(ctx context.Context) error {
		return v.cmd.exec(ctx, &mlxhw.ObjectIn{Op: op, ID: id}, nil)
	})
}

func (v *VF) bringUp(ctx context.Context) error {
	cs := v.dev.Config
	if vid := cs.Read16(pci.VendorID); vid != mlxhw.VendorMellanox {
		return fmt.Errorf("%w: vendor %#x", ErrDevice, vid)
	}
	if v.bar.Len() < mlxhw.InitSegSize {
		return fmt.Errorf("%w: BAR0 of %d bytes", ErrDevice, v.bar.Len())
	}
	pci.SetCommand(cs, pci.CommandMemory|pci.CommandMaster, 0)
	if err := v.setupMSIX(); err != nil {
		return err
	}
	// Watch the bus's removal signal; the watcher ends with the VF.
	if v.dev.Gone != nil {
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			select {
			case <-v.dev.Gone:
				v.markGone()
			case <-v.stop:
			}
		}()
	}
	v.start()
	if rev := mlxhw.CmdIfRevOf(v.bar.Read32(mlxhw.RegCmdIfRevFWSub)); rev != mlxhw.CmdIfRev {
		if rev == 0xffff {
			return fmt.Errorf("mlx: init segment: %w", ErrGone)
		}
		return fmt.Errorf("%w: command interface revision %d, want %d", ErrDevice, rev, mlxhw.CmdIfRev)
	}
	if err := v.waitInit(ctx); err != nil {
		return err
	}
	// Read the geometry before writing the address (spec §8).
	g := mlxhw.ParseCmdqAddrLSz(v.bar.Read32(mlxhw.RegCmdqAddrLSz))
	if !g.Valid() {
		return fmt.Errorf("%w: command queue geometry log_sz %d log_stride %d", ErrDevice, g.LogSize, g.LogStride)
	}
	page, err := v.dma.alloc(1, "command queue")
	if err != nil {
		return err
	}
	mbox, err := v.dma.alloc(cmdMboxPages, "command mailboxes")
	if err != nil {
		return err
	}
	v.cmd = newCmdq(v.bar, v.cfg.Clock, v.gone, v.cfg.CommandTimeout, page, mbox, g.LogStride)
	addr := page.GPA(0)
	v.bar.Write32(mlxhw.RegCmdqAddrH, uint32(addr>>32))
	v.bar.Write32(mlxhw.RegCmdqAddrLSz, uint32(addr)&mlxhw.CmdqAddrMask)
	if err := v.waitInit(ctx); err != nil {
		return err
	}
	if err := v.initHCA(ctx); err != nil {
		return err
	}
	if err := v.createEQs(ctx); err != nil {
		return err
	}
	if err := v.createTransport(ctx); err != nil {
		return err
	}
	if err := v.createChannels(ctx); err != nil {
		return err
	}
	return v.attachInterface(ctx)
}

// waitInit polls the initializing bit (spec §2.5 step 2), bounded by
// InitTimeout on the clock.
func (v *VF) waitInit(ctx context.Context) error {
	deadline := v.cfg.Clock.NewTimer(v.cfg.InitTimeout)
	defer deadline.Stop()
	for {
		r := v.bar.Read32(mlxhw.RegInitializing)
		if mlxhw.DeviceGone(r) {
			return fmt.Errorf("mlx: init segment: %w", ErrGone)
		}
		if r&mlxhw.InitializingBit == 0 {
			return nil
		}
		t := v.cfg.Clock.NewTimer(initPoll)
		select {
		case <-t.C():
		case <-deadline.C():
			t.Stop()
			return fmt.Errorf("mlx: firmware still initializing after %v: %w", v.cfg.InitTimeout, ErrTimeout)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mlx: waiting for firmware: %w", ctx.Err())
		case <-v.gone:
			t.Stop()
			return fmt.Errorf("mlx: waiting for firmware: %w", ErrGone)
		}
	}
}

// setupMSIX programs and enables the MSI-X table (spec §7.2: 16 vectors
// in BAR0).
func (v *VF) setupMSIX() error {
	cs := v.dev.Config
	off, err := pci.FindCapability(cs, pci.CapMSIX)
	if err != nil {
		return fmt.Errorf("%w: MSI-X capability: %w", ErrDevice, err)
	}
	m, err := pci.ParseMSIX(cs, off)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDevice, err)
	}
	if m.TableBIR != 0 {
		return fmt.Errorf("%w: MSI-X table in BAR%d", ErrDevice, m.TableBIR)
	}
	if err := m.CheckTable(v.bar); err != nil {
		return fmt.Errorf("%w: %w", ErrDevice, err)
	}
	n := min(m.TableSize, 1+v.cfg.Queues)
	for i := range n {
		msg := MSIXMessage{Address: 0xfee00000, Data: uint32(i)}
		if i < len(v.dev.MSIX) {
			msg = v.dev.MSIX[i]
		}
		if err := m.WriteEntry(v.bar, i, msg.Address, msg.Data); err != nil {
			return fmt.Errorf("%w: %w", ErrDevice, err)
		}
		if err := m.MaskEntry(v.bar, i, false); err != nil {
			return fmt.Errorf("%w: %w", ErrDevice, err)
		}
	}
	m.SetEnabled(cs, true)
	return nil
}

// initHCA runs ENABLE_HCA through INIT_HCA.
func (v *VF) initHCA(ctx context.Context) error {
	c := v.cmd
	if err := c.exec(ctx, &mlxhw.ObjectIn{Op: mlxhw.OpEnableHCA}, nil); err != nil {
		return err
	}
	v.push("DISABLE_HCA", func(ctx context.Context) error {
		return c.exec(ctx, &mlxhw.ObjectIn{Op: mlxhw.OpDisableHCA}, nil)
	})
	var issi mlxhw.QueryISSIOut
	if err := c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpQueryISSI}, &issi); err != nil {
		return err
	}
	if issi.SupportedISSI&(1<<1) != 0 {
		if err := c.exec(ctx, &mlxhw.ObjectIn{Op: mlxhw.OpSetISSI, ID: 1}, nil); err != nil {
			return err
		}
	}
	// Pages are reclaimed after TEARDOWN_HCA, before DISABLE_HCA.
	v.push("reclaim pages", v.reclaimPages)
	if err := v.givePages(ctx, mlxhw.PagesBoot); err != nil {
		return err
	}
	var cur mlxhw.QueryHCACapOut
	if err := c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, mlxhw.CapCurrent)}, &cur); err != nil {
		return err
	}
	if err := v.gen.Parse(cur.Cap[:]); err != nil {
		return fmt.Errorf("%w: general caps: %w", ErrDevice, err)
	}
	// SET_HCA_CAP with the current values (spec §2.5 step 8): checksums
	// off and 4 KiB UAR pages, which is what the device reports already.
	set := mlxhw.SetHCACapIn{OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, mlxhw.CapMax), Cap: cur.Cap}
	if err := c.exec(ctx, &set, nil); err != nil {
		return err
	}
	var ethOut mlxhw.QueryHCACapOut
	if err := c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapEthernetOffloads, mlxhw.CapCurrent)}, &ethOut); err != nil {
		return err
	}
	if err := v.eth.Parse(ethOut.Cap[:]); err != nil {
		return fmt.Errorf("%w: ethernet caps: %w", ErrDevice, err)
	}
	if err := v.checkCaps(); err != nil {
		return err
	}
	if err := v.givePages(ctx, mlxhw.PagesInit); err != nil {
		return err
	}
	if err := c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpInitHCA}, nil); err != nil {
		return err
	}
	v.push("TEARDOWN_HCA", func(ctx context.Context) error {
		return c.exec(ctx, &mlxhw.ObjectIn{Op: mlxhw.OpTeardownHCA, ID: mlxhw.TeardownGraceful}, &mlxhw.TeardownHCAOut{})
	})
	if v.gen.DriverVersion {
		if err := c.exec(ctx, &mlxhw.SetDriverVersionIn{Version: driverVersionID}, nil); err != nil {
			return err
		}
	}
	return nil
}

// checkCaps refuses a device without what the driver needs (the subset of
// mlx5e's required caps that applies, spec §2.8).
func (v *VF) checkCaps() error {
	g, e := &v.gen, &v.eth
	need := int(max(log2(v.cfg.SQSize), log2(v.cfg.RQSize)))
	switch {
	case g.PortType != mlxhw.PortTypeETH:
		return fmt.Errorf("%w: port type %d is not Ethernet", ErrDevice, g.PortType)
	case !g.EthNetOffloads:
		return fmt.Errorf("%w: no eth_net_offloads", ErrDevice)
	case int(g.LogMaxEQ) < 1 || 1<<g.LogMaxEQ < 2+v.cfg.Queues:
		return fmt.Errorf("%w: %d EQs, need %d", ErrDevice, 1<<g.LogMaxEQ, 2+v.cfg.Queues)
	case int(g.LogMaxWQSize) < need || int(g.LogMaxCQSize) < need:
		return fmt.Errorf("%w: queues of 2^%d entries exceed the device's limits", ErrDevice, need)
	case g.MaxWQESizeSQ != 0 && int(g.MaxWQESizeSQ) < mlxhw.MaxSendWQESize:
		return fmt.Errorf("%w: max_wqe_sz_sq %d", ErrDevice, g.MaxWQESizeSQ)
	case e.WQEInlineMode == mlxhw.InlineModeVportCtx:
		// The vport context's min inline is read below; L2 is the most
		// any model asks for, which the driver always honours then.
	}
	return nil
}

// createEQs allocates the UAR and creates the command EQ (then commands
// complete by event), the async EQ and one completion EQ per queue.
func (v *VF) createEQs(ctx context.Context) error {
	var uar mlxhw.ObjectOut
	uar.Op = mlxhw.OpAllocUAR
	if err := v.cmd.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpAllocUAR}, &uar); err != nil {
		return err
	}
	v.destroy(mlxhw.OpDeallocUAR, uar.ID)
	v.uar, v.uarOff = uar.ID, mlxhw.UAROffset(uar.ID)
	if v.uarOff < mlxhw.InitSegSize || v.uarOff+mlxhw.UARPageSize > v.bar.Len() {
		return fmt.Errorf("%w: UAR %d outside BAR0 (%d bytes)", ErrDevice, uar.ID, v.bar.Len())
	}
	q, err := v.createEQ(ctx, cmdEQEntries, 0, mlxhw.EventCmd.Bit())
	if err != nil {
		return err
	}
	v.cmdEQ = q
	v.cmd.events.Store(true)
	v.push("command polling", func(context.Context) error { v.cmd.events.Store(false); return nil })
	async := mlxhw.EventCQError.Bit() | mlxhw.EventWQCatastrophic.Bit() | mlxhw.EventWQInvalReq.Bit() |
		mlxhw.EventWQAccessError.Bit() | mlxhw.EventPortChange.Bit() | mlxhw.EventPageRequest.Bit()
	if v.gen.NICVportChangeEvent {
		async |= mlxhw.EventNICVportChange.Bit()
	}
	if _, err := v.createEQ(ctx, asyncEQEntries, 0, async); err != nil {
		return err
	}
	for i := range v.cfg.Queues {
		vec := completionVecs + i
		if vec >= mlxhw.MSIXVectors {
			vec = 0
		}
		if _, err := v.createEQ(ctx, v.cfg.SQSize+v.cfg.RQSize, vec, mlxhw.EventComp.Bit()); err != nil {
			return err
		}
	}
	return nil
}

func (v *VF) createEQ(ctx context.Context, entries, vector int, mask uint64) (*eq, error) {
	l := eqLogSize(entries, v.gen.LogMaxEQSize)
	pages := max(1, (1<<l)*mlxhw.EQESize/kernel.PageSize)
	r, err := v.dma.alloc(pages, "event queue")
	if err != nil {
		return nil, err
	}
	mlxhw.InitEQ(r.Bytes)
	in := mlxhw.CreateEQIn{Ctx: mlxhw.EQContext{LogSize: l, UARPage: v.uar, Intr: uint8(vector)}, EventBitmask: mask, PAS: pas(r)}
	out := mlxhw.ObjectOut{Op: mlxhw.OpCreateEQ}
	if err := v.cmd.exec(ctx, &in, &out); err != nil {
		return nil, err
	}
	q := &eq{n: uint8(out.ID), logSize: l, vector: vector, mem: r.Bytes[:(1<<l)*mlxhw.EQESize]}
	old := v.eqList.Load()
	var list []*eq
	if old != nil {
		list = append(list, *old...)
	}
	list = append(list, q)
	v.eqList.Store(&list)
	v.push("DESTROY_EQ", func(ctx context.Context) error {
		// Retire it from the worker first: no doorbell after the destroy.
		v.workMu.Lock()
		cur := *v.eqList.Load()
		rest := make([]*eq, 0, len(cur))
		for _, e := range cur {
			if e != q {
				rest = append(rest, e)
			}
		}
		v.eqList.Store(&rest)
		v.workMu.Unlock()
		return v.cmd.exec(ctx, &mlxhw.ObjectIn{Op: mlxhw.OpDestroyEQ, ID: uint32(q.n)}, nil)
	})
	q.arm(v.bar, v.uarOff)
	return q, nil
}

// createTransport creates PD, transport domain and the PA mkey whose lkey
// every data segment carries (spec §2.5 step 13).
func (v *VF) createTransport(ctx context.Context) error {
	pd := mlxhw.ObjectOut{Op: mlxhw.OpAllocPD}
	if err := v.cmd.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpAllocPD}, &pd); err != nil {
		return err
	}
	v.destroy(mlxhw.OpDeallocPD, pd.ID)
	v.pd = pd.ID
	td := mlxhw.ObjectOut{Op: mlxhw.OpAllocTransportDomain}
	if err := v.cmd.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpAllocTransportDomain}, &td); err != nil {
		return err
	}
	v.destroy(mlxhw.OpDeallocTransportDomain, td.ID)
	v.td = td.ID
	const key = 0x5a
	mk := mlxhw.CreateMkeyIn{Ctx: mlxhw.MkeyContext{LocalWrite: true, LocalRead: true, AccessMode: mlxhw.MkeyAccessPA,
		QPN: 0xffffff, Key: key, Length64: true, PD: v.pd}}
	out := mlxhw.ObjectOut{Op: mlxhw.OpCreateMkey}
	if err := v.cmd.exec(ctx, &mk, &out); err != nil {
		return err
	}
	v.destroy(mlxhw.OpDestroyMkey, out.ID)
	v.lkey = mlxhw.LKey(out.ID, key)
	return nil
}

// givePages answers QUERY_PAGES(kind) with MANAGE_PAGES(GIVE).
func (v *VF) givePages(ctx context.Context, kind uint16) error {
	var q mlxhw.QueryPagesOut
	if err := v.cmd.exec(ctx, &mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: kind}, &q); err != nil {
		return err
	}
	if q.NumPages < 0 || q.NumPages > maxFirmwarePages {
		return fmt.Errorf("%w: device asks for %d pages", ErrDevice, q.NumPages)
	}
	return v.pages.give(ctx, v.cmd, int(q.NumPages))
}

// servicePages answers PAGE_REQUEST events (control goroutine).
func (v *VF) servicePages(ctx context.Context) {
	n := v.pending.Swap(0)
	var err error
	switch {
	case n > 0:
		// An untrusted device does not get to empty guest memory.
		if room := maxFirmwarePages - v.pages.count(); int(n) > room {
			v.deviceError("page request", fmt.Errorf("%w: %d more pages asked, %d allowed", ErrDevice, n, max(room, 0)))
			n = int32(max(room, 0))
		}
		err = v.pages.give(ctx, v.cmd, int(n))
	case n < 0:
		_, err = v.pages.take(ctx, v.cmd, int(-n), v)
	}
	if err != nil {
		v.log.Warn("mlx: page request", "pages", n, "err", err)
	}
}

// reclaimPages takes back every page the device holds (teardown).
func (v *VF) reclaimPages(ctx context.Context) error {
	for v.pages.count() > 0 {
		got, err := v.pages.take(ctx, v.cmd, v.pages.count(), v)
		if err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("%w: device returned no pages, still holds %d", ErrDevice, v.pages.count())
		}
	}
	return nil
}

// unwind runs the undo steps in reverse, stops the goroutines and frees
// everything. Commands that fail (device gone, timed out) do not stop it.
func (v *VF) unwind(ctx context.Context) error {
	var first error
	for i := len(v.undo) - 1; i >= 0; i-- {
		u := v.undo[i]
		if err := u.fn(ctx); err != nil {
			if first == nil {
				first = fmt.Errorf("mlx: teardown %s: %w", u.what, err)
			}
			if !errors.Is(err, ErrGone) {
				v.log.Warn("mlx: teardown step failed", "step", u.what, "err", err)
			}
		}
	}
	v.undo = nil
	v.stopGoroutines()
	v.releaseMemory()
	return first
}

func (v *VF) stopGoroutines() {
	v.stopOnce.Do(func() { close(v.stop) })
	v.wg.Wait()
}

// releaseMemory frees every DMA region and the pages the device still
// holds (it can no longer use them: it was torn down or is gone).
func (v *VF) releaseMemory() {
	for _, s := range v.sqs {
		s.mu.Lock()
		s.ready = false
		s.consume(s.size()) // completions the device wrote: those frames were sent
		s.abandon(ifnet.DropDetached)
		s.mu.Unlock()
	}
	for _, r := range v.rqs {
		r.batch.Free()
		r.dropPending()
	}
	v.pages.freeAll()
	v.dma.freeAll()
}

// rxPoolFor returns a packet pool for receive buffers of size bytes.
func rxPoolFor(size, prealloc int) *packet.Pool {
	return packet.MustPool(packet.PoolConfig{Size: size + 4, Prealloc: prealloc})
}
