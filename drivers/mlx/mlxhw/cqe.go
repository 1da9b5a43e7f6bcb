package mlxhw

import "fmt"

// CQE opcodes (op_own bits 7:4, L-cq).
const (
	CQEReq        = 0  // TX completion
	CQERespWRImm  = 1  //
	CQERespSend   = 2  // RX completion
	CQERespSendIm = 3  //
	CQERespSendIn = 4  //
	CQEResizeCQ   = 5  //
	CQESigErr     = 12 //
	CQEReqErr     = 13 // TX error CQE
	CQERespErr    = 14 // RX error CQE
	CQEInvalid    = 15 // initial value (op_own 0xf1)
)

// Error CQE syndromes (mlx5_err_cqe syndrome @0x37).
const (
	SyndLocalLength   = 0x01
	SyndLocalQPOp     = 0x02
	SyndLocalProt     = 0x04
	SyndWRFlush       = 0x05
	SyndMWBind        = 0x06
	SyndBadResp       = 0x10
	SyndLocalAccess   = 0x11
	SyndRemoteInval   = 0x12
	SyndRemoteAccess  = 0x13
	SyndRemoteOp      = 0x14
	SyndRetryExceeded = 0x15
	SyndRNRRetryExc   = 0x16
	SyndRemoteAborted = 0x22
)

// hds_ip_ext and l4_l3_hdr_type bits, rss_hash_type values.
const (
	CQEL2OK = 1 << 0
	CQEL3OK = 1 << 1
	CQEL4OK = 1 << 2

	CQEVLANPresent = 1 << 0 // l4_l3_hdr_type bit 0
	CQEL3None      = 0      // l4_l3_hdr_type bits 3:2
	CQEL3IPv6      = 1
	CQEL3IPv4      = 2
	CQEL4None      = 0 // bits 6:4
	CQEL4TCP       = 1
	CQEL4UDP       = 2
	CQEL4TCPAck    = 3
	CQEL4TCPAckDat = 4

	RSSHashTypeIP = 3 << 6 // CQE_RSS_HTYPE_IP mask
	RSSHashTypeL4 = 3 << 2 // CQE_RSS_HTYPE_L4 mask
)

// CQE is one 64-byte completion (struct mlx5_cqe64 / mlx5_err_cqe, spec
// §3.3):
//
//	0x02 be16 wqe_id
//	0x0c be32 rss_hash_result      0x10 u8 rss_hash_type
//	0x14 be16 check_sum            0x18 be32 flags_rqpn
//	0x1c u8   hds_ip_ext (L2/L3/L4 OK)
//	0x1d u8   l4_l3_hdr_type (bit 0 VLAN, 3:2 L3 type, 6:4 L4 type)
//	0x1e be16 vlan_info            0x20 be32 srqn (31:24 lro_num_seg)
//	0x2c be32 byte_cnt             0x30 be64 timestamp
//	0x38 be32 sop_drop_qpn (23:0 QPN/SQN/RQN; error CQEs: 31:24 s_wqe_opcode)
//	0x3c be16 wqe_counter          0x3e u8 signature
//	0x3f u8   op_own: 7:4 opcode, 3:2 format, 1 SE, 0 owner
//
// Error CQEs (opcode 13/14) put vendor_err_synd at 0x36 and syndrome at
// 0x37, inside the timestamp, which they do not carry.
type CQE struct {
	WQEID         uint16
	RSSHash       uint32
	RSSHashType   uint8
	Checksum      uint16
	FlagsRQPN     uint32
	HdsIPExt      uint8
	L4L3HdrType   uint8
	VLANInfo      uint16
	SRQN          uint32
	ByteCnt       uint32
	Timestamp     uint64 // not in error CQEs
	SopDropQPN    uint32
	WQECounter    uint16
	Signature     uint8
	Opcode        uint8
	Format        uint8
	SE            bool
	Owner         uint8
	VendorErrSynd uint8 // error CQEs only
	Syndrome      uint8 // error CQEs only
}

const CQESize = 64

// IsError reports whether the CQE is an error CQE.
func (c *CQE) IsError() bool { return c.Opcode == CQEReqErr || c.Opcode == CQERespErr }

// QPN returns the SQN/RQN the CQE completes.
func (c *CQE) QPN() uint32 { return c.SopDropQPN & 0xffffff }

// L3Type and L4Type decode l4_l3_hdr_type; VLANStripped its bit 0.
func (c *CQE) L3Type() uint8      { return c.L4L3HdrType >> 2 & 3 }
func (c *CQE) L4Type() uint8      { return c.L4L3HdrType >> 4 & 7 }
func (c *CQE) VLANStripped() bool { return c.L4L3HdrType&CQEVLANPresent != 0 }

// L3OK and L4OK report the checksum verdicts in hds_ip_ext.
func (c *CQE) L3OK() bool { return c.HdsIPExt&CQEL3OK != 0 }
func (c *CQE) L4OK() bool { return c.HdsIPExt&CQEL4OK != 0 }

// OpOwn returns the op_own byte.
func (c *CQE) OpOwn() uint8 {
	v := c.Opcode<<4 | (c.Format&3)<<2 | c.Owner&1
	if c.SE {
		v |= 2
	}
	return v
}

// PutCQE writes c into b[:64], reserved bytes zero. The device sets
// c.Owner = OwnerBit(prod, logSize); a device that needs the op_own store
// to come last can write b[:63] first and b[63] after a barrier.
func PutCQE(b []byte, c *CQE) error {
	if len(b) < CQESize {
		return fmt.Errorf("%w: CQE needs %d bytes, have %d", ErrBuffer, CQESize, len(b))
	}
	b = b[:CQESize]
	clear(b)
	be.PutUint16(b[0x02:], c.WQEID)
	be.PutUint32(b[0x0c:], c.RSSHash)
	b[0x10] = c.RSSHashType
	be.PutUint16(b[0x14:], c.Checksum)
	be.PutUint32(b[0x18:], c.FlagsRQPN)
	b[0x1c] = c.HdsIPExt
	b[0x1d] = c.L4L3HdrType
	be.PutUint16(b[0x1e:], c.VLANInfo)
	be.PutUint32(b[0x20:], c.SRQN)
	be.PutUint32(b[0x2c:], c.ByteCnt)
	if c.IsError() {
		b[0x36] = c.VendorErrSynd
		b[0x37] = c.Syndrome
	} else {
		be.PutUint64(b[0x30:], c.Timestamp)
	}
	be.PutUint32(b[0x38:], c.SopDropQPN)
	be.PutUint16(b[0x3c:], c.WQECounter)
	b[0x3e] = c.Signature
	b[0x3f] = c.OpOwn()
	return nil
}

// DecodeCQE decodes b[:64] without the ownership check. It refuses
// compressed CQEs (format 3, never produced by the model) with ErrField.
func DecodeCQE(b []byte, c *CQE) error {
	if len(b) < CQESize {
		return fmt.Errorf("%w: CQE is %d bytes, have %d", ErrShort, CQESize, len(b))
	}
	op := b[0x3f]
	if f := op >> 2 & 3; f != 0 {
		return fmt.Errorf("%w: CQE format %d (compressed CQEs are not used)", ErrField, f)
	}
	*c = CQE{
		WQEID: be.Uint16(b[0x02:]), RSSHash: be.Uint32(b[0x0c:]), RSSHashType: b[0x10],
		Checksum: be.Uint16(b[0x14:]), FlagsRQPN: be.Uint32(b[0x18:]), HdsIPExt: b[0x1c],
		L4L3HdrType: b[0x1d], VLANInfo: be.Uint16(b[0x1e:]), SRQN: be.Uint32(b[0x20:]),
		ByteCnt: be.Uint32(b[0x2c:]), SopDropQPN: be.Uint32(b[0x38:]), WQECounter: be.Uint16(b[0x3c:]),
		Signature: b[0x3e], Opcode: op >> 4, SE: op&2 != 0, Owner: op & 1,
	}
	if c.IsError() {
		c.VendorErrSynd, c.Syndrome = b[0x36], b[0x37]
	} else {
		c.Timestamp = be.Uint64(b[0x30:])
	}
	return nil
}

// ParseCQE decodes the CQE for consumer counter cc of a CQ of 1<<logSize
// entries: ErrNotOwned while the device has not written it, ErrField for
// an owned entry whose opcode is INVALID or whose format is compressed.
func ParseCQE(b []byte, cc uint32, logSize uint8, c *CQE) error {
	if len(b) < CQESize {
		return fmt.Errorf("%w: CQE is %d bytes, have %d", ErrShort, CQESize, len(b))
	}
	if !SWOwned(b[0x3f], cc, logSize) {
		return ErrNotOwned
	}
	if b[0x3f]>>4 == CQEInvalid {
		return fmt.Errorf("%w: owned CQE %d with opcode INVALID", ErrField, cc)
	}
	return DecodeCQE(b, c)
}

// InitCQ writes op_own 0xf1 into every 64-byte CQE of buf (what the
// driver does before CREATE_CQ).
func InitCQ(buf []byte) {
	for i := CQESize - 1; i < len(buf); i += CQESize {
		buf[i] = CQEOpOwnInit
	}
}

// InitEQ writes owner 1 into every 64-byte EQE of buf.
func InitEQ(buf []byte) {
	for i := EQESize - 1; i < len(buf); i += EQESize {
		buf[i] = EQEOwnerInit
	}
}
