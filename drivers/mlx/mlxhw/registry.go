package mlxhw

import "fmt"

// NewInput returns an empty input value for op, or nil when op is not in
// the kept set (the model answers BAD_OP, spec §7.1 P2).
func NewInput(op Opcode) Input {
	switch op {
	case OpQueryISSI, OpInitHCA, OpQueryHCACap, OpNOP, OpAllocUAR, OpAllocPD, OpAllocTransportDomain:
		return &SimpleIn{Op: op}
	case OpManagePages:
		return new(ManagePagesIn)
	case OpSetHCACap:
		return new(SetHCACapIn)
	case OpAccessReg:
		return new(AccessRegIn)
	case OpSetDriverVersion:
		return new(SetDriverVersionIn)
	case OpCreateMkey:
		return new(CreateMkeyIn)
	case OpCreateEQ:
		return new(CreateEQIn)
	case OpCreateCQ:
		return new(CreateCQIn)
	case OpModifyCQ:
		return new(ModifyCQIn)
	case OpCreateSQ:
		return new(CreateSQIn)
	case OpModifySQ:
		return new(ModifySQIn)
	case OpCreateRQ:
		return new(CreateRQIn)
	case OpModifyRQ:
		return new(ModifyRQIn)
	case OpCreateTIS:
		return new(CreateTISIn)
	case OpCreateTIR, OpModifyTIR:
		return &TIRIn{Op: op}
	case OpCreateRQT, OpModifyRQT:
		return &RQTIn{Op: op}
	case OpQueryVportState:
		return new(QueryVportStateIn)
	case OpQueryNICVportContext:
		return new(QueryNICVportContextIn)
	case OpModifyNICVportContext:
		return new(ModifyNICVportContextIn)
	case OpCreateFlowTable:
		return new(CreateFlowTableIn)
	case OpDestroyFlowTable, OpSetFlowTableRoot:
		return &FlowTableIn{Op: op}
	case OpCreateFlowGroup, OpDestroyFlowGroup:
		return &FlowGroupIn{Op: op}
	case OpSetFlowTableEntry, OpDeleteFlowTableEntry:
		return &FlowEntryIn{Op: op}
	}
	if in := newCounterInput(op); in != nil {
		return in
	}
	if _, ok := objectInField[op]; ok {
		return &ObjectIn{Op: op}
	}
	return nil
}

// NewOutput returns an empty output value for op, or nil when op is not
// in the kept set.
func NewOutput(op Opcode) Output {
	switch op {
	case OpQueryISSI:
		return new(QueryISSIOut)
	case OpQueryPages:
		return new(QueryPagesOut)
	case OpManagePages:
		return new(ManagePagesOut)
	case OpQueryHCACap:
		return new(QueryHCACapOut)
	case OpTeardownHCA:
		return new(TeardownHCAOut)
	case OpAccessReg:
		return new(AccessRegOut)
	case OpQueryVportState:
		return new(QueryVportStateOut)
	case OpQueryNICVportContext:
		return new(QueryNICVportContextOut)
	case OpAllocUAR, OpAllocPD, OpAllocTransportDomain, OpCreateMkey, OpCreateEQ, OpCreateCQ,
		OpCreateSQ, OpCreateRQ, OpCreateTIS, OpCreateTIR, OpCreateRQT, OpCreateFlowTable, OpCreateFlowGroup:
		return &ObjectOut{Op: op}
	case OpInitHCA, OpEnableHCA, OpDisableHCA, OpSetISSI, OpSetHCACap, OpSetDriverVersion, OpNOP,
		OpDeallocUAR, OpDeallocPD, OpDeallocTransportDomain, OpDestroyMkey, OpDestroyEQ, OpDestroyCQ,
		OpModifyCQ, OpModifySQ, OpDestroySQ, OpModifyRQ, OpDestroyRQ, OpDestroyTIS, OpModifyTIR,
		OpDestroyTIR, OpModifyRQT, OpDestroyRQT, OpModifyNICVportContext, OpDestroyFlowTable,
		OpSetFlowTableRoot, OpDestroyFlowGroup, OpSetFlowTableEntry, OpDeleteFlowTableEntry:
		return &EmptyOut{Op: op}
	}
	return newCounterOutput(op)
}

// DecodeInput decodes a command input of any kept opcode (the device
// side). An unknown opcode is ErrOpcode; the model answers it with
// StatusBadOp and the opcode as syndrome.
func DecodeInput(b []byte) (Input, error) {
	h, err := PeekInHeader(b)
	if err != nil {
		return nil, err
	}
	in := NewInput(h.Opcode)
	if in == nil {
		return nil, fmt.Errorf("%w: %v not in the kept command set", ErrOpcode, h.Opcode)
	}
	if err := in.Decode(b); err != nil {
		return nil, err
	}
	return in, nil
}

// DecodeOutput decodes the output of a command with opcode op (the
// driver side): a *StatusError when the device reported a failure.
func DecodeOutput(op Opcode, b []byte) (Output, error) {
	out := NewOutput(op)
	if out == nil {
		return nil, fmt.Errorf("%w: %v not in the kept command set", ErrOpcode, op)
	}
	if err := out.Decode(b); err != nil {
		return nil, err
	}
	return out, nil
}

// ReservedClear reports whether an input keeps every bit this package
// does not model at zero: it decodes b and compares the re-encoded bytes
// with b's first InLen bytes (encoders write reserved bits as zero). The
// model's strict mode answers false with delivery status 0x9 (spec §7.1
// P1). Bytes beyond InLen (for example a newer INIT_HCA's sw_owner_id)
// are not examined.
func ReservedClear(b []byte) (bool, error) {
	in, err := DecodeInput(b)
	if err != nil {
		return false, err
	}
	enc := in.AppendTo(nil)
	if len(enc) > len(b) {
		return false, fmt.Errorf("%w: %v re-encodes to %d bytes from %d", ErrLength, in.Opcode(), len(enc), len(b))
	}
	return string(enc) == string(b[:len(enc)]), nil
}
