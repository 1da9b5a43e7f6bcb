package vpci

import (
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// Function is one PCI function behind the bus: a device model (the mlx
// device model, or TestFunction). The bus reads its identity once, when it
// is added, and probes its BARs then; after that the guest reaches its config
// space through the window and its BARs through BAR.
type Function interface {
	// Serial is the serial number the bus relations carry (the VF serial
	// netvsc pairs on, spec §5.8).
	Serial() uint32
	// Config is the function's config space.
	Config() pci.ConfigSpace
	// BAR returns register access to BAR i (0..5), or nil if i is not
	// the first register of an implemented memory BAR.
	BAR(i int) pci.BAR
}

// Describe builds the bus-relations description of f from its config
// space (vendor, device, revision, class, subsystem) and serial number;
// the slot is the caller's.
func Describe(f Function, slot vpciwire.Slot) vpciwire.Description {
	cs := f.Config()
	return vpciwire.Description{
		VendorID:          cs.Read16(pci.VendorID),
		DeviceID:          cs.Read16(pci.DeviceID),
		Revision:          cs.Read8(pci.RevisionID),
		ProgIf:            cs.Read8(pci.ClassProgIf),
		SubClass:          cs.Read8(pci.ClassSubClass),
		BaseClass:         cs.Read8(pci.ClassBase),
		SubsystemVendorID: cs.Read16(pci.SubsystemVendorID),
		SubsystemID:       cs.Read16(pci.SubsystemID),
		Slot:              slot,
		Serial:            f.Serial(),
	}
}

// ProbeBARs returns, for each BAR of cs, what reading it back after writing
// all-ones returns (the QUERY_RESOURCE_REQUIREMENTS reply), restoring
// every BAR afterwards. Memory and I/O decoding are off while it probes.
func ProbeBARs(cs pci.ConfigSpace) [pci.NumBARs]uint32 {
	var probed [pci.NumBARs]uint32
	cmd := cs.Read16(pci.Command)
	cs.Write16(pci.Command, cmd&^(pci.CommandMemory|pci.CommandIO))
	for i := range pci.NumBARs {
		off := pci.BAROffset(i)
		old := cs.Read32(off)
		cs.Write32(off, ^uint32(0))
		probed[i] = cs.Read32(off)
		cs.Write32(off, old)
	}
	cs.Write16(pci.Command, cmd)
	return probed
}

// TestFunction is a trivial function for tests and demos: a MemConfig with
// a 64-bit memory BAR 0 of BARSize bytes holding an MSI-X table of
// MSIXVectors entries (table at 0, pending bits at 0x800).
type TestFunction struct {
	Cfg    *pci.MemConfig
	Bar0   *pci.MemBAR
	serial uint32
}

// Test function identity and layout.
const (
	TestVendorID    = 0x15B3 // Mellanox, so the identity looks like a VF
	TestDeviceID    = 0x101A
	TestBARSize     = 0x4000
	TestMSIXVectors = 8
)

// NewTestFunction returns a TestFunction with the given serial number.
func NewTestFunction(serial uint32) *TestFunction {
	cfg := pci.NewMemConfig(pci.Header{
		VendorID: TestVendorID, DeviceID: TestDeviceID, Revision: 1,
		ClassCode: 0x020000, SubsystemVendorID: TestVendorID, SubsystemID: 0x0001,
	})
	if err := cfg.SetBAR(0, TestBARSize, pci.BAR64|pci.BARPrefetch); err != nil {
		panic(err) // constant layout: cannot fail
	}
	if _, err := cfg.AddMSIX(TestMSIXVectors, 0, 0, 0, 0x800); err != nil {
		panic(err)
	}
	return &TestFunction{Cfg: cfg, Bar0: pci.NewMemBAR(TestBARSize), serial: serial}
}

func (f *TestFunction) Serial() uint32          { return f.serial }
func (f *TestFunction) Config() pci.ConfigSpace { return f.Cfg }
func (f *TestFunction) BAR(i int) pci.BAR {
	if i == 0 {
		return f.Bar0
	}
	return nil
}
