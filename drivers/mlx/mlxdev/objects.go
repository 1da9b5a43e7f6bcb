package mlxdev

import (
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Object numbering (spec §7.7, sim): each kind is allocated next-fit from
// its own disjoint range, so a number of the wrong kind fails loudly with
// IX_ERR (outside the kind's range) or BAD_RES (in range, not allocated).
type kind uint8

const (
	kUAR kind = iota
	kPD
	kTD
	kMkey
	kEQ
	kCQ
	kSQ
	kRQ
	kTIS
	kTIR
	kRQT
	kFT
	kFG
	kQC
	numKinds
)

// idRange is a kind's numbers: base .. base+n-1.
var idRange = [numKinds]struct{ base, n uint32 }{
	kUAR:  {mlxhw.FirstUAR, mlxhw.LastUAR - mlxhw.FirstUAR + 1},
	kPD:   {0x10, 0x10}, // 16 PDs (below log_max_pd 8) so that PD numbers never meet TD numbers
	kTD:   {0x20, 1 << 4},
	kMkey: {0x100, 1 << 4},
	kEQ:   {0x01, 1 << 3},
	kCQ:   {0x400, 1 << 8},
	kSQ:   {0x800, 1 << 8},
	kRQ:   {0xc00, 1 << 8},
	kTIS:  {0x1000, 1 << 2},
	kTIR:  {0x1400, 1 << 4},
	kRQT:  {0x1800, 1 << 2},
	kFT:   {0x10, 1 << 4},
	kFG:   {0x10, 1 << 6},
	kQC:   {0x01, 15},
}

func inRange(k kind, id uint32) bool { r := idRange[k]; return id >= r.base && id-r.base < r.n }

// ref is what every object carries: how many others refer to it.
type ref struct{ refs int }

type uarObj struct {
	ref
	latchOff uint64 // first half of a 2x32-bit doorbell (0 = none)
	latchVal uint32
}

type mkey struct {
	ref
	key uint8
	pd  *ref
}

type eq struct {
	ref
	n     uint8
	r     ring
	uar   *uarObj
	intr  uint8
	mask  uint64
	prod  uint32
	ci    uint32
	armed bool
	dead  bool // overrun: the EQ stopped (§7.9)
}

type cq struct {
	ref
	n        uint32
	r        ring
	uar      *uarObj
	eq       *eq
	dbr      uint64
	prod     uint32
	armed    bool
	armSol   bool
	armCI    uint32
	period   uint16 // µs
	maxCount uint16
	pendingN int  // CQEs since arming that have not raised an event (moderation)
	timer    bool // a moderation timer runs
	failed   bool // overrun: CQ_ERROR posted, no more CQEs
	sqs, rqs []uint32
}

type tis struct {
	ref
	prio uint8
	td   *ref
}

// wq is the part of a SQ or RQ the engines share.
type wq struct {
	ref
	n        uint32
	r        ring // WQEBBs (SQ) or strides (RQ)
	cq       *cq
	pd       *ref
	dbr      uint64
	state    uint8
	flushErr bool
	cons     uint32 // consumer counter (16 bits significant)
	errAt    int    // fault: error CQE on the errAt-th WQE/packet from now (0 = none)
}

type sq struct {
	wq
	uarN      uint32
	uar       *uarObj
	tis       *tis
	minInline uint8
}

type rq struct {
	wq
	vsd     bool
	linked  bool
	head    uint16 // linked list: next WQE index
	rqtRefs int
}

type rqt struct {
	ref
	maxSize uint16
	rqs     []*rq
	ids     []uint32
}

type tir struct {
	ref
	n        uint32
	disp     uint8
	inline   *rq
	table    *rqt
	hashFn   uint8
	key      [mlxhw.ToeplitzKeySize]byte
	selector uint32
	td       *ref
}

type flowTable struct {
	ref
	typ, level uint8
	entries    map[uint32]*fte
}

type fte struct {
	catchAll bool
	dmac     [6]byte
	tir      *tir
}

type flowGroup struct {
	ref
	table *flowTable
}

// objects are the device's object tables (mu held).
type objects struct {
	uars      map[uint32]*uarObj
	pds       map[uint32]*ref
	tds       map[uint32]*ref
	mkeys     map[uint32]*mkey // by mkey index
	eqs       [1 + 8]*eq       // by EQN 1..8
	cqs       map[uint32]*cq
	sqs       map[uint32]*sq
	rqs       map[uint32]*rq
	tiss      map[uint32]*tis
	tirs      map[uint32]*tir
	rqts      map[uint32]*rqt
	fts       map[uint32]*flowTable
	fgs       map[uint32]*flowGroup
	qcounters map[uint32]bool
	next      [numKinds]uint32
	root      *flowTable // SET_FLOW_TABLE_ROOT (compat mode)
	defTIR    *tir       // lowest-numbered TIR (single-TIR mode)

	destroyedByReset int
}

func (o *objects) reset() {
	*o = objects{
		uars: map[uint32]*uarObj{}, pds: map[uint32]*ref{}, tds: map[uint32]*ref{},
		mkeys: map[uint32]*mkey{}, cqs: map[uint32]*cq{}, sqs: map[uint32]*sq{}, rqs: map[uint32]*rq{},
		tiss: map[uint32]*tis{}, tirs: map[uint32]*tir{}, rqts: map[uint32]*rqt{}, fts: map[uint32]*flowTable{},
		fgs: map[uint32]*flowGroup{}, qcounters: map[uint32]bool{}, destroyedByReset: o.destroyedByReset,
	}
}

func (o *objects) eqCount() (n int) {
	for _, e := range o.eqs {
		if e != nil {
			n++
		}
	}
	return n
}

func (o *objects) fteCount() (n int) {
	for _, t := range o.fts {
		n += len(t.entries)
	}
	return n
}

func (o *objects) count() int {
	return len(o.uars) + len(o.pds) + len(o.tds) + len(o.mkeys) + o.eqCount() + len(o.cqs) + len(o.sqs) +
		len(o.rqs) + len(o.tiss) + len(o.tirs) + len(o.rqts) + len(o.fts) + len(o.fgs) + o.fteCount() +
		len(o.qcounters)
}

// alloc returns a free number of kind k next-fit, or false when the kind is
// exhausted.
func (o *objects) alloc(k kind, used func(uint32) bool) (uint32, bool) {
	r := idRange[k]
	for i := range r.n {
		id := r.base + (o.next[k]+i)%r.n
		if !used(id) {
			o.next[k] = (id - r.base + 1) % r.n
			return id, true
		}
	}
	return 0, false
}

// lookupStatus is the status for a number of kind k that names nothing.
func lookupStatus(k kind, id uint32) mlxhw.Status {
	if !inRange(k, id) {
		return mlxhw.StatusIxErr
	}
	return mlxhw.StatusBadRes
}

func (o *objects) updateDefaultTIR() {
	o.defTIR = nil
	for n, t := range o.tirs {
		if o.defTIR == nil || n < o.defTIR.n {
			o.defTIR = t
		}
	}
}

// destroyAllLocked drops every object (TEARDOWN_HCA, DISABLE_HCA, FLR).
func (d *Device) destroyAllLocked() {
	n := d.objs.count()
	d.objs.destroyedByReset += n
	d.objs.reset()
}

// resetLocked returns the device to RESET (New, FLR): objects and pages
// are forgotten, the command queue unconfigured, the init delay restarted.
func (d *Device) resetLocked(flr bool) {
	if flr {
		d.destroyAllLocked()
	} else {
		d.objs.reset()
	}
	d.gen++
	d.phase = PhaseReset
	d.cmdqH, d.cmdqL, d.cmdqSet, d.nicIfc = 0, 0, false, 0
	d.issi = 0
	d.hsynd, d.hextSynd = 0, 0
	d.pg = pages{}
	d.caps.reset()
	d.applyKnobs(&d.caps)
	d.vport.reset(d.cfg.MAC)
	d.msix = [mlxhw.MSIXVectors]msixEntry{}
	for i := range d.msix {
		d.msix[i].ctrl = 1 // entries come out of reset masked (PCI 3.0 §6.8.2.9)
	}
	d.pba = 0
	d.initUntil = d.now().Add(d.cfg.InitDelay)
}

// healthStallLocked freezes or resumes the health counter.
func (d *Device) healthStallLocked(on bool) {
	if on == d.hstall {
		return
	}
	if on {
		d.hfrozen = d.healthCounterLocked()
		d.hstallAt = d.now()
	} else {
		d.hskip += d.now().Sub(d.hstallAt)
	}
	d.hstall = on
}
