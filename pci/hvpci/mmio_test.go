package hvpci

import (
	"errors"
	"testing"

	"github.com/hvguest/hvguest/pci"
)

var (
	lowRange  = MMIORange{Base: 0xF800_0000, Size: 64 << 20}
	highRange = MMIORange{Base: 0x10_0000_0000, Size: 1 << 30}
)

func TestMMIOSpace(t *testing.T) {
	m, err := newMMIOSpace([]MMIORange{highRange, lowRange})
	if err != nil {
		t.Fatal(err)
	}
	// 64-bit BARs go above 4 GiB, naturally aligned, one after another.
	a, ok := m.alloc(32<<20, 32<<20, true, false)
	b, ok2 := m.alloc(32<<20, 32<<20, true, false)
	if !ok || !ok2 || a != highRange.Base || b != highRange.Base+32<<20 {
		t.Fatalf("64-bit: %#x %v, %#x %v", a, ok, b, ok2)
	}
	// 32-bit ones below, aligned even when the range is not.
	c, ok := m.alloc(16<<10, 16<<10, false, true)
	if !ok || c != lowRange.Base {
		t.Fatalf("32-bit: %#x %v", c, ok)
	}
	d, ok := m.alloc(1<<20, 1<<20, false, true)
	if !ok || d != lowRange.Base+1<<20 || d%(1<<20) != 0 {
		t.Fatalf("aligned 1 MiB after 16 KiB: %#x %v", d, ok)
	}
	// A freed piece is reused; what does not fit is refused.
	m.free(a)
	if e, ok := m.alloc(32<<20, 32<<20, true, false); !ok || e != a {
		t.Fatalf("reuse: %#x %v, want %#x", e, ok, a)
	}
	if _, ok := m.alloc(2<<30, 2<<30, true, false); ok {
		t.Fatal("2 GiB fit in 1 GiB + 64 MiB")
	}
	if _, ok := m.alloc(128<<20, 128<<20, false, true); ok {
		t.Fatal("128 MiB fit below 4 GiB in 64 MiB")
	}
	// A 64-bit BAR falls back below 4 GiB when the high range is full.
	full, _ := newMMIOSpace([]MMIORange{lowRange})
	if f, ok := full.alloc(1<<20, 1<<20, true, false); !ok || f != lowRange.Base {
		t.Fatalf("fallback: %#x %v", f, ok)
	}
	for _, bad := range [][]MMIORange{
		{{Base: 0x1000, Size: 0}}, {{Base: 0x1001, Size: 0x1000}}, {{Base: ^uint64(0) &^ 0xfff, Size: 0x2000}},
		{{Base: 0x10000, Size: 0x10000}, {Base: 0x18000, Size: 0x1000}},
	} {
		if _, err := newMMIOSpace(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("ranges %+v accepted: %v", bad, err)
		}
	}
}

// placeBARs writes each BAR's address through config space (decoding off
// meanwhile, the command register as it was after), and gives back every
// piece when one BAR does not fit.
func TestPlaceBARs(t *testing.T) {
	dev := pci.NewMemConfig(pci.Header{VendorID: 0x15b3, DeviceID: 0x1016})
	if err := dev.SetBAR(0, 32<<20, pci.BAR64|pci.BARPrefetch); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetBAR(2, 16<<10, 0); err != nil {
		t.Fatal(err)
	}
	bars, err := pci.SizeBARs(dev)
	if err != nil || len(bars) != 2 {
		t.Fatalf("%+v %v", bars, err)
	}
	pci.SetCommand(dev, pci.CommandMemory|pci.CommandMaster, 0)
	m, _ := newMMIOSpace([]MMIORange{lowRange, highRange})
	if err := m.placeBARs(dev, bars); err != nil {
		t.Fatal(err)
	}
	if bars[0].Base != highRange.Base || bars[1].Base != lowRange.Base {
		t.Fatalf("placed %+v", bars)
	}
	lo, hi := dev.Read32(pci.BAR0), dev.Read32(pci.BAR0+4)
	if uint64(hi)<<32|uint64(lo&^0xf) != highRange.Base || dev.Read32(pci.BAROffset(2))&^0xf != uint32(lowRange.Base) {
		t.Fatalf("config space BARs %#x:%#x, %#x", hi, lo, dev.Read32(pci.BAROffset(2)))
	}
	if pci.MemBARAddress(dev, 0) != highRange.Base || pci.MemBARAddress(dev, 2) != lowRange.Base || pci.MemBARAddress(dev, 6) != 0 {
		t.Fatalf("MemBARAddress %#x %#x", pci.MemBARAddress(dev, 0), pci.MemBARAddress(dev, 2))
	}
	if dev.Read16(pci.Command) != pci.CommandMemory|pci.CommandMaster {
		t.Fatalf("command %#x after placement", dev.Read16(pci.Command))
	}
	// No room for the second BAR: the first one's piece comes back.
	tight, _ := newMMIOSpace([]MMIORange{{Base: 0x10_0000_0000, Size: 32 << 20}})
	again, _ := pci.SizeBARs(dev)
	if err := tight.placeBARs(dev, again); !errors.Is(err, ErrResources) {
		t.Fatalf("placement in too little room: %v", err)
	}
	if a, ok := tight.alloc(32<<20, 32<<20, true, false); !ok || a != 0x10_0000_0000 {
		t.Fatalf("the failed placement kept its piece: %#x %v", a, ok)
	}
}
