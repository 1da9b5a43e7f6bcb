package hvpci

// MMIO is the method set of pci.MMIO (access to a decoded guest-physical
// MMIO range, all-ones on a read nothing decodes): anything that
// implements pci.MMIO, such as the simulated host's vPCI window, is an MMIO.
type MMIO interface {
	ReadMMIO(off uint64, size int) uint32
	WriteMMIO(off uint64, size int, v uint32)
}

// MMIOWindow adapts an MMIO range mapped at guest-physical base to a
// Window. Its accesses never fail: a gone function reads all-ones, which
// the window cannot tell from data.
func MMIOWindow(base uint64, m MMIO) Window { return mmioWindow{base: base, m: m} }

type mmioWindow struct {
	base uint64
	m    MMIO
}

func (w mmioWindow) Base() uint64 { return w.base }

func (w mmioWindow) Read(off uint64, size int) (uint32, error) { return w.m.ReadMMIO(off, size), nil }

func (w mmioWindow) Write(off uint64, size int, v uint32) error {
	w.m.WriteMMIO(off, size, v)
	return nil
}
