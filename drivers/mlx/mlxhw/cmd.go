package mlxhw

import (
	"bytes"
	"fmt"
)

// Input is a command input message (the driver encodes it, the device
// decodes it). AppendTo writes exactly InLen bytes, header included;
// Decode checks the opcode and length and fills the value from b.
type Input interface {
	Opcode() Opcode
	InLen() int
	// OutLen is the output length the driver asks for (CmdEntry.OutLen).
	OutLen() int
	AppendTo(b []byte) []byte
	Decode(b []byte) error
}

// Output is a command output message (the device encodes it with status
// OK, the driver decodes it). Decode returns a *StatusError for a
// nonzero status and ErrShort when the body is cut.
type Output interface {
	Opcode() Opcode
	AppendTo(b []byte) []byte
	Decode(b []byte) error
}

// Lifecycle and resource messages (spec §2.7, §7.5). Offsets are from the
// start of the message; 0x00–0x0f is the header (opcode, op_mod; status,
// syndrome).

// SimpleIn is an input that is only a header: QUERY_ISSI, INIT_HCA,
// QUERY_HCA_CAP (op_mod = CapOpMod), NOP, ALLOC_UAR, ALLOC_PD,
// ALLOC_TRANSPORT_DOMAIN.
type SimpleIn struct {
	Op    Opcode
	OpMod uint16
}

var simpleOutLen = map[Opcode]int{
	OpQueryISSI: QueryISSIOutLen, OpInitHCA: HeaderSize, OpQueryHCACap: QueryHCACapOutLen, OpNOP: HeaderSize,
	OpAllocUAR: HeaderSize, OpAllocPD: HeaderSize, OpAllocTransportDomain: HeaderSize,
}

func (c *SimpleIn) Opcode() Opcode { return c.Op }
func (c *SimpleIn) InLen() int     { return HeaderSize }
func (c *SimpleIn) OutLen() int    { return simpleOutLen[c.Op] }
func (c *SimpleIn) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	putInHeader(m, c.Op, c.OpMod)
	return b
}
func (c *SimpleIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	if _, ok := simpleOutLen[h.Opcode]; !ok || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not a header-only input", ErrOpcode, h.Opcode)
	}
	c.Op, c.OpMod = h.Opcode, h.OpMod
	return nil
}

// ObjectIn is an input carrying one number at 0x08 besides the header:
//
//	ENABLE_HCA, DISABLE_HCA   function_id bits 15:0 (0 = self)
//	SET_ISSI                  current_issi bits 15:0
//	TEARDOWN_HCA              profile bits 15:0 (0 graceful, 1 force close)
//	QUERY_PAGES               function_id bits 15:0; op_mod 1 boot, 2 init, 3 regular
//	DESTROY_EQ                eq_number bits 7:0
//	DEALLOC_*, DESTROY_*      the object number, bits 23:0
type ObjectIn struct {
	Op    Opcode
	OpMod uint16
	ID    uint32
}

var objectInField = map[Opcode]Field{
	OpEnableHCA: F(0x08, 15, 0), OpDisableHCA: F(0x08, 15, 0), OpSetISSI: F(0x08, 15, 0),
	OpTeardownHCA: F(0x08, 15, 0), OpQueryPages: F(0x08, 15, 0), OpDestroyEQ: F(0x08, 7, 0),
	OpDeallocPD: fID24, OpDeallocUAR: fID24, OpDeallocTransportDomain: fID24, OpDestroyMkey: fID24,
	OpDestroyCQ: fID24, OpDestroySQ: fID24, OpDestroyRQ: fID24, OpDestroyTIS: fID24,
	OpDestroyTIR: fID24, OpDestroyRQT: fID24,
}

// QUERY_PAGES op_mod, TEARDOWN_HCA profiles, MANAGE_PAGES op_mod.
const (
	PagesBoot    = 1
	PagesInit    = 2
	PagesRegular = 3

	TeardownGraceful   = 0
	TeardownForceClose = 1

	ManagePagesCantGive = 0
	ManagePagesGive     = 1
	ManagePagesTake     = 2
)

func (c *ObjectIn) Opcode() Opcode { return c.Op }
func (c *ObjectIn) InLen() int     { return HeaderSize }
func (c *ObjectIn) OutLen() int {
	if c.Op == OpQueryPages {
		return QueryPagesOutLen
	}
	return HeaderSize
}
func (c *ObjectIn) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	putInHeader(m, c.Op, c.OpMod)
	objectInField[c.Op].Put(m, c.ID)
	return b
}
func (c *ObjectIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	f, ok := objectInField[h.Opcode]
	if !ok || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not an object-number input", ErrOpcode, h.Opcode)
	}
	*c = ObjectIn{h.Opcode, h.OpMod, f.Get(b)}
	return nil
}

// EmptyOut is an output that is only the header (16 bytes).
type EmptyOut struct{ Op Opcode }

func (o *EmptyOut) Opcode() Opcode { return o.Op }
func (o *EmptyOut) AppendTo(b []byte) []byte {
	b, _ = grow(b, HeaderSize)
	return b
}
func (o *EmptyOut) Decode(b []byte) error { return checkOut(o.Op, b, HeaderSize) }

// ObjectOut is an output carrying the new object's number at 0x08: bits
// 7:0 for CREATE_EQ (eq_number), bits 23:0 for the others (uar, pd,
// transport_domain, mkey_index, cqn, sqn, rqn, tisn, tirn, rqtn,
// table_id, group_id).
type ObjectOut struct {
	Op Opcode
	ID uint32
}

func objectOutField(op Opcode) Field {
	if op == OpCreateEQ {
		return F(0x08, 7, 0)
	}
	return fID24
}

func (o *ObjectOut) Opcode() Opcode { return o.Op }
func (o *ObjectOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	objectOutField(o.Op).Put(m, o.ID)
	return b
}
func (o *ObjectOut) Decode(b []byte) error {
	if err := checkOut(o.Op, b, HeaderSize); err != nil {
		return err
	}
	o.ID = objectOutField(o.Op).Get(b)
	return nil
}

// QUERY_ISSI output, 0x70 bytes: 0x08 bits 15:0 current_issi;
// 0x6c supported_issi_dw0 (bit n = ISSI n supported).
const QueryISSIOutLen = 0x70

type QueryISSIOut struct {
	CurrentISSI   uint16
	SupportedISSI uint32
}

func (o *QueryISSIOut) Opcode() Opcode { return OpQueryISSI }
func (o *QueryISSIOut) AppendTo(b []byte) []byte {
	b, m := grow(b, QueryISSIOutLen)
	F(0x08, 15, 0).Put(m, uint32(o.CurrentISSI))
	B32(0x6c).Put(m, o.SupportedISSI)
	return b
}
func (o *QueryISSIOut) Decode(b []byte) error {
	if err := checkOut(OpQueryISSI, b, QueryISSIOutLen); err != nil {
		return err
	}
	*o = QueryISSIOut{uint16(F(0x08, 15, 0).Get(b)), B32(0x6c).Get(b)}
	return nil
}

// QUERY_PAGES output: 0x08 bits 15:0 function_id; 0x0c num_pages (s32).
const QueryPagesOutLen = HeaderSize

type QueryPagesOut struct {
	FunctionID uint16
	NumPages   int32
}

func (o *QueryPagesOut) Opcode() Opcode { return OpQueryPages }
func (o *QueryPagesOut) AppendTo(b []byte) []byte {
	b, m := grow(b, QueryPagesOutLen)
	F(0x08, 15, 0).Put(m, uint32(o.FunctionID))
	B32(0x0c).Put(m, uint32(o.NumPages))
	return b
}
func (o *QueryPagesOut) Decode(b []byte) error {
	if err := checkOut(OpQueryPages, b, QueryPagesOutLen); err != nil {
		return err
	}
	*o = QueryPagesOut{uint16(F(0x08, 15, 0).Get(b)), int32(B32(0x0c).Get(b))}
	return nil
}

// MANAGE_PAGES input: op_mod (ManagePages*); 0x08 bits 15:0 function_id;
// 0x0c input_num_entries; 0x10 pas[] (be64 4 KiB page addresses). For
// TAKE, PAS is empty and NumEntries says how many to return.
type ManagePagesIn struct {
	OpMod      uint16
	FunctionID uint16
	NumEntries uint32 // GIVE: len(PAS), set by AppendTo
	PAS        []uint64
}

// MaxPages bounds one MANAGE_PAGES list (MaxMessageLen).
const MaxPages = (MaxMessageLen - HeaderSize) / 8

func (c *ManagePagesIn) Opcode() Opcode { return OpManagePages }
func (c *ManagePagesIn) InLen() int     { return HeaderSize + 8*len(c.PAS) }
func (c *ManagePagesIn) OutLen() int {
	if c.OpMod == ManagePagesTake {
		return HeaderSize + 8*int(min(c.NumEntries, MaxPages))
	}
	return HeaderSize
}
func (c *ManagePagesIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpManagePages, c.OpMod)
	F(0x08, 15, 0).Put(m, uint32(c.FunctionID))
	n := c.NumEntries
	if c.OpMod != ManagePagesTake {
		n = uint32(len(c.PAS))
	}
	B32(0x0c).Put(m, n)
	for i, pa := range c.PAS {
		put64(m, HeaderSize+8*i, pa)
	}
	return b
}
func (c *ManagePagesIn) Decode(b []byte) error {
	h, err := checkIn(OpManagePages, b, HeaderSize)
	if err != nil {
		return err
	}
	n := B32(0x0c).Get(b)
	*c = ManagePagesIn{OpMod: h.OpMod, FunctionID: uint16(F(0x08, 15, 0).Get(b)), NumEntries: n}
	if h.OpMod == ManagePagesTake {
		return nil
	}
	if n > MaxPages || uint64(len(b)) < HeaderSize+8*uint64(n) {
		return fmt.Errorf("%w: MANAGE_PAGES of %d entries in %d bytes", ErrLength, n, len(b))
	}
	c.PAS = readPAS(b, HeaderSize, int(n))
	return nil
}

func readPAS(b []byte, off, n int) []uint64 {
	if n == 0 {
		return nil
	}
	pas := make([]uint64, n)
	for i := range pas {
		pas[i] = get64(b, off+8*i)
	}
	return pas
}

// MANAGE_PAGES output: 0x08 output_num_entries; 0x10 pas[] (TAKE).
type ManagePagesOut struct{ PAS []uint64 }

func (o *ManagePagesOut) Opcode() Opcode { return OpManagePages }
func (o *ManagePagesOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize+8*len(o.PAS))
	B32(0x08).Put(m, uint32(len(o.PAS)))
	for i, pa := range o.PAS {
		put64(m, HeaderSize+8*i, pa)
	}
	return b
}
func (o *ManagePagesOut) Decode(b []byte) error {
	if err := checkOut(OpManagePages, b, HeaderSize); err != nil {
		return err
	}
	n := B32(0x08).Get(b)
	if n > MaxPages || uint64(len(b)) < HeaderSize+8*uint64(n) {
		return fmt.Errorf("%w: MANAGE_PAGES output of %d entries in %d bytes", ErrLength, n, len(b))
	}
	o.PAS = readPAS(b, HeaderSize, int(n))
	return nil
}

// QUERY_HCA_CAP output and SET_HCA_CAP input: capability at 0x10.
const (
	QueryHCACapOutLen = HeaderSize + CapSize
	SetHCACapInLen    = HeaderSize + CapSize
)

type QueryHCACapOut struct{ Cap [CapSize]byte }

func (o *QueryHCACapOut) Opcode() Opcode { return OpQueryHCACap }
func (o *QueryHCACapOut) AppendTo(b []byte) []byte {
	b, m := grow(b, QueryHCACapOutLen)
	copy(m[HeaderSize:], o.Cap[:])
	return b
}
func (o *QueryHCACapOut) Decode(b []byte) error {
	if err := checkOut(OpQueryHCACap, b, QueryHCACapOutLen); err != nil {
		return err
	}
	copy(o.Cap[:], b[HeaderSize:])
	return nil
}

type SetHCACapIn struct {
	OpMod uint16 // CapOpMod(type, CapMax)
	Cap   [CapSize]byte
}

func (c *SetHCACapIn) Opcode() Opcode { return OpSetHCACap }
func (c *SetHCACapIn) InLen() int     { return SetHCACapInLen }
func (c *SetHCACapIn) OutLen() int    { return HeaderSize }
func (c *SetHCACapIn) AppendTo(b []byte) []byte {
	b, m := grow(b, SetHCACapInLen)
	putInHeader(m, OpSetHCACap, c.OpMod)
	copy(m[HeaderSize:], c.Cap[:])
	return b
}
func (c *SetHCACapIn) Decode(b []byte) error {
	h, err := checkIn(OpSetHCACap, b, SetHCACapInLen)
	if err != nil {
		return err
	}
	c.OpMod = h.OpMod
	copy(c.Cap[:], b[HeaderSize:])
	return nil
}

// TEARDOWN_HCA output: 0x0c bit 0 state (force close: 0 success, 1 fail).
type TeardownHCAOut struct{ State uint8 }

func (o *TeardownHCAOut) Opcode() Opcode { return OpTeardownHCA }
func (o *TeardownHCAOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	Flag(0x0c, 0).Put(m, uint32(o.State))
	return b
}
func (o *TeardownHCAOut) Decode(b []byte) error {
	if err := checkOut(OpTeardownHCA, b, HeaderSize); err != nil {
		return err
	}
	o.State = uint8(Flag(0x0c, 0).Get(b))
	return nil
}

// ACCESS_REG input: op_mod (AccessRegWrite/Read); 0x08 bits 15:0
// register_id; 0x0c argument; 0x10 register_data. The output carries
// register_data at 0x10 with the same length.
type AccessRegIn struct {
	OpMod      uint16
	RegisterID uint16
	Argument   uint32
	Data       []byte
}

func (c *AccessRegIn) Opcode() Opcode { return OpAccessReg }
func (c *AccessRegIn) InLen() int     { return HeaderSize + len(c.Data) }
func (c *AccessRegIn) OutLen() int    { return HeaderSize + len(c.Data) }
func (c *AccessRegIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, OpAccessReg, c.OpMod)
	F(0x08, 15, 0).Put(m, uint32(c.RegisterID))
	B32(0x0c).Put(m, c.Argument)
	copy(m[HeaderSize:], c.Data)
	return b
}
func (c *AccessRegIn) Decode(b []byte) error {
	h, err := checkIn(OpAccessReg, b, HeaderSize)
	if err != nil {
		return err
	}
	*c = AccessRegIn{h.OpMod, uint16(F(0x08, 15, 0).Get(b)), B32(0x0c).Get(b), bytes.Clone(b[HeaderSize:])}
	return nil
}

type AccessRegOut struct{ Data []byte }

func (o *AccessRegOut) Opcode() Opcode { return OpAccessReg }
func (o *AccessRegOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize+len(o.Data))
	copy(m[HeaderSize:], o.Data)
	return b
}
func (o *AccessRegOut) Decode(b []byte) error {
	if err := checkOut(OpAccessReg, b, HeaderSize); err != nil {
		return err
	}
	o.Data = bytes.Clone(b[HeaderSize:])
	return nil
}

// SET_DRIVER_VERSION input, 0x50 bytes: driver_version (64 bytes, NUL
// padded) at 0x10.
const SetDriverVersionInLen = 0x50

type SetDriverVersionIn struct{ Version string }

func (c *SetDriverVersionIn) Opcode() Opcode { return OpSetDriverVersion }
func (c *SetDriverVersionIn) InLen() int     { return SetDriverVersionInLen }
func (c *SetDriverVersionIn) OutLen() int    { return HeaderSize }
func (c *SetDriverVersionIn) AppendTo(b []byte) []byte {
	b, m := grow(b, SetDriverVersionInLen)
	putInHeader(m, OpSetDriverVersion, 0)
	copy(m[HeaderSize:SetDriverVersionInLen], c.Version)
	return b
}
func (c *SetDriverVersionIn) Decode(b []byte) error {
	if _, err := checkIn(OpSetDriverVersion, b, SetDriverVersionInLen); err != nil {
		return err
	}
	v := b[HeaderSize:SetDriverVersionInLen]
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	c.Version = string(v)
	return nil
}
