package mlxhw

import "fmt"

// Small helpers the driver and the device model both need around the
// formats above.

// SplitFWRev splits fw_rev into major and minor (bits 15:0, 31:16).
func SplitFWRev(v uint32) (major, minor uint16) { return uint16(v), uint16(v >> 16) }

// CmdIfRevOf returns the command interface revision of a
// RegCmdIfRevFWSub read (bits 31:16; must be CmdIfRev).
func CmdIfRevOf(v uint32) uint16 { return uint16(v >> 16) }

// DeviceGone reports whether an init-segment read shows surprise removal
// (all ones, as Linux checks health.fw_ver).
func DeviceGone(v uint32) bool { return v == SurpriseRemovalValue }

// HostEndiannessHE is the he bit of the HOST_ENDIANNESS register: bit 31
// of its first dword, as rdma-core's mlx5_ifc.h lays out
// host_endianness_reg (unverified against Linux; the model only accepts
// the write). 0 = little-endian host, which is what drivers write.
var HostEndiannessHE = Flag(0x00, 31)

// CompleteCmdEntry is the device's completion of the entry in b[:64]:
// it writes out[] (0x20..0x2f) and then status_own = status << 1,
// returning ownership to software. Nothing else in the entry changes.
func CompleteCmdEntry(b []byte, out []byte, status DeliveryStatus) error {
	if len(b) < CmdEntrySize {
		return fmt.Errorf("%w: command entry needs %d bytes, have %d", ErrBuffer, CmdEntrySize, len(b))
	}
	o := b[0x20:0x30]
	clear(o)
	copy(o, out)
	b[0x3f] = uint8(status&DeliveryStatusMaxBits) << 1
	return nil
}

// CmdSlotOffset returns slot i's offset in the command queue page.
func CmdSlotOffset(slot int, logStride uint8) int { return slot << (logStride & 15) }

// WQEBBsToEdge returns how many WQEBBs remain from producer counter pc to
// the end of a send queue of 1<<logSize WQEBBs: a WQE larger than this
// must be preceded by NOPs that fill the edge (spec §3.1).
func WQEBBsToEdge(pc uint16, logSize uint8) int {
	n := 1 << (logSize & 15)
	return n - int(pc)&(n-1)
}

// RecvLogStride returns log2 of the receive WQE stride in DS units for a
// cyclic RQ carrying nsegs data segments (stride 16 << k >= 16*nsegs);
// WQ.LogStride is this plus 4.
func RecvLogStride(nsegs int) uint8 {
	k := uint8(0)
	for 1<<k < nsegs && k < 15 {
		k++
	}
	return k
}

// ErrWQEOpcode returns the s_wqe_opcode of an error CQE (bits 31:24 of
// s_wqe_opcode_qpn): the opcode of the send WQE that failed.
func (c *CQE) ErrWQEOpcode() uint8 { return uint8(c.SopDropQPN >> 24) }
