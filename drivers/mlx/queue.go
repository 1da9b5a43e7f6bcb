package mlx

import (
	"fmt"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
)

// Event and completion queue consumers (spec §3.4, §3.7, §7.9). Both rings
// use the one-bit lap parity of the consumer counter as ownership; the
// driver reads the dword holding the owner byte atomically and decodes the
// entry only when it is software-owned. Nothing an entry says is trusted:
// the callers check every number in it against their own state.

// eqBatchCI is how many EQEs the consumer handles between CI updates; the
// device considers an EQ overrun if the CI lags by 128 (EQPollingBudget).
const eqBatchCI = mlxhw.EQPollingBudget / 2

// eq is one event queue.
//
// Ownership: ci is touched only by the worker goroutine (and by the test
// harness driving poll directly); the rest is immutable after creation.
type eq struct {
	n       uint8 // eqn
	logSize uint8
	vector  int
	mem     []byte // 1<<logSize EQEs
	ci      uint32
}

// eqEntries returns the EQ size for a request: roundup_pow_of_two(n +
// spare) (spec §3.7), at most the model's log_max_eq_sz.
func eqLogSize(n int, maxLog uint8) uint8 {
	want := n + mlxhw.EQNumSpare
	l := uint8(0)
	for 1<<l < want {
		l++
	}
	if maxLog > 0 && l > maxLog {
		l = maxLog
	}
	return l
}

// poll consumes up to budget software-owned EQEs, calling handle for each,
// and returns how many it consumed and whether it stopped because of the
// budget (more may be pending). Every eqBatchCI entries it updates the CI
// without arming (UAR 0x48); the caller arms with arm. A decode error
// (impossible for a 64-byte entry, but checked) is counted by the caller
// through handle's nil argument.
func (q *eq) poll(bar pci.BAR, uarOff uint64, budget int, e *mlxhw.EQE, handle func(*mlxhw.EQE)) (n int, more bool) {
	mask := uint32(1)<<q.logSize - 1
	for n < budget {
		off := int(q.ci&mask) * mlxhw.EQESize
		own := uint8(loadBE32(q.mem, off+0x3c))
		if !mlxhw.SWOwned(own, q.ci, q.logSize) {
			return n, false
		}
		if err := mlxhw.DecodeEQE(q.mem[off:off+mlxhw.EQESize], e); err != nil {
			handle(nil)
		} else {
			handle(e)
		}
		q.ci++
		n++
		if n%eqBatchCI == 0 {
			bar.Write32(uarOff+mlxhw.UAREQDoorbellNoAr, mlxhw.EQDoorbell(q.n, q.ci))
		}
	}
	return n, true
}

// arm publishes the CI and re-arms the EQ (UAR 0x40).
func (q *eq) arm(bar pci.BAR, uarOff uint64) {
	bar.Write32(uarOff+mlxhw.UAREQDoorbellArm, mlxhw.EQDoorbell(q.n, q.ci))
}

// cq is one completion queue.
//
// Ownership: cc and armSN are touched only by the worker goroutine (the
// CQ's consumer); dbr is shared with the device (atomic stores).
type cq struct {
	n       uint32 // cqn
	logSize uint8
	eqn     uint8
	mem     []byte
	dbr     []byte // 8 bytes: set_ci, arm
	cc      uint32
	armSN   uint8
	dead    bool // destroyed or being destroyed: no more doorbells (VF.workMu)
}

// next decodes the CQE at the consumer counter into c if the device has
// written it. ok is false when the entry is still the device's. An owned
// entry that does not decode (compressed format, INVALID opcode) is an
// error; the caller consumes it and counts it.
func (q *cq) next(c *mlxhw.CQE) (ok bool, err error) {
	off := int(mlxhw.EntryIndex(q.cc, q.logSize)) * mlxhw.CQESize
	own := uint8(loadBE32(q.mem, off+0x3c))
	if !mlxhw.SWOwned(own, q.cc, q.logSize) {
		return false, nil
	}
	b := q.mem[off : off+mlxhw.CQESize]
	if own>>4 == mlxhw.CQEInvalid {
		return true, fmt.Errorf("%w: CQ %#x entry %d: owned with opcode INVALID", ErrDevice, q.n, q.cc)
	}
	if err := mlxhw.DecodeCQE(b, c); err != nil {
		return true, fmt.Errorf("%w: CQ %#x entry %d: %w", ErrDevice, q.n, q.cc, err)
	}
	return true, nil
}

// update publishes the consumer counter in the doorbell record (set_ci).
func (q *cq) update() { storeBE32(q.dbr, mlxhw.DBRCQSetCI, q.cc&0xffffff) }

// arm requests one completion event for the next CQE (spec §3.4): the arm
// word into the DBR, then the 64-bit UAR write.
func (q *cq) arm(bar pci.BAR, uarOff uint64) {
	if q.dead {
		return
	}
	a := mlxhw.CQArm{SN: q.armSN & 3, Cmd: mlxhw.CQArmNext, CI: q.cc & 0xffffff, CQN: q.n}
	q.update()
	storeBE32(q.dbr, mlxhw.DBRCQArm, a.Dword0())
	bar.Write64(uarOff+mlxhw.UARCQDoorbell, a.Value())
}

// pas returns the page addresses of a region (4 KiB pages, log_page_size 0).
func pas(r *kernel.Region) []uint64 {
	p := make([]uint64, len(r.PFNs))
	for i, pfn := range r.PFNs {
		p[i] = pfn << kernel.PageShift
	}
	return p
}
