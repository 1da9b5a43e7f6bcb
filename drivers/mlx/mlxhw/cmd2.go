package mlxhw

import "fmt"

// Object-creating commands: a context at a fixed offset, an optional PAS
// list (be64 4 KiB page addresses) at 0x110 (spec §2.7).
const PASOffset = 0x110

// Input lengths without the PAS list.
const (
	CreateMkeyInLen = PASOffset
	CreateEQInLen   = PASOffset
	CreateCQInLen   = PASOffset
	ModifyCQInLen   = PASOffset
	CreateSQInLen   = PASOffset
	CreateRQInLen   = PASOffset
	CreateTISInLen  = 0x20 + TISCSize
	CreateTIRInLen  = 0x20 + TIRCSize
)

// putPAS writes pas at PASOffset of m; readPASTail reads the whole list
// that follows PASOffset in b (every complete be64).
func putPAS(m []byte, pas []uint64) {
	for i, pa := range pas {
		put64(m, PASOffset+8*i, pa)
	}
}

func readPASTail(b []byte) []uint64 {
	if len(b) <= PASOffset {
		return nil
	}
	return readPAS(b, PASOffset, (len(b)-PASOffset)/8)
}

// CREATE_MKEY input: 0x0c bit 31 pg_access; mkc at 0x10;
// 0x60 translations_octword_actual_size; klm_pas_mtt at 0x110.
type CreateMkeyIn struct {
	PgAccess           bool
	Ctx                MkeyContext
	TranslationsActual uint32
	PAS                []uint64
}

func (c *CreateMkeyIn) Opcode() Opcode { return OpCreateMkey }
func (c *CreateMkeyIn) InLen() int     { return CreateMkeyInLen + 8*len(c.PAS) }
func (c *CreateMkeyIn) OutLen() int    { return HeaderSize }
func (c *CreateMkeyIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpCreateMkey, 0)
	Flag(0x0c, 31).PutBool(m, c.PgAccess)
	c.Ctx.Put(m[0x10:])
	B32(0x60).Put(m, c.TranslationsActual)
	putPAS(m, c.PAS)
	return b
}
func (c *CreateMkeyIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateMkey, b, CreateMkeyInLen); err != nil {
		return err
	}
	c.PgAccess = Flag(0x0c, 31).Bool(b)
	_ = c.Ctx.Parse(b[0x10:])
	c.TranslationsActual = B32(0x60).Get(b)
	c.PAS = readPASTail(b)
	return nil
}

// CREATE_EQ input: eqc at 0x10; 0x58 be64 event_bitmask (bit n = event
// type n); pas at 0x110.
type CreateEQIn struct {
	Ctx          EQContext
	EventBitmask uint64
	PAS          []uint64
}

func (c *CreateEQIn) Opcode() Opcode { return OpCreateEQ }
func (c *CreateEQIn) InLen() int     { return CreateEQInLen + 8*len(c.PAS) }
func (c *CreateEQIn) OutLen() int    { return HeaderSize }
func (c *CreateEQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpCreateEQ, 0)
	c.Ctx.Put(m[0x10:])
	put64(m, 0x58, c.EventBitmask)
	putPAS(m, c.PAS)
	return b
}
func (c *CreateEQIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateEQ, b, CreateEQInLen); err != nil {
		return err
	}
	_ = c.Ctx.Parse(b[0x10:])
	c.EventBitmask = get64(b, 0x58)
	c.PAS = readPASTail(b)
	return nil
}

// CREATE_CQ input: cqc at 0x10; pas at 0x110.
type CreateCQIn struct {
	Ctx CQContext
	PAS []uint64
}

func (c *CreateCQIn) Opcode() Opcode { return OpCreateCQ }
func (c *CreateCQIn) InLen() int     { return CreateCQInLen + 8*len(c.PAS) }
func (c *CreateCQIn) OutLen() int    { return HeaderSize }
func (c *CreateCQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpCreateCQ, 0)
	c.Ctx.Put(m[0x10:])
	putPAS(m, c.PAS)
	return b
}
func (c *CreateCQIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateCQ, b, CreateCQInLen); err != nil {
		return err
	}
	_ = c.Ctx.Parse(b[0x10:])
	c.PAS = readPASTail(b)
	return nil
}

// MODIFY_CQ input: 0x08 bits 23:0 cqn; 0x0c
// modify_field_select_resize_field_select; cqc at 0x10. Only the
// moderation fields are honoured by the model.
const (
	ModifyCQPeriod   = 1 << 0 // MLX5_CQ_MODIFY_PERIOD
	ModifyCQMaxCount = 1 << 1 // MLX5_CQ_MODIFY_COUNT
)

type ModifyCQIn struct {
	CQN         uint32
	FieldSelect uint32
	Ctx         CQContext
}

func (c *ModifyCQIn) Opcode() Opcode { return OpModifyCQ }
func (c *ModifyCQIn) InLen() int     { return ModifyCQInLen }
func (c *ModifyCQIn) OutLen() int    { return HeaderSize }
func (c *ModifyCQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, ModifyCQInLen)
	putInHeader(m, OpModifyCQ, 0)
	fID24.Put(m, c.CQN)
	B32(0x0c).Put(m, c.FieldSelect)
	c.Ctx.Put(m[0x10:])
	return b
}
func (c *ModifyCQIn) Decode(b []byte) error {
	if _, err := checkIn(OpModifyCQ, b, ModifyCQInLen); err != nil {
		return err
	}
	c.CQN, c.FieldSelect = fID24.Get(b), B32(0x0c).Get(b)
	return c.Ctx.Parse(b[0x10:])
}

// CREATE_SQ input: sqc at 0x20 (wq at 0x50); pas at 0x110.
type CreateSQIn struct {
	Ctx SQContext
	PAS []uint64
}

func (c *CreateSQIn) Opcode() Opcode { return OpCreateSQ }
func (c *CreateSQIn) InLen() int     { return CreateSQInLen + 8*len(c.PAS) }
func (c *CreateSQIn) OutLen() int    { return HeaderSize }
func (c *CreateSQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpCreateSQ, 0)
	c.Ctx.Put(m[0x20:])
	putPAS(m, c.PAS)
	return b
}
func (c *CreateSQIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateSQ, b, CreateSQInLen); err != nil {
		return err
	}
	_ = c.Ctx.Parse(b[0x20:])
	c.PAS = readPASTail(b)
	return nil
}

// CREATE_RQ input: rqc at 0x20 (wq at 0x50); pas at 0x110.
type CreateRQIn struct {
	Ctx RQContext
	PAS []uint64
}

func (c *CreateRQIn) Opcode() Opcode { return OpCreateRQ }
func (c *CreateRQIn) InLen() int     { return CreateRQInLen + 8*len(c.PAS) }
func (c *CreateRQIn) OutLen() int    { return HeaderSize }
func (c *CreateRQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpCreateRQ, 0)
	c.Ctx.Put(m[0x20:])
	putPAS(m, c.PAS)
	return b
}
func (c *CreateRQIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateRQ, b, CreateRQInLen); err != nil {
		return err
	}
	_ = c.Ctx.Parse(b[0x20:])
	c.PAS = readPASTail(b)
	return nil
}

// MODIFY_SQ / MODIFY_RQ input: 0x08 bits 31:28 current state, 23:0
// sqn/rqn; 0x10 be64 modify_bitmask; the new context at 0x20 (its state
// field is the target state).
type ModifySQIn struct {
	CurState uint8
	SQN      uint32
	Bitmask  uint64
	Ctx      SQContext
}

var (
	fModifyState = F(0x08, 31, 28)
)

func (c *ModifySQIn) Opcode() Opcode { return OpModifySQ }
func (c *ModifySQIn) InLen() int     { return CreateSQInLen }
func (c *ModifySQIn) OutLen() int    { return HeaderSize }
func (c *ModifySQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, CreateSQInLen)
	putInHeader(m, OpModifySQ, 0)
	fModifyState.Put(m, uint32(c.CurState))
	fID24.Put(m, c.SQN)
	put64(m, 0x10, c.Bitmask)
	c.Ctx.Put(m[0x20:])
	return b
}
func (c *ModifySQIn) Decode(b []byte) error {
	if _, err := checkIn(OpModifySQ, b, CreateSQInLen); err != nil {
		return err
	}
	c.CurState, c.SQN, c.Bitmask = uint8(fModifyState.Get(b)), fID24.Get(b), get64(b, 0x10)
	return c.Ctx.Parse(b[0x20:])
}

type ModifyRQIn struct {
	CurState uint8
	RQN      uint32
	Bitmask  uint64
	Ctx      RQContext
}

func (c *ModifyRQIn) Opcode() Opcode { return OpModifyRQ }
func (c *ModifyRQIn) InLen() int     { return CreateRQInLen }
func (c *ModifyRQIn) OutLen() int    { return HeaderSize }
func (c *ModifyRQIn) AppendTo(b []byte) []byte {
	b, m := grow(b, CreateRQInLen)
	putInHeader(m, OpModifyRQ, 0)
	fModifyState.Put(m, uint32(c.CurState))
	fID24.Put(m, c.RQN)
	put64(m, 0x10, c.Bitmask)
	c.Ctx.Put(m[0x20:])
	return b
}
func (c *ModifyRQIn) Decode(b []byte) error {
	if _, err := checkIn(OpModifyRQ, b, CreateRQInLen); err != nil {
		return err
	}
	c.CurState, c.RQN, c.Bitmask = uint8(fModifyState.Get(b)), fID24.Get(b), get64(b, 0x10)
	return c.Ctx.Parse(b[0x20:])
}

// CREATE_TIS input: tisc at 0x20.
type CreateTISIn struct{ Ctx TISContext }

func (c *CreateTISIn) Opcode() Opcode { return OpCreateTIS }
func (c *CreateTISIn) InLen() int     { return CreateTISInLen }
func (c *CreateTISIn) OutLen() int    { return HeaderSize }
func (c *CreateTISIn) AppendTo(b []byte) []byte {
	b, m := grow(b, CreateTISInLen)
	putInHeader(m, OpCreateTIS, 0)
	c.Ctx.Put(m[0x20:])
	return b
}
func (c *CreateTISIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateTIS, b, CreateTISInLen); err != nil {
		return err
	}
	return c.Ctx.Parse(b[0x20:])
}

// CREATE_TIR / MODIFY_TIR input: MODIFY has 0x08 bits 23:0 tirn and 0x10
// be64 bitmask; tirc at 0x20 in both.
type TIRIn struct {
	Op      Opcode // OpCreateTIR or OpModifyTIR
	TIRN    uint32
	Bitmask uint64
	Ctx     TIRContext
}

func (c *TIRIn) Opcode() Opcode { return c.Op }
func (c *TIRIn) InLen() int     { return CreateTIRInLen }
func (c *TIRIn) OutLen() int    { return HeaderSize }
func (c *TIRIn) AppendTo(b []byte) []byte {
	b, m := grow(b, CreateTIRInLen)
	putInHeader(m, c.Op, 0)
	if c.Op == OpModifyTIR {
		fID24.Put(m, c.TIRN)
		put64(m, 0x10, c.Bitmask)
	}
	c.Ctx.Put(m[0x20:])
	return b
}
func (c *TIRIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	if (h.Opcode != OpCreateTIR && h.Opcode != OpModifyTIR) || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not a TIR input", ErrOpcode, h.Opcode)
	}
	if len(b) < CreateTIRInLen {
		return fmt.Errorf("%w: %v input of %d bytes", ErrShort, h.Opcode, len(b))
	}
	*c = TIRIn{Op: h.Opcode}
	if h.Opcode == OpModifyTIR {
		c.TIRN, c.Bitmask = fID24.Get(b), get64(b, 0x10)
	}
	return c.Ctx.Parse(b[0x20:])
}

// CREATE_RQT / MODIFY_RQT input: MODIFY has 0x08 bits 23:0 rqtn and 0x10
// be64 bitmask (bit 0 = rqn list); rqtc at 0x20, rq_num[] at 0x110.
type RQTIn struct {
	Op      Opcode // OpCreateRQT or OpModifyRQT
	RQTN    uint32
	Bitmask uint64
	Ctx     RQTContext
}

func (c *RQTIn) Opcode() Opcode { return c.Op }
func (c *RQTIn) InLen() int     { return 0x20 + c.Ctx.Len() }
func (c *RQTIn) OutLen() int    { return HeaderSize }
func (c *RQTIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, c.Op, 0)
	if c.Op == OpModifyRQT {
		fID24.Put(m, c.RQTN)
		put64(m, 0x10, c.Bitmask)
	}
	c.Ctx.Put(m[0x20:])
	return b
}
func (c *RQTIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	if (h.Opcode != OpCreateRQT && h.Opcode != OpModifyRQT) || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not an RQT input", ErrOpcode, h.Opcode)
	}
	if len(b) < 0x20 {
		return fmt.Errorf("%w: %v input of %d bytes", ErrShort, h.Opcode, len(b))
	}
	*c = RQTIn{Op: h.Opcode}
	if h.Opcode == OpModifyRQT {
		c.RQTN, c.Bitmask = fID24.Get(b), get64(b, 0x10)
	}
	return c.Ctx.Parse(b[0x20:])
}

// QUERY_VPORT_STATE input: op_mod (0 = VNIC vport); 0x08 bit 31
// other_vport, bits 15:0 vport_number. Output: 0x0c bits 7:4
// admin_state, 3:0 state.
type QueryVportStateIn struct {
	OpMod       uint16
	OtherVport  bool
	VportNumber uint16
}

var (
	fOtherVport  = Flag(0x08, 31)
	fVportNumber = F(0x08, 15, 0)
)

func (c *QueryVportStateIn) Opcode() Opcode { return OpQueryVportState }
func (c *QueryVportStateIn) InLen() int     { return HeaderSize }
func (c *QueryVportStateIn) OutLen() int    { return HeaderSize }
func (c *QueryVportStateIn) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	putInHeader(m, OpQueryVportState, c.OpMod)
	fOtherVport.PutBool(m, c.OtherVport)
	fVportNumber.Put(m, uint32(c.VportNumber))
	return b
}
func (c *QueryVportStateIn) Decode(b []byte) error {
	h, err := checkIn(OpQueryVportState, b, HeaderSize)
	if err != nil {
		return err
	}
	*c = QueryVportStateIn{h.OpMod, fOtherVport.Bool(b), uint16(fVportNumber.Get(b))}
	return nil
}

type QueryVportStateOut struct{ AdminState, State uint8 }

func (o *QueryVportStateOut) Opcode() Opcode { return OpQueryVportState }
func (o *QueryVportStateOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	F(0x0c, 7, 4).Put(m, uint32(o.AdminState))
	F(0x0c, 3, 0).Put(m, uint32(o.State))
	return b
}
func (o *QueryVportStateOut) Decode(b []byte) error {
	if err := checkOut(OpQueryVportState, b, HeaderSize); err != nil {
		return err
	}
	*o = QueryVportStateOut{uint8(F(0x0c, 7, 4).Get(b)), uint8(F(0x0c, 3, 0).Get(b))}
	return nil
}

// QUERY_NIC_VPORT_CONTEXT input: 0x08 other_vport/vport_number; 0x0c bits
// 26:24 allowed_list_type. Output: nic_vport_context at 0x10. OutLen asks
// for room for MaxList entries of the list.
type QueryNICVportContextIn struct {
	OtherVport  bool
	VportNumber uint16
	ListType    uint8
	MaxList     int
}

var fQueryListType = F(0x0c, 26, 24)

func (c *QueryNICVportContextIn) Opcode() Opcode { return OpQueryNICVportContext }
func (c *QueryNICVportContextIn) InLen() int     { return HeaderSize }
func (c *QueryNICVportContextIn) OutLen() int {
	return HeaderSize + NICVportContextSize + VportListEntrySize*min(max(c.MaxList, 0), MaxVportListSize)
}
func (c *QueryNICVportContextIn) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	putInHeader(m, OpQueryNICVportContext, 0)
	fOtherVport.PutBool(m, c.OtherVport)
	fVportNumber.Put(m, uint32(c.VportNumber))
	fQueryListType.Put(m, uint32(c.ListType))
	return b
}
func (c *QueryNICVportContextIn) Decode(b []byte) error {
	if _, err := checkIn(OpQueryNICVportContext, b, HeaderSize); err != nil {
		return err
	}
	*c = QueryNICVportContextIn{fOtherVport.Bool(b), uint16(fVportNumber.Get(b)), uint8(fQueryListType.Get(b)), 0}
	return nil
}

type QueryNICVportContextOut struct{ Ctx NICVportContext }

func (o *QueryNICVportContextOut) Opcode() Opcode { return OpQueryNICVportContext }
func (o *QueryNICVportContextOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize+o.Ctx.Len())
	_ = o.Ctx.Put(m[HeaderSize:])
	return b
}
func (o *QueryNICVportContextOut) Decode(b []byte) error {
	if err := checkOut(OpQueryNICVportContext, b, HeaderSize+NICVportContextSize); err != nil {
		return err
	}
	return o.Ctx.Parse(b[HeaderSize:])
}

// MODIFY_NIC_VPORT_CONTEXT input: 0x08 other_vport/vport_number; 0x0c
// field_select (FieldSelect*); nic_vport_context at 0x100.
const ModifyNICVportCtxOff = 0x100

type ModifyNICVportContextIn struct {
	OtherVport  bool
	VportNumber uint16
	FieldSelect uint32
	Ctx         NICVportContext
}

func (c *ModifyNICVportContextIn) Opcode() Opcode { return OpModifyNICVportContext }
func (c *ModifyNICVportContextIn) InLen() int     { return ModifyNICVportCtxOff + c.Ctx.Len() }
func (c *ModifyNICVportContextIn) OutLen() int    { return HeaderSize }
func (c *ModifyNICVportContextIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpModifyNICVportContext, 0)
	fOtherVport.PutBool(m, c.OtherVport)
	fVportNumber.Put(m, uint32(c.VportNumber))
	B32(0x0c).Put(m, c.FieldSelect)
	_ = c.Ctx.Put(m[ModifyNICVportCtxOff:])
	return b
}
func (c *ModifyNICVportContextIn) Decode(b []byte) error {
	if _, err := checkIn(OpModifyNICVportContext, b, ModifyNICVportCtxOff+NICVportContextSize); err != nil {
		return err
	}
	c.OtherVport, c.VportNumber, c.FieldSelect = fOtherVport.Bool(b), uint16(fVportNumber.Get(b)), B32(0x0c).Get(b)
	return c.Ctx.Parse(b[ModifyNICVportCtxOff:])
}
