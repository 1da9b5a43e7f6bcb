package mlxhw

import "fmt"

// TIS context, 0xa0 bytes at create_tis_in + 0x20:
//
//	0x00 bits 19:16 prio
//	0x24 bits 23:0  transport_domain
const TISCSize = 0xa0

var (
	tiscPrio = F(0x00, 19, 16)
	tiscTD   = F(0x24, 23, 0)
)

// TISContext is the decoded tisc.
type TISContext struct {
	Prio            uint8
	TransportDomain uint32
}

// Put writes the context into b[:TISCSize].
func (c *TISContext) Put(b []byte) {
	if len(b) < TISCSize {
		return
	}
	clear(b[:TISCSize])
	tiscPrio.Put(b, uint32(c.Prio))
	tiscTD.Put(b, c.TransportDomain)
}

// Parse decodes b[:TISCSize].
func (c *TISContext) Parse(b []byte) error {
	if len(b) < TISCSize {
		return fmt.Errorf("%w: tisc of %d bytes", ErrShort, len(b))
	}
	*c = TISContext{uint8(tiscPrio.Get(b)), tiscTD.Get(b)}
	return nil
}

// TIR context, 0xf0 bytes at create_tir_in + 0x20:
//
//	0x04 bits 31:28 disp_type (0 DIRECT, 1 INDIRECT)
//	0x1c bits 23:0  inline_rqn
//	0x20 bit 31 rx_hash_symmetric, bit 29 tunneled_offload_en, bits 23:0 indirect_table
//	0x24 bits 31:28 rx_hash_fn, bits 25:24 self_lb_block, bits 23:0 transport_domain
//	0x28 40 B       rx_hash_toeplitz_key
//	0x50 be32       rx_hash_field_selector_outer: bit 31 l3 (1 IPv6), bit 30 l4 (1 UDP), 29:0 fields
//	0x54 be32       rx_hash_field_selector_inner
const TIRCSize = 0xf0

// TIR dispatch types, hash functions and selector bits.
const (
	TIRDirect   = 0
	TIRIndirect = 1

	RxHashNone     = 0
	RxHashXOR8     = 1
	RxHashToeplitz = 2

	HashSelL3IPv6   = 1 << 31
	HashSelL4UDP    = 1 << 30
	HashSelSrcIP    = 1 << 0
	HashSelDstIP    = 1 << 1
	HashSelL4SPort  = 1 << 2
	HashSelL4DPort  = 1 << 3
	ToeplitzKeySize = 40
)

var (
	tircDispType    = F(0x04, 31, 28)
	tircInlineRQN   = F(0x1c, 23, 0)
	tircSymmetric   = Flag(0x20, 31)
	tircTunneled    = Flag(0x20, 29)
	tircIndirect    = F(0x20, 23, 0)
	tircHashFn      = F(0x24, 31, 28)
	tircSelfLBBlock = F(0x24, 25, 24)
	tircTD          = F(0x24, 23, 0)
	tircSelOuter    = B32(0x50)
	tircSelInner    = B32(0x54)
)

const tircKey = 0x28

// TIRContext is the decoded tirc.
type TIRContext struct {
	DispType        uint8
	InlineRQN       uint32
	HashSymmetric   bool
	TunneledOffload bool
	IndirectTable   uint32
	HashFn          uint8
	SelfLBBlock     uint8
	TransportDomain uint32
	ToeplitzKey     [ToeplitzKeySize]byte
	SelectorOuter   uint32
	SelectorInner   uint32
}

// Put writes the context into b[:TIRCSize].
func (c *TIRContext) Put(b []byte) {
	if len(b) < TIRCSize {
		return
	}
	clear(b[:TIRCSize])
	tircDispType.Put(b, uint32(c.DispType))
	tircInlineRQN.Put(b, c.InlineRQN)
	tircSymmetric.PutBool(b, c.HashSymmetric)
	tircTunneled.PutBool(b, c.TunneledOffload)
	tircIndirect.Put(b, c.IndirectTable)
	tircHashFn.Put(b, uint32(c.HashFn))
	tircSelfLBBlock.Put(b, uint32(c.SelfLBBlock))
	tircTD.Put(b, c.TransportDomain)
	copy(b[tircKey:], c.ToeplitzKey[:])
	tircSelOuter.Put(b, c.SelectorOuter)
	tircSelInner.Put(b, c.SelectorInner)
}

// Parse decodes b[:TIRCSize].
func (c *TIRContext) Parse(b []byte) error {
	if len(b) < TIRCSize {
		return fmt.Errorf("%w: tirc of %d bytes", ErrShort, len(b))
	}
	*c = TIRContext{DispType: uint8(tircDispType.Get(b)), InlineRQN: tircInlineRQN.Get(b),
		HashSymmetric: tircSymmetric.Bool(b), TunneledOffload: tircTunneled.Bool(b),
		IndirectTable: tircIndirect.Get(b), HashFn: uint8(tircHashFn.Get(b)),
		SelfLBBlock: uint8(tircSelfLBBlock.Get(b)), TransportDomain: tircTD.Get(b),
		SelectorOuter: tircSelOuter.Get(b), SelectorInner: tircSelInner.Get(b)}
	copy(c.ToeplitzKey[:], b[tircKey:])
	return nil
}

// RQT context at create_rqt_in + 0x20; its rq_num list sits at input +
// 0x110 (context + 0xf0), one be32 per entry (bits 23:0):
//
//	0x14 bits 15:0 rqt_max_size
//	0x18 bits 15:0 rqt_actual_size
//	0xf0 rq_num[]
const (
	RQTCSize    = 0xf0
	MaxRQTSize  = 256 // the model's limit (§7.5)
	rqtcListOff = 0xf0
)

var (
	rqtcMaxSize    = F(0x14, 15, 0)
	rqtcActualSize = F(0x18, 15, 0)
)

// RQTContext is the decoded rqtc with its RQ list.
type RQTContext struct {
	MaxSize uint16
	RQs     []uint32 // rqt_actual_size entries
}

// Len returns the encoded size: context plus list.
func (c *RQTContext) Len() int { return rqtcListOff + 4*len(c.RQs) }

// Put writes the context and its list into b[:c.Len()].
func (c *RQTContext) Put(b []byte) {
	if len(b) < c.Len() {
		return
	}
	clear(b[:rqtcListOff])
	rqtcMaxSize.Put(b, uint32(c.MaxSize))
	rqtcActualSize.Put(b, uint32(len(c.RQs)))
	for i, rq := range c.RQs {
		be.PutUint32(b[rqtcListOff+4*i:], rq&0xffffff)
	}
}

// Parse decodes the context and rqt_actual_size list entries; the size is
// limited to MaxRQTSize and to the bytes present.
func (c *RQTContext) Parse(b []byte) error {
	if len(b) < rqtcListOff {
		return fmt.Errorf("%w: rqtc of %d bytes", ErrShort, len(b))
	}
	n := int(rqtcActualSize.Get(b))
	if n > MaxRQTSize {
		return fmt.Errorf("%w: rqt_actual_size %d > %d", ErrField, n, MaxRQTSize)
	}
	if len(b) < rqtcListOff+4*n {
		return fmt.Errorf("%w: rqt of %d entries in %d bytes", ErrShort, n, len(b))
	}
	c.MaxSize = uint16(rqtcMaxSize.Get(b))
	c.RQs = make([]uint32, n)
	for i := range n {
		c.RQs[i] = be.Uint32(b[rqtcListOff+4*i:]) & 0xffffff
	}
	return nil
}

// Mkey context, 0x40 bytes at create_mkey_in + 0x10:
//
//	0x00 bit 11 lw, bit 10 lr, bits 9:8 access_mode_1_0 (0 = PA)
//	0x04 bits 31:8 qpn (0xffffff), bits 7:0 mkey_7_0
//	0x0c bit 31 length64, bits 23:0 pd
//	0x10 be64 start_addr
//	0x18 be64 len
//	0x34 be32 translations_octword_size
//	0x38 bits 4:0 log_page_size (byte 0x3b)
const MKCSize = 0x40

// Mkey access modes.
const MkeyAccessPA = 0

var (
	mkcLW         = Flag(0x00, 11)
	mkcLR         = Flag(0x00, 10)
	mkcAccessMode = F(0x00, 9, 8)
	mkcQPN        = F(0x04, 31, 8)
	mkcKey        = F(0x04, 7, 0)
	mkcLength64   = Flag(0x0c, 31)
	mkcPD         = F(0x0c, 23, 0)
	mkcOctwords   = B32(0x34)
	mkcLogPgSz    = F(0x38, 4, 0)
)

const (
	mkcStart = 0x10
	mkcLen   = 0x18
)

// MkeyContext is the decoded mkc.
type MkeyContext struct {
	LocalWrite, LocalRead bool
	AccessMode            uint8
	QPN                   uint32
	Key                   uint8 // mkey_7_0
	Length64              bool
	PD                    uint32
	StartAddr             uint64
	Len                   uint64
	TranslationsOctwords  uint32
	LogPageSize           uint8
}

// Put writes the context into b[:MKCSize].
func (c *MkeyContext) Put(b []byte) {
	if len(b) < MKCSize {
		return
	}
	clear(b[:MKCSize])
	mkcLW.PutBool(b, c.LocalWrite)
	mkcLR.PutBool(b, c.LocalRead)
	mkcAccessMode.Put(b, uint32(c.AccessMode))
	mkcQPN.Put(b, c.QPN)
	mkcKey.Put(b, uint32(c.Key))
	mkcLength64.PutBool(b, c.Length64)
	mkcPD.Put(b, c.PD)
	put64(b, mkcStart, c.StartAddr)
	put64(b, mkcLen, c.Len)
	mkcOctwords.Put(b, c.TranslationsOctwords)
	mkcLogPgSz.Put(b, uint32(c.LogPageSize))
}

// Parse decodes b[:MKCSize].
func (c *MkeyContext) Parse(b []byte) error {
	if len(b) < MKCSize {
		return fmt.Errorf("%w: mkc of %d bytes", ErrShort, len(b))
	}
	*c = MkeyContext{LocalWrite: mkcLW.Bool(b), LocalRead: mkcLR.Bool(b), AccessMode: uint8(mkcAccessMode.Get(b)),
		QPN: mkcQPN.Get(b), Key: uint8(mkcKey.Get(b)), Length64: mkcLength64.Bool(b), PD: mkcPD.Get(b),
		StartAddr: get64(b, mkcStart), Len: get64(b, mkcLen), TranslationsOctwords: mkcOctwords.Get(b),
		LogPageSize: uint8(mkcLogPgSz.Get(b))}
	return nil
}

// LKey returns the data-segment key for an mkey index and its mkey_7_0.
func LKey(index uint32, key7_0 uint8) uint32 { return index<<8 | uint32(key7_0) }
