package sysfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hvguest/hvguest/pci"
)

// fakeFunction lays out a sysfs function directory: a config file holding
// the configuration space of an in-memory device (a 64-bit BAR, MSI and
// MSI-X capabilities) and an 8 KiB resource0.
func fakeFunction(t *testing.T) (root string, mc *pci.MemConfig) {
	t.Helper()
	mc = pci.NewMemConfig(pci.Header{VendorID: 0x15b3, DeviceID: 0x1016, ClassCode: 0x020000})
	if err := mc.SetBAR(0, 0x2000, pci.BAR64); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.AddMSI(3, true, true); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.AddMSIX(16, 0, 0x1000, 0, 0x1800); err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	dir := filepath.Join(root, "0000:00:02.0")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), mc.Bytes()[:pci.ConfigSize], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resource0"), make([]byte, 0x2000), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, mc
}

func TestOpenAddress(t *testing.T) {
	root, _ := fakeFunction(t)
	for _, bad := range []string{"", "00:02.0", "0000:00:02.8", "0000:00:2.0", "../0000:00:02.0", "0000:00:20.0"} {
		if _, err := Open(root, bad); !errors.Is(err, ErrAddress) {
			t.Errorf("Open(%q): %v, want ErrAddress", bad, err)
		}
	}
	if _, err := Open(root, "0000:00:03.0"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing function: %v", err)
	}
	f, err := Open(root, "0000:00:02.0")
	if err != nil || f.Dir() != filepath.Join(root, "0000:00:02.0") {
		t.Fatalf("Open: %v %v", f, err)
	}
	if _, err := f.BAR(1); err == nil {
		t.Error("BAR 1 (no resource1 file) mapped")
	}
	if _, err := f.BAR(6); !errors.Is(err, ErrBAR) {
		t.Errorf("BAR 6: %v", err)
	}
}

// The pci helpers walk and program a config file as they do a device model.
func TestConfigFile(t *testing.T) {
	root, mc := fakeFunction(t)
	f, err := Open(root, "0000:00:02.0")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if cs.Read16(pci.VendorID) != 0x15b3 || cs.Read16(pci.DeviceID) != 0x1016 || cs.Read8(pci.ClassBase) != 0x02 {
		t.Fatalf("ids %#x %#x class %#x", cs.Read16(pci.VendorID), cs.Read16(pci.DeviceID), cs.Read8(pci.ClassBase))
	}
	got, err := pci.Capabilities(cs)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := pci.Capabilities(mc)
	if len(got) != 2 || len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("capabilities %+v, device model %+v", got, want)
	}
	off, err := pci.FindCapability(cs, pci.CapMSIX)
	if err != nil {
		t.Fatal(err)
	}
	x, err := pci.ParseMSIX(cs, off)
	if err != nil || x.TableSize != 16 || x.TableOffset != 0x1000 || x.PBAOffset != 0x1800 {
		t.Fatalf("MSI-X %+v %v", x, err)
	}
	// Writes land in the file, little-endian.
	pci.EnableBusMaster(cs, true)
	cs.Write32(0x40, 0x11223344)
	raw, _ := os.ReadFile(filepath.Join(f.Dir(), "config"))
	if binary.LittleEndian.Uint16(raw[pci.Command:])&pci.CommandMaster == 0 || !bytes.Equal(raw[0x40:0x44], []byte{0x44, 0x33, 0x22, 0x11}) {
		t.Fatalf("file after writes: command % x, 0x40 % x", raw[pci.Command:pci.Command+2], raw[0x40:0x44])
	}
	if cs.Err() != nil {
		t.Fatalf("error after good accesses: %v", cs.Err())
	}
	// Master-abort semantics for what cannot be done.
	if cs.Read32(pci.ConfigSize) != 0xFFFFFFFF || cs.Read16(3) != 0xFFFF || cs.Read8(-1) != 0xFF || cs.Err() == nil {
		t.Fatalf("out of range or misaligned reads did not read all-ones (err %v)", cs.Err())
	}
	cs.Write32(pci.ConfigSize, 1)
	cs.Write16(0x41, 0xBEEF)
	if raw2, _ := os.ReadFile(filepath.Join(f.Dir(), "config")); !bytes.Equal(raw, raw2) {
		t.Fatal("a refused write changed the file")
	}
	cs.Close()
	if cs.Read16(pci.VendorID) != 0xFFFF {
		t.Fatal("a closed config space still reads")
	}
}

// A config file shorter than a header is refused.
func TestConfigTooShort(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenConfig(p); err == nil {
		t.Fatal("32-byte config accepted")
	}
}

// The BAR is the file's bytes, shared both ways; accesses are native
// (little-endian) words.
func TestBARMapping(t *testing.T) {
	root, _ := fakeFunction(t)
	f, _ := Open(root, "0000:00:02.0")
	bar, err := f.BAR(0)
	if err != nil {
		t.Fatal(err)
	}
	if bar.Len() != 0x2000 {
		t.Fatalf("Len %#x", bar.Len())
	}
	bar.Write32(0x10, 0xAABBCCDD)
	bar.Write64(0x1ff8, 0x0102030405060708)
	res := filepath.Join(f.Dir(), "resource0")
	raw, _ := os.ReadFile(res)
	if !bytes.Equal(raw[0x10:0x14], []byte{0xDD, 0xCC, 0xBB, 0xAA}) || binary.LittleEndian.Uint64(raw[0x1ff8:]) != 0x0102030405060708 {
		t.Fatalf("file % x / % x", raw[0x10:0x14], raw[0x1ff8:])
	}
	if bar.Read64(0x10) != 0xAABBCCDD || bar.Read32(0x1ffc) != 0x01020304 {
		t.Fatalf("read back %#x %#x", bar.Read64(0x10), bar.Read32(0x1ffc))
	}
	// The other side (the device) writes; the driver sees it.
	fh, err := os.OpenFile(res, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{1, 0, 0, 0x80}, 0x100); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if bar.Read32(0x100) != 0x80000001 {
		t.Fatalf("device write not seen: %#x", bar.Read32(0x100))
	}
	// Out of range and misaligned: all-ones, writes dropped.
	for _, off := range []uint64{0x2000, 0x1ffe, 2, 1 << 63} {
		if bar.Read32(off) != ^uint32(0) {
			t.Errorf("Read32(%#x) = %#x", off, bar.Read32(off))
		}
		bar.Write32(off, 0)
	}
	for _, off := range []uint64{0x2000, 0x1ffc, 4} {
		if bar.Read64(off) != ^uint64(0) {
			t.Errorf("Read64(%#x) = %#x", off, bar.Read64(off))
		}
		bar.Write64(off, 0)
	}
	if raw2, _ := os.ReadFile(res); raw2[0x100] != 1 || !bytes.Equal(raw2[0x1ff8:], raw[0x1ff8:]) {
		t.Fatal("a refused write changed the BAR")
	}
	if m := bar.Mem(); len(m) != 0x2000 || m[0x100] != 1 || m[0x10] != 0xDD {
		t.Fatalf("Mem: %d bytes, % x", len(m), m[0x100:0x104])
	}
	if err := bar.Close(); err != nil {
		t.Fatal(err)
	}
	if bar.Read32(0) != ^uint32(0) || !errors.Is(bar.Close(), ErrClosed) {
		t.Fatal("closed BAR still answers")
	}
}

func TestBAREmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resource2")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBAR(p); !errors.Is(err, ErrBAR) {
		t.Fatalf("empty resource: %v", err)
	}
}
