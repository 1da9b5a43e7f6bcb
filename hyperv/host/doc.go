// Package host is the simulated Hyper-V host's VMBus server: the host side
// of VMBus channel management (spec/vmbus-vpci.md §2, §4, §8), built to
// behave as Hyper-V and Microsoft's OpenVMM vmbus_server do. hvsim runs it
// as a product; tests run it against scripted guests and the real guest
// client.
//
// Side: host. It imports only wire packages (vmbusmsg, ring, gpa, tlfs),
// the synic seam, kernel and the standard library, never guest logic; a
// test holds that rule with `go list -deps`.
//
// # Shape
//
// A Server implements synic.HostHandler. The guest's HvCallPostMessage and
// HvCallSignalEvent arrive synchronously on the guest's hypercall path as
// HandlePost and HandleSignal; those only validate, enqueue and return the
// hypercall status. Everything else happens on goroutines the server owns:
//
//   - one control goroutine (the "loop") owns all channel-management state:
//     the connection, devices and their channels, relids, GPADLs and the
//     queue of messages to the guest. No lock guards that state; other
//     goroutines reach it only by sending a closure to the loop (Server.call
//     and Server.post). The loop never waits for any other goroutine, so
//     devices may call back into the server from anywhere.
//   - one goroutine per open channel (a "session") calls the device's Open,
//     reads the guest's ring when the guest signals the channel's
//     connection id, hands packets to the device, and calls the device's
//     Close when the channel is closed, rescinded or the bus is reset.
//
// # Devices
//
// A Device supplies an offer (class and instance GUID, MMIO size, pipe
// mode bytes) and, for each opened channel, a Handler. The Channel a
// device gets in Open sends packets to the guest (signalling as the ring
// rules say), reads guest memory by PFN and by GPADL id, and asks for
// subchannel offers. hyperv/host/echo is the simplest device.
//
// # Faults
//
// Faults lets scenarios drop or delay message types, refuse a protocol
// version, or make the host slow (every message to the guest delayed on
// the configured clock).
package host
