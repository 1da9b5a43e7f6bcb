package mlxhw

import "fmt"

// Command queue entry, 64 bytes (struct mlx5_cmd_layout, spec §2.2):
//
//	0x00 u8   type (7 = PCIe)
//	0x04 be32 inlen: total input length including the 16 inline bytes
//	0x08 be64 in_ptr: first input mailbox (0 when inlen <= 16)
//	0x10 16 B in: input bytes 0..15 (the command header)
//	0x20 16 B out: output bytes 0..15 (status, syndrome, ...)
//	0x30 be64 out_ptr: first output mailbox
//	0x38 be32 outlen
//	0x3c u8   token (nonzero; repeated in every mailbox block)
//	0x3d u8   sig (~xor8 of the entry; unused, cmdif_checksum = 0)
//	0x3f u8   status_own: bit 0 ownership (1 = hardware), bits 7:1 delivery status
const (
	CmdEntrySize  = 64
	CmdInlineSize = 16
	CmdTypePCIe   = 7 // MLX5_PCI_CMD_XPORT
	CmdOwnerHW    = 1 // status_own bit 0

	// MaxMessageLen bounds the input and output lengths this package
	// accepts: MANAGE_PAGES of 8192 pages plus its header (the model
	// never needs more).
	MaxMessageLen = 0x10 + 8*8192
)

// DeliveryStatus is status_own >> 1: whether the device could read the
// command at all (L-cmd, spec §2.4).
type DeliveryStatus uint8

const (
	DeliveryOK            DeliveryStatus = 0x00
	DeliverySignature     DeliveryStatus = 0x01
	DeliveryToken         DeliveryStatus = 0x02
	DeliveryBadBlockNum   DeliveryStatus = 0x03
	DeliveryOutPtrAlign   DeliveryStatus = 0x04
	DeliveryInPtrAlign    DeliveryStatus = 0x05
	DeliveryFWInternal    DeliveryStatus = 0x06
	DeliveryInLen         DeliveryStatus = 0x07
	DeliveryOutLen        DeliveryStatus = 0x08
	DeliveryReservedNotZ  DeliveryStatus = 0x09
	DeliveryBadCmdType    DeliveryStatus = 0x10
	DeliveryStatusMaxBits                = 0x7f
)

var deliveryNames = map[DeliveryStatus]string{
	DeliveryOK: "ok", DeliverySignature: "signature error", DeliveryToken: "token error",
	DeliveryBadBlockNum: "bad block number", DeliveryOutPtrAlign: "output pointer not aligned",
	DeliveryInPtrAlign: "input pointer not aligned", DeliveryFWInternal: "firmware internal error",
	DeliveryInLen: "input length error", DeliveryOutLen: "output length error",
	DeliveryReservedNotZ: "reserved fields not cleared", DeliveryBadCmdType: "bad command descriptor type",
}

func (d DeliveryStatus) String() string {
	if s, ok := deliveryNames[d]; ok {
		return s
	}
	return fmt.Sprintf("delivery status %#x", uint8(d))
}

// CmdEntry is one decoded command queue entry.
type CmdEntry struct {
	Type   uint8
	InLen  uint32
	InPtr  uint64
	In     [CmdInlineSize]byte
	Out    [CmdInlineSize]byte
	OutPtr uint64
	OutLen uint32
	Token  uint8
	Sig    uint8
	// Status is the delivery status (status_own bits 7:1).
	Status DeliveryStatus
	// HWOwned is status_own bit 0: set by the driver to post, cleared by
	// the device on completion.
	HWOwned bool
}

// StatusOwn returns the entry's status_own byte.
func (e *CmdEntry) StatusOwn() uint8 {
	v := uint8(e.Status&DeliveryStatusMaxBits) << 1
	if e.HWOwned {
		v |= CmdOwnerHW
	}
	return v
}

// Put writes the 64-byte entry into b[:64], reserved bytes zero.
func (e *CmdEntry) Put(b []byte) error {
	if len(b) < CmdEntrySize {
		return fmt.Errorf("%w: command entry needs %d bytes, have %d", ErrBuffer, CmdEntrySize, len(b))
	}
	b = b[:CmdEntrySize]
	clear(b)
	b[0x00] = e.Type
	be.PutUint32(b[0x04:], e.InLen)
	be.PutUint64(b[0x08:], e.InPtr)
	copy(b[0x10:0x20], e.In[:])
	copy(b[0x20:0x30], e.Out[:])
	be.PutUint64(b[0x30:], e.OutPtr)
	be.PutUint32(b[0x38:], e.OutLen)
	b[0x3c] = e.Token
	b[0x3d] = e.Sig
	b[0x3f] = e.StatusOwn()
	return nil
}

// ParseCmdEntry decodes the entry in b[:64]. It checks only the size;
// Check applies the device's acceptance rules.
func ParseCmdEntry(b []byte, e *CmdEntry) error {
	if len(b) < CmdEntrySize {
		return fmt.Errorf("%w: command entry is %d bytes, have %d", ErrShort, CmdEntrySize, len(b))
	}
	e.Type = b[0x00]
	e.InLen = be.Uint32(b[0x04:])
	e.InPtr = be.Uint64(b[0x08:])
	copy(e.In[:], b[0x10:0x20])
	copy(e.Out[:], b[0x20:0x30])
	e.OutPtr = be.Uint64(b[0x30:])
	e.OutLen = be.Uint32(b[0x38:])
	e.Token = b[0x3c]
	e.Sig = b[0x3d]
	e.Status = DeliveryStatus(b[0x3f] >> 1)
	e.HWOwned = b[0x3f]&CmdOwnerHW != 0
	return nil
}

// CmdOwned reports whether the entry in b is owned by hardware (bit 0 of
// status_own); false when b is too short.
func CmdOwned(b []byte) bool { return len(b) >= CmdEntrySize && b[0x3f]&CmdOwnerHW != 0 }

// Check applies the model's delivery checks (spec §7.4 steps 2–3) and
// returns the delivery status the device reports: type 7, lengths at
// least 16 and at most MaxMessageLen, and a mailbox pointer present and
// 1 KiB aligned when the message spills out of the entry.
func (e *CmdEntry) Check() DeliveryStatus {
	switch {
	case e.Type != CmdTypePCIe:
		return DeliveryBadCmdType
	case e.InLen < CmdInlineSize || e.InLen > MaxMessageLen:
		return DeliveryInLen
	case e.OutLen < CmdInlineSize || e.OutLen > MaxMessageLen:
		return DeliveryOutLen
	case e.InLen > CmdInlineSize && (e.InPtr == 0 || e.InPtr%MailboxAlign != 0):
		return DeliveryInPtrAlign
	case e.OutLen > CmdInlineSize && (e.OutPtr == 0 || e.OutPtr%MailboxAlign != 0):
		return DeliveryOutPtrAlign
	}
	return DeliveryOK
}

// Sig8 returns ~xor8(b), the signature mlx5 defines for entries and
// mailbox blocks when cmdif_checksum is on (the model leaves it off).
func Sig8(b []byte) uint8 {
	var x uint8
	for _, c := range b {
		x ^= c
	}
	return ^x
}

// Mailbox block, 576 bytes, 1 KiB aligned (struct mlx5_cmd_prot_block,
// spec §2.3):
//
//	0x000 512 B data
//	0x230 be64  next: address of the next block, 0 = end
//	0x238 be32  block_num: 0, 1, 2, ... in chain order
//	0x23d u8    token (equals the entry's)
//	0x23e u8    ctrl_sig (~xor8 of 0x200..0x23d, unused)
//	0x23f u8    sig (unused)
const (
	MailboxSize     = 0x240
	MailboxDataSize = 512
	MailboxAlign    = 1024
)

// Mailbox is one decoded mailbox block; Data aliases the parsed buffer.
type Mailbox struct {
	Data     []byte
	Next     uint64
	BlockNum uint32
	Token    uint8
	CtrlSig  uint8
	Sig      uint8
}

// ParseMailbox decodes the block in b[:576].
func ParseMailbox(b []byte, m *Mailbox) error {
	if len(b) < MailboxSize {
		return fmt.Errorf("%w: mailbox block is %d bytes, have %d", ErrShort, MailboxSize, len(b))
	}
	m.Data = b[:MailboxDataSize:MailboxDataSize]
	m.Next = be.Uint64(b[0x230:])
	m.BlockNum = be.Uint32(b[0x238:])
	m.Token = b[0x23d]
	m.CtrlSig = b[0x23e]
	m.Sig = b[0x23f]
	return nil
}

// PutMailbox writes a block into b[:576]: data (at most 512 bytes, the
// rest zero), the trailer, and zero reserved bytes and signatures.
func PutMailbox(b []byte, data []byte, next uint64, blockNum uint32, token uint8) error {
	if len(b) < MailboxSize {
		return fmt.Errorf("%w: mailbox block needs %d bytes, have %d", ErrBuffer, MailboxSize, len(b))
	}
	if len(data) > MailboxDataSize {
		return fmt.Errorf("%w: %d data bytes in one mailbox block", ErrLength, len(data))
	}
	b = b[:MailboxSize]
	clear(b)
	copy(b, data)
	be.PutUint64(b[0x230:], next)
	be.PutUint32(b[0x238:], blockNum)
	b[0x23d] = token
	return nil
}

// MailboxBlocks returns how many blocks a message of length bytes needs
// beyond the 16 inline bytes: ceil((length-16)/512).
func MailboxBlocks(length int) int {
	if length <= CmdInlineSize {
		return 0
	}
	return (length - CmdInlineSize + MailboxDataSize - 1) / MailboxDataSize
}

// ChainError is a mailbox chain the device cannot walk; Status is the
// delivery status it reports. It wraps ErrMailbox.
type ChainError struct {
	Status DeliveryStatus
	Block  int
	Addr   uint64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%v: block %d at %#x: %s (%v)", ErrMailbox, e.Block, e.Addr, e.Reason, e.Status)
}

func (e *ChainError) Unwrap() error { return ErrMailbox }

// DMA moves bytes between the caller and device-visible memory; the
// chain walkers below call it, they do no I/O themselves.
type DMA interface {
	ReadDMA(addr uint64, b []byte) error
	WriteDMA(addr uint64, b []byte) error
}

// WalkChain visits the blocks of a chain starting at first for a message
// of length bytes (16 of them inline): for each it reads the block into
// blk (576 bytes, caller-provided), checks alignment, block number and
// token, and calls visit with the block index, its address and the parsed
// block. misalign is the delivery status to report for a misaligned
// block (DeliveryInPtrAlign or DeliveryOutPtrAlign).
func WalkChain(d DMA, first uint64, length int, token uint8, misalign DeliveryStatus, blk []byte,
	visit func(i int, addr uint64, m *Mailbox) error) error {
	if len(blk) < MailboxSize {
		return fmt.Errorf("%w: chain walk needs a %d-byte block buffer", ErrBuffer, MailboxSize)
	}
	if length < 0 || length > MaxMessageLen {
		return fmt.Errorf("%w: message of %d bytes", ErrLength, length)
	}
	var m Mailbox
	addr := first
	for i := range MailboxBlocks(length) {
		if addr == 0 || addr%MailboxAlign != 0 {
			return &ChainError{misalign, i, addr, "pointer not 1 KiB aligned"}
		}
		if err := d.ReadDMA(addr, blk[:MailboxSize]); err != nil {
			return &ChainError{DeliveryFWInternal, i, addr, err.Error()}
		}
		_ = ParseMailbox(blk, &m)
		if m.BlockNum != uint32(i) {
			return &ChainError{DeliveryBadBlockNum, i, addr, fmt.Sprintf("block_num %d", m.BlockNum)}
		}
		if m.Token != token {
			return &ChainError{DeliveryToken, i, addr, fmt.Sprintf("token %#x, entry %#x", m.Token, token)}
		}
		if err := visit(i, addr, &m); err != nil {
			return err
		}
		addr = m.Next
	}
	return nil
}

// GatherInput builds the device's view of a command input: the entry's
// 16 inline bytes followed by the chain's data, truncated to inlen. dst
// must hold e.InLen bytes; blk is a 576-byte scratch block.
func GatherInput(d DMA, e *CmdEntry, dst, blk []byte) ([]byte, error) {
	n := int(e.InLen)
	if n < CmdInlineSize || n > MaxMessageLen {
		return nil, &ChainError{DeliveryInLen, 0, 0, fmt.Sprintf("inlen %d", n)}
	}
	if len(dst) < n {
		return nil, fmt.Errorf("%w: input of %d bytes, buffer %d", ErrBuffer, n, len(dst))
	}
	dst = dst[:n]
	copy(dst, e.In[:])
	err := WalkChain(d, e.InPtr, n, e.Token, DeliveryInPtrAlign, blk, func(i int, _ uint64, m *Mailbox) error {
		copy(dst[CmdInlineSize+i*MailboxDataSize:], m.Data)
		return nil
	})
	return dst, err
}

// ScatterOutput writes a command output the way the device does: the
// first 16 bytes into e.Out, the rest (up to e.OutLen) into the data of
// the driver's pre-built output chain, each block written back whole. A
// longer out is truncated to outlen; a shorter one leaves the rest zero.
func ScatterOutput(d DMA, e *CmdEntry, out, blk []byte) error {
	n := int(e.OutLen)
	if n < CmdInlineSize || n > MaxMessageLen {
		return &ChainError{DeliveryOutLen, 0, 0, fmt.Sprintf("outlen %d", n)}
	}
	e.Out = [CmdInlineSize]byte{}
	copy(e.Out[:], out)
	return WalkChain(d, e.OutPtr, n, e.Token, DeliveryOutPtrAlign, blk, func(i int, addr uint64, m *Mailbox) error {
		clear(m.Data)
		lo := CmdInlineSize + i*MailboxDataSize
		if lo < len(out) {
			hi := min(len(out), n, lo+MailboxDataSize)
			copy(m.Data, out[lo:hi])
		}
		return d.WriteDMA(addr, blk[:MailboxSize])
	})
}

// GatherOutput is the driver's read of a completed output: e.Out followed
// by the chain's data, truncated to outlen, into dst.
func GatherOutput(d DMA, e *CmdEntry, dst, blk []byte) ([]byte, error) {
	n := int(e.OutLen)
	if n < CmdInlineSize || n > MaxMessageLen {
		return nil, fmt.Errorf("%w: outlen %d", ErrLength, n)
	}
	if len(dst) < n {
		return nil, fmt.Errorf("%w: output of %d bytes, buffer %d", ErrBuffer, n, len(dst))
	}
	dst = dst[:n]
	copy(dst, e.Out[:])
	err := WalkChain(d, e.OutPtr, n, e.Token, DeliveryOutPtrAlign, blk, func(i int, _ uint64, m *Mailbox) error {
		copy(dst[CmdInlineSize+i*MailboxDataSize:], m.Data)
		return nil
	})
	return dst, err
}

// BuildChain writes the blocks for a message (bytes 16.. of msg, or zeros
// for an output chain when msg is nil and length gives the size) into
// the blocks at addrs, linked in order with block numbers 0, 1, 2, ...
// and the entry's token. addrs must hold MailboxBlocks(length) 1 KiB
// aligned addresses.
func BuildChain(d DMA, msg []byte, length int, addrs []uint64, token uint8, blk []byte) error {
	if msg != nil {
		length = len(msg)
	}
	nb := MailboxBlocks(length)
	if len(addrs) < nb {
		return fmt.Errorf("%w: %d-byte message needs %d blocks, have %d", ErrBuffer, length, nb, len(addrs))
	}
	for i := range nb {
		var next uint64
		if i+1 < nb {
			next = addrs[i+1]
		}
		if addrs[i] == 0 || addrs[i]%MailboxAlign != 0 {
			return fmt.Errorf("%w: block %d address %#x not 1 KiB aligned", ErrField, i, addrs[i])
		}
		var data []byte
		if lo := CmdInlineSize + i*MailboxDataSize; lo < len(msg) {
			data = msg[lo:min(len(msg), lo+MailboxDataSize)]
		}
		if err := PutMailbox(blk, data, next, uint32(i), token); err != nil {
			return err
		}
		if err := d.WriteDMA(addrs[i], blk[:MailboxSize]); err != nil {
			return err
		}
	}
	return nil
}
