package mlxhw

import (
	"errors"
	"fmt"
)

// Opcode is a command opcode, bits 31:16 of input dword 0 (Linux
// mlx5_ifc.h MLX5_CMD_OP_*, spec §2.6). The constants are the mlx-lite
// kept set (§7.5).
type Opcode uint16

const (
	OpQueryHCACap            Opcode = 0x100
	OpQueryAdapter           Opcode = 0x101 // not kept; listed to catch the 0x101 pitfall (§8)
	OpInitHCA                Opcode = 0x102
	OpTeardownHCA            Opcode = 0x103
	OpEnableHCA              Opcode = 0x104
	OpDisableHCA             Opcode = 0x105
	OpQueryPages             Opcode = 0x107
	OpManagePages            Opcode = 0x108
	OpSetHCACap              Opcode = 0x109
	OpQueryISSI              Opcode = 0x10a
	OpSetISSI                Opcode = 0x10b
	OpSetDriverVersion       Opcode = 0x10d
	OpCreateMkey             Opcode = 0x200
	OpDestroyMkey            Opcode = 0x202
	OpCreateEQ               Opcode = 0x301
	OpDestroyEQ              Opcode = 0x302
	OpCreateCQ               Opcode = 0x400
	OpDestroyCQ              Opcode = 0x401
	OpModifyCQ               Opcode = 0x403
	OpQueryVportState        Opcode = 0x750
	OpQueryNICVportContext   Opcode = 0x754
	OpModifyNICVportContext  Opcode = 0x755
	OpQueryVportCounter      Opcode = 0x770 // optional
	OpAllocQCounter          Opcode = 0x771 // optional
	OpAllocPD                Opcode = 0x800
	OpDeallocPD              Opcode = 0x801
	OpAllocUAR               Opcode = 0x802
	OpDeallocUAR             Opcode = 0x803
	OpAccessReg              Opcode = 0x805
	OpNOP                    Opcode = 0x80d
	OpAllocTransportDomain   Opcode = 0x816
	OpDeallocTransportDomain Opcode = 0x817
	OpCreateTIR              Opcode = 0x900
	OpModifyTIR              Opcode = 0x901
	OpDestroyTIR             Opcode = 0x902
	OpCreateSQ               Opcode = 0x904
	OpModifySQ               Opcode = 0x905
	OpDestroySQ              Opcode = 0x906
	OpCreateRQ               Opcode = 0x908
	OpModifyRQ               Opcode = 0x909
	OpDestroyRQ              Opcode = 0x90a
	OpCreateTIS              Opcode = 0x912
	OpDestroyTIS             Opcode = 0x914
	OpCreateRQT              Opcode = 0x916
	OpModifyRQT              Opcode = 0x917
	OpDestroyRQT             Opcode = 0x918
	OpSetFlowTableRoot       Opcode = 0x92f
	OpCreateFlowTable        Opcode = 0x930
	OpDestroyFlowTable       Opcode = 0x931
	OpCreateFlowGroup        Opcode = 0x933
	OpDestroyFlowGroup       Opcode = 0x934
	OpSetFlowTableEntry      Opcode = 0x936
	OpDeleteFlowTableEntry   Opcode = 0x938
)

var opNames = map[Opcode]string{
	OpQueryHCACap: "QUERY_HCA_CAP", OpQueryAdapter: "QUERY_ADAPTER", OpInitHCA: "INIT_HCA",
	OpTeardownHCA: "TEARDOWN_HCA", OpEnableHCA: "ENABLE_HCA", OpDisableHCA: "DISABLE_HCA",
	OpQueryPages: "QUERY_PAGES", OpManagePages: "MANAGE_PAGES", OpSetHCACap: "SET_HCA_CAP",
	OpQueryISSI: "QUERY_ISSI", OpSetISSI: "SET_ISSI", OpSetDriverVersion: "SET_DRIVER_VERSION",
	OpCreateMkey: "CREATE_MKEY", OpDestroyMkey: "DESTROY_MKEY", OpCreateEQ: "CREATE_EQ",
	OpDestroyEQ: "DESTROY_EQ", OpCreateCQ: "CREATE_CQ", OpDestroyCQ: "DESTROY_CQ", OpModifyCQ: "MODIFY_CQ",
	OpQueryVportState: "QUERY_VPORT_STATE", OpQueryNICVportContext: "QUERY_NIC_VPORT_CONTEXT",
	OpModifyNICVportContext: "MODIFY_NIC_VPORT_CONTEXT", OpQueryVportCounter: "QUERY_VPORT_COUNTER",
	OpAllocQCounter: "ALLOC_Q_COUNTER", OpAllocPD: "ALLOC_PD", OpDeallocPD: "DEALLOC_PD",
	OpAllocUAR: "ALLOC_UAR", OpDeallocUAR: "DEALLOC_UAR", OpAccessReg: "ACCESS_REG", OpNOP: "NOP",
	OpAllocTransportDomain: "ALLOC_TRANSPORT_DOMAIN", OpDeallocTransportDomain: "DEALLOC_TRANSPORT_DOMAIN",
	OpCreateTIR: "CREATE_TIR", OpModifyTIR: "MODIFY_TIR", OpDestroyTIR: "DESTROY_TIR",
	OpCreateSQ: "CREATE_SQ", OpModifySQ: "MODIFY_SQ", OpDestroySQ: "DESTROY_SQ",
	OpCreateRQ: "CREATE_RQ", OpModifyRQ: "MODIFY_RQ", OpDestroyRQ: "DESTROY_RQ",
	OpCreateTIS: "CREATE_TIS", OpDestroyTIS: "DESTROY_TIS", OpCreateRQT: "CREATE_RQT",
	OpModifyRQT: "MODIFY_RQT", OpDestroyRQT: "DESTROY_RQT", OpSetFlowTableRoot: "SET_FLOW_TABLE_ROOT",
	OpCreateFlowTable: "CREATE_FLOW_TABLE", OpDestroyFlowTable: "DESTROY_FLOW_TABLE",
	OpCreateFlowGroup: "CREATE_FLOW_GROUP", OpDestroyFlowGroup: "DESTROY_FLOW_GROUP",
	OpSetFlowTableEntry: "SET_FLOW_TABLE_ENTRY", OpDeleteFlowTableEntry: "DELETE_FLOW_TABLE_ENTRY",
}

func (o Opcode) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("opcode %#x", uint16(o))
}

// Status is the command status, output byte 0 (spec §2.4).
type Status uint8

const (
	StatusOK             Status = 0x00
	StatusIntErr         Status = 0x01
	StatusBadOp          Status = 0x02 // unknown opcode; the model puts the opcode in the syndrome
	StatusBadParam       Status = 0x03
	StatusBadSysState    Status = 0x04 // command not allowed in the device state (§7.4)
	StatusBadRes         Status = 0x05
	StatusResBusy        Status = 0x06
	StatusLimErr         Status = 0x08
	StatusBadResState    Status = 0x09
	StatusIxErr          Status = 0x0a
	StatusNoRes          Status = 0x0f
	StatusBadQPState     Status = 0x10
	StatusBadPkt         Status = 0x30
	StatusBadSizeOutCQEs Status = 0x40
	StatusBadInpLen      Status = 0x50
	StatusBadOutpLen     Status = 0x51
)

var statusNames = map[Status]string{
	StatusOK: "OK", StatusIntErr: "INT_ERR", StatusBadOp: "BAD_OP", StatusBadParam: "BAD_PARAM",
	StatusBadSysState: "BAD_SYS_STATE", StatusBadRes: "BAD_RES", StatusResBusy: "RES_BUSY",
	StatusLimErr: "LIM_ERR", StatusBadResState: "BAD_RES_STATE", StatusIxErr: "IX_ERR",
	StatusNoRes: "NO_RES", StatusBadQPState: "BAD_QP_STATE", StatusBadPkt: "BAD_PKT",
	StatusBadSizeOutCQEs: "BAD_SIZE_OUTS_CQES", StatusBadInpLen: "BAD_INP_LEN", StatusBadOutpLen: "BAD_OUTP_LEN",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status %#x", uint8(s))
}

// ErrStatus is wrapped by every StatusError.
var ErrStatus = errors.New("mlxhw: command failed")

// StatusError is a command output with a nonzero status.
type StatusError struct {
	Op       Opcode
	Status   Status
	Syndrome uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v: %v: %v, syndrome %#x", ErrStatus, e.Op, e.Status, e.Syndrome)
}

func (e *StatusError) Unwrap() error { return ErrStatus }

// Command headers (L-cmd mbox_in / mbox_out, spec §2.4):
//
//	in  0x00 bits 31:16 opcode, 15:0 uid; 0x04 bits 15:0 op_mod
//	out 0x00 bits 31:24 status; 0x04 syndrome
const HeaderSize = 0x10

var (
	fOpcode   = F(0x00, 31, 16)
	fUID      = F(0x00, 15, 0)
	fOpMod    = F(0x04, 15, 0)
	fStatus   = F(0x00, 31, 24)
	fSyndrome = B32(0x04)
	fID24     = F(0x08, 23, 0) // object number in most inputs and outputs
)

// InHeader is the first 8 bytes of every input.
type InHeader struct {
	Opcode Opcode
	UID    uint16
	OpMod  uint16
}

// PeekInHeader decodes the input header of b.
func PeekInHeader(b []byte) (InHeader, error) {
	if len(b) < HeaderSize {
		return InHeader{}, fmt.Errorf("%w: command input of %d bytes", ErrShort, len(b))
	}
	return InHeader{Opcode(fOpcode.Get(b)), uint16(fUID.Get(b)), uint16(fOpMod.Get(b))}, nil
}

func putInHeader(b []byte, op Opcode, opMod uint16) {
	fOpcode.Put(b, uint32(op))
	fOpMod.Put(b, uint32(opMod))
}

// OutHeader is the first 8 bytes of every output.
type OutHeader struct {
	Status   Status
	Syndrome uint32
}

// PeekOutHeader decodes the output header of b.
func PeekOutHeader(b []byte) (OutHeader, error) {
	if len(b) < HeaderSize {
		return OutHeader{}, fmt.Errorf("%w: command output of %d bytes", ErrShort, len(b))
	}
	return OutHeader{Status(fStatus.Get(b)), fSyndrome.Get(b)}, nil
}

// AppendErrorOutput appends the 16-byte output the device returns for a
// failed command.
func AppendErrorOutput(b []byte, s Status, syndrome uint32) []byte {
	b, o := grow(b, HeaderSize)
	fStatus.Put(o, uint32(s))
	fSyndrome.Put(o, syndrome)
	return b
}

// checkOut validates the output header and length of a decoded output:
// a nonzero status is a *StatusError, a short body ErrShort.
func checkOut(op Opcode, b []byte, min int) error {
	h, err := PeekOutHeader(b)
	if err != nil {
		return fmt.Errorf("%v output: %w", op, err)
	}
	if h.Status != StatusOK {
		return &StatusError{op, h.Status, h.Syndrome}
	}
	if len(b) < min {
		return fmt.Errorf("%w: %v output of %d bytes, need %d", ErrShort, op, len(b), min)
	}
	return nil
}

// checkIn validates the opcode and length of an input.
func checkIn(op Opcode, b []byte, min int) (InHeader, error) {
	h, err := PeekInHeader(b)
	if err != nil {
		return h, fmt.Errorf("%v input: %w", op, err)
	}
	if h.Opcode != op {
		return h, fmt.Errorf("%w: %v, decoding %v", ErrOpcode, h.Opcode, op)
	}
	if len(b) < min {
		return h, fmt.Errorf("%w: %v input of %d bytes, need %d", ErrShort, op, len(b), min)
	}
	return h, nil
}
