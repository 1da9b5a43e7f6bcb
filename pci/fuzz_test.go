package pci

import (
	"errors"
	"testing"
)

var pciSentinels = []error{ErrNoDevice, ErrCapRange, ErrCapMisaligned, ErrCapLoop, ErrNoCapability, ErrBadBAR, ErrBadCapability, ErrInvalid}

func sentinel(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range pciSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without a sentinel: %v", err)
}

// FuzzCapabilities walks capability lists in arbitrary config bytes (a
// hostile device): the walks end, stay in bounds, never repeat an entry,
// and every failure carries a sentinel.
func FuzzCapabilities(f *testing.F) {
	c := NewMemConfig(hdr)
	c.SetBAR(0, 0x4000, BAR64)
	c.AddCapability(CapPM, make([]byte, 6), nil)
	c.AddMSI(3, true, true)
	c.AddMSIX(16, 0, 0x2000, 0, 0x3000)
	f.Add(c.Bytes()[:ConfigSize])
	f.Add(c.Bytes())
	f.Add([]byte(withCaps(0x40, map[int][2]byte{0x40: {CapMSI, 0x40}})))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > ExtConfigSize {
			b = b[:ExtConfigSize]
		}
		cs := raw(append([]byte(nil), b...))
		caps, err := Capabilities(cs)
		sentinel(t, err)
		if len(caps) > MaxCapabilities {
			t.Fatalf("%d capabilities", len(caps))
		}
		seen := map[int]bool{}
		for _, c := range caps {
			if c.Offset < HeaderSize || c.Offset >= ConfigSize || c.Offset&3 != 0 || seen[c.Offset] {
				t.Fatalf("bad entry %+v", c)
			}
			seen[c.Offset] = true
			switch c.ID {
			case CapMSI:
				m, err := ParseMSI(cs, c.Offset)
				sentinel(t, err)
				if err == nil {
					sentinel(t, m.Program(cs, 0xFEE00000, 1, 1))
					m.SetEnabled(cs, true)
				}
			case CapMSIX:
				m, err := ParseMSIX(cs, c.Offset)
				sentinel(t, err)
				if err == nil {
					bar := NewMemBAR(0x1000)
					sentinel(t, m.WriteEntry(bar, m.TableSize-1, 0xFEE00000, 1))
					sentinel(t, m.MaskEntry(bar, 0, true))
				}
			}
		}
		ext, err := ExtendedCapabilities(cs)
		sentinel(t, err)
		if len(ext) > (ExtConfigSize-ExtCapStart)/4 {
			t.Fatalf("%d extended capabilities", len(ext))
		}
		bars, err := SizeBARs(cs)
		sentinel(t, err)
		for _, b := range bars {
			if b.Size == 0 || b.Size&(b.Size-1) != 0 || b.Index < 0 || b.Index >= NumBARs {
				t.Fatalf("bad BAR %+v", b)
			}
		}
	})
}
