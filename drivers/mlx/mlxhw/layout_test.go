package mlxhw

import (
	"errors"
	"reflect"
	"testing"
)

// TestGeneralCapsGolden builds the model's general capability page by
// hand from the offsets of spec §2.8 and checks both directions.
func TestGeneralCapsGolden(t *testing.T) {
	want := make([]byte, CapSize)
	w8(want, 0x19, 16)   // log_max_cq_sz
	w8(want, 0x1b, 8)    // log_max_cq, bits 4:0
	w8(want, 0x1c, 13)   // log_max_eq_sz
	w8(want, 0x1d, 4)    // log_max_mkey, bits 21:16 of dword 0x1c
	w8(want, 0x1f, 3)    // log_max_eq, bits 3:0
	w8(want, 0x34, 0x02) // nic_flow_table, bit 25
	w8(want, 0x36, 0x01) // port_type ETH, bits 9:8
	w8(want, 0x37, 1)    // num_ports
	w8(want, 0x3f, 1)    // cqe_version
	w8(want, 0x43, 0x08) // eth_net_offloads, bit 3
	w8(want, 0x44, 0x20) // cq_moderation, bit 29
	w8(want, 0x48, 0x80) // uar_4k
	w8(want, 0x4c, 0x40) // driver_version, bit 30 (bf = 0)
	w8(want, 0x4d, 9)    // log_bf_reg_size, bits 20:16
	w16(want, 0x52, 1024)
	w16(want, 0x56, 512)
	w8(want, 0x64, 4) // log_max_transport_domain, bits 28:24
	w8(want, 0x65, 8) // log_max_pd, bits 20:16
	w8(want, 0x6c, 8) // log_max_rq
	w8(want, 0x6d, 8) // log_max_sq
	w8(want, 0x6e, 4) // log_max_tir
	w8(want, 0x6f, 2) // log_max_tis
	w8(want, 0x71, 2) // log_max_rqt
	w8(want, 0x72, 8) // log_max_rqt_size
	w8(want, 0x7b, 15)
	w8(want, 0x7c, 0x80) // nic_vport_change_event
	w8(want, 0x7e, 7)    // log_max_current_mc_list
	w8(want, 0x7f, 4)    // log_max_current_uc_list
	w16(want, 0x8e, 8)
	w32(want, 0x98, 1000000)
	w32(want, 0xa4, 1)
	c := ModelGeneralCaps()
	got := make([]byte, CapSize)
	c.Put(got)
	same(t, "general caps", got, want)
	var d GeneralCaps
	if err := d.Parse(want); err != nil || d != c {
		t.Fatalf("parse %+v %v", d, err)
	}
	if err := d.Parse(want[:CapSize-1]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	// Fields the model leaves 0 decode from their own bits.
	w8(want, 0x11, 9)    // log_max_qp_sz
	w8(want, 0x42, 0xc0) // cmdif_checksum 3, bits 15:14
	w8(want, 0x4c, 0xc0) // bf
	w16(want, 0x92, 0)   // log_uar_page_sz
	_ = d.Parse(want)
	if d.LogMaxQPSize != 9 || d.CmdifChecksum != 3 || !d.BF {
		t.Fatalf("%+v", d)
	}
}

func TestEthCapsGolden(t *testing.T) {
	want := make([]byte, CapSize)
	// csum 31, vlan 30, wqe_vlan_insert 24 | self_lb 23, max_lso 16 @20:16 |
	// wqe_inline_mode 2 @13:12, rss_ind_tbl_cap 8 @11:8.
	w32(want, 0, 1<<31|1<<30|1<<24|1<<23|16<<16|2<<12|8<<8)
	c := ModelEthCaps()
	got := make([]byte, CapSize)
	c.Put(got)
	same(t, "eth caps", got, want)
	var d EthCaps
	if err := d.Parse(want); err != nil || d != c {
		t.Fatalf("%+v %v", d, err)
	}
	if CapOpMod(CapEthernetOffloads, CapCurrent) != 3 || CapOpMod(CapGeneral, CapMax) != 0 {
		t.Fatal("op_mod")
	}
	ft := make([]byte, CapSize)
	FlowTableMaxFTLevel.Put(ft, 3)
	if ft[0x47] != 3 {
		t.Fatal("max_ft_level")
	}
}

func TestVportContextGolden(t *testing.T) {
	want := make([]byte, 0x100+3*8)
	w32(want, 0x00, 2<<24|1<<2)       // min_wqe_inline_mode 2, disable_mc_local_lb
	w32(want, 0x04, 1<<31|EventOnMTU) // arm_change_event, event_on_mtu
	w16(want, 0x26, 1522)
	w64(want, 0x30, 0x1122334455667788)
	w32(want, 0xf0, 1<<31|1<<29|ListUC<<24|3)
	copy(want[0xf6:], testMAC[:])
	for i := range 3 {
		copy(want[0x100+8*i+2:], []byte{0, 0x15, 0x5d, 9, 9, byte(i)})
	}
	c := NICVportContext{MinWQEInlineMode: 2, DisableMCLocalLB: true, ArmChangeEvent: true, EventOn: EventOnMTU,
		MTU: 1522, PortGUID: 0x1122334455667788, PromiscUC: true, PromiscAll: true, ListType: ListUC,
		PermanentAddress: testMAC, Addresses: [][6]byte{{0, 0x15, 0x5d, 9, 9, 0}, {0, 0x15, 0x5d, 9, 9, 1}, {0, 0x15, 0x5d, 9, 9, 2}}}
	got := make([]byte, c.Len())
	if err := c.Put(got); err != nil {
		t.Fatal(err)
	}
	same(t, "vport ctx", got, want)
	var d NICVportContext
	if err := d.Parse(want); err != nil || !reflect.DeepEqual(d, c) {
		t.Fatalf("%+v %v", d, err)
	}
	if d.MAC().String() != "00:15:5d:01:02:03" {
		t.Fatal(d.MAC())
	}
	if err := d.Parse(want[:0x100+2*8]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	// VLAN list entries: bits 11:0 of the entry's first dword.
	v := NICVportContext{ListType: ListVLAN, VLANs: []uint16{100, 4095}}
	b := make([]byte, v.Len())
	_ = v.Put(b)
	if b[0x102] != 0 || b[0x103] != 100 || b[0x10a] != 0x0f || b[0x10b] != 0xff {
		t.Fatalf("%x", b[0x100:])
	}
	w32(b, 0xf0, 3<<24)
	if err := d.Parse(b); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
}

func TestRegistersGolden(t *testing.T) {
	want := make([]byte, PTYSSize)
	w32(want, 0x00, 1<<16|PTYSProtoEth)
	w32(want, 0x04, 1<<28)
	w32(want, 0x0c, 7<<27)
	w32(want, 0x18, 7<<27)
	w32(want, 0x24, 1<<27)
	p := PTYS{LocalPort: 1, ProtoMask: PTYSProtoEth, ANStatus: 1, Capability: 7 << 27, Admin: 7 << 27, Oper: 1 << 27}
	got := make([]byte, PTYSSize)
	p.Put(got)
	same(t, "PTYS", got, want)
	var dp PTYS
	if err := dp.Parse(want); err != nil || dp != p || EthProtoSpeed(dp.Oper) != 25000 {
		t.Fatal("PTYS parse", err)
	}
	want = make([]byte, PMTUSize)
	w32(want, 0, 1<<16)
	w16(want, 4, 9022)
	w16(want, 8, 1522)
	w16(want, 0xc, 1522)
	m := PMTU{LocalPort: 1, MaxMTU: 9022, AdminMTU: 1522, OperMTU: 1522}
	got = make([]byte, PMTUSize)
	m.Put(got)
	same(t, "PMTU", got, want)
	var dm PMTU
	if err := dm.Parse(want); err != nil || dm != m {
		t.Fatal("PMTU parse")
	}
	want = make([]byte, PAOSSize)
	w32(want, 0, 1<<16|PAOSUp<<8|PAOSDown)
	w32(want, 4, 1<<31)
	a := PAOS{LocalPort: 1, AdminStatus: PAOSUp, OperStatus: PAOSDown, ASE: true}
	got = make([]byte, PAOSSize)
	a.Put(got)
	same(t, "PAOS", got, want)
	var da PAOS
	if err := da.Parse(want); err != nil || da != a {
		t.Fatal("PAOS parse")
	}
	if err := da.Parse(want[:15]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if EthProtoSpeed(0) != 0 || EthProtoSpeed(1<<20|1<<2) != 100000 {
		t.Fatal("speed")
	}
}

func TestContextsShort(t *testing.T) {
	for name, p := range map[string]func([]byte) error{
		"eqc": new(EQContext).Parse, "cqc": new(CQContext).Parse, "wq": new(WQ).Parse,
		"sqc": new(SQContext).Parse, "rqc": new(RQContext).Parse, "tisc": new(TISContext).Parse,
		"tirc": new(TIRContext).Parse, "rqtc": new(RQTContext).Parse, "mkc": new(MkeyContext).Parse,
	} {
		if err := p(make([]byte, 0x3f)); !errors.Is(err, ErrShort) {
			t.Errorf("%s: %v", name, err)
		}
	}
	b := make([]byte, RQTCSize)
	w16(b, 0x1a, MaxRQTSize+1)
	if err := new(RQTContext).Parse(b); !errors.Is(err, ErrField) {
		t.Fatal(err)
	}
	if LKey(0x100, 0x42) != 0x10042 {
		t.Fatal("lkey")
	}
}
