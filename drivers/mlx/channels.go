package mlx

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// Channels: per queue a send CQ and SQ, a receive CQ and RQ, all sharing
// one TIS, one doorbell-record page and, with several queues, an RQT
// behind an indirect (RSS) TIR (spec §2.5 step 13, §7.5 mode A).

func (v *VF) createChannels(ctx context.Context) error {
	dbrs, err := v.dma.alloc(1, "doorbell records")
	if err != nil {
		return err
	}
	nextDBR := 0
	dbr := func() ([]byte, uint64) {
		off := nextDBR * dbrSlot
		nextDBR++
		return dbrs.Bytes[off : off+mlxhw.DBRSize], dbrs.GPA(off)
	}
	tis := mlxhw.ObjectOut{Op: mlxhw.OpCreateTIS}
	if err := v.cmd.exec(ctx, &mlxhw.CreateTISIn{Ctx: mlxhw.TISContext{TransportDomain: v.td}}, &tis); err != nil {
		return err
	}
	v.destroy(mlxhw.OpDestroyTIS, tis.ID)
	hw := v.cfg.MaxMTU + hwMTUOverhead
	bufSize := (hw + rxBufAlign - 1) / rxBufAlign * rxBufAlign
	v.maxFrame = v.cfg.MaxMTU + 18
	v.rxPool = rxPoolFor(bufSize, v.cfg.RQSize)
	eqs := *v.eqList.Load()
	for i := range v.cfg.Queues {
		ceq := eqs[2+i].n
		txcq, err := v.createCQ(ctx, log2(v.cfg.SQSize), ceq, dbr)
		if err != nil {
			return err
		}
		s, err := v.createSQ(ctx, i, txcq, tis.ID, dbr)
		if err != nil {
			return err
		}
		rxcq, err := v.createCQ(ctx, log2(v.cfg.RQSize), ceq, dbr)
		if err != nil {
			return err
		}
		r, err := v.createRQ(ctx, i, rxcq, bufSize, dbr)
		if err != nil {
			return err
		}
		v.sqs = append(v.sqs, s)
		v.rqs = append(v.rqs, r)
		v.cqByN[txcq.n] = func(budget int) int { return s.complete(v.bar, budget) }
		v.cqByN[rxcq.n] = func(budget int) int { return r.complete(v.bar, budget) }
	}
	if err := v.createTIR(ctx); err != nil {
		return err
	}
	v.cqsSet.Store(true)
	v.qsReady.Store(true)
	v.push("queues not ready", func(context.Context) error { v.qsReady.Store(false); return nil })
	for _, s := range v.sqs {
		s.cq.arm(v.bar, v.uarOff)
	}
	for _, r := range v.rqs {
		r.cq.arm(v.bar, v.uarOff)
	}
	return nil
}

// allocCQ allocates a CQ's ring, every entry initialised to op_own 0xf1.
func (v *VF) allocCQ(logSize, eqn uint8, d []byte) (*cq, *kernel.Region, error) {
	bytes := (1 << logSize) * mlxhw.CQESize
	r, err := v.dma.alloc((bytes+kernel.PageSize-1)/kernel.PageSize, "completion queue")
	if err != nil {
		return nil, nil, err
	}
	mlxhw.InitCQ(r.Bytes)
	return &cq{logSize: logSize, eqn: eqn, mem: r.Bytes[:bytes], dbr: d}, r, nil
}

func (v *VF) createCQ(ctx context.Context, logSize, eqn uint8, dbr func() ([]byte, uint64)) (*cq, error) {
	d, da := dbr()
	q, r, err := v.allocCQ(logSize, eqn, d)
	if err != nil {
		return nil, err
	}
	in := mlxhw.CreateCQIn{Ctx: mlxhw.CQContext{LogSize: logSize, UARPage: v.uar, EQN: eqn, DBRAddr: da}, PAS: pas(r)}
	out := mlxhw.ObjectOut{Op: mlxhw.OpCreateCQ}
	if err := v.cmd.exec(ctx, &in, &out); err != nil {
		return nil, err
	}
	v.destroy(mlxhw.OpDestroyCQ, out.ID)
	v.push("retire CQ", func(context.Context) error {
		v.workMu.Lock()
		q.dead = true
		v.workMu.Unlock()
		return nil
	})
	q.n = out.ID
	return q, nil
}

// allocSQ allocates a send queue of n WQEBBs and its byte ring.
func (v *VF) allocSQ(idx, n int, c *cq, d []byte) (*sq, *kernel.Region, error) {
	wq, err := v.dma.alloc((n*mlxhw.WQEBBSize+kernel.PageSize-1)/kernel.PageSize, "send queue")
	if err != nil {
		return nil, nil, err
	}
	ringBytes := max(minTxRingBytes, n*txRingPerWQEBB, 2<<v.eth.MaxLSO)
	ring, err := v.dma.alloc(ringBytes/kernel.PageSize, "send buffers")
	if err != nil {
		return nil, nil, err
	}
	logBF := v.gen.LogBFRegSize
	if logBF == 0 || logBF > 10 {
		logBF = mlxhw.LogBFRegSize
	}
	s := &sq{v: v, idx: idx, logSize: log2(n), wq: wq.Bytes, dbr: d, cq: c, lkey: v.lkey, uarOff: v.uarOff,
		bfOff: [2]uint64{uint64(mlxhw.BFRegOffset(0, 0, uint(logBF))), uint64(mlxhw.BFRegOffset(0, 1, uint(logBF)))},
		ring:  ring, info: make([]txInfo, n)}
	s.initRing()
	return s, wq, nil
}

func (v *VF) createSQ(ctx context.Context, idx int, c *cq, tisn uint32, dbr func() ([]byte, uint64)) (*sq, error) {
	d, da := dbr()
	s, wq, err := v.allocSQ(idx, v.cfg.SQSize, c, d)
	if err != nil {
		return nil, err
	}
	minInline := uint8(0)
	if v.eth.WQEInlineMode == mlxhw.InlineModeL2 {
		minInline = 1 // MLX5_INLINE_MODE_L2
	}
	in := mlxhw.CreateSQIn{Ctx: mlxhw.SQContext{FlushInError: true, MinInline: minInline, State: mlxhw.QueueRST, CQN: c.n,
		TISListSize: 1, TISNum0: tisn, WQ: mlxhw.WQ{Type: mlxhw.WQCyclic, PD: v.pd, UARPage: v.uar, DBRAddr: da,
			LogStride: 6, LogSize: s.logSize}}, PAS: pas(wq)}
	out := mlxhw.ObjectOut{Op: mlxhw.OpCreateSQ}
	if err := v.cmd.exec(ctx, &in, &out); err != nil {
		return nil, err
	}
	s.n = out.ID
	v.destroy(mlxhw.OpDestroySQ, s.n)
	if err := v.modifySQ(ctx, s, mlxhw.QueueRST, mlxhw.QueueRDY); err != nil {
		return nil, err
	}
	s.ready = true
	v.push("quiesce SQ", func(ctx context.Context) error { return v.quiesceSQ(ctx, s) })
	return s, nil
}

func (v *VF) modifySQ(ctx context.Context, s *sq, from, to uint8) error {
	return v.cmd.exec(ctx, &mlxhw.ModifySQIn{CurState: from, SQN: s.n, Ctx: mlxhw.SQContext{State: to}}, nil)
}

// quiesceSQ stops the SQ taking frames and waits (bounded by the command
// timeout) for the device to complete what it holds; the rest is counted
// lost when memory is released.
func (v *VF) quiesceSQ(ctx context.Context, s *sq) error {
	s.mu.Lock()
	s.ready, s.closing = false, true
	s.mu.Unlock()
	deadline := v.cfg.Clock.NewTimer(v.cfg.CommandTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		n := s.outstanding()
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		v.irq.Signal()
		t := v.cfg.Clock.NewTimer(time.Millisecond)
		select {
		case <-t.C():
		case <-v.gone:
			t.Stop()
			return ErrGone
		case <-deadline.C():
			t.Stop()
			return fmt.Errorf("%w: %d WQEBBs still outstanding on SQ %#x", ErrTimeout, n, s.n)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// allocRQ allocates a receive queue of n WQEs with its buffers and posts
// every WQE.
func (v *VF) allocRQ(idx, n int, c *cq, bufSize int, d []byte) (*rq, *kernel.Region, error) {
	stride := mlxhw.DSSize << mlxhw.RecvLogStride(segsPerBuf(bufSize))
	wq, err := v.dma.alloc((n*stride+kernel.PageSize-1)/kernel.PageSize, "receive queue")
	if err != nil {
		return nil, nil, err
	}
	bufs, err := v.dma.alloc((n*bufSize+kernel.PageSize-1)/kernel.PageSize, "receive buffers")
	if err != nil {
		return nil, nil, err
	}
	r := &rq{v: v, idx: idx, logSize: log2(n), stride: stride, wq: wq.Bytes, dbr: d, cq: c, bufs: bufs, bufSize: bufSize,
		batch: packet.NewBatch(packet.DefaultBatchSize)}
	if err := r.fill(v.lkey); err != nil {
		return nil, nil, err
	}
	return r, wq, nil
}

func (v *VF) createRQ(ctx context.Context, idx int, c *cq, bufSize int, dbr func() ([]byte, uint64)) (*rq, error) {
	d, da := dbr()
	r, wq, err := v.allocRQ(idx, v.cfg.RQSize, c, bufSize, d)
	if err != nil {
		return nil, err
	}
	stride := r.stride
	in := mlxhw.CreateRQIn{Ctx: mlxhw.RQContext{VSD: !v.eth.VLAN, State: mlxhw.QueueRST, FlushInError: true, CQN: c.n,
		WQ: mlxhw.WQ{Type: mlxhw.WQCyclic, PD: v.pd, DBRAddr: da, LogStride: log2(stride), LogSize: r.logSize}}, PAS: pas(wq)}
	out := mlxhw.ObjectOut{Op: mlxhw.OpCreateRQ}
	if err := v.cmd.exec(ctx, &in, &out); err != nil {
		return nil, err
	}
	r.n = out.ID
	v.destroy(mlxhw.OpDestroyRQ, r.n)
	if err := v.cmd.exec(ctx, &mlxhw.ModifyRQIn{CurState: mlxhw.QueueRST, RQN: r.n, Ctx: mlxhw.RQContext{State: mlxhw.QueueRDY}}, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// createTIR creates the receive dispatcher: a direct TIR for one queue, an
// RQT and a Toeplitz TIR over the 4-tuple for several.
func (v *VF) createTIR(ctx context.Context) error {
	tc := mlxhw.TIRContext{DispType: mlxhw.TIRDirect, InlineRQN: v.rqs[0].n, TransportDomain: v.td}
	if len(v.rqs) > 1 {
		rqt := mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: uint16(len(v.rqs))}}
		for _, r := range v.rqs {
			rqt.Ctx.RQs = append(rqt.Ctx.RQs, r.n)
		}
		out := mlxhw.ObjectOut{Op: mlxhw.OpCreateRQT}
		if err := v.cmd.exec(ctx, &rqt, &out); err != nil {
			return err
		}
		v.destroy(mlxhw.OpDestroyRQT, out.ID)
		tc = mlxhw.TIRContext{DispType: mlxhw.TIRIndirect, IndirectTable: out.ID, HashFn: mlxhw.RxHashToeplitz,
			TransportDomain: v.td, ToeplitzKey: rssKey,
			SelectorOuter: mlxhw.HashSelSrcIP | mlxhw.HashSelDstIP | mlxhw.HashSelL4SPort | mlxhw.HashSelL4DPort}
	}
	out := mlxhw.ObjectOut{Op: mlxhw.OpCreateTIR}
	if err := v.cmd.exec(ctx, &mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: tc}, &out); err != nil {
		return err
	}
	v.destroy(mlxhw.OpDestroyTIR, out.ID)
	return nil
}

// fwPages tracks the pages given to the device (spec §7.5: a count plus an
// address list, never touched by the device model).
//
// Ownership: mu guards both maps.
type fwPages struct {
	mem   kernel.Memory
	mu    sync.Mutex
	given map[uint64]*kernel.Region // page address -> its region
	live  map[*kernel.Region]int    // region -> pages still given
}

func (p *fwPages) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.given)
}

func (p *fwPages) give(ctx context.Context, c *cmdq, n int) error {
	for n > 0 {
		k := min(n, pageChunk)
		r, err := p.mem.Alloc(k)
		if err != nil {
			return fmt.Errorf("mlx: firmware pages: %w: %w", ErrNoMemory, err)
		}
		addrs := pas(r)
		if err := c.exec(ctx, &mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: addrs}, &mlxhw.ManagePagesOut{}); err != nil {
			_ = p.mem.Free(r)
			return err
		}
		p.mu.Lock()
		if p.given == nil {
			p.given, p.live = map[uint64]*kernel.Region{}, map[*kernel.Region]int{}
		}
		for _, a := range addrs {
			p.given[a] = r
		}
		p.live[r] = len(addrs)
		p.mu.Unlock()
		n -= k
	}
	return nil
}

// take reclaims up to n pages; addresses the driver never gave are device
// errors and ignored.
func (p *fwPages) take(ctx context.Context, c *cmdq, n int, v *VF) (int, error) {
	k := min(n, pageChunk)
	var out mlxhw.ManagePagesOut
	if err := c.exec(ctx, &mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: uint32(k)}, &out); err != nil {
		return 0, err
	}
	if len(out.PAS) > k {
		v.deviceError("manage pages", fmt.Errorf("%w: %d pages returned for %d asked", ErrDevice, len(out.PAS), k))
	}
	got := 0
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range out.PAS {
		r, ok := p.given[a]
		if !ok {
			v.deviceError("manage pages", fmt.Errorf("%w: returned page %#x was never given", ErrDevice, a))
			continue
		}
		delete(p.given, a)
		got++
		if p.live[r]--; p.live[r] == 0 {
			delete(p.live, r)
			_ = p.mem.Free(r)
		}
	}
	return got, nil
}

func (p *fwPages) freeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for r := range p.live {
		_ = p.mem.Free(r)
	}
	p.given, p.live = nil, nil
}

// attachInterface reads the vport, programs MTU and filters, publishes the
// link and attaches the interface.
func (v *VF) attachInterface(ctx context.Context) error {
	var q mlxhw.QueryNICVportContextOut
	if err := v.cmd.exec(ctx, &mlxhw.QueryNICVportContextIn{}, &q); err != nil {
		return err
	}
	v.mac = q.Ctx.PermanentAddress
	if v.mac == [6]byte{} || v.mac[0]&1 != 0 {
		return fmt.Errorf("%w: permanent address %x", ErrDevice, v.mac)
	}
	if err := v.setHWMTU(ctx, v.cfg.MTU); err != nil {
		return err
	}
	if err := v.setPromisc(ctx, 0); err != nil {
		return err
	}
	if err := v.armVportChange(ctx); err != nil {
		return err
	}
	v.updateLink(ctx)
	caps, enabled := v.capabilities()
	v.caps.Store(uint32(enabled))
	ifp, err := ifnet.New(ifnet.Config{
		Name: v.cfg.Name, MAC: v.mac[:], MTU: v.cfg.MTU, MaxMTU: v.cfg.MaxMTU,
		Flags:        ifnet.FlagBroadcast | ifnet.FlagMulticast,
		Capabilities: caps, Enabled: enabled, TSO: v.tsoLimits(), Media: v.media(),
		Kind: ifnet.KindEthernet, BusSerial: v.dev.Serial, HasBusSerial: true,
	}, v)
	if err != nil {
		return fmt.Errorf("mlx: %s: %w", v.cfg.Name, err)
	}
	if v.linkUp.Load() {
		ifp.SetLinkState(ifnet.LinkUp)
	} else {
		ifp.SetLinkState(ifnet.LinkDown)
	}
	v.ifp.Store(ifp)
	if err := v.cfg.Registry.Attach(ifp); err != nil {
		return fmt.Errorf("mlx: %s: %w", v.cfg.Name, err)
	}
	v.push("detach interface", func(context.Context) error {
		ifp.SetRunning(false)
		if ifp.Detached() {
			return nil
		}
		return v.cfg.Registry.Detach(ifp)
	})
	return nil
}

// capabilities derives the interface's capabilities from the HCA caps
// (spec §4.6).
func (v *VF) capabilities() (caps, enabled ifnet.Cap) {
	e := &v.eth
	caps = ifnet.CapLinkState | ifnet.CapHWStats | ifnet.CapVLANMTU
	if e.Csum {
		caps |= ifnet.CapHWCsum | ifnet.CapHWCsumIPv6
		if e.MaxLSO > 0 {
			caps |= ifnet.CapTSO
		}
	}
	if e.VLAN && e.WQEVLANInsert {
		caps |= ifnet.CapVLANHWTagging
		if e.Csum {
			caps |= ifnet.CapVLANHWCsum
		}
		if e.MaxLSO > 0 && e.Csum {
			caps |= ifnet.CapVLANHWTSO
		}
	}
	if v.cfg.MaxMTU > ifnet.DefaultMTU {
		caps |= ifnet.CapJumboMTU
	}
	return caps, caps
}

// tsoLimits: the largest LSO the device takes (max_lso_cap), the send
// ring's share, and the gather list one WQE can hold.
func (v *VF) tsoLimits() ifnet.TSOLimits {
	if v.eth.MaxLSO == 0 {
		return ifnet.TSOLimits{}
	}
	maxBytes := min(1<<v.eth.MaxLSO, len(v.sqs[0].ring.Bytes)/2)
	return ifnet.TSOLimits{MaxBytes: maxBytes, MaxSegments: maxTxSegs, MaxSegmentSize: maxBytes}
}
