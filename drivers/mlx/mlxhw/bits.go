package mlxhw

import "encoding/binary"

var be = binary.BigEndian

// Field is one PRM bit field: Bit is the MSB-first bit offset from the
// start of its structure (the `reserved_at_XX` numbering of mlx5_ifc.h)
// and Width its size in bits, 1 to 32, never crossing a dword (§0.2).
type Field struct {
	Bit   uint16
	Width uint8
}

// F returns the field written "@off bits hi:lo" in the spec: bits hi..lo
// (31 = MSB) of the big-endian dword holding byte off.
func F(off, hi, lo int) Field {
	return Field{Bit: uint16((off&^3)*8 + 31 - hi), Width: uint8(hi - lo + 1)}
}

// B8, B16 and B32 return the whole byte, be16 or be32 at off.
func B8(off int) Field  { return Field{Bit: uint16(off * 8), Width: 8} }
func B16(off int) Field { return Field{Bit: uint16(off * 8), Width: 16} }
func B32(off int) Field { return Field{Bit: uint16(off * 8), Width: 32} }

// Flag returns the single bit "@off bit n".
func Flag(off, n int) Field { return F(off, n, n) }

func (f Field) dword() int { return int(f.Bit/32) * 4 }
func (f Field) shift() uint {
	return uint(32 - int(f.Width) - int(f.Bit%32))
}
func (f Field) mask() uint32 {
	if f.Width >= 32 {
		return 0xffffffff
	}
	return 1<<f.Width - 1
}

// End returns the number of bytes a buffer needs to hold the field's
// dword.
func (f Field) End() int { return f.dword() + 4 }

// Get returns the field's value in b, or 0 when b is too short (decoders
// check lengths first; Get never panics).
func (f Field) Get(b []byte) uint32 {
	if f.Width == 0 || int(f.Bit%32)+int(f.Width) > 32 || len(b) < f.End() {
		return 0
	}
	return be.Uint32(b[f.dword():]) >> f.shift() & f.mask()
}

// Bool reports whether the field is nonzero.
func (f Field) Bool(b []byte) bool { return f.Get(b) != 0 }

// Put stores v, truncated to the field's width, leaving the other bits of
// the dword alone; it does nothing when b is too short.
func (f Field) Put(b []byte, v uint32) {
	if f.Width == 0 || int(f.Bit%32)+int(f.Width) > 32 || len(b) < f.End() {
		return
	}
	d := b[f.dword():]
	m := f.mask() << f.shift()
	be.PutUint32(d, be.Uint32(d)&^m|(v<<f.shift())&m)
}

// PutBool stores 1 for true, 0 for false.
func (f Field) PutBool(b []byte, v bool) {
	if v {
		f.Put(b, 1)
	} else {
		f.Put(b, 0)
	}
}

// Fits reports whether v fits in the field's width.
func (f Field) Fits(v uint32) bool { return v&^f.mask() == 0 }

// get64 and put64 read and write the be64 at off, bounds-checked.
func get64(b []byte, off int) uint64 {
	if off < 0 || len(b) < off+8 {
		return 0
	}
	return be.Uint64(b[off:])
}

func put64(b []byte, off int, v uint64) {
	if off < 0 || len(b) < off+8 {
		return
	}
	be.PutUint64(b[off:], v)
}

// grow returns b extended by n zero bytes and the new tail.
func grow(b []byte, n int) ([]byte, []byte) {
	l := len(b)
	if cap(b)-l >= n {
		b = b[:l+n]
		clear(b[l:])
	} else {
		b = append(b, make([]byte, n)...)
	}
	return b, b[l:]
}
