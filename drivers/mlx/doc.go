// Package mlx is hvguest's guest-side driver for the mlx-lite SR-IOV VF NIC
// (spec/mlx-lite.md): the Azure accelerated-networking VF as the guest sees
// it through the Hyper-V vPCI bus. It brings the function up over its BAR0
// command interface in the order the device's state machine enforces
// (§2.5, §7.4), runs its data path (send and receive WQEs, CQs with owner
// bits, doorbell records and UAR doorbells, §3), and exposes it as an
// ifnet.Interface of KindEthernet whose bus serial is the vPCI serial that
// netvsc pairs on.
//
// Side: guest. It imports the shared wire package drivers/mlx/mlxhw, pci,
// pci/hvpci (the bus glue in bus.go), kernel, net/ifnet and net/packet;
// never the device model.
//
// # Pieces
//
//   - cmd.go: the command queue (one page of 64-byte entries, mailbox
//     chains, token), polled with a timeout on the Clock during early
//     bring-up and completed by CMD EQEs once the command EQ exists.
//   - attach.go: bring-up (init segment wait, command queue, ENABLE_HCA,
//     ISSI, pages, capabilities, INIT_HCA, UAR, EQs, PD/TD/mkey) and the
//     undo stack that tears it down in reverse; channels.go: CQs, TIS/SQs,
//     RQs, RQT/TIR, firmware pages, the vport context and the interface.
//   - queue.go: event and completion queue consumers with owner-bit
//     logic; everything they read is bounds-checked. mem.go: DMA regions
//     and the atomic shared dwords.
//   - tx.go, rx.go: the data path (WQE posting into a byte ring of DMA
//     memory, batching, zero allocations per packet).
//   - vf.go: the VF, its worker and control goroutines, link state,
//     health checks and send queue recovery. ioctl.go: MTU, flags,
//     multicast list, capabilities and media through the NIC vport context
//     and the PMTU/PTYS registers; Detach and Surprise.
//   - bus.go: the hvpci subscriber that attaches a VF per function.
//
// # Trust
//
// The device is untrusted: every command output, EQE and CQE is checked
// (lengths, object numbers, counters within the outstanding range, byte
// counts within the posted buffer), a bad one is counted in Stats and
// logged through a rate limiter, and none can cause a panic, a hang or a
// DMA outside the driver's own buffers. A command that never completes
// times out; a device that disappears (all-ones registers, the Gone channel)
// stops everything at once.
//
// # Concurrency
//
// One worker goroutine per VF consumes the EQs (woken by Interrupt, which
// never blocks) and with them the TX and RX completions; one control
// goroutine runs the work an event asks for that needs commands (link
// state queries, page requests, SQ recovery). Transmit runs on the caller's
// goroutine under the send queue's lock. Commands are serialized by the
// command queue's lock. Each type says which lock guards which field.
package mlx

import "errors"

// Errors returned by this package, wrapped with context; test them with
// errors.Is.
var (
	// ErrConfig: a bad Config or Device.
	ErrConfig = errors.New("mlx: invalid configuration")
	// ErrDevice: the device broke the protocol (bad output, bad entry,
	// unsupported revision or capabilities).
	ErrDevice = errors.New("mlx: device protocol error")
	// ErrTimeout: the device did not complete a command or finish
	// initializing in time.
	ErrTimeout = errors.New("mlx: device timed out")
	// ErrGone: the device disappeared (surprise removal or eject).
	ErrGone = errors.New("mlx: device gone")
	// ErrCommand: a command failed with a delivery or command status.
	ErrCommand = errors.New("mlx: command failed")
	// ErrNoMemory: guest DMA memory could not be allocated.
	ErrNoMemory = errors.New("mlx: out of DMA memory")
	// ErrClosed: the VF has been detached.
	ErrClosed = errors.New("mlx: detached")
)
