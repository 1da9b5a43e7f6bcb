package pci

// MMIO is access to a range of guest-physical MMIO space that a device (or
// the host) decodes, such as the Hyper-V vPCI configuration window. Offsets
// are bytes from the start of the range; size is 1, 2 or 4. It is the seam
// between a guest-side accessor and whatever backs the range: the simulated
// host's decoder in-process (hyperv/host/vpci Bus.Window), a shared-memory
// peer, or mapped MMIO on real hardware. An access the range does not
// decode reads all-ones and a write to it is dropped, as on PCI.
type MMIO interface {
	ReadMMIO(off uint64, size int) uint32
	WriteMMIO(off uint64, size int, v uint32)
}
