// Package vmbus is the guest's VMBus client: it connects to the host over a
// synic.GuestPort, negotiates the protocol version, receives channel offers
// and routes them to drivers by class GUID, creates and tears down GPADLs,
// opens and closes channels, follows rescinds, and unloads.
//
// It belongs to the guest side. The host is untrusted: every message is
// decoded with vmbusmsg.DecodeFromHost, every ring through hyperv/ring's
// validating reader, and a host that stops answering costs a timeout, not a
// hang.
//
// # Shape
//
//   - Bus: one connection. A dispatcher goroutine services the SINT (events
//     first, then messages, as Windows, Linux and FreeBSD do) and a worker
//     goroutine runs driver callbacks in offer order, so a driver may block
//     (open a channel, wait for its device) without stalling the bus.
//   - Offer: the control plane of one offered channel: GPADLs, open, close,
//     sub-channels, rescind.
//   - Channel: the data path of an opened channel: send (in-band,
//     GPA-direct, completions; batched), request/response by transaction id
//     with timeouts, and a receive goroutine driven by the channel's event
//     flag. A Channel does not need a Bus: NewChannel builds one over rings
//     and a signal function handed in by a platform that already opened the
//     channel (Linux uio_hv_generic).
//
// Facts: ../../shared/spec/vmbus-vpci.md §2 (flows), Linux drivers/hv
// (connection.c, channel.c, channel_mgmt.c), FreeBSD sys/dev/hyperv/vmbus.
package vmbus
