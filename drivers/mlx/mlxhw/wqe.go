package mlxhw

import "fmt"

// Send WQEs are built from 16-byte segments (DS) in 64-byte basic blocks
// (WQEBB) (spec §3.1, §7.9).
const (
	DSSize         = 16 // MLX5_SEND_WQE_DS
	WQEBBSize      = 64 // MLX5_SEND_WQE_BB
	MaxDS          = 63 // MLX5_DSEG_MAX
	MaxSendWQESize = 1024
	MinInline      = 18 // L2 header + VLAN (MLX5_ESEG_MIN_INLINE_SIZE)
	InlineSegFlag  = 0x80000000
	InvalidLKey    = 0x100 // MLX5_INVALID_LKEY: ends a receive WQE's segments
)

// Send WQE opcodes (ctrl opmod_idx_opcode bits 7:0).
const (
	WQEOpNOP  = 0x00
	WQEOpSend = 0x0a
	WQEOpLSO  = 0x0e
)

// fm_ce_se completion bits (ctrl byte 0x0b bits 3:2) and SE.
const (
	CECQEOnError = 0 << 2
	CECQEAlways  = 2 << 2 // MLX5_WQE_CTRL_CQ_UPDATE
	CECQEAndEQE  = 3 << 2
	CEMask       = 3 << 2
	SESolicited  = 1 << 1
)

// Eth segment cs_flags.
const (
	CSL3       = 0x40 // MLX5_ETH_WQE_L3_CSUM
	CSL4       = 0x80 // MLX5_ETH_WQE_L4_CSUM
	CSInnerL3  = 0x10
	CSInnerL4  = 0x20
	VLANInsert = 0x8000 // insert.type (MLX5_ETH_WQE_INSERT_VLAN)
)

// WQEBBs returns the basic blocks a WQE of ds segments occupies; the SQ
// producer counter advances by this much.
func WQEBBs(ds int) int { return (ds + 3) / 4 }

// SendDS returns the DS count of a send WQE with inline header bytes and
// nsegs data segments: ctrl + eth + ceil((inline-2)/16) + nsegs.
func SendDS(inline, nsegs int) int {
	ds := 2 + nsegs
	if inline > 2 {
		ds += (inline - 2 + DSSize - 1) / DSSize
	}
	return ds
}

// DataSeg is one data segment (struct mlx5_wqe_data_seg): be32 byte_count
// @0, be32 lkey @4, be64 addr @8. An inline segment has byte_count |
// 0x80000000 and its bytes follow in place (Inline, a view of the WQE).
type DataSeg struct {
	ByteCount uint32
	LKey      uint32
	Addr      uint64
	Inline    []byte
}

// SendWQE describes a send WQE: the control and Ethernet segments.
//
// Control segment (mlx5_wqe_ctrl_seg):
//
//	0x0 bits 31:24 opmod, 23:8 wqe_index, 7:0 opcode
//	0x4 bits 31:8 sqn, 5:0 ds
//	0x8 u8 signature; 0xb u8 fm_ce_se; 0xc be32 imm/tisn
//
// Ethernet segment (mlx5_wqe_eth_seg) at 0x10:
//
//	0x4 u8 cs_flags; 0x5 u8 swp_flags; 0x6 be16 mss; 0x8 be32 flow_table_metadata
//	0xc be16 inline_hdr.sz; 0xe inline_hdr.start[2], continuing into the next segments
//	    or, with VLAN insertion, 0xc be16 insert.type (0x8000), 0xe be16 vlan_tci
//
// VLAN insertion and inline headers share the field at 0xc, so a WQE that
// inserts a tag carries no inline headers (an LSO WQE must inline its
// headers and put the tag there itself).
type SendWQE struct {
	Opmod     uint8
	Opcode    uint8
	WQEIndex  uint16
	SQN       uint32
	Signature uint8
	FmCeSe    uint8
	Imm       uint32
	CSFlags   uint8
	SWPFlags  uint8
	MSS       uint16
	Metadata  uint32
	VLAN      bool   // insert VLANTCI; Inline must be empty
	VLANTCI   uint16 //
	Inline    []byte // inline headers (a view of the WQE when parsed)
	// DS is the WQE's DS count, set by PutSendWQE and ParseSendWQE.
	DS int
}

// PutSendWQE writes w and segs into b, zero-filling the padding of the
// last WQEBB, and returns the number of WQEBBs used (ds = w.DS). A NOP
// (opcode 0, no inline, no segments) is a control segment alone. b must
// hold the whole WQE; the driver pads the ring edge with NOPs so that
// a WQE never wraps. It does not allocate.
func PutSendWQE(b []byte, w *SendWQE, segs []DataSeg) (int, error) {
	ds := 1
	if w.Opcode != WQEOpNOP || len(w.Inline) > 0 || len(segs) > 0 {
		if w.VLAN && len(w.Inline) > 0 {
			return 0, fmt.Errorf("%w: VLAN insertion with %d inline header bytes", ErrField, len(w.Inline))
		}
		ds = SendDS(len(w.Inline), 0)
		for i := range segs {
			ds += segDS(&segs[i])
		}
	}
	if ds > MaxDS {
		return 0, fmt.Errorf("%w: send WQE of %d DS > %d", ErrLength, ds, MaxDS)
	}
	n := WQEBBs(ds) * WQEBBSize
	if len(b) < n {
		return 0, fmt.Errorf("%w: send WQE needs %d bytes, have %d", ErrBuffer, n, len(b))
	}
	b = b[:n]
	clear(b)
	be.PutUint32(b[0:], uint32(w.Opmod)<<24|uint32(w.WQEIndex)<<8|uint32(w.Opcode))
	be.PutUint32(b[4:], w.SQN<<8|uint32(ds))
	b[8] = w.Signature
	b[0xb] = w.FmCeSe
	be.PutUint32(b[0xc:], w.Imm)
	w.DS = ds
	if ds == 1 {
		return 1, nil
	}
	e := b[DSSize:]
	e[4] = w.CSFlags
	e[5] = w.SWPFlags
	be.PutUint16(e[6:], w.MSS)
	be.PutUint32(e[8:], w.Metadata)
	off := 2 * DSSize
	if w.VLAN {
		be.PutUint16(e[0xc:], VLANInsert)
		be.PutUint16(e[0xe:], w.VLANTCI)
	} else {
		be.PutUint16(e[0xc:], uint16(len(w.Inline)))
		copy(e[0xe:], w.Inline)
		if len(w.Inline) > 2 {
			off += (len(w.Inline) - 2 + DSSize - 1) / DSSize * DSSize
		}
	}
	for i := range segs {
		off += putSeg(b[off:], &segs[i])
	}
	return WQEBBs(ds), nil
}

func segDS(s *DataSeg) int {
	if s.Inline != nil {
		return (4 + len(s.Inline) + DSSize - 1) / DSSize
	}
	return 1
}

func putSeg(b []byte, s *DataSeg) int {
	if s.Inline != nil {
		be.PutUint32(b, uint32(len(s.Inline))|InlineSegFlag)
		copy(b[4:], s.Inline)
		return segDS(s) * DSSize
	}
	be.PutUint32(b, s.ByteCount)
	be.PutUint32(b[4:], s.LKey)
	be.PutUint64(b[8:], s.Addr)
	return DSSize
}

// ParseSendWQE decodes the send WQE at the start of b (the device side):
// the control and Ethernet segments into w (w.Inline aliases b) and the
// data segments into segs, returning how many it filled. It checks
// 1 <= ds <= 63, that the WQE lies within b, that inline headers and
// inline segments stay inside ds, and that segs is big enough. Opcode and
// wqe_index checks belong to the caller (spec §7.9). It does not
// allocate.
func ParseSendWQE(b []byte, w *SendWQE, segs []DataSeg) (int, error) {
	if len(b) < DSSize {
		return 0, fmt.Errorf("%w: send WQE of %d bytes", ErrShort, len(b))
	}
	d0, d1 := be.Uint32(b[0:]), be.Uint32(b[4:])
	ds := int(d1 & 0x3f)
	*w = SendWQE{Opmod: uint8(d0 >> 24), WQEIndex: uint16(d0 >> 8), Opcode: uint8(d0), SQN: d1 >> 8,
		Signature: b[8], FmCeSe: b[0xb], Imm: be.Uint32(b[0xc:]), DS: ds}
	if ds == 0 || d1&0xc0 != 0 {
		return 0, fmt.Errorf("%w: send WQE ds field %#x", ErrField, d1&0xff)
	}
	if len(b) < ds*DSSize {
		return 0, fmt.Errorf("%w: send WQE of %d DS in %d bytes", ErrShort, ds, len(b))
	}
	b = b[:ds*DSSize]
	if ds == 1 {
		return 0, nil
	}
	e := b[DSSize:]
	w.CSFlags, w.SWPFlags, w.MSS, w.Metadata = e[4], e[5], be.Uint16(e[6:]), be.Uint32(e[8:])
	off := 2 * DSSize
	if sz := be.Uint16(e[0xc:]); sz&VLANInsert != 0 {
		w.VLAN, w.VLANTCI = true, be.Uint16(e[0xe:])
	} else if sz > 0 {
		n := int(sz)
		if DSSize+0xe+n > len(b) {
			return 0, fmt.Errorf("%w: %d inline header bytes in %d DS", ErrLength, n, ds)
		}
		w.Inline = e[0xe : 0xe+n : 0xe+n]
		if n > 2 {
			off += (n - 2 + DSSize - 1) / DSSize * DSSize
		}
	}
	k := 0
	for off < len(b) {
		if k == len(segs) {
			return k, fmt.Errorf("%w: more than %d data segments", ErrBuffer, len(segs))
		}
		s := &segs[k]
		bc := be.Uint32(b[off:])
		if bc&InlineSegFlag != 0 {
			n := int(bc &^ InlineSegFlag)
			if n > len(b)-off-4 {
				return k, fmt.Errorf("%w: inline segment of %d bytes at DS %d of %d", ErrLength, n, off/DSSize, ds)
			}
			*s = DataSeg{ByteCount: bc, Inline: b[off+4 : off+4+n : off+4+n]}
			off += (4 + n + DSSize - 1) / DSSize * DSSize
		} else {
			*s = DataSeg{ByteCount: bc, LKey: be.Uint32(b[off+4:]), Addr: be.Uint64(b[off+8:])}
			off += DSSize
		}
		k++
	}
	return k, nil
}

// SQDoorbellWords returns the two dwords a driver writes to the bfreg for
// the WQE at the start of wqe: its first 8 bytes (spec §3.5).
func SQDoorbellWords(wqe []byte) (uint32, uint32) {
	if len(wqe) < 8 {
		return 0, 0
	}
	return be.Uint32(wqe), be.Uint32(wqe[4:])
}

// Receive WQEs (spec §3.2). A cyclic RQ WQE is an array of data segments
// filling its stride (16 << k bytes); a linked-list RQ WQE starts with a
// 16-byte next segment (be16 next_wqe_index @2, u8 signature @4). Unused
// trailing segments carry byte_count 0 and lkey InvalidLKey, as Linux's
// mlx5e writes them; the device stops at the first such segment.
const rqNextSegSize = 16

// PutRecvWQE writes segs into the WQE b (one stride). With linked set it
// first writes the next segment with next. It does not allocate.
func PutRecvWQE(b []byte, linked bool, next uint16, segs []DataSeg) error {
	off := 0
	if linked {
		off = rqNextSegSize
	}
	if len(b) < off+len(segs)*DSSize || len(b)%DSSize != 0 {
		return fmt.Errorf("%w: %d segments in a %d-byte receive WQE", ErrBuffer, len(segs), len(b))
	}
	clear(b)
	if linked {
		be.PutUint16(b[2:], next)
	}
	for i := range segs {
		if segs[i].Inline != nil {
			return fmt.Errorf("%w: inline segment in a receive WQE", ErrField)
		}
		off += putSeg(b[off:], &segs[i])
	}
	for ; off < len(b); off += DSSize {
		be.PutUint32(b[off+4:], InvalidLKey)
	}
	return nil
}

// ParseRecvWQE decodes a receive WQE of one stride: the next index (linked
// lists) and the data segments up to the first InvalidLKey terminator or
// the stride's end. It does not allocate.
func ParseRecvWQE(b []byte, linked bool, segs []DataSeg) (next uint16, n int, err error) {
	off := 0
	if linked {
		if len(b) < rqNextSegSize {
			return 0, 0, fmt.Errorf("%w: linked receive WQE of %d bytes", ErrShort, len(b))
		}
		next, off = be.Uint16(b[2:]), rqNextSegSize
	}
	for ; off+DSSize <= len(b); off += DSSize {
		lkey := be.Uint32(b[off+4:])
		if lkey == InvalidLKey {
			break
		}
		if n == len(segs) {
			return next, n, fmt.Errorf("%w: more than %d receive segments", ErrBuffer, len(segs))
		}
		segs[n] = DataSeg{ByteCount: be.Uint32(b[off:]), LKey: lkey, Addr: be.Uint64(b[off+8:])}
		n++
	}
	return next, n, nil
}
