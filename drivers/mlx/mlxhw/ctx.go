package mlxhw

import "fmt"

// Object contexts carried by the queue commands (mlx5_ifc.h eqc, cqc, wq,
// sqc, rqc, tisc, tirc, rqtc, mkc; spec §2.7). Offsets in the tables are
// from the start of the context; the command that carries it says where
// the context starts.

// EQ context, 0x40 bytes at create_eq_in + 0x10:
//
//	0x0c bits 28:24 log_eq_size, 23:0 uar_page
//	0x14 bits 7:0   intr (MSI-X vector)
//	0x18 bits 28:24 log_page_size (page = 4 KiB << n)
//	0x28 bits 23:0  consumer_counter
//	0x2c bits 23:0  producer_counter
const EQCSize = 0x40

var (
	eqcLogSize     = F(0x0c, 28, 24)
	eqcUARPage     = F(0x0c, 23, 0)
	eqcIntr        = F(0x14, 7, 0)
	eqcLogPageSize = F(0x18, 28, 24)
	eqcConsumer    = F(0x28, 23, 0)
	eqcProducer    = F(0x2c, 23, 0)
)

// EQContext is the decoded eqc.
type EQContext struct {
	LogSize     uint8
	UARPage     uint32
	Intr        uint8
	LogPageSize uint8
	Consumer    uint32
	Producer    uint32
}

// Put writes the context into b[:EQCSize] (reserved bits zero).
func (c *EQContext) Put(b []byte) {
	if len(b) < EQCSize {
		return
	}
	clear(b[:EQCSize])
	eqcLogSize.Put(b, uint32(c.LogSize))
	eqcUARPage.Put(b, c.UARPage)
	eqcIntr.Put(b, uint32(c.Intr))
	eqcLogPageSize.Put(b, uint32(c.LogPageSize))
	eqcConsumer.Put(b, c.Consumer)
	eqcProducer.Put(b, c.Producer)
}

// Parse decodes b[:EQCSize].
func (c *EQContext) Parse(b []byte) error {
	if len(b) < EQCSize {
		return fmt.Errorf("%w: eqc of %d bytes", ErrShort, len(b))
	}
	*c = EQContext{uint8(eqcLogSize.Get(b)), eqcUARPage.Get(b), uint8(eqcIntr.Get(b)),
		uint8(eqcLogPageSize.Get(b)), eqcConsumer.Get(b), eqcProducer.Get(b)}
	return nil
}

// CQ context, 0x40 bytes at create_cq_in + 0x10:
//
//	0x00 bits 23:21 cqe_sz (0 = 64 B), bit 17 oi, bits 16:15 cq_period_mode, bit 14 cqe_comp_en
//	0x08 bits 11:6  page_offset
//	0x0c bits 28:24 log_cq_size, 23:0 uar_page
//	0x10 bits 27:16 cq_period (us), 15:0 cq_max_count
//	0x14 bits 7:0   c_eqn
//	0x18 bits 28:24 log_page_size
//	0x20 bits 23:0  last_notified_index
//	0x24 bits 23:0  last_solicit_index
//	0x28 bits 23:0  consumer_counter
//	0x2c bits 23:0  producer_counter
//	0x38 be64       dbr_addr
const CQCSize = 0x40

var (
	cqcCQESize      = F(0x00, 23, 21)
	cqcOI           = Flag(0x00, 17)
	cqcPeriodMode   = F(0x00, 16, 15)
	cqcCompEn       = Flag(0x00, 14)
	cqcPageOffset   = F(0x08, 11, 6)
	cqcLogSize      = F(0x0c, 28, 24)
	cqcUARPage      = F(0x0c, 23, 0)
	cqcPeriod       = F(0x10, 27, 16)
	cqcMaxCount     = F(0x10, 15, 0)
	cqcEQN          = F(0x14, 7, 0)
	cqcLogPageSize  = F(0x18, 28, 24)
	cqcLastNotified = F(0x20, 23, 0)
	cqcLastSolicit  = F(0x24, 23, 0)
	cqcConsumer     = F(0x28, 23, 0)
	cqcProducer     = F(0x2c, 23, 0)
)

const cqcDBR = 0x38

// CQContext is the decoded cqc.
type CQContext struct {
	CQESize      uint8 // 0 = 64 B (the only size the model takes), 1 = 128 B
	OI           bool
	PeriodMode   uint8
	CompEn       bool
	PageOffset   uint8
	LogSize      uint8
	UARPage      uint32
	Period       uint16 // 12 bits
	MaxCount     uint16
	EQN          uint8
	LogPageSize  uint8
	LastNotified uint32
	LastSolicit  uint32
	Consumer     uint32
	Producer     uint32
	DBRAddr      uint64
}

// Put writes the context into b[:CQCSize].
func (c *CQContext) Put(b []byte) {
	if len(b) < CQCSize {
		return
	}
	clear(b[:CQCSize])
	cqcCQESize.Put(b, uint32(c.CQESize))
	cqcOI.PutBool(b, c.OI)
	cqcPeriodMode.Put(b, uint32(c.PeriodMode))
	cqcCompEn.PutBool(b, c.CompEn)
	cqcPageOffset.Put(b, uint32(c.PageOffset))
	cqcLogSize.Put(b, uint32(c.LogSize))
	cqcUARPage.Put(b, c.UARPage)
	cqcPeriod.Put(b, uint32(c.Period))
	cqcMaxCount.Put(b, uint32(c.MaxCount))
	cqcEQN.Put(b, uint32(c.EQN))
	cqcLogPageSize.Put(b, uint32(c.LogPageSize))
	cqcLastNotified.Put(b, c.LastNotified)
	cqcLastSolicit.Put(b, c.LastSolicit)
	cqcConsumer.Put(b, c.Consumer)
	cqcProducer.Put(b, c.Producer)
	put64(b, cqcDBR, c.DBRAddr)
}

// Parse decodes b[:CQCSize].
func (c *CQContext) Parse(b []byte) error {
	if len(b) < CQCSize {
		return fmt.Errorf("%w: cqc of %d bytes", ErrShort, len(b))
	}
	*c = CQContext{
		CQESize: uint8(cqcCQESize.Get(b)), OI: cqcOI.Bool(b), PeriodMode: uint8(cqcPeriodMode.Get(b)),
		CompEn: cqcCompEn.Bool(b), PageOffset: uint8(cqcPageOffset.Get(b)), LogSize: uint8(cqcLogSize.Get(b)),
		UARPage: cqcUARPage.Get(b), Period: uint16(cqcPeriod.Get(b)), MaxCount: uint16(cqcMaxCount.Get(b)),
		EQN: uint8(cqcEQN.Get(b)), LogPageSize: uint8(cqcLogPageSize.Get(b)),
		LastNotified: cqcLastNotified.Get(b), LastSolicit: cqcLastSolicit.Get(b),
		Consumer: cqcConsumer.Get(b), Producer: cqcProducer.Get(b), DBRAddr: get64(b, cqcDBR),
	}
	return nil
}

// Work queue, 0xc0 bytes at sqc/rqc + 0x30 (create_sq_in/create_rq_in +
// 0x50); the PAS list follows it at input + 0x110:
//
//	0x00 bits 31:28 wq_type (0 linked list, 1 cyclic), bits 26:25 end_padding_mode
//	0x04 bits 20:16 page_offset, 15:0 lwm
//	0x08 bits 23:0  pd
//	0x0c bits 23:0  uar_page
//	0x10 be64       dbr_addr
//	0x18 be32       hw_counter
//	0x1c be32       sw_counter
//	0x20 bits 19:16 log_wq_stride, 12:8 log_wq_pg_sz, 4:0 log_wq_sz
const WQSize = 0xc0

// WQ types.
const (
	WQLinkedList = 0
	WQCyclic     = 1
)

var (
	wqType       = F(0x00, 31, 28)
	wqEndPadding = F(0x00, 26, 25)
	wqPageOffset = F(0x04, 20, 16)
	wqLWM        = F(0x04, 15, 0)
	wqPD         = F(0x08, 23, 0)
	wqUARPage    = F(0x0c, 23, 0)
	wqHWCounter  = B32(0x18)
	wqSWCounter  = B32(0x1c)
	wqLogStride  = F(0x20, 19, 16)
	wqLogPgSz    = F(0x20, 12, 8)
	wqLogSize    = F(0x20, 4, 0)
)

const wqDBR = 0x10

// WQ is the decoded wq.
type WQ struct {
	Type        uint8
	EndPadding  uint8
	PageOffset  uint8
	LWM         uint16
	PD          uint32
	UARPage     uint32
	DBRAddr     uint64
	HWCounter   uint32
	SWCounter   uint32
	LogStride   uint8
	LogPageSize uint8
	LogSize     uint8
}

// Put writes the wq into b[:WQSize].
func (w *WQ) Put(b []byte) {
	if len(b) < WQSize {
		return
	}
	clear(b[:WQSize])
	wqType.Put(b, uint32(w.Type))
	wqEndPadding.Put(b, uint32(w.EndPadding))
	wqPageOffset.Put(b, uint32(w.PageOffset))
	wqLWM.Put(b, uint32(w.LWM))
	wqPD.Put(b, w.PD)
	wqUARPage.Put(b, w.UARPage)
	put64(b, wqDBR, w.DBRAddr)
	wqHWCounter.Put(b, w.HWCounter)
	wqSWCounter.Put(b, w.SWCounter)
	wqLogStride.Put(b, uint32(w.LogStride))
	wqLogPgSz.Put(b, uint32(w.LogPageSize))
	wqLogSize.Put(b, uint32(w.LogSize))
}

// Parse decodes b[:WQSize].
func (w *WQ) Parse(b []byte) error {
	if len(b) < WQSize {
		return fmt.Errorf("%w: wq of %d bytes", ErrShort, len(b))
	}
	*w = WQ{
		Type: uint8(wqType.Get(b)), EndPadding: uint8(wqEndPadding.Get(b)), PageOffset: uint8(wqPageOffset.Get(b)),
		LWM: uint16(wqLWM.Get(b)), PD: wqPD.Get(b), UARPage: wqUARPage.Get(b), DBRAddr: get64(b, wqDBR),
		HWCounter: wqHWCounter.Get(b), SWCounter: wqSWCounter.Get(b), LogStride: uint8(wqLogStride.Get(b)),
		LogPageSize: uint8(wqLogPgSz.Get(b)), LogSize: uint8(wqLogSize.Get(b)),
	}
	return nil
}

// SQ and RQ states (sqc/rqc state, MODIFY_SQ/RQ current state).
const (
	QueueRST = 0
	QueueRDY = 1
	QueueERR = 3
)

// SQ context, at create_sq_in + 0x20, 0x30 bytes then the wq:
//
//	0x00 bit 28 flush_in_error_en, bits 26:24 min_wqe_inline_mode, bits 23:20 state
//	0x04 bits 23:0 user_index
//	0x08 bits 23:0 cqn
//	0x20 bits 31:16 tis_lst_sz
//	0x2c bits 23:0 tis_num_0
//	0x30 wq
const SQCSize = 0x30 + WQSize

var (
	sqcFlushInError = Flag(0x00, 28)
	sqcMinInline    = F(0x00, 26, 24)
	sqcState        = F(0x00, 23, 20)
	sqcUserIndex    = F(0x04, 23, 0)
	sqcCQN          = F(0x08, 23, 0)
	sqcTISListSize  = F(0x20, 31, 16)
	sqcTISNum0      = F(0x2c, 23, 0)
)

// SQContext is the decoded sqc.
type SQContext struct {
	FlushInError bool
	MinInline    uint8
	State        uint8
	UserIndex    uint32
	CQN          uint32
	TISListSize  uint16
	TISNum0      uint32
	WQ           WQ
}

// Put writes the context into b[:SQCSize].
func (c *SQContext) Put(b []byte) {
	if len(b) < SQCSize {
		return
	}
	clear(b[:0x30])
	sqcFlushInError.PutBool(b, c.FlushInError)
	sqcMinInline.Put(b, uint32(c.MinInline))
	sqcState.Put(b, uint32(c.State))
	sqcUserIndex.Put(b, c.UserIndex)
	sqcCQN.Put(b, c.CQN)
	sqcTISListSize.Put(b, uint32(c.TISListSize))
	sqcTISNum0.Put(b, c.TISNum0)
	c.WQ.Put(b[0x30:])
}

// Parse decodes b[:SQCSize].
func (c *SQContext) Parse(b []byte) error {
	if len(b) < SQCSize {
		return fmt.Errorf("%w: sqc of %d bytes", ErrShort, len(b))
	}
	*c = SQContext{FlushInError: sqcFlushInError.Bool(b), MinInline: uint8(sqcMinInline.Get(b)),
		State: uint8(sqcState.Get(b)), UserIndex: sqcUserIndex.Get(b), CQN: sqcCQN.Get(b),
		TISListSize: uint16(sqcTISListSize.Get(b)), TISNum0: sqcTISNum0.Get(b)}
	return c.WQ.Parse(b[0x30:])
}

// RQ context, at create_rq_in + 0x20, 0x30 bytes then the wq:
//
//	0x00 bit 28 vsd (VLAN strip disable), bits 27:24 mem_rq_type, bits 23:20 state, bit 18 flush_in_error_en
//	0x04 bits 23:0 user_index
//	0x08 bits 23:0 cqn
//	0x0c bits 31:24 counter_set_id
//	0x30 wq
const RQCSize = 0x30 + WQSize

var (
	rqcVSD          = Flag(0x00, 28)
	rqcMemRQType    = F(0x00, 27, 24)
	rqcState        = F(0x00, 23, 20)
	rqcFlushInError = Flag(0x00, 18)
	rqcUserIndex    = F(0x04, 23, 0)
	rqcCQN          = F(0x08, 23, 0)
	rqcCounterSet   = F(0x0c, 31, 24)
)

// RQContext is the decoded rqc.
type RQContext struct {
	VSD          bool
	MemRQType    uint8
	State        uint8
	FlushInError bool
	UserIndex    uint32
	CQN          uint32
	CounterSetID uint8
	WQ           WQ
}

// Put writes the context into b[:RQCSize].
func (c *RQContext) Put(b []byte) {
	if len(b) < RQCSize {
		return
	}
	clear(b[:0x30])
	rqcVSD.PutBool(b, c.VSD)
	rqcMemRQType.Put(b, uint32(c.MemRQType))
	rqcState.Put(b, uint32(c.State))
	rqcFlushInError.PutBool(b, c.FlushInError)
	rqcUserIndex.Put(b, c.UserIndex)
	rqcCQN.Put(b, c.CQN)
	rqcCounterSet.Put(b, uint32(c.CounterSetID))
	c.WQ.Put(b[0x30:])
}

// Parse decodes b[:RQCSize].
func (c *RQContext) Parse(b []byte) error {
	if len(b) < RQCSize {
		return fmt.Errorf("%w: rqc of %d bytes", ErrShort, len(b))
	}
	*c = RQContext{VSD: rqcVSD.Bool(b), MemRQType: uint8(rqcMemRQType.Get(b)), State: uint8(rqcState.Get(b)),
		FlushInError: rqcFlushInError.Bool(b), UserIndex: rqcUserIndex.Get(b), CQN: rqcCQN.Get(b),
		CounterSetID: uint8(rqcCounterSet.Get(b))}
	return c.WQ.Parse(b[0x30:])
}
