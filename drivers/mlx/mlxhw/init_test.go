package mlxhw

import "testing"

func TestInitSegmentOffsets(t *testing.T) {
	// spec §1.2 / §7.3 table, transcribed.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"fw_rev", RegFWRev, 0x0}, {"cmdif_rev_fw_sub", RegCmdIfRevFWSub, 0x4},
		{"cmdq_addr_h", RegCmdqAddrH, 0x10}, {"cmdq_addr_l_sz", RegCmdqAddrLSz, 0x14},
		{"cmd_dbell", RegCmdDoorbell, 0x18}, {"initializing", RegInitializing, 0x1fc},
		{"health", RegHealth, 0x200}, {"fw_ver", RegHealthFWVer, 0x230}, {"synd dword", RegHealthSynd, 0x23c},
		{"internal_timer_h", RegInternalTimerH, 0x1000}, {"internal_timer_l", RegInternalTimerL, 0x1004},
		{"health_counter", RegHealthCounter, 0x1010}, {"clr_intx", RegClrIntx, 0x200c},
		{"init seg size", InitSegSize, 0x2010},
		{"UAR CQ", UARCQDoorbell, 0x20}, {"UAR EQ arm", UAREQDoorbellArm, 0x40},
		{"UAR EQ no arm", UAREQDoorbellNoAr, 0x48}, {"UAR BF", UARBFOffset, 0x800},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if UAROffset(8) != 0x8000 || UAROffset(255) != 0xff000 {
		t.Fatal("UAR page offsets")
	}
	if FWRev(16, 35) != 0x00230010 {
		t.Fatalf("fw_rev %#x", FWRev(16, 35))
	}
}

func TestCmdqGeometry(t *testing.T) {
	// Model reset value: log_sz 5, log_stride 6 -> low byte 0x56.
	g := CmdqGeometry{LogSize: LogCmdqSize, LogStride: LogCmdqStride}
	if v := g.Value(0x12345000); v != 0x12345056 {
		t.Fatalf("read value %#x", v)
	}
	g.NICIfc = NICIfcDisabled
	v := g.Value(0xabcde123)
	if v != 0xabcde156 {
		t.Fatalf("read value with nic_ifc %#x", v)
	}
	if p := ParseCmdqAddrLSz(v); p != g || !p.Valid() {
		t.Fatalf("parse %+v", p)
	}
	if (CmdqGeometry{LogSize: 6, LogStride: 6}).Valid() || (CmdqGeometry{LogSize: 5, LogStride: 8}).Valid() {
		t.Fatal("oversized geometry accepted")
	}
	i, s, e := HealthSynd(0x010c1234)
	if i != 1 || s != 0x0c || e != 0x1234 {
		t.Fatal("health synd split")
	}
}

func TestDoorbellValues(t *testing.T) {
	// CQ arm: dword0 = (sn&3)<<28 | cmd | ci&0xffffff; dword1 = cqn.
	a := CQArm{SN: 2, Cmd: CQArmSolicited, CI: 0x1234567, CQN: 0x400}
	if a.Dword0() != 0x21234567 || a.Value() != 0x2123456700000400 {
		t.Fatalf("CQ arm %#x %#x", a.Dword0(), a.Value())
	}
	if ParseCQArm(0x21234567, 0xff000400) != (CQArm{SN: 2, Cmd: CQArmSolicited, CI: 0x234567, CQN: 0x400}) {
		t.Fatal("parse CQ arm")
	}
	if EQDoorbell(3, 0x1abcdef) != 0x03abcdef {
		t.Fatal("EQ doorbell")
	}
	if eqn, ci := ParseEQDoorbell(0x03abcdef); eqn != 3 || ci != 0xabcdef {
		t.Fatal("parse EQ doorbell")
	}
	d := SQDoorbell{WQEIndex: 0x1234, SQN: 0x800, Opcode: WQEOpSend, DS: 5}
	d0, d1 := d.Dwords()
	if d0 != 0x0012340a || d1 != 0x00080005 || ParseSQDoorbell(d0, d1) != d {
		t.Fatalf("SQ doorbell %#x %#x", d0, d1)
	}
	// bfreg offsets with log_bf_reg_size 9: 0x800/0x900, 0xa00/0xb00, ...
	for _, c := range []struct {
		k, h int
		want uint32
	}{{0, 0, 0x800}, {0, 1, 0x900}, {1, 0, 0xa00}, {3, 1, 0xf00}} {
		if got := BFRegOffset(c.k, c.h, LogBFRegSize); got != c.want {
			t.Errorf("bfreg %d/%d = %#x", c.k, c.h, got)
		}
	}
	dbr := make([]byte, DBRSize)
	PutDBR(dbr, DBRSendOff, 0x1234)
	PutDBR(dbr, DBRRecvOff, 0x55)
	same(t, "DBR", dbr, []byte{0, 0, 0, 0x55, 0, 0, 0x12, 0x34})
	if DBR(dbr, DBRSendOff) != 0x1234 || DBR(dbr[:3], 0) != 0 {
		t.Fatal("DBR read")
	}
}
