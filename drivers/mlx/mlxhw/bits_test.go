package mlxhw

import "testing"

func TestFieldNotation(t *testing.T) {
	// "@0x1c bits 28:24" is the dword at 0x1c: MSB-first bit 0x1c*8+3.
	if f := F(0x1c, 28, 24); f != (Field{Bit: 0xe3, Width: 5}) {
		t.Fatalf("F(0x1c,28,24) = %+v", f)
	}
	// "@0x36 bits 9:8" (port_type) is bit 0x1b6 of cmd_hca_cap, as
	// mlx5_ifc.h places it after num_ports' neighbours.
	if f := F(0x36, 9, 8); f != (Field{Bit: 0x1b6, Width: 2}) {
		t.Fatalf("F(0x36,9,8) = %+v", f)
	}
	if f := B8(0x37); f != (Field{Bit: 0x1b8, Width: 8}) {
		t.Fatalf("B8(0x37) = %+v", f)
	}
	if f := B16(0x52); f != (Field{Bit: 0x290, Width: 16}) {
		t.Fatalf("B16(0x52) = %+v", f)
	}
}

func TestFieldGetPut(t *testing.T) {
	b := make([]byte, 8)
	F(0x04, 28, 24).Put(b, 0x1f)
	F(0x04, 23, 0).Put(b, 0xabcdef)
	same(t, "put", b, []byte{0, 0, 0, 0, 0x1f, 0xab, 0xcd, 0xef})
	F(0x04, 28, 24).Put(b, 0x3f) // truncated to 5 bits, neighbours kept
	same(t, "truncate", b, []byte{0, 0, 0, 0, 0x1f, 0xab, 0xcd, 0xef})
	if v := F(0x04, 23, 0).Get(b); v != 0xabcdef {
		t.Fatalf("get %#x", v)
	}
	B32(0).Put(b, 0xdeadbeef)
	if B32(0).Get(b) != 0xdeadbeef || !Flag(0, 31).Bool(b) {
		t.Fatal("B32")
	}
	// Out of range: no panic, Get 0, Put ignored.
	short := make([]byte, 3)
	B32(0).Put(short, 1)
	if B32(0).Get(short) != 0 || B32(0x100).Get(b) != 0 {
		t.Fatal("short buffer")
	}
	// A malformed field crossing a dword is refused, not panicking.
	bad := Field{Bit: 30, Width: 8}
	bad.Put(b, 0xff)
	if bad.Get(b) != 0 {
		t.Fatal("crossing field")
	}
	if !F(0, 3, 0).Fits(15) || F(0, 3, 0).Fits(16) {
		t.Fatal("Fits")
	}
}
