// Package tlfs holds the Hyper-V hypervisor facts that VMBus needs, taken
// from the Top-Level Functional Specification (TLFS) and checked against
// Linux include/hyperv/hvgdk_mini.h, drivers/hv/hyperv_vmbus.h and FreeBSD
// sys/dev/hyperv/vmbus/vmbus_reg.h:
//
//   - hypercall codes, the hypercall control word and result value, and the
//     input layouts of HvCallPostMessage and HvCallSignalEvent;
//   - hypervisor status values as a Status type that implements error;
//   - the SynIC message (HV_MESSAGE), its message types, and views over the
//     SynIC message page and event-flags page that work on shared memory;
//   - the VMBus connection, port and SINT constants;
//   - the GUID type in Windows wire order, and the VMBus device class GUIDs.
//
// It is a wire package used by both sides: the guest (the vmbus client and
// the bare-metal transport) and the host (the simulated hypervisor and VMBus
// server). It is pure data and parsing: no goroutines, no I/O, no locks.
// Every decoder checks lengths and returns an error; none panics on any
// input. The page views use sync/atomic on the caller's memory and document
// their alignment requirement.
//
// Everything on the wire is little-endian and packed.
package tlfs

import "errors"

// Errors returned by this package, wrapped with context.
var (
	// ErrShort: the buffer is shorter than the layout being decoded.
	ErrShort = errors.New("tlfs: buffer too short")
	// ErrPayloadSize: a message payload size above 240 bytes.
	ErrPayloadSize = errors.New("tlfs: payload size out of range")
	// ErrMessageType: a message type that is not allowed in this place.
	ErrMessageType = errors.New("tlfs: invalid message type")
	// ErrAlignment: a page view over memory that is not 8-byte aligned.
	ErrAlignment = errors.New("tlfs: memory not 8-byte aligned")
	// ErrHostEndian: the page views need a little-endian host.
	ErrHostEndian = errors.New("tlfs: page views need a little-endian host")
	// ErrRange: a SINT number or event-flag bit out of range.
	ErrRange = errors.New("tlfs: index out of range")
	// ErrGUID: text that is not a GUID in 8-4-4-4-12 form.
	ErrGUID = errors.New("tlfs: malformed GUID")
)
