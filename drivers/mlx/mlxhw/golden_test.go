package mlxhw

import (
	"errors"
	"reflect"
	"testing"
)

type golden struct {
	name string
	in   Input  // exactly one of in/out
	out  Output //
	wire []byte
}

func hdr(n int, op Opcode, opMod uint16) []byte {
	b := make([]byte, n)
	w16(b, 0, uint16(op))
	w16(b, 6, opMod)
	return b
}

var testMAC = [6]byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}

// goldens returns every command layout with its bytes built by hand from
// the offsets of spec §2.7 (input: opcode @0x00 bits 31:16, op_mod @0x04
// bits 15:0; output: status @0x00, syndrome @0x04).
func goldens() []golden {
	var g []golden
	add := func(name string, v any, b []byte) {
		x := golden{name: name, wire: b}
		switch v := v.(type) {
		case Input:
			x.in = v
		case Output:
			x.out = v
		}
		g = append(g, x)
	}

	add("ENABLE_HCA", &ObjectIn{Op: OpEnableHCA}, hdr(16, OpEnableHCA, 0))
	b := hdr(16, OpSetISSI, 0)
	w16(b, 0x0a, 1)
	add("SET_ISSI", &ObjectIn{Op: OpSetISSI, ID: 1}, b)
	b = hdr(16, OpQueryPages, PagesBoot)
	add("QUERY_PAGES in", &ObjectIn{Op: OpQueryPages, OpMod: PagesBoot}, b)
	b = hdr(16, OpTeardownHCA, 0)
	w16(b, 0x0a, TeardownForceClose)
	add("TEARDOWN_HCA in", &ObjectIn{Op: OpTeardownHCA, ID: TeardownForceClose}, b)
	b = hdr(16, OpDestroyEQ, 0)
	w8(b, 0x0b, 7)
	add("DESTROY_EQ", &ObjectIn{Op: OpDestroyEQ, ID: 7}, b)
	b = hdr(16, OpDestroySQ, 0)
	w32(b, 0x08, 0x800)
	add("DESTROY_SQ", &ObjectIn{Op: OpDestroySQ, ID: 0x800}, b)
	add("QUERY_HCA_CAP in", &SimpleIn{Op: OpQueryHCACap, OpMod: 3}, hdr(16, OpQueryHCACap, 3))
	add("ALLOC_UAR in", &SimpleIn{Op: OpAllocUAR}, hdr(16, OpAllocUAR, 0))

	b = make([]byte, 16)
	w32(b, 0x08, 0x00000008)
	add("ALLOC_UAR out", &ObjectOut{Op: OpAllocUAR, ID: 8}, b)
	b = make([]byte, 16)
	w8(b, 0x0b, 2)
	add("CREATE_EQ out", &ObjectOut{Op: OpCreateEQ, ID: 2}, b)
	add("INIT_HCA out", &EmptyOut{Op: OpInitHCA}, make([]byte, 16))
	b = make([]byte, 0x70)
	w16(b, 0x0a, 0)
	w32(b, 0x6c, 3)
	add("QUERY_ISSI out", &QueryISSIOut{SupportedISSI: 3}, b)
	b = make([]byte, 16)
	w32(b, 0x0c, 0xfffffffc)
	add("QUERY_PAGES out", &QueryPagesOut{NumPages: -4}, b)
	b = make([]byte, 16)
	w8(b, 0x0f, 1)
	add("TEARDOWN_HCA out", &TeardownHCAOut{State: 1}, b)
	b = make([]byte, 0x20)
	w32(b, 0x08, 2)
	w64(b, 0x10, 0x5000)
	w64(b, 0x18, 0x6000)
	add("MANAGE_PAGES out", &ManagePagesOut{PAS: []uint64{0x5000, 0x6000}}, b)
	b = make([]byte, 16)
	w8(b, 0x0f, 0x21)
	add("QUERY_VPORT_STATE out", &QueryVportStateOut{AdminState: VportAuto, State: VportUp}, b)

	b = hdr(0x20, OpManagePages, ManagePagesGive)
	w32(b, 0x0c, 2)
	w64(b, 0x10, 0x7000)
	w64(b, 0x18, 0x8000)
	add("MANAGE_PAGES give", &ManagePagesIn{OpMod: ManagePagesGive, NumEntries: 2, PAS: []uint64{0x7000, 0x8000}}, b)
	b = hdr(0x10, OpManagePages, ManagePagesTake)
	w32(b, 0x0c, 9)
	add("MANAGE_PAGES take", &ManagePagesIn{OpMod: ManagePagesTake, NumEntries: 9}, b)

	b = hdr(0x18, OpAccessReg, AccessRegRead)
	w16(b, 0x0a, RegIDPMTU)
	w32(b, 0x0c, 0)
	w8(b, 0x12, 1) // PMTU local_port 1: register byte 0x02 (bits 23:16)
	add("ACCESS_REG PMTU", &AccessRegIn{OpMod: AccessRegRead, RegisterID: RegIDPMTU, Data: []byte{0, 0, 1, 0, 0, 0, 0, 0}}, b)
	b = hdr(0x50, OpSetDriverVersion, 0)
	copy(b[0x10:], "hvguest,mlx,1.0")
	add("SET_DRIVER_VERSION", &SetDriverVersionIn{Version: "hvguest,mlx,1.0"}, b)

	// CREATE_EQ: log_eq_size @0x1c 28:24, uar_page @0x1c 23:0, intr
	// @0x24 7:0, log_page_size @0x28 28:24, event_bitmask @0x58, pas @0x110.
	b = hdr(0x120, OpCreateEQ, 0)
	w32(b, 0x1c, 7<<24|9)
	w8(b, 0x27, 3)
	w8(b, 0x28, 1)
	w64(b, 0x58, 1<<EventCmd)
	w64(b, 0x110, 0x200000)
	w64(b, 0x118, 0x201000)
	add("CREATE_EQ", &CreateEQIn{Ctx: EQContext{LogSize: 7, UARPage: 9, Intr: 3, LogPageSize: 1},
		EventBitmask: EventCmd.Bit(), PAS: []uint64{0x200000, 0x201000}}, b)

	// CREATE_CQ: cqc @0x10; log_cq_size/uar @0x1c; period/max_count @0x20;
	// c_eqn @0x24; dbr_addr @0x48.
	b = hdr(0x118, OpCreateCQ, 0)
	w8(b, 0x11, 0x02) // oi bit 17 of dword 0x10
	w32(b, 0x1c, 10<<24|8)
	w32(b, 0x20, 16<<16|32)
	w8(b, 0x27, 2)
	w64(b, 0x48, 0x3000)
	w64(b, 0x110, 0x300000)
	add("CREATE_CQ", &CreateCQIn{Ctx: CQContext{OI: true, LogSize: 10, UARPage: 8, Period: 16, MaxCount: 32,
		EQN: 2, DBRAddr: 0x3000}, PAS: []uint64{0x300000}}, b)
	b = hdr(0x110, OpModifyCQ, 0)
	w32(b, 0x08, 0x400)
	w32(b, 0x0c, ModifyCQPeriod|ModifyCQMaxCount)
	w32(b, 0x20, 8<<16|64)
	add("MODIFY_CQ", &ModifyCQIn{CQN: 0x400, FieldSelect: 3, Ctx: CQContext{Period: 8, MaxCount: 64}}, b)

	// CREATE_SQ: sqc @0x20; cqn at bytes 0x29..0x2b; tis_lst_sz @0x40;
	// tis_num_0 @0x4c; wq @0x50 (type, pd @0x58, uar @0x5c, dbr @0x60,
	// log_wq_stride/pg_sz/sz @0x70).
	b = hdr(0x118, OpCreateSQ, 0)
	w8(b, 0x20, 0x10) // flush_in_error_en, bit 28
	w32(b, 0x28, 0x400)
	w16(b, 0x40, 1)
	w32(b, 0x4c, 0x1000)
	w8(b, 0x50, 0x10) // wq_type 1
	w32(b, 0x58, 0x10)
	w32(b, 0x5c, 8)
	w64(b, 0x60, 0x4008)
	w32(b, 0x70, 6<<16|0<<8|10)
	w64(b, 0x110, 0x400000)
	sqc := SQContext{FlushInError: true, CQN: 0x400, TISListSize: 1, TISNum0: 0x1000,
		WQ: WQ{Type: WQCyclic, PD: 0x10, UARPage: 8, DBRAddr: 0x4008, LogStride: 6, LogSize: 10}}
	add("CREATE_SQ", &CreateSQIn{Ctx: sqc, PAS: []uint64{0x400000}}, b)
	b = hdr(0x110, OpModifySQ, 0)
	w32(b, 0x08, QueueRST<<28|0x800)
	w64(b, 0x10, 0)
	w8(b, 0x21, QueueRDY<<4)
	add("MODIFY_SQ RST->RDY", &ModifySQIn{CurState: QueueRST, SQN: 0x800, Ctx: SQContext{State: QueueRDY}}, b)

	// CREATE_RQ: vsd @0x20 bit 28; state 23:20; cqn @0x28; wq @0x50.
	b = hdr(0x110, OpCreateRQ, 0)
	w8(b, 0x20, 0x10)
	w32(b, 0x28, 0x401)
	w8(b, 0x2c, 5)
	w8(b, 0x50, 0x10)
	w32(b, 0x70, 4<<16|9)
	add("CREATE_RQ", &CreateRQIn{Ctx: RQContext{VSD: true, CQN: 0x401, CounterSetID: 5,
		WQ: WQ{Type: WQCyclic, LogStride: 4, LogSize: 9}}}, b)
	b = hdr(0x110, OpModifyRQ, 0)
	w32(b, 0x08, QueueERR<<28|0xc00)
	add("MODIFY_RQ ERR->RST", &ModifyRQIn{CurState: QueueERR, RQN: 0xc00}, b)

	// CREATE_TIS: prio @0x20 19:16; transport_domain @0x44.
	b = hdr(0xc0, OpCreateTIS, 0)
	w8(b, 0x21, 0x03)
	w32(b, 0x44, 0x20)
	add("CREATE_TIS", &CreateTISIn{Ctx: TISContext{Prio: 3, TransportDomain: 0x20}}, b)

	// CREATE_TIR indirect: disp_type @0x24; indirect_table @0x40;
	// rx_hash_fn/td @0x44; key @0x48; outer selector @0x70.
	b = hdr(0x110, OpCreateTIR, 0)
	w8(b, 0x24, 0x10)
	w32(b, 0x40, 0x1800)
	w32(b, 0x44, RxHashToeplitz<<28|0x20)
	copy(b[0x48:0x70], seq(40, 0x6d))
	w32(b, 0x70, HashSelSrcIP|HashSelDstIP|HashSelL4SPort|HashSelL4DPort)
	tir := TIRContext{DispType: TIRIndirect, IndirectTable: 0x1800, HashFn: RxHashToeplitz, TransportDomain: 0x20,
		SelectorOuter: 0xf}
	copy(tir.ToeplitzKey[:], seq(40, 0x6d))
	add("CREATE_TIR", &TIRIn{Op: OpCreateTIR, Ctx: tir}, b)
	b = hdr(0x110, OpModifyTIR, 0)
	w32(b, 0x08, 0x1400)
	w64(b, 0x10, 1)
	w32(b, 0x3c, 0xc00)
	add("MODIFY_TIR", &TIRIn{Op: OpModifyTIR, TIRN: 0x1400, Bitmask: 1, Ctx: TIRContext{InlineRQN: 0xc00}}, b)

	// CREATE_RQT: rqt_max_size @0x34; actual @0x38; rq_num @0x110.
	b = hdr(0x118, OpCreateRQT, 0)
	w16(b, 0x36, 4)
	w16(b, 0x3a, 2)
	w32(b, 0x110, 0xc00)
	w32(b, 0x114, 0xc01)
	add("CREATE_RQT", &RQTIn{Op: OpCreateRQT, Ctx: RQTContext{MaxSize: 4, RQs: []uint32{0xc00, 0xc01}}}, b)

	// CREATE_MKEY PA, length64: mkc @0x10 (lw/lr/access_mode), qpn and
	// mkey_7_0 @0x14, length64/pd @0x1c.
	b = hdr(0x110, OpCreateMkey, 0)
	w32(b, 0x10, 0x00000c00)
	w32(b, 0x14, 0xffffff00|0x42)
	w32(b, 0x1c, 1<<31|0x10)
	add("CREATE_MKEY", &CreateMkeyIn{Ctx: MkeyContext{LocalWrite: true, LocalRead: true, QPN: 0xffffff,
		Key: 0x42, Length64: true, PD: 0x10}}, b)

	b = hdr(16, OpQueryVportState, 0)
	add("QUERY_VPORT_STATE in", &QueryVportStateIn{}, b)
	b = hdr(16, OpQueryNICVportContext, 0)
	w32(b, 0x0c, ListMC<<24)
	add("QUERY_NIC_VPORT_CONTEXT in", &QueryNICVportContextIn{ListType: ListMC}, b)

	// QUERY_NIC_VPORT_CONTEXT out: context @0x10: mtu @0x34, promisc
	// @0x100, permanent address @0x106.
	b = make([]byte, 0x110)
	w16(b, 0x36, 1522)
	w8(b, 0x100, 0x40) // promisc_mc
	copy(b[0x106:], testMAC[:])
	add("QUERY_NIC_VPORT_CONTEXT out", &QueryNICVportContextOut{Ctx: NICVportContext{MTU: 1522, PromiscMC: true,
		PermanentAddress: testMAC}}, b)

	// MODIFY_NIC_VPORT_CONTEXT with an MC list of 2: field_select @0x0c;
	// context @0x100: list type/size @0x1f0; entries @0x200 (MAC at +2).
	b = hdr(0x210, OpModifyNICVportContext, 0)
	w32(b, 0x0c, FieldSelectAddressesList)
	w32(b, 0x1f0, ListMC<<24|2)
	copy(b[0x202:], []byte{0x01, 0x00, 0x5e, 0, 0, 1})
	copy(b[0x20a:], []byte{0x33, 0x33, 0, 0, 0, 1})
	add("MODIFY_NIC_VPORT_CONTEXT", &ModifyNICVportContextIn{FieldSelect: FieldSelectAddressesList,
		Ctx: NICVportContext{ListType: ListMC, Addresses: [][6]byte{{0x01, 0x00, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}}}}, b)
	b = hdr(0x100+0x100, OpModifyNICVportContext, 0)
	w32(b, 0x0c, FieldSelectMTU)
	w16(b, 0x126, 9022)
	add("MODIFY_NIC_VPORT_CONTEXT mtu", &ModifyNICVportContextIn{FieldSelect: FieldSelectMTU, Ctx: NICVportContext{MTU: 9022}}, b)

	// Flow steering (compat mode): table_type @0x10, table_id @0x14.
	b = hdr(0x40, OpCreateFlowTable, 0)
	w32(b, 0x18, 1<<16|4) // level 1, log_size 4
	add("CREATE_FLOW_TABLE", &CreateFlowTableIn{Level: 1, LogSize: 4}, b)
	b = hdr(0x40, OpSetFlowTableRoot, 0)
	w32(b, 0x14, 0x10)
	add("SET_FLOW_TABLE_ROOT", &FlowTableIn{Op: OpSetFlowTableRoot, TableID: 0x10}, b)
	b = hdr(0x400, OpCreateFlowGroup, 0)
	w32(b, 0x14, 0x10)
	w32(b, 0x24, 15)
	w8(b, 0x3f, FlowMatchOuter)
	copy(b[0x48:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	fg := FlowGroupIn{Op: OpCreateFlowGroup, TableID: 0x10, End: 15, CriteriaEnable: FlowMatchOuter}
	SetOuterDMAC(&fg.Criteria, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	add("CREATE_FLOW_GROUP", &fg, b)
	b = hdr(0x40, OpDestroyFlowGroup, 0)
	w32(b, 0x14, 0x10)
	w32(b, 0x18, 0x11)
	add("DESTROY_FLOW_GROUP", &FlowGroupIn{Op: OpDestroyFlowGroup, TableID: 0x10, GroupID: 0x11}, b)
	// SET_FLOW_TABLE_ENTRY forwarding dmac testMAC to TIR 0x1400:
	// destination[0] @0x340 = type 2 << 24 | tirn.
	b = hdr(0x348, OpSetFlowTableEntry, 0)
	w32(b, 0x14, 0x10)
	w32(b, 0x20, 3)
	w32(b, 0x44, 0x11)
	w32(b, 0x48, 0x77)
	w32(b, 0x4c, FlowActionFwdDest)
	w32(b, 0x50, 1)
	copy(b[0x88:], testMAC[:])
	w32(b, 0x340, FlowDestTIR<<24|0x1400)
	fte := FlowEntryIn{Op: OpSetFlowTableEntry, TableID: 0x10, FlowIndex: 3, GroupID: 0x11, FlowTag: 0x77,
		Action: FlowActionFwdDest, Dests: []FlowDest{{FlowDestTIR, 0x1400}}}
	SetOuterDMAC(&fte.Match, testMAC)
	add("SET_FLOW_TABLE_ENTRY", &fte, b)
	b = hdr(0x40, OpDeleteFlowTableEntry, 0)
	w32(b, 0x14, 0x10)
	w32(b, 0x20, 3)
	add("DELETE_FLOW_TABLE_ENTRY", &FlowEntryIn{Op: OpDeleteFlowTableEntry, TableID: 0x10, FlowIndex: 3}, b)
	b = make([]byte, 16)
	w32(b, 0x08, 0x10)
	add("CREATE_FLOW_TABLE out", &ObjectOut{Op: OpCreateFlowTable, ID: 0x10}, b)

	// Optional counters: QUERY_VPORT_COUNTER clear @0x18 bit 31; the
	// Ethernet unicast rx counter is the ninth traffic counter, @0x90.
	b = hdr(0x20, OpQueryVportCounter, 0)
	w8(b, 0x18, 0x80)
	add("QUERY_VPORT_COUNTER in", &QueryVportCounterIn{Clear: true}, b)
	b = make([]byte, 0x210)
	w64(b, 0x90, 1000)
	w64(b, 0x98, 1514000)
	w64(b, 0xa0, 7)
	vc := QueryVportCounterOut{}
	vc.Counters[CounterRxEthUnicast] = TrafficCounter{1000, 1514000}
	vc.Counters[CounterTxEthUnicast] = TrafficCounter{Packets: 7}
	add("QUERY_VPORT_COUNTER out", &vc, b)
	add("ALLOC_Q_COUNTER in", &SimpleIn{Op: OpAllocQCounter}, hdr(16, OpAllocQCounter, 0))
	b = make([]byte, 16)
	w8(b, 0x0b, 5)
	add("ALLOC_Q_COUNTER out", &AllocQCounterOut{CounterSetID: 5}, b)
	b = hdr(16, OpDeallocQCounter, 0)
	w8(b, 0x0b, 5)
	add("DEALLOC_Q_COUNTER", &ObjectIn{Op: OpDeallocQCounter, ID: 5}, b)
	return g
}

func TestGoldenCommands(t *testing.T) {
	for _, g := range goldens() {
		if g.in != nil {
			same(t, g.name, g.in.AppendTo(nil), g.wire)
			if g.in.InLen() != len(g.wire) {
				t.Errorf("%s: InLen %d, wire %d", g.name, g.in.InLen(), len(g.wire))
			}
			d, err := DecodeInput(g.wire)
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			if !reflect.DeepEqual(d, g.in) {
				t.Fatalf("%s: decoded\n %+v\nwant\n %+v", g.name, d, g.in)
			}
			if d.OutLen() < HeaderSize {
				t.Fatalf("%s: OutLen %d", g.name, d.OutLen())
			}
			continue
		}
		same(t, g.name, g.out.AppendTo(nil), g.wire)
		d, err := DecodeOutput(g.out.Opcode(), g.wire)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		if !reflect.DeepEqual(d, g.out) {
			t.Fatalf("%s: decoded\n %+v\nwant\n %+v", g.name, d, g.out)
		}
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	pre := []byte{1, 2, 3}
	b := (&ObjectIn{Op: OpEnableHCA}).AppendTo(append(make([]byte, 0, 64), pre...))
	same(t, "prefix", b[:3], pre)
	same(t, "body", b[3:], hdr(16, OpEnableHCA, 0))
	// A reused buffer with stale bytes beyond len is cleared.
	dirty := make([]byte, 3, 64)
	for i := range dirty[:64] {
		dirty[:64][i] = 0xff
	}
	b = (&SimpleIn{Op: OpNOP}).AppendTo(dirty)
	same(t, "cleared", b[3:], hdr(16, OpNOP, 0))
}

func TestStatusError(t *testing.T) {
	b := AppendErrorOutput(nil, StatusBadOp, uint32(OpQueryAdapter))
	want := make([]byte, 16)
	w8(want, 0, 0x02)
	w32(want, 4, 0x101)
	same(t, "error output", b, want)
	_, err := DecodeOutput(OpCreateSQ, b)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusBadOp || se.Syndrome != 0x101 || se.Op != OpCreateSQ ||
		!errors.Is(err, ErrStatus) {
		t.Fatalf("%v", err)
	}
	if StatusBadSysState.String() != "BAD_SYS_STATE" || OpEnableHCA.String() != "ENABLE_HCA" {
		t.Fatal("names")
	}
	if _, err := DecodeOutput(OpQueryAdapter, make([]byte, 16)); !errors.Is(err, ErrOpcode) {
		t.Fatal(err)
	}
	if _, err := DecodeInput(hdr(16, OpQueryAdapter, 0)); !errors.Is(err, ErrOpcode) {
		t.Fatal(err)
	}
	if _, err := DecodeOutput(OpQueryISSI, make([]byte, 0x6f)); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if _, err := DecodeInput(hdr(0x10f, OpCreateSQ, 0)); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if err := (&CreateSQIn{}).Decode(hdr(0x110, OpCreateRQ, 0)); !errors.Is(err, ErrOpcode) {
		t.Fatal(err)
	}
	b = hdr(16, OpManagePages, ManagePagesGive)
	w32(b, 0x0c, 1)
	if _, err := DecodeInput(b); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	b = hdr(0x348, OpSetFlowTableEntry, 0)
	w32(b, 0x50, 2) // two destinations, room for one
	if _, err := DecodeInput(b); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	if _, err := DecodeInput(hdr(0x3ff, OpCreateFlowGroup, 0)); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
}

// TestKeptSet checks that every kept opcode (spec §7.5) has an input and
// an output, and that the 0x101 pitfall (§8) is not among them.
func TestKeptSet(t *testing.T) {
	kept := []Opcode{OpEnableHCA, OpDisableHCA, OpQueryISSI, OpSetISSI, OpQueryPages, OpManagePages,
		OpQueryHCACap, OpSetHCACap, OpInitHCA, OpTeardownHCA, OpAccessReg, OpNOP, OpSetDriverVersion,
		OpAllocUAR, OpDeallocUAR, OpAllocPD, OpDeallocPD, OpAllocTransportDomain, OpDeallocTransportDomain,
		OpCreateMkey, OpDestroyMkey, OpCreateEQ, OpDestroyEQ, OpCreateCQ, OpDestroyCQ, OpModifyCQ,
		OpCreateTIS, OpDestroyTIS, OpCreateSQ, OpModifySQ, OpDestroySQ, OpCreateRQ, OpModifyRQ, OpDestroyRQ,
		OpCreateRQT, OpModifyRQT, OpDestroyRQT, OpCreateTIR, OpModifyTIR, OpDestroyTIR,
		OpQueryVportState, OpQueryNICVportContext, OpModifyNICVportContext,
		OpCreateFlowTable, OpDestroyFlowTable, OpCreateFlowGroup, OpDestroyFlowGroup, OpSetFlowTableEntry,
		OpDeleteFlowTableEntry, OpSetFlowTableRoot, OpQueryVportCounter, OpAllocQCounter, OpDeallocQCounter}
	for _, op := range kept {
		if NewInput(op) == nil || NewOutput(op) == nil {
			t.Errorf("%v: missing input or output", op)
			continue
		}
		if NewInput(op).Opcode() != op || NewOutput(op).Opcode() != op {
			t.Errorf("%v: opcode mismatch", op)
		}
	}
	if OpSetHCACap != 0x109 || OpEnableHCA != 0x104 || OpDisableHCA != 0x105 || RegInitializing != 0x1fc {
		t.Fatal("pitfall constants (§8)")
	}
	if NewInput(OpQueryAdapter) != nil {
		t.Fatal("QUERY_ADAPTER is not kept")
	}
}
