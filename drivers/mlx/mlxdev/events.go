package mlxdev

import (
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// EQ and CQ engines and the UAR doorbells (spec §7.8, §7.9). All with mu
// held.

const mask24 = 0xffffff

// cqOverrunSynd is the CQ_ERROR syndrome for an overrun
// (MLX5_CQ_ERROR_SYNDROME_CQ_OVERRUN).
const cqOverrunSynd = 1

// postEventLocked posts e on every EQ whose event_bitmask has t.
func (d *Device) postEventLocked(t mlxhw.EventType, e *mlxhw.EQE) {
	for _, q := range d.objs.eqs {
		if q != nil && q.mask&t.Bit() != 0 {
			d.eqPostLocked(q, e)
		}
	}
}

// eqPostLocked writes one EQE (body, then the owner dword) and interrupts
// if the EQ is armed. An EQ whose driver let it fill stops (§7.9 overrun).
func (d *Device) eqPostLocked(q *eq, e *mlxhw.EQE) {
	if q.dead {
		return
	}
	if (q.prod-q.ci)&mask24 >= q.r.size() {
		q.dead = true
		d.hsynd = mlxhw.HealthSyndEQOverrun
		d.violate(VioEQOverrun, "EQ %d overrun: producer %d, consumer index %d, %d entries", q.n, q.prod, q.ci, q.r.size())
		return
	}
	e.Owner = mlxhw.OwnerBit(q.prod, q.r.logSize)
	b := d.scratch.eqe[:]
	_ = mlxhw.PutEQE(b, e)
	if !d.publish(q.r.entryAddr(q.prod), b) {
		return
	}
	q.prod++
	d.stats.EQEs++
	if q.armed {
		q.armed = false
		d.raise(q.intr)
	}
}

// cqPostLocked writes one CQE and raises the completion event an armed CQ
// owes. A CQE that would overrun the driver's set_ci posts CQ_ERROR and
// moves the CQ's queues to ERR instead (§7.9).
func (d *Device) cqPostLocked(c *cq, e *mlxhw.CQE) bool {
	if c.failed {
		return false
	}
	setCI, good := d.load32(c.dbr + mlxhw.DBRCQSetCI)
	if !good {
		return false
	}
	if (c.prod-setCI)&mask24 >= c.r.size() {
		c.failed = true
		d.violate(VioCQOverrun, "CQ %#x overrun: producer %d, set_ci %d, %d entries", c.n, c.prod, setCI&mask24, c.r.size())
		ev := mlxhw.EQECQError(c.n, cqOverrunSynd)
		d.postEventLocked(mlxhw.EventCQError, &ev)
		for _, n := range c.sqs {
			if s := d.objs.sqs[n]; s != nil && s.state == mlxhw.QueueRDY {
				s.state = mlxhw.QueueERR
			}
		}
		for _, n := range c.rqs {
			if r := d.objs.rqs[n]; r != nil && r.state == mlxhw.QueueRDY {
				r.state = mlxhw.QueueERR
			}
		}
		return false
	}
	e.Owner = mlxhw.OwnerBit(c.prod, c.r.logSize)
	b := d.scratch.cqe[:]
	_ = mlxhw.PutCQE(b, e)
	if !d.publish(c.r.entryAddr(c.prod), b) {
		return false
	}
	idx := c.prod
	c.prod++
	d.stats.CQEs++
	if e.IsError() {
		d.stats.ErrorCQEs++
	}
	if c.armed && (!c.armSol || e.SE || e.IsError()) && (idx-c.armCI)&mask24 < 1<<23 {
		d.cqEventDueLocked(c)
	}
	return true
}

// cqEventDueLocked applies moderation (cq_period µs, cq_max_count) to an
// armed CQ that has a new CQE at or after its armed index.
func (d *Device) cqEventDueLocked(c *cq) {
	if c.period == 0 && c.maxCount == 0 {
		d.cqFireLocked(c)
		return
	}
	c.pendingN++
	if c.maxCount > 0 && c.pendingN >= int(c.maxCount) {
		d.cqFireLocked(c)
		return
	}
	if c.period > 0 && !c.timer {
		c.timer = true
		d.after(time.Duration(c.period)*time.Microsecond, func() {
			c.timer = false
			if d.objs.cqs[c.n] == c && c.armed && c.pendingN > 0 {
				d.cqFireLocked(c)
			}
		})
	}
}

func (d *Device) cqFireLocked(c *cq) {
	c.armed = false
	c.pendingN = 0
	ev := mlxhw.EQEComp(c.n)
	d.eqPostLocked(c.eq, &ev)
}

// ---- UAR doorbells (§7.8) ----

func (d *Device) uarLocked(off uint64) (*uarObj, uint32) {
	idx := uint32(off / mlxhw.UARPageSize)
	u := d.objs.uars[idx]
	if u == nil {
		d.violate(VioUAR, "doorbell write at %#x on UAR %d, which is not allocated", off, idx)
	}
	return u, idx
}

func isBFReg(po uint64) bool { return po >= mlxhw.UARBFOffset && po%0x100 == 0 }

func (d *Device) uarWrite32Locked(off uint64, v uint32) {
	u, idx := d.uarLocked(off)
	if u == nil {
		return
	}
	po := off % mlxhw.UARPageSize
	switch {
	case po == mlxhw.UARCQDoorbell || isBFReg(po):
		u.latchOff, u.latchVal = off, v
	case po == mlxhw.UARCQDoorbell+4 || po >= mlxhw.UARBFOffset && po%0x100 == 4 && u.latchOff == off-4:
		if u.latchOff != off-4 {
			d.violate(VioUAR, "second doorbell dword at UAR %d offset %#x without the first", idx, po)
			return
		}
		u.latchOff = 0
		d.uarWrite64Locked(off-4, u.latchVal, v)
	case po == mlxhw.UAREQDoorbellArm || po == mlxhw.UAREQDoorbellNoAr:
		d.eqDoorbellLocked(idx, v, po == mlxhw.UAREQDoorbellArm)
	case po >= mlxhw.UARBFOffset:
		// BlueFlame content beyond a doorbell's first 8 bytes: accepted,
		// unused (bf = 0).
	default:
		d.violate(VioUAR, "write %#x to unknown UAR %d offset %#x", v, idx, po)
	}
}

func (d *Device) uarWrite64Locked(off uint64, dw0, dw1 uint32) {
	u, idx := d.uarLocked(off)
	if u == nil {
		return
	}
	po := off % mlxhw.UARPageSize
	switch {
	case po == mlxhw.UARCQDoorbell:
		d.cqArmLocked(idx, mlxhw.ParseCQArm(dw0, dw1))
	case isBFReg(po):
		d.sqDoorbellLocked(idx, mlxhw.ParseSQDoorbell(dw0, dw1))
	case po > mlxhw.UARBFOffset:
		// BlueFlame content.
	default:
		d.uarWrite32Locked(off, dw0)
		d.uarWrite32Locked(off+4, dw1)
	}
}

func (d *Device) cqArmLocked(uar uint32, a mlxhw.CQArm) {
	c := d.objs.cqs[a.CQN]
	if c == nil {
		d.violate(VioDoorbell, "CQ arm for CQ %#x, which does not exist", a.CQN)
		return
	}
	if c.uar != d.objs.uars[uar] {
		d.violate(VioUAR, "CQ %#x armed through UAR %d, not its own", a.CQN, uar)
	}
	c.armed, c.armSol, c.armCI, c.pendingN = true, a.Cmd == mlxhw.CQArmSolicited, a.CI&mask24, 0
	if n := (c.prod - c.armCI) & mask24; n > 0 && n <= c.r.size() {
		d.cqFireLocked(c)
	}
}

func (d *Device) eqDoorbellLocked(uar uint32, v uint32, arm bool) {
	n, ci := mlxhw.ParseEQDoorbell(v)
	var q *eq
	if int(n) < len(d.objs.eqs) {
		q = d.objs.eqs[n]
	}
	if q == nil {
		d.violate(VioDoorbell, "EQ doorbell for EQ %d, which does not exist", n)
		return
	}
	if q.uar != d.objs.uars[uar] {
		d.violate(VioUAR, "EQ %d doorbell through UAR %d, not its own", n, uar)
	}
	if (q.prod-ci)&mask24 > q.r.size() {
		d.violate(VioDoorbell, "EQ %d consumer index %d beyond producer %d", n, ci, q.prod)
	}
	q.ci = ci
	if !arm {
		return
	}
	q.armed = true
	if (q.prod-q.ci)&mask24 != 0 && !q.dead {
		q.armed = false
		d.raise(q.intr)
	}
}
