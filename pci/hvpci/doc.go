// Package hvpci is the guest side of the Hyper-V virtual PCI (vPCI) bus: a
// vmbus.Driver for the PCI pass-through class (44C4F61D-4444-4400-9D52-
// 802E27EDE19F) that brings each offered bus up the way Linux's
// pci-hyperv.c (hv_pci_probe) and FreeBSD's vmbus_pcib.c do, and exposes the
// functions it finds.
//
// Per offer the driver opens the channel, negotiates the protocol version
// (1.4, 1.3, 1.2, 1.1, stopping on anything but REVISION_MISMATCH), asks for
// the bus relations, enters D0 with the guest-physical base of the 8 KiB
// configuration window the platform supplies (Config.Window), then for every
// function queries its resource requirements (probed BARs) and sends
// RESOURCES_ASSIGNED(2). Each function is a Function: its description
// (vendor, device, class, subsystem, slot, serial), a pci.ConfigSpace that
// goes through the window (slot select at 0, config at 0x1000+offset;
// identity registers come from the description as in Linux), its BARs and
// CREATE_INTERRUPT/DELETE_INTERRUPT helpers.
//
// Hot plug is reported as events to subscribers (Driver.Subscribe): Added
// when a function appears, Removed with a reason when it goes. On PCI_EJECT
// the subscribers are told first and the driver waits (bounded by
// Config.EjectTimeout on the Clock) for each callback to return before it
// sends EJECTION_COMPLETE; a BUS_RELATIONS that no longer lists a function
// is a surprise removal, where the function is dead before subscribers hear
// of it. After removal every config access fails with ErrRemoved (the
// pci.ConfigSpace view reads all-ones) and never blocks.
//
// Everything the host sends is untrusted: packets are decoded by vpciwire,
// checked against the bus state, counted and logged through a rate limiter
// when wrong, and never cause a panic or an unbounded wait.
package hvpci
