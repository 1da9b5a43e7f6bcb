package pci

import (
	"encoding/binary"
	"errors"
	"testing"
)

// raw is a ConfigSpace over plain bytes with no masks: a device that
// says whatever the test (or the fuzzer) wants.
type raw []byte

func (r raw) ok(off, n int) bool        { return off >= 0 && off+n <= len(r) }
func (r raw) Read8(off int) uint8       { return uint8(r.read(off, 1)) }
func (r raw) Read16(off int) uint16     { return uint16(r.read(off, 2)) }
func (r raw) Read32(off int) uint32     { return r.read(off, 4) }
func (r raw) Write8(off int, v uint8)   { r.write(off, 1, uint32(v)) }
func (r raw) Write16(off int, v uint16) { r.write(off, 2, uint32(v)) }
func (r raw) Write32(off int, v uint32) { r.write(off, 4, v) }
func (r raw) write(off, n int, v uint32) {
	if r.ok(off, n) {
		putLE(r, off, n, v)
	}
}
func (r raw) read(off, n int) uint32 {
	if !r.ok(off, n) {
		return ^uint32(0) >> (32 - 8*n)
	}
	return getLE(r, off, n)
}

var hdr = Header{VendorID: 0x15B3, DeviceID: 0x101A, Revision: 0x80, ClassCode: 0x020000,
	SubsystemVendorID: 0x1414, SubsystemID: 0x0001, InterruptPin: 1}

func TestGoldenHeader(t *testing.T) {
	c := NewMemConfig(hdr)
	b := c.Bytes()
	want := map[int][]byte{
		0x00: {0xB3, 0x15, 0x1A, 0x10}, // vendor, device
		0x04: {0, 0, 0, 0},             // command, status
		0x08: {0x80, 0x00, 0x00, 0x02}, // revision, prog-if, subclass, base class
		0x2C: {0x14, 0x14, 0x01, 0x00}, // subsystem vendor, subsystem
		0x3C: {0x00, 0x01},             // interrupt line, pin
	}
	for off, w := range want {
		if string(b[off:off+len(w)]) != string(w) {
			t.Errorf("%#x: % x, want % x", off, b[off:off+len(w)], w)
		}
	}
	if len(b) != 4096 {
		t.Fatal(len(b))
	}
	// Offsets per pci_regs.h.
	for _, c := range [][2]int{{Command, 4}, {Status, 6}, {HeaderType, 0x0E}, {BAROffset(5), 0x24},
		{SubsystemID, 0x2E}, {CapabilitiesPtr, 0x34}, {InterruptPin, 0x3D}} {
		if c[0] != c[1] {
			t.Errorf("offset %#x want %#x", c[0], c[1])
		}
	}
}

func TestWriteMasks(t *testing.T) {
	c := NewMemConfig(hdr)
	c.Write16(VendorID, 0)
	if c.Read16(VendorID) != 0x15B3 {
		t.Fatal("vendor id writable")
	}
	c.Write16(Command, 0xFFFF)
	if c.Read16(Command) != CommandWritable {
		t.Fatalf("command %#x", c.Read16(Command))
	}
	c.SetRaw(Status, []byte{0x10, 0x30}) // cap list + received master/target abort
	c.Write16(Status, 0x1000)            // clear received target abort only
	if got := c.Read16(Status); got != 0x2010 {
		t.Fatalf("status after RW1C %#x", got)
	}
	c.Write16(Status, 0xFFFF)
	if got := c.Read16(Status); got != StatusCapList {
		t.Fatalf("status %#x", got)
	}
	if c.Read32(0x1000) != 0xFFFFFFFF || c.Read16(3) != 0xFFFF || c.Read8(-1) != 0xFF {
		t.Fatal("out of range or misaligned reads must be all-ones")
	}
	var hooked []int
	c.OnWrite(func(off, size int) { hooked = append(hooked, off, size) })
	c.Write8(InterruptLine, 9)
	if c.Read8(InterruptLine) != 9 || len(hooked) != 2 || hooked[0] != InterruptLine {
		t.Fatal(hooked)
	}
}

func TestBARSizing(t *testing.T) {
	c := NewMemConfig(hdr)
	must(t, c.SetBAR(0, 0x4000, 0))
	must(t, c.SetBAR(2, 1<<33, BAR64|BARPrefetch))
	must(t, c.SetBAR(4, 0x100, BARIO))
	c.Write32(BAROffset(0), 0xFFFFFFFF)
	if v := c.Read32(BAROffset(0)); v != 0xFFFFC000 {
		t.Fatalf("32-bit probe %#x", v)
	}
	c.Write32(BAROffset(2), 0xFFFFFFFF)
	c.Write32(BAROffset(3), 0xFFFFFFFF)
	if lo, hi := c.Read32(BAROffset(2)), c.Read32(BAROffset(3)); lo != 0x0000000C || hi != 0xFFFFFFFE {
		t.Fatalf("64-bit probe %#x %#x", lo, hi)
	}
	c.Write32(BAROffset(0), 0xE0000000)
	c.Write32(BAROffset(2), 0)
	c.Write32(BAROffset(3), 0x4)
	c.Write16(Command, CommandMemory|CommandIO)

	bars, err := SizeBARs(c)
	must(t, err)
	want := []BARInfo{
		{Index: 0, Base: 0xE0000000, Size: 0x4000},
		{Index: 2, Base: 0x4_00000000, Size: 1 << 33, Is64: true, Prefetch: true},
		{Index: 4, Size: 0x100, IO: true},
	}
	if len(bars) != len(want) {
		t.Fatalf("%+v", bars)
	}
	for i := range want {
		if bars[i] != want[i] {
			t.Errorf("BAR %d: %+v, want %+v", i, bars[i], want[i])
		}
	}
	if c.Read16(Command) != CommandMemory|CommandIO || c.Read32(BAROffset(0)) != 0xE0000000 || c.Read32(BAROffset(3)) != 4 {
		t.Fatal("SizeBARs did not restore state")
	}
	must(t, SetBARAddress(c, bars[1], 0x8_00000000))
	if c.Read32(BAROffset(3)) != 8 || c.Read32(BAROffset(2)) != 0xC {
		t.Fatal("SetBARAddress")
	}
	if err := SetBARAddress(c, bars[0], 0x1000); !errors.Is(err, ErrInvalid) {
		t.Fatal("misaligned BAR address accepted")
	}
	EnableBusMaster(c, true)
	EnableMemory(c, false)
	if c.Read16(Command) != CommandIO|CommandMaster {
		t.Fatalf("command %#x", c.Read16(Command))
	}
}

func TestDecodeProbedBARs(t *testing.T) {
	bars, err := DecodeProbedBARs([6]uint32{0xFFF00000, 0xFFFFC00C, 0xFFFFFFFF, 0, 0, 0})
	must(t, err)
	if len(bars) != 2 || bars[0].Size != 1<<20 || bars[1].Size != 0x4000 || !bars[1].Is64 || !bars[1].Prefetch || bars[1].Index != 1 {
		t.Fatalf("%+v", bars)
	}
	for _, p := range [][6]uint32{
		{0xFFF0F000},                // hole in the mask
		{0x0000000F},                // only flag bits
		{0, 0, 0, 0, 0, 0xFFFF0004}, // 64-bit in the last slot
		{0xFFFF0006},                // reserved memory type
		{0x00000004, 0},             // 64-bit with no size bits
	} {
		if _, err := DecodeProbedBARs(p); !errors.Is(err, ErrBadBAR) {
			t.Errorf("%x accepted: %v", p, err)
		}
	}
}

func deviceWithMSIAndMSIX(t *testing.T) (*MemConfig, int, int) {
	c := NewMemConfig(hdr)
	must(t, c.SetBAR(0, 0x4000, BAR64))
	pm, err := c.AddCapability(CapPM, make([]byte, 6), nil)
	must(t, err)
	msi, err := c.AddMSI(3, true, true)
	must(t, err)
	msix, err := c.AddMSIX(16, 0, 0x2000, 0, 0x3000)
	must(t, err)
	if pm != 0x40 || msi != 0x48 || msix != 0x60 {
		t.Fatalf("layout %#x %#x %#x", pm, msi, msix)
	}
	return c, msi, msix
}

func TestCapabilitiesProgrammed(t *testing.T) {
	c, msiOff, msixOff := deviceWithMSIAndMSIX(t)
	b := c.Bytes()
	// Golden list: pointer 0x40, PM -> 0x48, MSI -> 0x60, MSI-X -> 0.
	if b[CapabilitiesPtr] != 0x40 || b[0x40] != CapPM || b[0x41] != 0x48 || b[0x48] != CapMSI ||
		b[0x49] != 0x60 || b[0x60] != CapMSIX || b[0x61] != 0 || b[Status]&StatusCapList == 0 {
		t.Fatalf("% x", b[0x34:0x70])
	}
	if binary.LittleEndian.Uint16(b[0x4A:]) != 3<<1|MSIFlags64Bit|MSIFlagsMaskBit ||
		binary.LittleEndian.Uint16(b[0x62:]) != 15 || binary.LittleEndian.Uint32(b[0x64:]) != 0x2000 || binary.LittleEndian.Uint32(b[0x68:]) != 0x3000 {
		t.Fatalf("% x", b[0x48:0x6C])
	}
	caps, err := Capabilities(c)
	must(t, err)
	if len(caps) != 3 || caps[1] != (Capability{CapMSI, 0x48}) || caps[2] != (Capability{CapMSIX, 0x60}) {
		t.Fatalf("%+v", caps)
	}
	if off, err := FindCapability(c, CapMSIX); err != nil || off != msixOff {
		t.Fatal(off, err)
	}
	if _, err := FindCapability(c, CapExpress); !errors.Is(err, ErrNoCapability) {
		t.Fatal(err)
	}

	msi, err := ParseMSI(c, msiOff)
	must(t, err)
	if !msi.Is64 || !msi.PerVectorMask || msi.MaxVectors != 8 {
		t.Fatalf("%+v", msi)
	}
	must(t, msi.Program(c, 0x1_FEE00000, 0x4041, 4))
	msi.SetEnabled(c, true)
	must(t, msi.SetMask(c, 0x5))
	b = c.Bytes()
	if binary.LittleEndian.Uint32(b[0x4C:]) != 0xFEE00000 || binary.LittleEndian.Uint32(b[0x50:]) != 1 ||
		binary.LittleEndian.Uint16(b[0x54:]) != 0x4041 || binary.LittleEndian.Uint32(b[0x58:]) != 5 ||
		binary.LittleEndian.Uint16(b[0x4A:])&(MSIFlagsEnable|MSIFlagsQSize) != MSIFlagsEnable|2<<4 {
		t.Fatalf("MSI % x", b[0x48:0x60])
	}
	if err := msi.Program(c, 0, 0, 16); !errors.Is(err, ErrInvalid) {
		t.Fatal("16 vectors accepted")
	}

	msix, err := ParseMSIX(c, msixOff)
	must(t, err)
	if msix != (MSIX{Offset: 0x60, TableSize: 16, TableBIR: 0, TableOffset: 0x2000, PBABIR: 0, PBAOffset: 0x3000}) {
		t.Fatalf("%+v", msix)
	}
	bar := NewMemBAR(0x4000)
	for i := range msix.TableSize {
		bar.Write32(0x2000+uint64(i)*16+12, MSIXEntryMasked)
	}
	must(t, msix.WriteEntry(bar, 3, 0xFEE01000, 0x31))
	must(t, msix.MaskEntry(bar, 3, false))
	e, err := msix.ReadEntry(bar, 3)
	if err != nil || e != (MSIXEntry{Address: 0xFEE01000, Data: 0x31}) {
		t.Fatal(e, err)
	}
	if bar.Read64(0x2030) != 0xFEE01000 || bar.Read32(0x2038) != 0x31 || bar.Read32(0x203C) != 0 || bar.Read32(0x202C) != 1 {
		t.Fatal("table layout")
	}
	if err := msix.WriteEntry(bar, 16, 0, 0); !errors.Is(err, ErrInvalid) {
		t.Fatal("entry 16 accepted")
	}
	if err := msix.CheckTable(NewMemBAR(0x2000)); !errors.Is(err, ErrBadCapability) {
		t.Fatal("table past BAR accepted")
	}
	msix.SetMaskAll(c, true)
	msix.SetEnabled(c, true)
	if c.Read16(msixOff+MSIXFlags) != MSIXFlagsEnable|MSIXFlagsMaskAll|15 {
		t.Fatalf("%#x", c.Read16(msixOff+MSIXFlags))
	}
	c.Write16(msixOff+MSIXFlags, 0) // table size is read-only
	if c.Read16(msixOff+MSIXFlags) != 15 {
		t.Fatal("MSI-X table size writable")
	}
}

func withCaps(ptr byte, chain map[int][2]byte) raw {
	r := make(raw, ConfigSize)
	r[Status] = StatusCapList
	r[CapabilitiesPtr] = ptr
	for off, idNext := range chain {
		r[off], r[off+1] = idNext[0], idNext[1]
	}
	return r
}

func TestMaliciousCapabilities(t *testing.T) {
	cases := []struct {
		name string
		cs   raw
		want error
	}{
		{"self loop", withCaps(0x40, map[int][2]byte{0x40: {CapMSI, 0x40}}), ErrCapLoop},
		{"two-entry loop", withCaps(0x40, map[int][2]byte{0x40: {1, 0x50}, 0x50: {2, 0x40}}), ErrCapLoop},
		{"into header", withCaps(0x40, map[int][2]byte{0x40: {1, 0x10}}), ErrCapRange},
		{"misaligned", withCaps(0x41, nil), ErrCapMisaligned},
		{"misaligned next", withCaps(0x40, map[int][2]byte{0x40: {1, 0xFE}}), ErrCapMisaligned},
		{"short config space", withCaps(0x40, map[int][2]byte{0x40: {1, 0xFC}})[:0x100], nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Capabilities(c.cs)
			if c.want == nil && err != nil || !errors.Is(err, c.want) && c.want != nil {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// MSI at the end of config space would run past 0x100.
	r := withCaps(0xFC, map[int][2]byte{0xFC: {CapMSI, 0}})
	r[0xFE] = byte(MSIFlags64Bit)
	if _, err := ParseMSI(r, 0xFC); !errors.Is(err, ErrCapRange) {
		t.Fatal(err)
	}
	r = withCaps(0x40, map[int][2]byte{0x40: {CapMSIX, 0}})
	r[0x44] = 6
	if _, err := ParseMSIX(r, 0x40); !errors.Is(err, ErrBadCapability) {
		t.Fatal(err)
	}
	if _, err := ParseMSI(r, 0x40); !errors.Is(err, ErrBadCapability) {
		t.Fatal("MSI-X parsed as MSI")
	}
	if _, err := Capabilities(raw(make([]byte, 0))); !errors.Is(err, ErrNoDevice) {
		t.Fatal(err)
	}

	ext := make(raw, ExtConfigSize)
	binary.LittleEndian.PutUint32(ext[0x100:], 0x0001|1<<16|0x100<<20) // loops to itself
	if _, err := ExtendedCapabilities(ext); !errors.Is(err, ErrCapLoop) {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(ext[0x100:], 0x0001|1<<16|0x0FF<<20)
	if _, err := ExtendedCapabilities(ext); !errors.Is(err, ErrCapMisaligned) {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(ext[0x100:], 0x0001|1<<16|0x040<<20)
	if _, err := ExtendedCapabilities(ext); !errors.Is(err, ErrCapRange) {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(ext[0x100:], 0x000B|1<<16|0xFFC<<20)
	binary.LittleEndian.PutUint32(ext[0xFFC:], 0x0018|1<<16)
	caps, err := ExtendedCapabilities(ext)
	if err != nil || len(caps) != 2 || caps[1] != (Capability{0x18, 0xFFC}) {
		t.Fatal(caps, err)
	}
	if caps, err := ExtendedCapabilities(raw(make([]byte, 0x100))); err != nil || caps != nil {
		t.Fatal("conventional function has extended caps", caps, err)
	}
}

func TestMemBAR(t *testing.T) {
	b := NewMemBAR(64)
	var seen []uint64
	b.OnWrite = func(off uint64, size int, v uint64) { seen = append(seen, off) }
	b.Write64(8, 0x1122334455667788)
	b.Write32(12, 0xAABBCCDD)
	if b.Read64(8) != 0xAABBCCDD55667788 || b.Read32(8) != 0x55667788 {
		t.Fatalf("%#x", b.Read64(8))
	}
	b.Write32(2, 1)
	b.Write64(64, 1)
	if b.Read32(64) != 0xFFFFFFFF || b.Read64(4) != ^uint64(0) || len(seen) != 2 {
		t.Fatal("out of range access", seen)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
