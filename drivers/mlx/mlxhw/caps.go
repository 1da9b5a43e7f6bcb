package mlxhw

import "fmt"

// Capability types: QUERY_HCA_CAP op_mod = type<<1 | cur (spec §2.7).
const (
	CapGeneral          = 0
	CapEthernetOffloads = 1
	CapFlowTable        = 7
	CapGeneral2         = 0x20 // not served by the model (§7.13)

	CapMax     = 0 // op_mod bit 0: 0 = maximum values
	CapCurrent = 1 // 1 = current values

	CapSize = 0x1000 // the capability union
)

// CapOpMod returns QUERY_HCA_CAP's op_mod for a type; SET_HCA_CAP uses
// CapOpMod(t, CapMax).
func CapOpMod(capType uint8, cur int) uint16 { return uint16(capType)<<1 | uint16(cur&1) }

// General capabilities (struct mlx5_ifc_cmd_hca_cap_bits, spec §2.8;
// offsets within the capability):
//
//	0x11 log_max_qp_sz         0x13 bits 4:0 log_max_qp
//	0x19 log_max_cq_sz         0x1b bits 4:0 log_max_cq
//	0x1c log_max_eq_sz         0x1d bits 21:16 log_max_mkey
//	0x1f bits 3:0 log_max_eq   0x2c bit 27 cache_line_128byte
//	0x32 be16 pkey_table_size
//	0x34 bit 31 vport_group_manager, bit 25 nic_flow_table, bit 15 port_module_event,
//	     bits 9:8 port_type (1 = ETH), bits 7:0 num_ports
//	0x3c bits 3:0 cqe_version
//	0x40 bits 15:14 cmdif_checksum, bit 3 eth_net_offloads
//	0x44 bit 29 cq_moderation
//	0x48 bit 31 uar_4k, bits 21:16 uar_sz, bits 7:0 log_pg_sz
//	0x4c bit 31 bf, bit 30 driver_version, bits 20:16 log_bf_reg_size
//	0x52 be16 max_wqe_sz_sq    0x56 be16 max_wqe_sz_rq
//	0x64 bits 28:24 log_max_transport_domain, 20:16 log_max_pd
//	0x6c bits 28:24 log_max_rq, 20:16 log_max_sq, 12:8 log_max_tir, 4:0 log_max_tis
//	0x70 bits 20:16 log_max_rqt, 12:8 log_max_rqt_size, 4:0 log_max_tis_per_sq
//	0x78 bits 4:0 log_max_wq_sz
//	0x7c bit 31 nic_vport_change_event, 20:16 log_max_vlan_list,
//	     12:8 log_max_current_mc_list, 4:0 log_max_current_uc_list
//	0x8e be16 max_num_eqs      0x92 be16 log_uar_page_sz
//	0x98 be32 device_frequency_khz
//	0xa4 be32 num_of_uars_per_page
type GeneralCaps struct {
	LogMaxQPSize, LogMaxQP     uint8
	LogMaxCQSize, LogMaxCQ     uint8
	LogMaxEQSize, LogMaxEQ     uint8
	LogMaxMkey                 uint8
	CacheLine128               bool
	PkeyTableSize              uint16
	VportGroupManager          bool
	NICFlowTable               bool
	PortModuleEvent            bool
	PortType                   uint8
	NumPorts                   uint8
	CQEVersion                 uint8
	CmdifChecksum              uint8
	EthNetOffloads             bool
	CQModeration               bool
	UAR4K                      bool
	UARSize                    uint8
	LogPgSize                  uint8
	BF                         bool
	DriverVersion              bool
	LogBFRegSize               uint8
	MaxWQESizeSQ, MaxWQESizeRQ uint16
	LogMaxTransportDomain      uint8
	LogMaxPD                   uint8
	LogMaxRQ, LogMaxSQ         uint8
	LogMaxTIR, LogMaxTIS       uint8
	LogMaxRQT, LogMaxRQTSize   uint8
	LogMaxTISPerSQ             uint8
	LogMaxWQSize               uint8
	NICVportChangeEvent        bool
	LogMaxVLANList             uint8
	LogMaxMCList, LogMaxUCList uint8
	MaxNumEQs                  uint16
	LogUARPageSize             uint16
	DeviceFrequencyKHz         uint32
	NumUARsPerPage             uint32
}

// PortTypeETH is port_type for Ethernet.
const PortTypeETH = 1

func (c *GeneralCaps) fields() []struct {
	f Field
	v any
} {
	return []struct {
		f Field
		v any
	}{
		{B8(0x11), &c.LogMaxQPSize}, {F(0x13, 4, 0), &c.LogMaxQP},
		{B8(0x19), &c.LogMaxCQSize}, {F(0x1b, 4, 0), &c.LogMaxCQ},
		{B8(0x1c), &c.LogMaxEQSize}, {F(0x1d, 21, 16), &c.LogMaxMkey}, {F(0x1f, 3, 0), &c.LogMaxEQ},
		{Flag(0x2c, 27), &c.CacheLine128}, {B16(0x32), &c.PkeyTableSize},
		{Flag(0x34, 31), &c.VportGroupManager}, {Flag(0x34, 25), &c.NICFlowTable},
		{Flag(0x36, 15), &c.PortModuleEvent}, {F(0x36, 9, 8), &c.PortType}, {B8(0x37), &c.NumPorts},
		{F(0x3c, 3, 0), &c.CQEVersion},
		{F(0x42, 15, 14), &c.CmdifChecksum}, {Flag(0x43, 3), &c.EthNetOffloads},
		{Flag(0x44, 29), &c.CQModeration},
		{Flag(0x48, 31), &c.UAR4K}, {F(0x49, 21, 16), &c.UARSize}, {B8(0x4b), &c.LogPgSize},
		{Flag(0x4c, 31), &c.BF}, {Flag(0x4c, 30), &c.DriverVersion}, {F(0x4d, 20, 16), &c.LogBFRegSize},
		{B16(0x52), &c.MaxWQESizeSQ}, {B16(0x56), &c.MaxWQESizeRQ},
		{F(0x64, 28, 24), &c.LogMaxTransportDomain}, {F(0x65, 20, 16), &c.LogMaxPD},
		{F(0x6c, 28, 24), &c.LogMaxRQ}, {F(0x6d, 20, 16), &c.LogMaxSQ},
		{F(0x6e, 12, 8), &c.LogMaxTIR}, {F(0x6f, 4, 0), &c.LogMaxTIS},
		{F(0x71, 20, 16), &c.LogMaxRQT}, {F(0x72, 12, 8), &c.LogMaxRQTSize}, {F(0x73, 4, 0), &c.LogMaxTISPerSQ},
		{F(0x7b, 4, 0), &c.LogMaxWQSize},
		{Flag(0x7c, 31), &c.NICVportChangeEvent}, {F(0x7d, 20, 16), &c.LogMaxVLANList},
		{F(0x7e, 12, 8), &c.LogMaxMCList}, {F(0x7f, 4, 0), &c.LogMaxUCList},
		{B16(0x8e), &c.MaxNumEQs}, {B16(0x92), &c.LogUARPageSize},
		{B32(0x98), &c.DeviceFrequencyKHz}, {B32(0xa4), &c.NumUARsPerPage},
	}
}

// putFields and getFields move a table of typed fields.
func putFields(b []byte, fs []struct {
	f Field
	v any
}) {
	for _, x := range fs {
		switch p := x.v.(type) {
		case *bool:
			x.f.PutBool(b, *p)
		case *uint8:
			x.f.Put(b, uint32(*p))
		case *uint16:
			x.f.Put(b, uint32(*p))
		case *uint32:
			x.f.Put(b, *p)
		}
	}
}

func getFields(b []byte, fs []struct {
	f Field
	v any
}) {
	for _, x := range fs {
		v := x.f.Get(b)
		switch p := x.v.(type) {
		case *bool:
			*p = v != 0
		case *uint8:
			*p = uint8(v)
		case *uint16:
			*p = uint16(v)
		case *uint32:
			*p = v
		}
	}
}

// Put writes the capability into b[:CapSize], other bits zero.
func (c *GeneralCaps) Put(b []byte) {
	if len(b) < CapSize {
		return
	}
	clear(b[:CapSize])
	putFields(b, c.fields())
}

// Parse decodes the capability in b (at least CapSize bytes).
func (c *GeneralCaps) Parse(b []byte) error {
	if len(b) < CapSize {
		return fmt.Errorf("%w: general caps of %d bytes", ErrShort, len(b))
	}
	*c = GeneralCaps{}
	getFields(b, c.fields())
	return nil
}

// ModelGeneralCaps returns the general capabilities the mlx-lite model
// serves (spec §7.6).
func ModelGeneralCaps() GeneralCaps {
	return GeneralCaps{
		LogMaxQPSize: 0, LogMaxQP: 0, LogMaxCQSize: 16, LogMaxCQ: 8, LogMaxEQSize: 13, LogMaxEQ: 3,
		LogMaxMkey: 4, PortType: PortTypeETH, NumPorts: 1, CQEVersion: 1, EthNetOffloads: true,
		NICFlowTable: true, CQModeration: true, UAR4K: true, LogBFRegSize: LogBFRegSize, DriverVersion: true,
		MaxWQESizeSQ: 1024, MaxWQESizeRQ: 512, LogMaxTransportDomain: 4, LogMaxPD: 8, LogMaxRQ: 8, LogMaxSQ: 8,
		LogMaxTIR: 4, LogMaxTIS: 2, LogMaxRQT: 2, LogMaxRQTSize: 8, LogMaxWQSize: 15, NICVportChangeEvent: true,
		LogMaxMCList: 7, LogMaxUCList: 4, MaxNumEQs: 8, DeviceFrequencyKHz: 1000000, NumUARsPerPage: 1,
	}
}

// Ethernet offload capabilities (per_protocol_networking_offload_caps,
// cap type 1, spec §2.8):
//
//	0x00 bit 31 csum_cap, 30 vlan_cap, 29 lro_cap, 24 wqe_vlan_insert,
//	     23 self_lb_en_modifiable, 20:16 max_lso_cap, 13:12 wqe_inline_mode,
//	     11:8 rss_ind_tbl_cap, 6 scatter_fcs, 5 enhanced_multi_pkt_send_wqe,
//	     1 tunnel_stateless_gre, 0 tunnel_stateless_vxlan
//	0x04 bits 31, 30, 29 swp, swp_csum, swp_lso
//	0x08 bits 15:0 lro_min_mss_size (byte 0x0a)
type EthCaps struct {
	Csum, VLAN, LRO, WQEVLANInsert, SelfLBModifiable bool
	MaxLSO                                           uint8
	WQEInlineMode                                    uint8
	RSSIndTblCap                                     uint8
	ScatterFCS, EnhancedMPW                          bool
	TunnelGRE, TunnelVXLAN                           bool
	SWP, SWPCsum, SWPLSO                             bool
	LROMinMSS                                        uint16
}

// wqe_inline_mode values.
const (
	InlineModeL2         = 0
	InlineModeVportCtx   = 1
	InlineModeNotRequird = 2
)

func (c *EthCaps) fields() []struct {
	f Field
	v any
} {
	return []struct {
		f Field
		v any
	}{
		{Flag(0, 31), &c.Csum}, {Flag(0, 30), &c.VLAN}, {Flag(0, 29), &c.LRO}, {Flag(0, 24), &c.WQEVLANInsert},
		{Flag(0, 23), &c.SelfLBModifiable}, {F(0, 20, 16), &c.MaxLSO}, {F(0, 13, 12), &c.WQEInlineMode},
		{F(0, 11, 8), &c.RSSIndTblCap}, {Flag(0, 6), &c.ScatterFCS}, {Flag(0, 5), &c.EnhancedMPW},
		{Flag(0, 1), &c.TunnelGRE}, {Flag(0, 0), &c.TunnelVXLAN},
		{Flag(4, 31), &c.SWP}, {Flag(4, 30), &c.SWPCsum}, {Flag(4, 29), &c.SWPLSO},
		{B16(0x0a), &c.LROMinMSS},
	}
}

// Put writes the capability into b[:CapSize].
func (c *EthCaps) Put(b []byte) {
	if len(b) < CapSize {
		return
	}
	clear(b[:CapSize])
	putFields(b, c.fields())
}

// Parse decodes the capability in b (at least CapSize bytes).
func (c *EthCaps) Parse(b []byte) error {
	if len(b) < CapSize {
		return fmt.Errorf("%w: ethernet caps of %d bytes", ErrShort, len(b))
	}
	*c = EthCaps{}
	getFields(b, c.fields())
	return nil
}

// ModelEthCaps returns the Ethernet offload capabilities of the model
// (spec §7.6).
func ModelEthCaps() EthCaps {
	return EthCaps{Csum: true, VLAN: true, WQEVLANInsert: true, SelfLBModifiable: true, MaxLSO: 16,
		WQEInlineMode: InlineModeNotRequird, RSSIndTblCap: 8}
}

// Flow table capabilities (cap type 7, compat mode): the model serves
// only flow_table_properties_nic_receive.max_ft_level (spec §7.6). The
// properties start at capability byte 0x40 (mlx5_ifc.h
// flow_table_nic_cap) and max_ft_level is bits 7:0 of their dword 0x04.
var FlowTableMaxFTLevel = F(0x47, 7, 0)
