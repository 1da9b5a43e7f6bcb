package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Faults injects the failures of spec §7.12. Its state is guarded by
// Device.mu; every method takes it.
type Faults struct {
	d        *Device
	timeouts map[mlxhw.Opcode]bool
	failures map[mlxhw.Opcode]cmdFailure
	badToken bool
	timedOut int
}

type cmdFailure struct {
	status   mlxhw.Status
	syndrome uint32
}

// Faults returns the device's fault injection controls.
func (d *Device) Faults() *Faults { return &d.faults }

// CommandTimeout makes every later command with opcode op keep its
// ownership bit forever (on = false clears it).
func (f *Faults) CommandTimeout(op mlxhw.Opcode, on bool) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if f.timeouts == nil {
		f.timeouts = map[mlxhw.Opcode]bool{}
	}
	if on {
		f.timeouts[op] = true
	} else {
		delete(f.timeouts, op)
	}
}

// TimedOut returns how many commands the timeout fault swallowed.
func (f *Faults) TimedOut() int {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	return f.timedOut
}

// CommandFailure makes later successful commands with opcode op return
// status and syndrome instead; status OK clears it.
func (f *Faults) CommandFailure(op mlxhw.Opcode, status mlxhw.Status, syndrome uint32) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if f.failures == nil {
		f.failures = map[mlxhw.Opcode]cmdFailure{}
	}
	if status == mlxhw.StatusOK {
		delete(f.failures, op)
	} else {
		f.failures[op] = cmdFailure{status, syndrome}
	}
}

// BadTokenNext makes the next command complete with delivery status 0x2
// (token error) without executing.
func (f *Faults) BadTokenNext() {
	f.d.mu.Lock()
	f.badToken = true
	f.d.mu.Unlock()
}

// ErrorCQEOnSQ makes the n-th WQE the SQ processes from now (n >= 1) fail
// with a LOCAL_QP_OP error CQE. It reports whether the SQ exists.
func (f *Faults) ErrorCQEOnSQ(sqn uint32, n int) bool {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	s := f.d.objs.sqs[sqn]
	if s == nil || n < 1 {
		return false
	}
	s.errAt = n
	return true
}

// ErrorCQEOnRQ makes the n-th packet the RQ receives from now (n >= 1)
// complete with an error CQE and be dropped.
func (f *Faults) ErrorCQEOnRQ(rqn uint32, n int) bool {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	r := f.d.objs.rqs[rqn]
	if r == nil || n < 1 {
		return false
	}
	r.errAt = n
	return true
}

// StallHealth freezes (or resumes) the health counter.
func (f *Faults) StallHealth(on bool) {
	f.d.mu.Lock()
	f.d.healthStallLocked(on)
	f.d.mu.Unlock()
}

// SetHealthSynd sets health.synd and ext_synd (0 clears).
func (f *Faults) SetHealthSynd(synd uint8, ext uint16) {
	f.d.mu.Lock()
	f.d.hsynd, f.d.hextSynd = synd, ext
	f.d.mu.Unlock()
}

// SetNICInterface forces the NIC interface state reported in
// cmdq_addr_l_sz bits 10:8 (e.g. mlxhw.NICIfcSWReset).
func (f *Faults) SetNICInterface(state uint8) {
	f.d.mu.Lock()
	f.d.nicIfc = state & mlxhw.NICIfcMask
	f.d.mu.Unlock()
}

// PageRequest posts a PAGE_REQUEST EQE asking for n more pages (n > 0) or
// for n pages back (n < 0); QUERY_PAGES op_mod 3 then reports the demand.
// It reports whether the device was RUNNING.
func (f *Faults) PageRequest(n int32) bool {
	d := f.d
	d.mu.Lock()
	defer d.unlock()
	if d.phase != PhaseRunning || n == 0 {
		return false
	}
	d.pg.extra = max(d.pg.extra+int(n), 0)
	e := mlxhw.EQEPageRequest(0, n)
	d.postEventLocked(mlxhw.EventPageRequest, &e)
	return true
}

// Clear removes every command fault.
func (f *Faults) Clear() {
	f.d.mu.Lock()
	f.timeouts, f.failures, f.badToken = nil, nil, false
	f.d.mu.Unlock()
}

// SurpriseRemove pulls the device (§7.3): every MMIO read returns all
// ones, writes are dropped, DMA stops and arriving frames are dropped with
// reason "removed". It cannot be undone (a new device is a hot add).
func (d *Device) SurpriseRemove() {
	d.mu.Lock()
	d.removed = true
	d.gone.Store(true)
	d.irq = 0
	d.mu.Unlock()
}

// FLR is a function-level reset (§7.3): every object is destroyed, the
// pages are forgotten, the command queue unconfigured and MSI-X reset; the
// device is back in RESET with its init delay running. Config space keeps
// its BAR addresses; the command register's memory and bus master bits
// are cleared, as a PCIe FLR does.
func (d *Device) FLR() {
	cmd := d.pcfg.Read16(0x04)
	d.pcfg.Write16(0x04, cmd&^0x0006)
	ctl := d.pcfg.Read16(d.msixOff + 2)
	d.pcfg.Write16(d.msixOff+2, ctl&^0xc000)
	d.mu.Lock()
	d.refreshConfigLocked()
	if !d.removed {
		d.resetLocked(true)
	}
	d.mu.Unlock()
}

// scratch holds the buffers the engines reuse (mu held), so steady-state
// commands, transmit and receive allocate nothing.
type scratch struct {
	ent     [mlxhw.CmdEntrySize]byte
	blk     [mlxhw.MailboxSize]byte
	in      []byte
	out     []byte
	eqe     [mlxhw.EQESize]byte
	cqe     [mlxhw.CQESize]byte
	wqe     [mlxhw.MaxSendWQESize]byte
	sw      mlxhw.SendWQE
	segs    [mlxhw.MaxDS]mlxhw.DataSeg
	frame   [maxLSO + 512]byte
	seg     [maxLSO + 512]byte
	rwqe    [1024]byte
	rsegs   [64]mlxhw.DataSeg
	rxFrame [1 << 16]byte
	hashIn  [36]byte
}

func (s *scratch) init() {
	s.in = make([]byte, mlxhw.MaxMessageLen)
	s.out = make([]byte, 0, mlxhw.MaxMessageLen+mlxhw.CapSize)
}
