package mlxhw

import "fmt"

// Flow steering, reduced (spec §7.5 compat mode (B)): the model records
// only root NIC_RX entries that forward to a TIR; everything else is
// stored but ignored. Offsets from mlx5_ifc.h:
//
//	all inputs     0x10 bits 31:24 table_type (0 = NIC_RX); 0x14 bits 23:0 table_id
//	CREATE_FLOW_TABLE   flow_table_context @0x18: bits 27:24 table_miss_action,
//	                    23:16 level, 7:0 log_size
//	CREATE_FLOW_GROUP   0x1c start_flow_index; 0x24 end_flow_index;
//	                    0x3c bits 7:0 match_criteria_enable; match_criteria @0x40 (0x200 B)
//	DESTROY_FLOW_GROUP  0x18 group_id
//	SET/DELETE_FTE      0x20 flow_index; flow_context @0x40: group_id @0x44,
//	                    flow_tag @0x48 23:0, action @0x4c 15:0, destination_list_size
//	                    @0x50 23:0, match_value @0x80 (0x200 B), destination[i] @0x340 + 8i
//	                    (type bits 31:24: 0 vport, 1 flow table, 2 TIR; id 23:0)
const (
	FlowTableNICRX       = 0
	FlowActionFwdDest    = 0x4
	FlowDestVport        = 0
	FlowDestFlowTable    = 1
	FlowDestTIR          = 2
	FlowMatchOuter       = 1 << 0 // match_criteria_enable: outer headers
	FlowMatchParamSize   = 0x200
	FlowMatchOuterDMACOf = 0x08 // dmac_47_16 in fte_match_set_lyr_2_4, dmac_15_0 at 0x0c
	MaxFlowDests         = 64   // decoder bound, far beyond the model's one

	CreateFlowTableInLen  = 0x40
	FlowTableInLen        = 0x40
	CreateFlowGroupInLen  = 0x400
	DestroyFlowGroupInLen = 0x40
	setFTEDestOff         = 0x340
)

var (
	fFTType       = F(0x10, 31, 24)
	fFTID         = F(0x14, 23, 0)
	fFTMiss       = F(0x18, 27, 24)
	fFTLevel      = F(0x18, 23, 16)
	fFTLogSize    = F(0x18, 7, 0)
	fFGStart      = B32(0x1c)
	fFGEnd        = B32(0x24)
	fFGCritEnable = F(0x3c, 7, 0)
	fFGGroupID    = B32(0x18)
	fFTEIndex     = B32(0x20)
	fFTEGroup     = B32(0x44)
	fFTETag       = F(0x48, 23, 0)
	fFTEAction    = F(0x4c, 15, 0)
	fFTEDestSize  = F(0x50, 23, 0)
	fDestType     = F(0x00, 31, 24)
	fDestID       = F(0x00, 23, 0)
)

// CreateFlowTableIn is CREATE_FLOW_TABLE's input; the output is an
// ObjectOut with table_id.
type CreateFlowTableIn struct {
	TableType, MissAction, Level, LogSize uint8
}

func (c *CreateFlowTableIn) Opcode() Opcode { return OpCreateFlowTable }
func (c *CreateFlowTableIn) InLen() int     { return CreateFlowTableInLen }
func (c *CreateFlowTableIn) OutLen() int    { return HeaderSize }
func (c *CreateFlowTableIn) AppendTo(b []byte) []byte {
	b, m := grow(b, CreateFlowTableInLen)
	putInHeader(m, OpCreateFlowTable, 0)
	fFTType.Put(m, uint32(c.TableType))
	fFTMiss.Put(m, uint32(c.MissAction))
	fFTLevel.Put(m, uint32(c.Level))
	fFTLogSize.Put(m, uint32(c.LogSize))
	return b
}
func (c *CreateFlowTableIn) Decode(b []byte) error {
	if _, err := checkIn(OpCreateFlowTable, b, CreateFlowTableInLen); err != nil {
		return err
	}
	*c = CreateFlowTableIn{uint8(fFTType.Get(b)), uint8(fFTMiss.Get(b)), uint8(fFTLevel.Get(b)), uint8(fFTLogSize.Get(b))}
	return nil
}

// FlowTableIn is DESTROY_FLOW_TABLE's or SET_FLOW_TABLE_ROOT's input.
type FlowTableIn struct {
	Op        Opcode
	TableType uint8
	TableID   uint32
}

func (c *FlowTableIn) Opcode() Opcode { return c.Op }
func (c *FlowTableIn) InLen() int     { return FlowTableInLen }
func (c *FlowTableIn) OutLen() int    { return HeaderSize }
func (c *FlowTableIn) AppendTo(b []byte) []byte {
	b, m := grow(b, FlowTableInLen)
	putInHeader(m, c.Op, 0)
	fFTType.Put(m, uint32(c.TableType))
	fFTID.Put(m, c.TableID)
	return b
}
func (c *FlowTableIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	if (h.Opcode != OpDestroyFlowTable && h.Opcode != OpSetFlowTableRoot) || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not a flow table input", ErrOpcode, h.Opcode)
	}
	if len(b) < FlowTableInLen {
		return fmt.Errorf("%w: %v input of %d bytes", ErrShort, h.Opcode, len(b))
	}
	*c = FlowTableIn{h.Opcode, uint8(fFTType.Get(b)), fFTID.Get(b)}
	return nil
}

// FlowGroupIn is CREATE_FLOW_GROUP's input (output: ObjectOut with
// group_id) or, with Op = OpDestroyFlowGroup, DESTROY_FLOW_GROUP's.
type FlowGroupIn struct {
	Op             Opcode
	TableType      uint8
	TableID        uint32
	GroupID        uint32 // destroy only
	Start, End     uint32 // create only
	CriteriaEnable uint8
	Criteria       [FlowMatchParamSize]byte
}

func (c *FlowGroupIn) Opcode() Opcode { return c.Op }
func (c *FlowGroupIn) InLen() int {
	if c.Op == OpDestroyFlowGroup {
		return DestroyFlowGroupInLen
	}
	return CreateFlowGroupInLen
}
func (c *FlowGroupIn) OutLen() int { return HeaderSize }
func (c *FlowGroupIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, c.Op, 0)
	fFTType.Put(m, uint32(c.TableType))
	fFTID.Put(m, c.TableID)
	if c.Op == OpDestroyFlowGroup {
		fFGGroupID.Put(m, c.GroupID)
		return b
	}
	fFGStart.Put(m, c.Start)
	fFGEnd.Put(m, c.End)
	fFGCritEnable.Put(m, uint32(c.CriteriaEnable))
	copy(m[0x40:], c.Criteria[:])
	return b
}
func (c *FlowGroupIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	if (h.Opcode != OpCreateFlowGroup && h.Opcode != OpDestroyFlowGroup) || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not a flow group input", ErrOpcode, h.Opcode)
	}
	*c = FlowGroupIn{Op: h.Opcode}
	if len(b) < c.InLen() {
		return fmt.Errorf("%w: %v input of %d bytes", ErrShort, h.Opcode, len(b))
	}
	c.TableType, c.TableID = uint8(fFTType.Get(b)), fFTID.Get(b)
	if h.Opcode == OpDestroyFlowGroup {
		c.GroupID = fFGGroupID.Get(b)
		return nil
	}
	c.Start, c.End, c.CriteriaEnable = fFGStart.Get(b), fFGEnd.Get(b), uint8(fFGCritEnable.Get(b))
	copy(c.Criteria[:], b[0x40:])
	return nil
}

// FlowDest is one flow destination.
type FlowDest struct {
	Type uint8
	ID   uint32
}

// FlowEntryIn is SET_FLOW_TABLE_ENTRY's input or, with Op =
// OpDeleteFlowTableEntry, DELETE_FLOW_TABLE_ENTRY's (table and index
// only).
type FlowEntryIn struct {
	Op        Opcode
	TableType uint8
	TableID   uint32
	FlowIndex uint32
	GroupID   uint32
	FlowTag   uint32
	Action    uint16
	Match     [FlowMatchParamSize]byte
	Dests     []FlowDest
}

func (c *FlowEntryIn) Opcode() Opcode { return c.Op }
func (c *FlowEntryIn) InLen() int {
	if c.Op == OpDeleteFlowTableEntry {
		return FlowTableInLen
	}
	return setFTEDestOff + 8*len(c.Dests)
}
func (c *FlowEntryIn) OutLen() int { return HeaderSize }
func (c *FlowEntryIn) AppendTo(b []byte) []byte {
	b, m := grow(b, c.InLen())
	putInHeader(m, c.Op, 0)
	fFTType.Put(m, uint32(c.TableType))
	fFTID.Put(m, c.TableID)
	fFTEIndex.Put(m, c.FlowIndex)
	if c.Op == OpDeleteFlowTableEntry {
		return b
	}
	fFTEGroup.Put(m, c.GroupID)
	fFTETag.Put(m, c.FlowTag)
	fFTEAction.Put(m, uint32(c.Action))
	fFTEDestSize.Put(m, uint32(len(c.Dests)))
	copy(m[0x80:], c.Match[:])
	for i, d := range c.Dests {
		e := m[setFTEDestOff+8*i:]
		fDestType.Put(e, uint32(d.Type))
		fDestID.Put(e, d.ID)
	}
	return b
}
func (c *FlowEntryIn) Decode(b []byte) error {
	h, err := PeekInHeader(b)
	if err != nil {
		return err
	}
	if (h.Opcode != OpSetFlowTableEntry && h.Opcode != OpDeleteFlowTableEntry) || (c.Op != 0 && c.Op != h.Opcode) {
		return fmt.Errorf("%w: %v is not a flow entry input", ErrOpcode, h.Opcode)
	}
	*c = FlowEntryIn{Op: h.Opcode}
	if len(b) < c.InLen() {
		return fmt.Errorf("%w: %v input of %d bytes", ErrShort, h.Opcode, len(b))
	}
	c.TableType, c.TableID, c.FlowIndex = uint8(fFTType.Get(b)), fFTID.Get(b), fFTEIndex.Get(b)
	if h.Opcode == OpDeleteFlowTableEntry {
		return nil
	}
	n := int(fFTEDestSize.Get(b))
	if n > MaxFlowDests || len(b) < setFTEDestOff+8*n {
		return fmt.Errorf("%w: %d flow destinations in %d bytes", ErrLength, n, len(b))
	}
	c.GroupID, c.FlowTag, c.Action = fFTEGroup.Get(b), fFTETag.Get(b), uint16(fFTEAction.Get(b))
	copy(c.Match[:], b[0x80:])
	if n > 0 {
		c.Dests = make([]FlowDest, n)
		for i := range c.Dests {
			e := b[setFTEDestOff+8*i:]
			c.Dests[i] = FlowDest{uint8(fDestType.Get(e)), fDestID.Get(e)}
		}
	}
	return nil
}

// OuterDMAC returns the outer destination MAC of a match parameter.
func OuterDMAC(match *[FlowMatchParamSize]byte) [6]byte {
	var mac [6]byte
	copy(mac[:], match[FlowMatchOuterDMACOf:])
	return mac
}

// SetOuterDMAC stores the outer destination MAC of a match parameter.
func SetOuterDMAC(match *[FlowMatchParamSize]byte, mac [6]byte) {
	copy(match[FlowMatchOuterDMACOf:], mac[:])
}
