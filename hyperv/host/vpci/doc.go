// Package vpci is the simulated Hyper-V host's virtual PCI server (host
// side; spec/vmbus-vpci.md §5): a VMBus device on the PCI pass-through
// class (tlfs.GUIDPCIPassthrough) that puts Functions (device models) on
// a virtual root bus and answers a guest's vPCI bus driver as Hyper-V and
// OpenVMM's vpci device do.
//
// Side: host. It imports wire packages (vpciwire), ring, pci, kernel and
// the VMBus server only.
//
// # Protocol
//
// QUERY_PROTOCOL_VERSION must come first (Config.Versions, default 1.1 to
// 1.4; an unaccepted version is REVISION_MISMATCH). QUERY_BUS_RELATIONS and
// BUS_D0ENTRY are answered with BUS_RELATIONS (BUS_RELATIONS2 from 1.3), the
// D0 entry's completion after the relations, as OpenVMM orders them. The bus
// records the config window base of D0 entry, the guest's
// RESOURCES_ASSIGNED(2,3) and CREATE/DELETE_INTERRUPT per function (see
// Resources and Interrupts); D0 exit and RESOURCES_RELEASED forget them.
// Probed BAR values come from each function's config space (ProbeBARs) when
// it is added.
//
// Bad input never stops the channel: a message that does not decode or
// names an empty slot is answered BAD_DATA, one that is not valid in the
// current state or protocol version (or that the bus does not implement:
// READ_BLOCK, WRITE_BLOCK) NOT_SUPPORTED, when the guest asked for a
// completion; otherwise it is dropped. Stats counts them.
//
// # Config space
//
// Bus.Window(base) is the config window the guest reaches by MMIO, as a
// pci.MMIO: slot select at offset 0, config space at 0x1000.
//
// # Hot plug
//
// AddFunction hot-adds (new bus relations), Eject removes the way Hyper-V
// plans a removal (PCI_EJECT, wait for EJECTION_COMPLETE with a timeout on
// Config.Clock, relations without the function), Remove is surprise
// removal (the function is gone at once; its config space reads all-ones).
package vpci
