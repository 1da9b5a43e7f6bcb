// Package vpciwire encodes and decodes the Hyper-V virtual PCI (vPCI)
// protocol: the messages a guest's vPCI bus driver and the host's vPCI
// server exchange over the VMBus channel of class
// 44C4F61D-4444-4400-9D52-802E27EDE19F, plus the slot ("win_slot")
// encoding and the layout of the 8 KiB configuration-space MMIO window.
//
// It is a wire package used by both sides: the guest bus driver
// (pci/hvpci) and the simulated host's vPCI server (hyperv/host/vpci). It
// is pure data and parsing: no goroutines, no I/O, no locks. Decoders
// validate sizes and internal consistency and return errors wrapping the
// sentinels below; none panics on any input.
//
// Every message is the payload of a VMBus in-band packet (after the
// 16-byte packet descriptor) and starts with a u32 message type
// (PCI_MESSAGE_BASE 0x42490000 + n). Decoding is direction-aware: the
// guest calls DecodeFromHost, the host calls DecodeFromGuest, and a message
// that travels the other way is ErrWrongDirection. Completions carry no
// type; they begin with an NTSTATUS, and the requester decodes them with
// the Decode*Reply function matching what it asked.
//
// Layouts follow Linux drivers/pci/controller/pci-hyperv.c (struct
// pci_*), FreeBSD sys/dev/hyperv/pcib/vmbus_pcib.c and OpenVMM
// vm/devices/pci/vpci_protocol/src/lib.rs; each type's comment gives its
// payload offsets and the upstream structs. Where Linux and OpenVMM
// disagree on a size, encoders emit the larger form and decoders accept
// the smaller. Everything is little-endian and packed.
package vpciwire

import "errors"

// Errors returned by this package, always wrapped with context; test them
// with errors.Is.
var (
	// ErrShort: shorter than the message's minimum size.
	ErrShort = errors.New("vpciwire: message too short")
	// ErrUnknownType: a message type this package does not know.
	ErrUnknownType = errors.New("vpciwire: unknown message type")
	// ErrWrongDirection: a known type that may not travel this way.
	ErrWrongDirection = errors.New("vpciwire: message type not valid in this direction")
	// ErrInconsistent: fields that contradict each other or the packet
	// length (a device count that does not match the bytes, a processor
	// count above 32, a block longer than 128 bytes).
	ErrInconsistent = errors.New("vpciwire: inconsistent message")
	// ErrWindow: an access to the configuration window that the window
	// does not support (wrong size, misaligned, outside the window).
	ErrWindow = errors.New("vpciwire: invalid config window access")
)
