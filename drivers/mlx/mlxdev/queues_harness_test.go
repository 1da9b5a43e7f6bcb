package mlxdev

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"unsafe"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
)

// Driver-side queue helpers for the scripted tests.

// storeBE32 and loadBE32 are the driver's atomic doorbell record and
// ownership accesses (see the package doc on memory ordering).
func storeBE32(b []byte, v uint32) {
	var tmp [4]byte
	binary.BigEndian.PutUint32(tmp[:], v)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), *(*uint32)(unsafe.Pointer(&tmp[0])))
}

func loadBE32(b []byte) uint32 {
	v := atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0])))
	var tmp [4]byte
	*(*uint32)(unsafe.Pointer(&tmp[0])) = v
	return binary.BigEndian.Uint32(tmp[:])
}

// env is a RUNNING device with the shared resources a NIC driver makes.
type env struct {
	*harness
	uar, pd, td, lkey, tis uint32
	dbrs                   *kernel.Region // doorbell records, 8 bytes each
	nextDBR                int
}

func newEnv(h *harness) *env {
	h.bringUp()
	e := &env{harness: h}
	e.uar = h.id(simple(mlxhw.OpAllocUAR))
	e.pd = h.id(simple(mlxhw.OpAllocPD))
	e.td = h.id(simple(mlxhw.OpAllocTransportDomain))
	mk := &mlxhw.CreateMkeyIn{Ctx: mlxhw.MkeyContext{LocalRead: true, LocalWrite: true, QPN: 0xffffff,
		Key: 0x5a, Length64: true, PD: e.pd}}
	e.lkey = mlxhw.LKey(h.id(mk), 0x5a)
	e.tis = h.id(&mlxhw.CreateTISIn{Ctx: mlxhw.TISContext{TransportDomain: e.td}})
	e.dbrs = h.alloc(1)
	return e
}

func (e *env) dbr() ([]byte, uint64) {
	off := e.nextDBR * 8
	e.nextDBR++
	return e.dbrs.Bytes[off : off+8], e.dbrs.GPA(off)
}

func pasOf(r *kernel.Region) []uint64 {
	p := make([]uint64, r.Pages())
	for i := range p {
		p[i] = r.GPA(i * 4096)
	}
	return p
}

func pagesFor(bytes int) int { return max(1, (bytes+4095)/4096) }

type teq struct {
	e       *env
	n       uint8
	logSize uint8
	buf     *kernel.Region
	ci      uint32
}

func (e *env) createEQ(logSize uint8, mask uint64, intr uint8) *teq {
	buf := e.alloc(pagesFor(64 << logSize))
	mlxhw.InitEQ(buf.Bytes)
	in := &mlxhw.CreateEQIn{Ctx: mlxhw.EQContext{LogSize: logSize, UARPage: e.uar, Intr: intr}, EventBitmask: mask, PAS: pasOf(buf)}
	q := &teq{e: e, n: uint8(e.id(in)), logSize: logSize, buf: buf}
	q.doorbell(true)
	return q
}

func (q *teq) doorbell(arm bool) {
	off := mlxhw.UAROffset(q.e.uar) + mlxhw.UAREQDoorbellNoAr
	if arm {
		off = mlxhw.UAROffset(q.e.uar) + mlxhw.UAREQDoorbellArm
	}
	q.e.bar.Write32(off, mlxhw.EQDoorbell(q.n, q.ci))
}

// poll returns the EQEs the device wrote, advancing the CI; arm re-arms.
func (q *teq) poll(arm bool) []mlxhw.EQE {
	var out []mlxhw.EQE
	for {
		i := mlxhw.EntryIndex(q.ci, q.logSize)
		b := q.buf.Bytes[i*64 : i*64+64]
		loadBE32(b[60:])
		var ev mlxhw.EQE
		if err := mlxhw.ParseEQE(b, q.ci, q.logSize, &ev); err != nil {
			break
		}
		out = append(out, ev)
		q.ci++
	}
	q.doorbell(arm)
	return out
}

type tcq struct {
	e       *env
	n       uint32
	logSize uint8
	buf     *kernel.Region
	dbr     []byte
	cc      uint32
}

func (e *env) createCQ(logSize uint8, eqn uint8) *tcq {
	buf := e.alloc(pagesFor(64 << logSize))
	mlxhw.InitCQ(buf.Bytes)
	dbr, dbrA := e.dbr()
	in := &mlxhw.CreateCQIn{Ctx: mlxhw.CQContext{LogSize: logSize, UARPage: e.uar, EQN: eqn, DBRAddr: dbrA}, PAS: pasOf(buf)}
	return &tcq{e: e, n: e.id(in), logSize: logSize, buf: buf, dbr: dbr}
}

// poll returns new CQEs and publishes the consumer index in the DBR.
func (c *tcq) poll() []mlxhw.CQE {
	var out []mlxhw.CQE
	for {
		i := mlxhw.EntryIndex(c.cc, c.logSize)
		b := c.buf.Bytes[i*64 : i*64+64]
		loadBE32(b[60:])
		var cqe mlxhw.CQE
		err := mlxhw.ParseCQE(b, c.cc, c.logSize, &cqe)
		if errors.Is(err, mlxhw.ErrNotOwned) {
			break
		}
		if err != nil {
			c.e.t.Fatalf("CQ %#x entry %d: %v", c.n, c.cc, err)
		}
		out = append(out, cqe)
		c.cc++
	}
	storeBE32(c.dbr[0:], c.cc&0xffffff)
	return out
}

func (c *tcq) arm(solicited bool) {
	a := mlxhw.CQArm{CI: c.cc, CQN: c.n}
	if solicited {
		a.Cmd = mlxhw.CQArmSolicited
	}
	storeBE32(c.dbr[4:], a.Dword0())
	c.e.bar.Write64(mlxhw.UAROffset(c.e.uar)+mlxhw.UARCQDoorbell, a.Value())
}

type tsq struct {
	e       *env
	n       uint32
	logSize uint8
	buf     *kernel.Region
	dbr     []byte
	pc      uint16
	cq      *tcq
}

func (e *env) createSQ(cq *tcq, logSize uint8) *tsq {
	buf := e.alloc(pagesFor(64 << logSize))
	dbr, dbrA := e.dbr()
	in := &mlxhw.CreateSQIn{Ctx: mlxhw.SQContext{FlushInError: true, CQN: cq.n, TISListSize: 1, TISNum0: e.tis,
		WQ: mlxhw.WQ{Type: mlxhw.WQCyclic, PD: e.pd, UARPage: e.uar, DBRAddr: dbrA, LogStride: 6, LogSize: logSize}},
		PAS: pasOf(buf)}
	s := &tsq{e: e, n: e.id(in), logSize: logSize, buf: buf, dbr: dbr, cq: cq}
	s.modify(mlxhw.QueueRST, mlxhw.QueueRDY)
	return s
}

func (s *tsq) modify(cur, next uint8) mlxhw.Status {
	r := s.e.exec(&mlxhw.ModifySQIn{CurState: cur, SQN: s.n, Ctx: mlxhw.SQContext{State: next}})
	if next == mlxhw.QueueRST && r.status() == mlxhw.StatusOK {
		s.pc = 0
	}
	return r.status()
}

// post writes a WQE at the producer counter (padding the ring edge with
// NOPs), publishes the DBR and rings the doorbell when ring is set.
func (s *tsq) post(w *mlxhw.SendWQE, segs []mlxhw.DataSeg, ring bool) uint16 {
	var tmp [mlxhw.MaxSendWQESize]byte
	need, err := mlxhw.PutSendWQE(tmp[:], w, segs)
	if err != nil {
		s.e.t.Fatal(err)
	}
	for mlxhw.WQEBBsToEdge(s.pc, s.logSize) < need {
		s.putOne(&mlxhw.SendWQE{Opcode: mlxhw.WQEOpNOP}, nil)
	}
	idx := s.pc
	w.WQEIndex, w.SQN = s.pc, s.n
	if w.FmCeSe == 0 {
		w.FmCeSe = mlxhw.CECQEAlways
	}
	s.putOne(w, segs)
	storeBE32(s.dbr[4:], uint32(s.pc))
	if ring {
		s.ring(idx)
	}
	return idx
}

func (s *tsq) putOne(w *mlxhw.SendWQE, segs []mlxhw.DataSeg) {
	off := int(uint32(s.pc)&(1<<s.logSize-1)) * 64
	w.WQEIndex, w.SQN = s.pc, s.n
	n, err := mlxhw.PutSendWQE(s.buf.Bytes[off:], w, segs)
	if err != nil {
		s.e.t.Fatal(err)
	}
	s.pc += uint16(n)
}

func (s *tsq) ring(idx uint16) {
	off := int(uint32(idx)&(1<<s.logSize-1)) * 64
	dw0, dw1 := mlxhw.SQDoorbellWords(s.buf.Bytes[off:])
	s.e.bar.Write64(mlxhw.UAROffset(s.e.uar)+mlxhw.UARBFOffset, uint64(dw0)<<32|uint64(dw1))
}

type trq struct {
	e       *env
	n       uint32
	logSize uint8
	buf     *kernel.Region
	data    *kernel.Region // one 2 KiB buffer per WQE
	dbr     []byte
	pc      uint16
	bufSize int
}

func (e *env) createRQ(cq *tcq, logSize uint8, vsd bool) *trq {
	const stride = 16
	buf := e.alloc(pagesFor(stride << logSize))
	data := e.alloc(pagesFor(2048 << logSize))
	dbr, dbrA := e.dbr()
	in := &mlxhw.CreateRQIn{Ctx: mlxhw.RQContext{VSD: vsd, FlushInError: true, CQN: cq.n,
		WQ: mlxhw.WQ{Type: mlxhw.WQCyclic, PD: e.pd, DBRAddr: dbrA, LogStride: 4, LogSize: logSize}}, PAS: pasOf(buf)}
	r := &trq{e: e, n: e.id(in), logSize: logSize, buf: buf, data: data, dbr: dbr, bufSize: 2048}
	e.must(&mlxhw.ModifyRQIn{CurState: mlxhw.QueueRST, RQN: r.n, Ctx: mlxhw.RQContext{State: mlxhw.QueueRDY}})
	return r
}

// fill posts n receive WQEs.
func (r *trq) fill(n int) {
	for range n {
		i := int(uint32(r.pc) & (1<<r.logSize - 1))
		seg := mlxhw.DataSeg{ByteCount: uint32(r.bufSize), LKey: r.e.lkey, Addr: r.data.GPA(i * r.bufSize)}
		if err := mlxhw.PutRecvWQE(r.buf.Bytes[i*16:i*16+16], false, 0, []mlxhw.DataSeg{seg}); err != nil {
			r.e.t.Fatal(err)
		}
		r.pc++
	}
	storeBE32(r.dbr[0:], uint32(r.pc))
}

// frame returns the data the device wrote for a CQE.
func (r *trq) frame(c *mlxhw.CQE) []byte {
	i := int(uint32(c.WQECounter) & (1<<r.logSize - 1))
	return r.data.Bytes[i*r.bufSize : i*r.bufSize+int(c.ByteCnt)]
}

func (e *env) directTIR(rqn uint32) uint32 {
	return e.id(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: mlxhw.TIRContext{DispType: mlxhw.TIRDirect, InlineRQN: rqn, TransportDomain: e.td}})
}
