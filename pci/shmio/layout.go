package shmio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Layout constants (see the package comment).
const (
	magic       = "HVSHMIO1"
	version     = 1
	offMagic    = 0
	offVersion  = 8
	offReqSlots = 12
	offIrqSlots = 16
	offSize     = 20
	offHost     = 64
	offGuest    = 68
	offReqProd  = 128
	offReqCons  = 192
	offReplySeq = 256
	offReplyVal = 264
	offIrqProd  = 320
	offIrqCons  = 384
	offRing     = 512
	reqSize     = 24

	stateInit   = 0
	stateAlive  = 1
	stateClosed = 2

	opRead  = 1
	opWrite = 2
)

// Spaces a request names: the function's BARs 0..5 and its configuration
// window (the vPCI 8 KiB window, slot select at 0, config at 0x1000).
const (
	SpaceConfigWindow = 6
	numSpaces         = 7
)

// Errors.
var (
	// ErrLayout: the area is not a usable shmio area.
	ErrLayout = errors.New("shmio: bad shared area")
	// ErrClosed: the other side (or this one) closed the channel.
	ErrClosed = errors.New("shmio: closed")
)

// Size is the area size for reqSlots request and irqSlots interrupt slots.
func Size(reqSlots, irqSlots int) int {
	return offRing + reqSlots*reqSize + (irqSlots*4+7)&^7
}

// request is one decoded request record.
type request struct {
	op, space, size uint8
	tag             uint32
	off, val        uint64
}

func (r request) put(b []byte) {
	b[0], b[1], b[2], b[3] = r.op, r.space, r.size, 0
	binary.LittleEndian.PutUint32(b[4:], r.tag)
	binary.LittleEndian.PutUint64(b[8:], r.off)
	binary.LittleEndian.PutUint64(b[16:], r.val)
}

// decodeRequest parses and checks a request record (guest input to the
// host).
func decodeRequest(b []byte) (request, error) {
	if len(b) < reqSize {
		return request{}, fmt.Errorf("%w: %d-byte request", ErrLayout, len(b))
	}
	r := request{op: b[0], space: b[1], size: b[2], tag: binary.LittleEndian.Uint32(b[4:]),
		off: binary.LittleEndian.Uint64(b[8:]), val: binary.LittleEndian.Uint64(b[16:])}
	switch {
	case r.op != opRead && r.op != opWrite:
		return r, fmt.Errorf("shmio: request op %d", r.op)
	case r.space >= numSpaces:
		return r, fmt.Errorf("shmio: request space %d", r.space)
	case r.size != 1 && r.size != 2 && r.size != 4 && r.size != 8:
		return r, fmt.Errorf("shmio: request size %d", r.size)
	case r.off%uint64(r.size) != 0:
		return r, fmt.Errorf("shmio: misaligned %d-byte access at %#x", r.size, r.off)
	case r.size < 8 && r.val>>(8*r.size) != 0:
		return r, fmt.Errorf("shmio: %d-byte write of %#x", r.size, r.val)
	}
	return r, nil
}

// view is the area with its geometry checked.
type view struct {
	mem                []byte
	reqSlots, irqSlots uint32
	irqOff             int
}

func (v *view) u32(off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&v.mem[off])) }
func (v *view) u64(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&v.mem[off])) }

func (v *view) reqSlot(i uint32) []byte {
	o := offRing + int(i&(v.reqSlots-1))*reqSize
	return v.mem[o : o+reqSize]
}

func (v *view) irqSlot(i uint32) *atomic.Uint32 { return v.u32(v.irqOff + int(i&(v.irqSlots-1))*4) }

func pow2(n uint32) bool { return n != 0 && n&(n-1) == 0 }

// initView lays a fresh area out (host).
func initView(mem []byte, reqSlots, irqSlots int) (*view, error) {
	if reqSlots <= 0 || irqSlots <= 0 || reqSlots > 1<<16 || irqSlots > 1<<16 || !pow2(uint32(reqSlots)) || !pow2(uint32(irqSlots)) {
		return nil, fmt.Errorf("%w: %d request and %d interrupt slots (powers of two up to 65536)", ErrLayout, reqSlots, irqSlots)
	}
	if err := checkMem(mem, Size(reqSlots, irqSlots)); err != nil {
		return nil, err
	}
	clear(mem[:Size(reqSlots, irqSlots)])
	copy(mem[offMagic:], magic)
	le := binary.LittleEndian
	le.PutUint32(mem[offVersion:], version)
	le.PutUint32(mem[offReqSlots:], uint32(reqSlots))
	le.PutUint32(mem[offIrqSlots:], uint32(irqSlots))
	le.PutUint32(mem[offSize:], uint32(Size(reqSlots, irqSlots)))
	return parseView(mem)
}

// parseView checks an area laid out by a host (guest input to the guest
// side, host's own area for the host).
func parseView(mem []byte) (*view, error) {
	if err := checkMem(mem, offRing); err != nil {
		return nil, err
	}
	if string(mem[offMagic:offMagic+8]) != magic {
		return nil, fmt.Errorf("%w: magic %q", ErrLayout, mem[offMagic:offMagic+8])
	}
	le := binary.LittleEndian
	if v := le.Uint32(mem[offVersion:]); v != version {
		return nil, fmt.Errorf("%w: version %d, this code speaks %d", ErrLayout, v, version)
	}
	rs, is := le.Uint32(mem[offReqSlots:]), le.Uint32(mem[offIrqSlots:])
	if !pow2(rs) || !pow2(is) || rs > 1<<16 || is > 1<<16 {
		return nil, fmt.Errorf("%w: %d request and %d interrupt slots", ErrLayout, rs, is)
	}
	need := Size(int(rs), int(is))
	if sz := le.Uint32(mem[offSize:]); int(sz) != need || len(mem) < need {
		return nil, fmt.Errorf("%w: size %d, the geometry needs %d, the mapping holds %d", ErrLayout, sz, need, len(mem))
	}
	return &view{mem: mem, reqSlots: rs, irqSlots: is, irqOff: offRing + int(rs)*reqSize}, nil
}

func checkMem(mem []byte, need int) error {
	if len(mem) < need {
		return fmt.Errorf("%w: %d bytes, need %d", ErrLayout, len(mem), need)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return fmt.Errorf("%w: mapping not 8-byte aligned", ErrLayout)
	}
	return nil
}
