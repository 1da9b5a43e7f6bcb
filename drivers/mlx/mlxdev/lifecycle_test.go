package mlxdev

import (
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/pci"
)

func TestIdentityAndBAR(t *testing.T) {
	h := newHarness(t, nil)
	cs := h.cfg
	if v, d := cs.Read16(pci.VendorID), cs.Read16(pci.DeviceID); v != 0x15b3 || d != 0x1016 {
		t.Fatalf("ids %#x:%#x", v, d)
	}
	if c := uint32(cs.Read8(pci.ClassBase))<<16 | uint32(cs.Read8(pci.ClassSubClass))<<8; c != 0x020000 {
		t.Fatalf("class %#x", c)
	}
	bars, err := pci.SizeBARs(cs)
	if err != nil || len(bars) != 1 || bars[0].Size != 1<<20 || !bars[0].Is64 || !bars[0].Prefetch {
		t.Fatalf("BARs %+v %v", bars, err)
	}
	if _, err := pci.FindCapability(cs, pci.CapExpress); err != nil {
		t.Fatal(err)
	}
	off, _ := pci.FindCapability(cs, pci.CapMSIX)
	m, err := pci.ParseMSIX(cs, off)
	if err != nil || m.TableSize != 16 || m.TableOffset != 0x4000 || m.PBAOffset != 0x5000 {
		t.Fatalf("MSI-X %+v %v", m, err)
	}
	if h.dev.Serial() != 7 || h.dev.BAR(1) != nil || h.bar.Len() != 1<<20 {
		t.Fatal("serial or BAR")
	}
	if v := h.bar.Read32(mlxhw.RegCmdIfRevFWSub); mlxhw.CmdIfRevOf(v) != 5 {
		t.Fatalf("cmdif rev %#x", v)
	}
	if v := h.bar.Read32(mlxhw.RegFWRev); v != 0x00230010 {
		t.Fatalf("fw_rev %#x", v)
	}
	if g := mlxhw.ParseCmdqAddrLSz(h.bar.Read32(mlxhw.RegCmdqAddrLSz)); g.LogSize != 5 || g.LogStride != 6 || !g.Valid() {
		t.Fatalf("geometry %+v", g)
	}
	// Initializing for InitDelay after reset, and again after the address.
	if h.bar.Read32(mlxhw.RegInitializing)&mlxhw.InitializingBit == 0 {
		t.Fatal("not initializing at reset")
	}
	h.clk.Advance(time.Millisecond)
	if h.bar.Read32(mlxhw.RegInitializing) != 0 {
		t.Fatal("still initializing")
	}
	h.bar.Write32(mlxhw.RegCmdqAddrH, 0)
	h.bar.Write32(mlxhw.RegCmdqAddrLSz, uint32(h.cmdq.GPA(0)))
	if h.bar.Read32(mlxhw.RegInitializing)&mlxhw.InitializingBit == 0 {
		t.Fatal("not initializing after the cmdq address")
	}
	if v := h.bar.Read32(mlxhw.RegCmdqAddrLSz); v&mlxhw.CmdqAddrMask != uint32(h.cmdq.GPA(0)) || v&0xff != 0x56 {
		t.Fatalf("cmdq_addr_l_sz %#x", v)
	}
	// Health counter: +1 per 100 ms, frozen by the stall fault.
	c0 := h.bar.Read32(mlxhw.RegHealthCounter)
	h.clk.Advance(time.Second)
	c1 := h.bar.Read32(mlxhw.RegHealthCounter)
	if c1-c0 != 10 {
		t.Fatalf("health counter moved %d in 1s", c1-c0)
	}
	h.dev.Faults().StallHealth(true)
	h.clk.Advance(time.Second)
	if c := h.bar.Read32(mlxhw.RegHealthCounter); c != c1 {
		t.Fatalf("stalled counter moved %d -> %d", c1, c)
	}
	h.dev.Faults().StallHealth(false)
	h.clk.Advance(300 * time.Millisecond)
	if c := h.bar.Read32(mlxhw.RegHealthCounter); c != c1+3 {
		t.Fatalf("resumed counter %d, want %d", c, c1+3)
	}
	if hi, lo := h.bar.Read32(mlxhw.RegInternalTimerH), h.bar.Read32(mlxhw.RegInternalTimerL); uint64(hi)<<32|uint64(lo) != uint64(2301*time.Millisecond) {
		t.Fatalf("timer %d", uint64(hi)<<32|uint64(lo))
	}
	// NIC interface state: requested by the driver in bits 10:8, or forced.
	h.bar.Write32(mlxhw.RegCmdqAddrLSz, uint32(h.cmdq.GPA(0))|mlxhw.NICIfcDisabled<<mlxhw.NICIfcShift)
	if g := mlxhw.ParseCmdqAddrLSz(h.bar.Read32(mlxhw.RegCmdqAddrLSz)); g.NICIfc != mlxhw.NICIfcDisabled {
		t.Fatalf("nic_ifc %d", g.NICIfc)
	}
	h.dev.Faults().SetNICInterface(mlxhw.NICIfcSWReset)
	if s := h.dev.State(); s.NICIfc != mlxhw.NICIfcSWReset {
		t.Fatalf("forced nic_ifc %d", s.NICIfc)
	}
	h.dev.Faults().SetHealthSynd(mlxhw.HealthSyndFWErr, 0x1234)
	if _, s, e := mlxhw.HealthSynd(h.bar.Read32(mlxhw.RegHealthSynd)); s != 1 || e != 0x1234 {
		t.Fatalf("synd %d ext %#x", s, e)
	}
}

// TestBringUpOrder walks the state machine of §7.4 and checks the exact
// status of every out-of-order command.
func TestBringUpOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.pciUp()
	// RESET: the doorbell is ignored and counted as a violation.
	h.bar.Write32(mlxhw.RegCmdDoorbell, 1)
	if v := h.dev.Violations(); len(v) != 1 || v[0].Kind != VioCmdq {
		t.Fatalf("violations %v", v)
	}
	h.dev.ClearViolations()
	h.cmdqUp()
	if p := h.dev.State().Phase; p != PhaseCmdqReady {
		t.Fatalf("phase %v", p)
	}
	// CMDQ_READY: only ENABLE_HCA, QUERY_ISSI, NOP.
	h.expect(simple(mlxhw.OpInitHCA), mlxhw.StatusBadSysState)
	h.expect(&mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: mlxhw.PagesBoot}, mlxhw.StatusBadSysState)
	h.expect(simple(mlxhw.OpAllocUAR), mlxhw.StatusBadSysState)
	h.must(simple(mlxhw.OpNOP))
	if o := h.must(simple(mlxhw.OpQueryISSI)).(*mlxhw.QueryISSIOut); o.SupportedISSI != 3 || o.CurrentISSI != 0 {
		t.Fatalf("ISSI %+v", o)
	}
	h.expect(obj(mlxhw.OpEnableHCA, 1), mlxhw.StatusBadParam)
	h.must(obj(mlxhw.OpEnableHCA, 0))
	// ENABLED
	h.expect(obj(mlxhw.OpEnableHCA, 0), mlxhw.StatusBadSysState)
	h.expect(simple(mlxhw.OpAllocPD), mlxhw.StatusBadSysState)
	h.expect(obj(mlxhw.OpSetISSI, 2), mlxhw.StatusBadParam)
	h.must(obj(mlxhw.OpSetISSI, 1))
	h.expect(simple(mlxhw.OpInitHCA), mlxhw.StatusBadSysState) // no pages yet
	q := h.must(&mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: mlxhw.PagesBoot}).(*mlxhw.QueryPagesOut)
	if q.NumPages != 4 {
		t.Fatalf("boot pages %d", q.NumPages)
	}
	h.expect(&mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: 4}, mlxhw.StatusBadParam)
	h.expect(&mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: 1, ID: 3}, mlxhw.StatusBadParam)
	h.expect(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: []uint64{h.mbox.GPA(0) + 8}}, mlxhw.StatusBadParam)
	h.expect(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: []uint64{1 << 40}}, mlxhw.StatusBadParam)
	h.dev.ClearViolations() // the page outside memory was recorded
	h.givePages(mlxhw.PagesBoot)
	h.expect(simple(mlxhw.OpInitHCA), mlxhw.StatusBadSysState) // init pages missing
	h.givePages(mlxhw.PagesInit)
	if s := h.dev.State(); s.PagesGiven != 12 || s.BootPagesGiven != 4 || s.InitPagesGiven != 8 {
		t.Fatalf("pages %+v", s)
	}
	h.must(simple(mlxhw.OpInitHCA))
	// RUNNING
	h.expect(simple(mlxhw.OpInitHCA), mlxhw.StatusBadSysState)
	h.expect(obj(mlxhw.OpEnableHCA, 0), mlxhw.StatusBadSysState)
	// Pages cannot go below the requirement while running.
	h.expect(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: 1}, mlxhw.StatusBadSysState)
	uar := h.id(simple(mlxhw.OpAllocUAR))
	if uar != 8 {
		t.Fatalf("first UAR %d", uar)
	}
	h.must(obj(mlxhw.OpTeardownHCA, mlxhw.TeardownGraceful))
	s := h.dev.State()
	if s.Phase != PhaseEnabled || s.UARs != 0 || s.DestroyedByReset != 1 || s.PagesGiven != 12 {
		t.Fatalf("after teardown %+v", s)
	}
	out := h.must(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: 100}).(*mlxhw.ManagePagesOut)
	if len(out.PAS) != 12 || h.dev.State().PagesGiven != 0 {
		t.Fatalf("took %d pages", len(out.PAS))
	}
	h.must(obj(mlxhw.OpDisableHCA, 0))
	if p := h.dev.State().Phase; p != PhaseCmdqReady {
		t.Fatalf("phase %v after DISABLE_HCA", p)
	}
	h.noViolations()
}

func TestUnknownOpcodeAndCaps(t *testing.T) {
	h := newHarness(t, nil)
	h.bringUp()
	// An opcode outside the kept set: BAD_OP with the opcode as syndrome.
	msg := make([]byte, 16)
	msg[0], msg[1] = 0x01, 0x01 // QUERY_ADAPTER 0x101
	r := h.post(0, msg, 16, nil)
	if r.status() != mlxhw.StatusBadOp || r.syndrome() != 0x101 {
		t.Fatalf("status %v syndrome %#x", r.status(), r.syndrome())
	}
	for _, tc := range []struct {
		t   uint8
		cur int
	}{{mlxhw.CapGeneral, 0}, {mlxhw.CapGeneral, 1}, {mlxhw.CapEthernetOffloads, 1}, {mlxhw.CapFlowTable, 0}} {
		o := h.must(&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(tc.t, tc.cur)}).(*mlxhw.QueryHCACapOut)
		switch tc.t {
		case mlxhw.CapGeneral:
			var g mlxhw.GeneralCaps
			_ = g.Parse(o.Cap[:])
			if g != mlxhw.ModelGeneralCaps() {
				t.Errorf("general caps %+v", g)
			}
		case mlxhw.CapEthernetOffloads:
			var e mlxhw.EthCaps
			_ = e.Parse(o.Cap[:])
			if e != mlxhw.ModelEthCaps() {
				t.Errorf("eth caps %+v", e)
			}
		case mlxhw.CapFlowTable:
			if mlxhw.FlowTableMaxFTLevel.Get(o.Cap[:]) != 3 {
				t.Error("max_ft_level")
			}
		}
	}
	h.expect(&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral2, 1)}, mlxhw.StatusBadParam)
	// SET_HCA_CAP: a tolerated field is stored, anything else refused.
	caps := h.must(&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, 1)}).(*mlxhw.QueryHCACapOut)
	set := &mlxhw.SetHCACapIn{OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, mlxhw.CapMax), Cap: caps.Cap}
	mlxhw.B16(0x32).Put(set.Cap[:], 128) // pkey_table_size
	h.must(set)
	cur := h.must(&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, 1)}).(*mlxhw.QueryHCACapOut)
	if mlxhw.B16(0x32).Get(cur.Cap[:]) != 128 {
		t.Fatal("SET_HCA_CAP not stored")
	}
	mlxhw.F(0x40, 15, 14).Put(set.Cap[:], 1) // cmdif_checksum
	h.expect(set, mlxhw.StatusBadParam)
	mlxhw.F(0x40, 15, 14).Put(set.Cap[:], 0)
	mlxhw.F(0x1f, 3, 0).Put(set.Cap[:], 5) // log_max_eq
	h.expect(set, mlxhw.StatusBadParam)
	// Output shorter than the command's output: BAD_OUTP_LEN.
	in := &mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, 1)}
	if r := h.post(0, in.AppendTo(nil), 0x100, nil); r.status() != mlxhw.StatusBadOutpLen {
		t.Fatalf("short output: %v", r.status())
	}
	// Input shorter than the command needs: BAD_INP_LEN.
	mp := (&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: []uint64{0x1000, 0x2000}}).AppendTo(nil)
	if r := h.post(0, mp[:0x18], 16, nil); r.status() != mlxhw.StatusBadInpLen {
		t.Fatalf("short input: %v", r.status())
	}
	h.noViolations()
}
