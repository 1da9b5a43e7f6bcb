package mlxdev

import (
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/pci"
)

// The device sits on the simulated vPCI bus as a Function: the bus reads
// its identity and probes BAR0 as Hyper-V reports them to the guest.
func TestOnVPCIBus(t *testing.T) {
	h := newHarness(t, nil)
	var f vpci.Function = h.dev
	bus := vpci.New(vpci.Config{})
	slot, err := bus.AddFunction(f)
	if err != nil {
		t.Fatal(err)
	}
	if s := bus.Slots(); len(s) != 1 || s[0] != slot {
		t.Fatalf("slots %v", s)
	}
	desc := vpci.Describe(f, slot)
	if desc.VendorID != mlxhw.VendorMellanox || desc.DeviceID != mlxhw.DeviceCX4LxVF || desc.BaseClass != 2 ||
		desc.SubClass != 0 || desc.Serial != 7 || desc.SubsystemVendorID != 0x15b3 || desc.SubsystemID != 1 {
		t.Fatalf("description %+v", desc)
	}
	bars, err := pci.DecodeProbedBARs(vpci.ProbeBARs(f.Config()))
	if err != nil || len(bars) != 1 || bars[0].Index != 0 || bars[0].Size != 1<<20 || !bars[0].Is64 || !bars[0].Prefetch {
		t.Fatalf("probed BARs %+v %v", bars, err)
	}
	// A ConnectX-5 persona.
	h5 := newHarness(t, func(c *Config) { c.DeviceID = mlxhw.DeviceCX5VF })
	if d := vpci.Describe(h5.dev, slot); d.DeviceID != 0x1018 {
		t.Fatalf("device id %#x", d.DeviceID)
	}
	if _, err := New(Config{Mem: h.ram, DeviceID: 0x1004}); err == nil {
		t.Fatal("mlx4 id accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("nil Mem accepted")
	}
}
