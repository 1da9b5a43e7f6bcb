package shmio

import "testing"

// FuzzHostRequests: whatever a hostile guest puts in the request ring and
// its producer count, the host's pump never panics, never calls the
// handler with an access it did not validate, and ends with its consumer
// count at the producer's.
func FuzzHostRequests(f *testing.F) {
	good := make([]byte, 3*reqSize)
	request{op: opWrite, space: 0, size: 4, off: 8, val: 5}.put(good)
	request{op: opRead, space: 0, size: 4, off: 8, tag: 1}.put(good[reqSize:])
	request{op: opRead, space: SpaceConfigWindow, size: 2, off: 0x1004, tag: 2}.put(good[2*reqSize:])
	f.Add(good, uint32(3))
	f.Add(make([]byte, reqSize), uint32(1))
	f.Add([]byte{0xff, 0xff, 0xff}, uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, ring []byte, prod uint32) {
		mem := area(t, 8, 4)
		h := &Host{v: nil, h: checked{t}}
		v, err := initView(mem, 8, 4)
		if err != nil {
			t.Fatal(err)
		}
		h.v = v
		copy(mem[offRing:offRing+8*reqSize], ring)
		v.u32(offReqProd).Store(prod)
		h.serve()
		if got := v.u32(offReqCons).Load(); got != prod {
			t.Fatalf("consumer %d, producer %d", got, prod)
		}
	})
}

// checked is a handler that fails the fuzz run on an access the host
// should have refused.
type checked struct{ t *testing.T }

func (c checked) check(space int, off uint64, size int) {
	if space < 0 || space >= numSpaces || (size != 1 && size != 2 && size != 4 && size != 8) || off%uint64(size) != 0 {
		c.t.Fatalf("handler got space %d off %#x size %d", space, off, size)
	}
}
func (c checked) Read(space int, off uint64, size int) uint64 {
	c.check(space, off, size)
	return ^uint64(0)
}
func (c checked) Write(space int, off uint64, size int, v uint64) {
	c.check(space, off, size)
	if size < 8 && v>>(8*size) != 0 {
		c.t.Fatalf("%d-byte write of %#x", size, v)
	}
}

// FuzzGuestView: a hostile or broken host's area header is refused with
// an error or gives a geometry inside the mapping.
func FuzzGuestView(f *testing.F) {
	mem := area(f, 8, 4)
	if _, err := initView(mem, 8, 4); err != nil {
		f.Fatal(err)
	}
	f.Add(mem[:offRing])
	f.Add(make([]byte, offRing))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		m := area(t, 8, 4)
		copy(m, hdr)
		v, err := parseView(m)
		if err != nil {
			return
		}
		if need := Size(int(v.reqSlots), int(v.irqSlots)); need > len(m) || v.irqOff+int(v.irqSlots)*4 > len(m) {
			t.Fatalf("geometry %d/%d needs %d bytes, mapping %d", v.reqSlots, v.irqSlots, need, len(m))
		}
	})
}
