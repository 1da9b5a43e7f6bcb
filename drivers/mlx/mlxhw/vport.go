package mlxhw

import (
	"fmt"
	"net"
)

// NIC vport context, 0x100 bytes plus the address list
// (nic_vport_context, spec §4.4):
//
//	0x00 bits 26:24 min_wqe_inline_mode, bit 2 disable_mc_local_lb, bit 1 disable_uc_local_lb, bit 0 roce_en
//	0x04 bit 31 arm_change_event, bits 4..0 event_on_mtu, _promisc_change, _vlan_change, _mc_address_change, _uc_address_change
//	0x24 bits 15:0 mtu (hardware MTU = software MTU + 22)
//	0x28 / 0x30 / 0x38 be64 system_image_guid / port_guid / node_guid
//	0xf0 bit 31 promisc_uc, 30 promisc_mc, 29 promisc_all, bits 26:24 allowed_list_type, 11:0 allowed_list_size
//	0xf4 permanent_address: 2 reserved bytes, MAC at 0xf6..0xfb
//	0x100 current_uc_mac_address[]: 8 bytes each (MAC at +2; VLAN entries: bits 11:0 of the first dword)
const (
	NICVportContextSize = 0x100
	VportListEntrySize  = 8
	MaxVportListSize    = 1<<12 - 1 // allowed_list_size width
	MTUOverhead         = 22        // MLX5E_ETH_HARD_MTU: 14 + 4 VLAN + 4 FCS
)

// Vport list types (allowed_list_type).
const (
	ListUC   = 0
	ListMC   = 1
	ListVLAN = 2
)

// Change-event bits, nic_vport_context dword 0x04.
const (
	EventOnUCAddress = 1 << 0
	EventOnMCAddress = 1 << 1
	EventOnVLAN      = 1 << 2
	EventOnPromisc   = 1 << 3
	EventOnMTU       = 1 << 4
)

var (
	nvcMinInline     = F(0x00, 26, 24)
	nvcDisableMCLB   = Flag(0x00, 2)
	nvcDisableUCLB   = Flag(0x00, 1)
	nvcRoCE          = Flag(0x00, 0)
	nvcArmChange     = Flag(0x04, 31)
	nvcEventOn       = F(0x04, 4, 0)
	nvcMTU           = F(0x24, 15, 0)
	nvcPromiscUC     = Flag(0xf0, 31)
	nvcPromiscMC     = Flag(0xf0, 30)
	nvcPromiscAll    = Flag(0xf0, 29)
	nvcListType      = F(0xf0, 26, 24)
	nvcListSize      = F(0xf0, 11, 0)
	vlanEntry        = F(0x00, 11, 0)
	nvcPermanentAddr = 0xf6
)

// NICVportContext is the decoded nic_vport_context.
type NICVportContext struct {
	MinWQEInlineMode     uint8
	DisableMCLocalLB     bool
	DisableUCLocalLB     bool
	RoCE                 bool
	ArmChangeEvent       bool
	EventOn              uint8 // EventOn* bits
	MTU                  uint16
	SystemImageGUID      uint64
	PortGUID, NodeGUID   uint64
	PromiscUC, PromiscMC bool
	PromiscAll           bool
	ListType             uint8
	PermanentAddress     [6]byte
	// Addresses is the UC or MC list (ListType ListUC/ListMC); VLANs is
	// the list for ListVLAN. Only the one matching ListType is encoded.
	Addresses [][6]byte
	VLANs     []uint16
}

func (c *NICVportContext) listLen() int {
	if c.ListType == ListVLAN {
		return len(c.VLANs)
	}
	return len(c.Addresses)
}

// Len returns the encoded size, context plus list.
func (c *NICVportContext) Len() int { return NICVportContextSize + VportListEntrySize*c.listLen() }

// Put writes the context and its list into b[:c.Len()].
func (c *NICVportContext) Put(b []byte) error {
	n := c.listLen()
	if n > MaxVportListSize {
		return fmt.Errorf("%w: vport list of %d entries", ErrLength, n)
	}
	if len(b) < c.Len() {
		return fmt.Errorf("%w: vport context needs %d bytes, have %d", ErrBuffer, c.Len(), len(b))
	}
	b = b[:c.Len()]
	clear(b)
	nvcMinInline.Put(b, uint32(c.MinWQEInlineMode))
	nvcDisableMCLB.PutBool(b, c.DisableMCLocalLB)
	nvcDisableUCLB.PutBool(b, c.DisableUCLocalLB)
	nvcRoCE.PutBool(b, c.RoCE)
	nvcArmChange.PutBool(b, c.ArmChangeEvent)
	nvcEventOn.Put(b, uint32(c.EventOn))
	nvcMTU.Put(b, uint32(c.MTU))
	put64(b, 0x28, c.SystemImageGUID)
	put64(b, 0x30, c.PortGUID)
	put64(b, 0x38, c.NodeGUID)
	nvcPromiscUC.PutBool(b, c.PromiscUC)
	nvcPromiscMC.PutBool(b, c.PromiscMC)
	nvcPromiscAll.PutBool(b, c.PromiscAll)
	nvcListType.Put(b, uint32(c.ListType))
	nvcListSize.Put(b, uint32(n))
	copy(b[nvcPermanentAddr:], c.PermanentAddress[:])
	for i := range n {
		e := b[NICVportContextSize+VportListEntrySize*i:]
		if c.ListType == ListVLAN {
			vlanEntry.Put(e, uint32(c.VLANs[i]))
		} else {
			copy(e[2:8], c.Addresses[i][:])
		}
	}
	return nil
}

// Parse decodes the context and allowed_list_size list entries from b;
// the list must lie within b.
func (c *NICVportContext) Parse(b []byte) error {
	if len(b) < NICVportContextSize {
		return fmt.Errorf("%w: vport context of %d bytes", ErrShort, len(b))
	}
	n := int(nvcListSize.Get(b))
	if len(b) < NICVportContextSize+VportListEntrySize*n {
		return fmt.Errorf("%w: vport list of %d entries in %d bytes", ErrShort, n, len(b))
	}
	lt := uint8(nvcListType.Get(b))
	if lt > ListVLAN {
		return fmt.Errorf("%w: allowed_list_type %d", ErrField, lt)
	}
	*c = NICVportContext{
		MinWQEInlineMode: uint8(nvcMinInline.Get(b)), DisableMCLocalLB: nvcDisableMCLB.Bool(b),
		DisableUCLocalLB: nvcDisableUCLB.Bool(b), RoCE: nvcRoCE.Bool(b), ArmChangeEvent: nvcArmChange.Bool(b),
		EventOn: uint8(nvcEventOn.Get(b)), MTU: uint16(nvcMTU.Get(b)), SystemImageGUID: get64(b, 0x28),
		PortGUID: get64(b, 0x30), NodeGUID: get64(b, 0x38), PromiscUC: nvcPromiscUC.Bool(b),
		PromiscMC: nvcPromiscMC.Bool(b), PromiscAll: nvcPromiscAll.Bool(b), ListType: lt,
	}
	copy(c.PermanentAddress[:], b[nvcPermanentAddr:])
	if n == 0 {
		return nil
	}
	if lt == ListVLAN {
		c.VLANs = make([]uint16, n)
	} else {
		c.Addresses = make([][6]byte, n)
	}
	for i := range n {
		e := b[NICVportContextSize+VportListEntrySize*i:]
		if lt == ListVLAN {
			c.VLANs[i] = uint16(vlanEntry.Get(e))
		} else {
			copy(c.Addresses[i][:], e[2:8])
		}
	}
	return nil
}

// MAC returns the permanent address as a net.HardwareAddr.
func (c *NICVportContext) MAC() net.HardwareAddr {
	return net.HardwareAddr(append([]byte(nil), c.PermanentAddress[:]...))
}

// MODIFY_NIC_VPORT_CONTEXT field_select bits (spec §2.7).
const (
	FieldSelectRoCE             = 1 << 1
	FieldSelectAddressesList    = 1 << 2
	FieldSelectPermanentAddress = 1 << 3
	FieldSelectPromisc          = 1 << 4
	FieldSelectChangeEvent      = 1 << 5
	FieldSelectMTU              = 1 << 6
	FieldSelectMinInline        = 1 << 7
	FieldSelectPortGUID         = 1 << 8
	FieldSelectNodeGUID         = 1 << 9
	FieldSelectDisableMCLocalLB = 1 << 10
	FieldSelectDisableUCLocalLB = 1 << 11
	FieldSelectAffiliation      = 1 << 13

	// FieldSelectModel is the set the model accepts (§7.5).
	FieldSelectModel = FieldSelectAddressesList | FieldSelectPermanentAddress | FieldSelectPromisc |
		FieldSelectChangeEvent | FieldSelectMTU | FieldSelectMinInline
)

// Vport states (QUERY_VPORT_STATE state and admin_state).
const (
	VportDown = 0
	VportUp   = 1
	VportAuto = 2 // admin_state only: follow the link
)

// Access registers (ACCESS_REG register_id, spec §4.2–§4.5).
const (
	RegIDPMTU           = 0x5003
	RegIDPTYS           = 0x5004
	RegIDPAOS           = 0x5006
	RegIDHostEndianness = 0x7004

	PTYSSize           = 0x40
	PMTUSize           = 0x10
	PAOSSize           = 0x10
	HostEndiannessSize = 0x10

	AccessRegWrite = 0 // ACCESS_REG op_mod
	AccessRegRead  = 1

	PTYSProtoEth = 1 << 2 // proto_mask
	PAOSUp       = 1      // admin/oper status
	PAOSDown     = 2
)

// PTYS register (port type and speed):
//
//	0x00 bit 30 an_disable_admin, 29 an_disable_cap, bits 23:16 local_port, 2:0 proto_mask
//	0x04 bits 31:28 an_status
//	0x08 ext_eth_proto_capability  0x0c eth_proto_capability
//	0x14 ext_eth_proto_admin       0x18 eth_proto_admin
//	0x20 ext_eth_proto_oper        0x24 eth_proto_oper
//	0x2c bits 3:0 connector_type   0x30 eth_proto_lp_advertise
type PTYS struct {
	ANDisableAdmin, ANDisableCap bool
	LocalPort                    uint8
	ProtoMask                    uint8
	ANStatus                     uint8
	ExtCapability, Capability    uint32
	ExtAdmin, Admin              uint32
	ExtOper, Oper                uint32
	ConnectorType                uint8
	LPAdvertise                  uint32
}

func (r *PTYS) fields() []struct {
	f Field
	v any
} {
	return []struct {
		f Field
		v any
	}{
		{Flag(0, 30), &r.ANDisableAdmin}, {Flag(0, 29), &r.ANDisableCap}, {F(0, 23, 16), &r.LocalPort},
		{F(0, 2, 0), &r.ProtoMask}, {F(4, 31, 28), &r.ANStatus}, {B32(0x08), &r.ExtCapability},
		{B32(0x0c), &r.Capability}, {B32(0x14), &r.ExtAdmin}, {B32(0x18), &r.Admin}, {B32(0x20), &r.ExtOper},
		{B32(0x24), &r.Oper}, {F(0x2c, 3, 0), &r.ConnectorType}, {B32(0x30), &r.LPAdvertise},
	}
}

// Put writes the register into b[:PTYSSize].
func (r *PTYS) Put(b []byte) {
	if len(b) >= PTYSSize {
		clear(b[:PTYSSize])
		putFields(b, r.fields())
	}
}

// Parse decodes b[:PTYSSize].
func (r *PTYS) Parse(b []byte) error {
	if len(b) < PTYSSize {
		return fmt.Errorf("%w: PTYS of %d bytes", ErrShort, len(b))
	}
	*r = PTYS{}
	getFields(b, r.fields())
	return nil
}

// PMTU register: 0x00 bits 23:16 local_port; 0x04 bits 31:16 max_mtu;
// 0x08 bits 31:16 admin_mtu; 0x0c bits 31:16 oper_mtu.
type PMTU struct {
	LocalPort                 uint8
	MaxMTU, AdminMTU, OperMTU uint16
}

func (r *PMTU) fields() []struct {
	f Field
	v any
} {
	return []struct {
		f Field
		v any
	}{{F(0, 23, 16), &r.LocalPort}, {F(4, 31, 16), &r.MaxMTU}, {F(8, 31, 16), &r.AdminMTU}, {F(0xc, 31, 16), &r.OperMTU}}
}

// Put writes the register into b[:PMTUSize].
func (r *PMTU) Put(b []byte) {
	if len(b) >= PMTUSize {
		clear(b[:PMTUSize])
		putFields(b, r.fields())
	}
}

// Parse decodes b[:PMTUSize].
func (r *PMTU) Parse(b []byte) error {
	if len(b) < PMTUSize {
		return fmt.Errorf("%w: PMTU of %d bytes", ErrShort, len(b))
	}
	*r = PMTU{}
	getFields(b, r.fields())
	return nil
}

// PAOS register: 0x00 bits 31:24 swid, 23:16 local_port, 11:8
// admin_status, 3:0 oper_status; 0x04 bit 31 ase, bit 30 ee.
type PAOS struct {
	SWID, LocalPort         uint8
	AdminStatus, OperStatus uint8
	ASE, EE                 bool
}

func (r *PAOS) fields() []struct {
	f Field
	v any
} {
	return []struct {
		f Field
		v any
	}{{F(0, 31, 24), &r.SWID}, {F(0, 23, 16), &r.LocalPort}, {F(0, 11, 8), &r.AdminStatus},
		{F(0, 3, 0), &r.OperStatus}, {Flag(4, 31), &r.ASE}, {Flag(4, 30), &r.EE}}
}

// Put writes the register into b[:PAOSSize].
func (r *PAOS) Put(b []byte) {
	if len(b) >= PAOSSize {
		clear(b[:PAOSSize])
		putFields(b, r.fields())
	}
}

// Parse decodes b[:PAOSSize].
func (r *PAOS) Parse(b []byte) error {
	if len(b) < PAOSSize {
		return fmt.Errorf("%w: PAOS of %d bytes", ErrShort, len(b))
	}
	*r = PAOS{}
	getFields(b, r.fields())
	return nil
}

// ethProtoSpeed maps legacy eth_proto bits to Mb/s (enum
// mlx5e_link_mode, spec §4.2).
var ethProtoSpeed = [32]uint32{
	0: 1000, 1: 1000, 2: 10000, 3: 10000, 4: 10000, 5: 20000, 6: 40000, 7: 40000, 8: 56000,
	12: 10000, 13: 10000, 14: 10000, 15: 40000, 16: 40000, 18: 50000, 20: 100000, 21: 100000,
	22: 100000, 23: 100000, 24: 100, 25: 1000, 26: 10000, 27: 25000, 28: 25000, 29: 25000,
	30: 50000, 31: 50000,
}

// EthProtoSpeed returns the highest speed in Mb/s among the set bits of
// a legacy eth_proto mask (0 when none is known).
func EthProtoSpeed(mask uint32) uint32 {
	var s uint32
	for i := range 32 {
		if mask&(1<<i) != 0 {
			s = max(s, ethProtoSpeed[i])
		}
	}
	return s
}
