package mlxdev

import (
	"encoding/binary"
	"errors"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// The command engine (spec §7.4). Doorbell bits are processed inside the
// doorbell write (or after Config.CommandLatency of device time), with mu
// held, one slot after the other in slot order.

// cmdDoorbellLocked handles a write of cmd_dbell.
func (d *Device) cmdDoorbellLocked(v uint32) {
	if !d.cmdqSet {
		d.violate(VioCmdq, "command doorbell %#x before the command queue is configured", v)
		return
	}
	if d.now().Before(d.initUntil) {
		d.violate(VioCmdq, "command doorbell %#x while the device is initializing", v)
	}
	for i := range mlxhw.CmdqSlots {
		bit := uint32(1) << i
		if v&bit == 0 {
			continue
		}
		if d.cfg.CommandLatency > 0 {
			slot := i
			d.after(d.cfg.CommandLatency, func() { d.runSlotLocked(slot) })
			continue
		}
		d.runSlotLocked(i)
	}
}

// runSlotLocked executes the command in slot i and completes its entry.
func (d *Device) runSlotLocked(i int) {
	if !d.cmdqSet || d.removed {
		return
	}
	base := d.cmdqAddr() + uint64(i)*mlxhw.CmdEntrySize
	ent := d.scratch.ent[:]
	if !d.dmaRead(base, ent) {
		return
	}
	var e mlxhw.CmdEntry
	_ = mlxhw.ParseCmdEntry(ent, &e)
	if !e.HWOwned {
		d.stats.SpuriousDoorbells++
		return
	}
	status := e.Check()
	if status == mlxhw.DeliveryOK && d.faults.badToken {
		d.faults.badToken = false
		status = mlxhw.DeliveryToken
	}
	var in []byte
	if status == mlxhw.DeliveryOK {
		var err error
		in, err = mlxhw.GatherInput(devDMA{d}, &e, d.scratch.in, d.scratch.blk[:])
		status = chainStatus(err)
	}
	if status == mlxhw.DeliveryOK {
		h, _ := mlxhw.PeekInHeader(in)
		if d.faults.timeouts[h.Opcode] {
			d.faults.timedOut++
			return // ownership never returns (§7.12)
		}
		if d.cfg.Strict {
			if clean, err := mlxhw.ReservedClear(in); err == nil && !clean {
				d.violate(VioReserved, "%v input with nonzero reserved bits", h.Opcode)
				status = mlxhw.DeliveryReservedNotZ
			}
		}
	}
	if status == mlxhw.DeliveryOK {
		out := d.execLocked(in, int(e.OutLen))
		status = chainStatus(mlxhw.ScatterOutput(devDMA{d}, &e, out, d.scratch.blk[:]))
	}
	if status != mlxhw.DeliveryOK {
		d.stats.DeliveryErrors++
		e.Out = [mlxhw.CmdInlineSize]byte{}
	}
	copy(ent[0x20:0x30], e.Out[:])
	ent[0x3f] = uint8(status) << 1
	if !d.dmaWrite(base+0x20, ent[0x20:0x30]) || !d.store32(base+0x3c, binary.BigEndian.Uint32(ent[0x3c:])) {
		return
	}
	ev := mlxhw.EQECmd(1 << i)
	d.postEventLocked(mlxhw.EventCmd, &ev)
}

// chainStatus maps a chain walk error to its delivery status.
func chainStatus(err error) mlxhw.DeliveryStatus {
	if err == nil {
		return mlxhw.DeliveryOK
	}
	var ce *mlxhw.ChainError
	if errors.As(err, &ce) {
		return ce.Status
	}
	return mlxhw.DeliveryFWInternal
}

// result is a handler's answer: an output (status OK) or a failure.
type result struct {
	out  mlxhw.Output
	st   mlxhw.Status
	synd uint32
}

func ok(out mlxhw.Output) result { return result{out: out} }

func fail(st mlxhw.Status, synd uint32) result { return result{st: st, synd: synd} }

// Syndromes the model reports with its failures: the opcode in the high
// half and a check number in the low, so a test can tell the checks apart.
func synd(op mlxhw.Opcode, check uint16) uint32 { return uint32(op)<<16 | uint32(check) }

// execLocked runs one command input and returns its output bytes (a view
// of d.scratch.out).
func (d *Device) execLocked(in []byte, outLen int) []byte {
	d.stats.Commands++
	d.outLen = outLen
	h, _ := mlxhw.PeekInHeader(in)
	r := d.dispatchLocked(h, in)
	var out []byte
	if r.st == mlxhw.StatusOK {
		out = r.out.AppendTo(d.scratch.out[:0])
		if len(out) > outLen && !truncatable(h.Opcode) {
			r = fail(mlxhw.StatusBadOutpLen, uint32(len(out)))
		}
	}
	if f, hit := d.faults.failures[h.Opcode]; hit && r.st == mlxhw.StatusOK {
		r = fail(f.status, f.syndrome)
	}
	if r.st != mlxhw.StatusOK {
		d.stats.CommandFailures++
		d.log.Debug("mlxdev: command failed", "op", h.Opcode.String(), "status", r.st.String(), "syndrome", r.synd)
		out = mlxhw.AppendErrorOutput(d.scratch.out[:0], r.st, r.synd)
	}
	return out
}

// truncatable outputs may be cut to the driver's outlen: the vport
// context's address list.
func truncatable(op mlxhw.Opcode) bool { return op == mlxhw.OpQueryNICVportContext }

// allowed is the state table of §7.4.
func allowed(p Phase, op mlxhw.Opcode) bool {
	switch p {
	case PhaseCmdqReady:
		return op == mlxhw.OpEnableHCA || op == mlxhw.OpQueryISSI || op == mlxhw.OpNOP
	case PhaseEnabled:
		switch op {
		case mlxhw.OpQueryISSI, mlxhw.OpSetISSI, mlxhw.OpQueryPages, mlxhw.OpManagePages, mlxhw.OpQueryHCACap,
			mlxhw.OpSetHCACap, mlxhw.OpAccessReg, mlxhw.OpInitHCA, mlxhw.OpDisableHCA, mlxhw.OpNOP:
			return true
		}
		return false
	case PhaseRunning:
		return op != mlxhw.OpEnableHCA && op != mlxhw.OpInitHCA
	}
	return false
}

// dispatchLocked checks the opcode, state and input, then runs the handler.
func (d *Device) dispatchLocked(h mlxhw.InHeader, raw []byte) result {
	op := h.Opcode
	if mlxhw.NewInput(op) == nil {
		return fail(mlxhw.StatusBadOp, uint32(op))
	}
	if !allowed(d.phase, op) {
		return fail(mlxhw.StatusBadSysState, synd(op, uint16(d.phase)))
	}
	in, err := mlxhw.DecodeInput(raw)
	if err != nil {
		if errors.Is(err, mlxhw.ErrShort) || errors.Is(err, mlxhw.ErrLength) {
			return fail(mlxhw.StatusBadInpLen, uint32(len(raw)))
		}
		return fail(mlxhw.StatusBadParam, synd(op, 0xffff))
	}
	switch in := in.(type) {
	case *mlxhw.SimpleIn:
		return d.simpleCmd(in)
	case *mlxhw.ObjectIn:
		return d.objectCmd(in)
	case *mlxhw.ManagePagesIn:
		return d.managePages(in, d.outLen)
	case *mlxhw.SetHCACapIn:
		return d.setHCACap(in)
	case *mlxhw.AccessRegIn:
		return d.accessReg(in)
	case *mlxhw.SetDriverVersionIn:
		return ok(&mlxhw.EmptyOut{Op: op})
	case *mlxhw.CreateMkeyIn:
		return d.createMkey(in)
	case *mlxhw.CreateEQIn:
		return d.createEQ(in)
	case *mlxhw.CreateCQIn:
		return d.createCQ(in)
	case *mlxhw.ModifyCQIn:
		return d.modifyCQ(in)
	case *mlxhw.CreateTISIn:
		return d.createTIS(in)
	case *mlxhw.CreateSQIn:
		return d.createSQ(in)
	case *mlxhw.ModifySQIn:
		return d.modifySQ(in)
	case *mlxhw.CreateRQIn:
		return d.createRQ(in)
	case *mlxhw.ModifyRQIn:
		return d.modifyRQ(in)
	case *mlxhw.RQTIn:
		return d.rqtCmd(in)
	case *mlxhw.TIRIn:
		return d.tirCmd(in)
	case *mlxhw.QueryVportStateIn:
		return d.queryVportState(in)
	case *mlxhw.QueryNICVportContextIn:
		return d.queryNICVportContext(in)
	case *mlxhw.ModifyNICVportContextIn:
		return d.modifyNICVportContext(in)
	case *mlxhw.QueryVportCounterIn:
		return d.queryVportCounter(in)
	case *mlxhw.CreateFlowTableIn:
		return d.createFlowTable(in)
	case *mlxhw.FlowTableIn:
		return d.flowTableCmd(in)
	case *mlxhw.FlowGroupIn:
		return d.flowGroupCmd(in)
	case *mlxhw.FlowEntryIn:
		return d.flowEntryCmd(in)
	}
	return fail(mlxhw.StatusBadOp, uint32(op))
}
