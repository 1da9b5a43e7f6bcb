package mlxhw

// PCI identity of the mlx-lite VF (spec §7.2; IDs from Linux
// mlx5_core_pci_table, §1.1).
const (
	VendorMellanox  = 0x15b3
	DeviceCX4LxVF   = 0x1016 // default persona
	DeviceCX5VF     = 0x1018 // selectable persona
	ClassEthernet   = 0x020000
	SubsystemVendor = 0x15b3
	SubsystemDevice = 0x0001 // (sim)
	MSIXVectors     = 16     // (sim)
)

// BAR0 map (spec §7.2). UAR page i lives at BAR0 + i*UARPageSize.
const (
	BAR0Size     = 1 << 20 // (sim) the driver must use the BAR's real size
	UARPageSize  = 0x1000
	MSIXTableOff = 0x4000 // 16 x 16 B (sim)
	MSIXPBAOff   = 0x5000 // (sim)
	FirstUAR     = 8      // ALLOC_UAR hands out 8.. (sim)
	LastUAR      = 255
)

// UAROffset returns the BAR0 offset of UAR page index.
func UAROffset(index uint32) uint64 { return uint64(index) * UARPageSize }

// Initialization segment registers: BAR0 offsets of big-endian dwords
// (struct mlx5_init_seg, spec §1.2 and §7.3).
const (
	RegFWRev          = 0x0000 // bits 31:16 minor, 15:0 major
	RegCmdIfRevFWSub  = 0x0004 // bits 31:16 cmdif revision (5), 15:0 sub-minor
	RegCmdqAddrH      = 0x0010 // command queue address bits 63:32
	RegCmdqAddrLSz    = 0x0014 // write: address 31:12; read: nic_ifc 10:8, log_sz 7:4, log_stride 3:0
	RegCmdDoorbell    = 0x0018 // write 1<<slot
	RegInitializing   = 0x01fc // bit 31 firmware initializing, bit 30 reset supported
	RegHealth         = 0x0200 // 64-byte health buffer
	RegHealthExitPtr  = 0x0220 // assert_exit_ptr
	RegHealthCallRA   = 0x0224 // assert_callra
	RegHealthFWVer    = 0x0230 // 0xffffffff = device gone
	RegHealthHWID     = 0x0234
	RegHealthSynd     = 0x023c // irisc_index 31:24, synd 23:16, ext_synd 15:0
	RegCmdExecTO      = 0x0ff8 // newer kernels only
	RegCmdQInitTO     = 0x0ffc
	RegInternalTimerH = 0x1000 // device clock, ns in the model
	RegInternalTimerL = 0x1004
	RegHealthCounter  = 0x1010 // bits 23:0 count, 31:24 syndrome (DPDK)
	RegIEEE1588Clk    = 0x2000 // be64; reads 0 in the model
	RegIEEE1588Type   = 0x2008
	RegClrIntx        = 0x200c
	InitSegSize       = 0x2010
)

// Init segment values and masks.
const (
	CmdIfRev = 5 // the only command interface revision (CMD_IF_REV)

	InitializingBit  = 1 << 31 // RegInitializing: still initializing
	FWResetSupported = 1 << 30

	CmdqAddrMask     = 0xfffff000 // RegCmdqAddrLSz write: address 31:12
	NICIfcShift      = 8          // RegCmdqAddrLSz bits 10:8
	NICIfcMask       = 7
	LogCmdqSizeShift = 4 // RegCmdqAddrLSz bits 7:4
	LogCmdqSizeMask  = 0xf
	LogCmdqStrideMsk = 0xf // bits 3:0

	HealthCounterMask = 0x00ffffff

	// Typical and model command queue geometry (§7.4).
	LogCmdqSize   = 5
	LogCmdqStride = 6
	CmdqSlots     = 1 << LogCmdqSize
	PageQueueSlot = CmdqSlots - 1 // reserved by drivers for MANAGE_PAGES
	MaxCmdqSlots  = 32            // MLX5_MAX_COMMANDS
)

// NIC interface states, RegCmdqAddrLSz bits 10:8.
const (
	NICIfcFull     = 0
	NICIfcDisabled = 1
	NICIfcNoDRAM   = 2
	NICIfcSWReset  = 7
)

// Health syndromes the model sets in health.synd (§1.2, §7.12).
const (
	HealthSyndFWErr      = 0x01
	HealthSyndEQOverrun  = 0x0c // ASYNC_EQ_OVERRUN
	HealthFWVerRemoved   = 0xffffffff
	SurpriseRemovalValue = 0xffffffff // every MMIO read after removal
)

// FWRev packs fw_rev from major and minor.
func FWRev(major, minor uint16) uint32 { return uint32(minor)<<16 | uint32(major) }

// CmdqGeometry decodes the read value of RegCmdqAddrLSz.
type CmdqGeometry struct {
	LogSize, LogStride uint8
	NICIfc             uint8
}

// ParseCmdqAddrLSz decodes a read of RegCmdqAddrLSz.
func ParseCmdqAddrLSz(v uint32) CmdqGeometry {
	return CmdqGeometry{
		LogSize:   uint8(v >> LogCmdqSizeShift & LogCmdqSizeMask),
		LogStride: uint8(v & LogCmdqStrideMsk),
		NICIfc:    uint8(v >> NICIfcShift & NICIfcMask),
	}
}

// Value is the register's read value for address bits addrL (31:12 kept).
func (g CmdqGeometry) Value(addrL uint32) uint32 {
	return addrL&CmdqAddrMask | uint32(g.NICIfc&NICIfcMask)<<NICIfcShift |
		uint32(g.LogSize&LogCmdqSizeMask)<<LogCmdqSizeShift | uint32(g.LogStride&LogCmdqStrideMsk)
}

// Valid reports whether the geometry is one Linux accepts: at most 32
// slots and the queue within one 4 KiB page (§2.1).
func (g CmdqGeometry) Valid() bool {
	return g.LogSize <= 5 && int(g.LogSize)+int(g.LogStride) <= 12 && g.LogStride >= 6
}

// HealthSynd splits the dword at RegHealthSynd.
func HealthSynd(v uint32) (iriscIndex, synd uint8, extSynd uint16) {
	return uint8(v >> 24), uint8(v >> 16), uint16(v)
}

// UAR page offsets (spec §1.2, §7.8).
const (
	UARCQDoorbell     = 0x020 // 64-bit CQ arm
	UAREQDoorbellArm  = 0x040 // 32-bit EQ CI update + arm
	UAREQDoorbellNoAr = 0x048 // 32-bit EQ CI update only
	UARBFOffset       = 0x800 // first bfreg (SQ doorbell)
	UARBFRegsPerUAR   = 4
	LogBFRegSize      = 9 // model's log_bf_reg_size
)

// BFRegOffset returns the UAR page offset of bfreg k, half h (0 or 1), for
// log_bf_reg_size logSize: 0x800 + k<<logSize + h*(1<<logSize)/2.
func BFRegOffset(k, h int, logSize uint) uint32 {
	return UARBFOffset + uint32(k&3)<<logSize + uint32(h&1)*(1<<logSize)/2
}

// CQ arm commands (dword0 bits 25:24 of the CQ doorbell).
const (
	CQArmNext      = 0       // MLX5_CQ_DB_REQ_NOT: any CQE
	CQArmSolicited = 1 << 24 // MLX5_CQ_DB_REQ_NOT_SOL
)

// CQArm is the 64-bit CQ arm doorbell and CQ DBR arm word (§3.4, §7.8).
type CQArm struct {
	SN  uint8  // arm sequence number, 2 bits
	Cmd uint32 // CQArmNext or CQArmSolicited
	CI  uint32 // consumer index, 24 bits
	CQN uint32 // 24 bits
}

// Dword0 is the arm word: (sn&3)<<28 | cmd | ci&0xffffff (also DBR+4).
func (a CQArm) Dword0() uint32 {
	return uint32(a.SN&3)<<28 | a.Cmd&(3<<24) | a.CI&0xffffff
}

// Value is the 64-bit doorbell: dword0 in the high half, cqn in the low.
func (a CQArm) Value() uint64 { return uint64(a.Dword0())<<32 | uint64(a.CQN&0xffffff) }

// ParseCQArm decodes the two dwords of a CQ arm doorbell.
func ParseCQArm(dw0, dw1 uint32) CQArm {
	return CQArm{SN: uint8(dw0 >> 28 & 3), Cmd: dw0 & (3 << 24), CI: dw0 & 0xffffff, CQN: dw1 & 0xffffff}
}

// EQDoorbell is the 32-bit EQ doorbell value: eqn<<24 | ci&0xffffff.
func EQDoorbell(eqn uint8, ci uint32) uint32 { return uint32(eqn)<<24 | ci&0xffffff }

// ParseEQDoorbell splits an EQ doorbell value.
func ParseEQDoorbell(v uint32) (eqn uint8, ci uint32) { return uint8(v >> 24), v & 0xffffff }

// SQDoorbell is the 8-byte SQ doorbell: the first two dwords of the last
// WQE's control segment (§3.5, §7.8).
type SQDoorbell struct {
	WQEIndex uint16
	SQN      uint32
	Opcode   uint8
	DS       uint8
}

// ParseSQDoorbell decodes the two dwords written to a bfreg.
func ParseSQDoorbell(dw0, dw1 uint32) SQDoorbell {
	return SQDoorbell{WQEIndex: uint16(dw0 >> 8), Opcode: uint8(dw0), SQN: dw1 >> 8, DS: uint8(dw1 & 0x3f)}
}

// Dwords returns the doorbell's two dwords.
func (d SQDoorbell) Dwords() (uint32, uint32) {
	return uint32(d.WQEIndex)<<8 | uint32(d.Opcode), d.SQN<<8 | uint32(d.DS&0x3f)
}

// Doorbell records: 8 bytes in host memory (§3.4–§3.6).
const (
	DBRSize      = 8
	DBRRecvOff   = 0 // RQ producer counter (MLX5_RCV_DBR)
	DBRSendOff   = 4 // SQ producer counter (MLX5_SND_DBR)
	DBRCQSetCI   = 0 // CQ consumer index
	DBRCQArm     = 4 // CQ arm word
	DBRAlignment = 8
)

// PutDBR stores v big-endian at off (one of the DBR* offsets) of an
// 8-byte doorbell record; it does nothing if dbr is too short.
func PutDBR(dbr []byte, off int, v uint32) {
	if off >= 0 && len(dbr) >= off+4 {
		be.PutUint32(dbr[off:], v)
	}
}

// DBR reads the dword at off of a doorbell record, 0 if dbr is too short.
func DBR(dbr []byte, off int) uint32 {
	if off < 0 || len(dbr) < off+4 {
		return 0
	}
	return be.Uint32(dbr[off:])
}
