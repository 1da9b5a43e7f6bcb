// Package mlxdev is the host side of hvguest's SR-IOV VF: the mlx-lite device
// model (spec/mlx-lite.md §7), the simulated Mellanox ConnectX-4 Lx (or -5)
// virtual function that sits behind the simulated Hyper-V vPCI bus
// (hyperv/host/vpci.Function) and on a port of the virtual switch
// (hyperv/host/vswitch.Port).
//
// Side: host. It imports wire packages (drivers/mlx/mlxhw for every register,
// command, context and queue-entry format; drivers/netvsc/rndis only for its
// Toeplitz hash), pci, kernel and net/packet, never guest logic; deps_test.go
// holds that rule.
//
// # What it models
//
//   - PCI identity, config space with PCI Express (FLR) and MSI-X (16 vectors)
//     capabilities, BAR0 of 1 MiB: init segment, MSI-X table and PBA, UAR pages
//     8..255 (§7.2, §7.3, §7.8).
//   - The command engine: 32 slots, delivery checks (type, lengths, mailbox
//     alignment, block numbers, tokens), the RESET → CMDQ_READY → ENABLED →
//     RUNNING state machine with BAD_SYS_STATE, every kept command of §7.5 with
//     the object numbering of §7.7 and RES_BUSY on referenced objects, CMD
//     EQEs (§7.4).
//   - EQs and CQs with the lap owner bit, arming, moderation, EQ overrun
//     (health.synd 0xc) and CQ overrun (CQ_ERROR EQE); SQs with WQE
//     validation, error CQEs, ERR state and flush; RQs (cyclic, optionally
//     linked list) read lazily through their doorbell records (§7.9).
//   - Offloads: TX checksum fill, LSO segmentation, VLAN insertion; RX vport
//     filter, MTU drop, VLAN strip, checksum verdicts, Toeplitz RSS through an
//     INDIRECT TIR and an RQT; the reduced flow steering of compat mode (§7.10,
//     §7.11).
//   - Link and vport state, PORT_CHANGE and NIC_VPORT_CHANGE events, the PTYS,
//     PMTU and PAOS registers, health counter, surprise removal, FLR and the
//     fault injection of §7.12, with a violation log of driver protocol errors.
//
// # Concurrency and ownership
//
// Device.mu guards all device state: the phase, the command queue, every
// object table, the vport, link, health, MSI-X table, faults, statistics and
// the violation log. MMIO accesses (BAR reads and writes, including the command
// and SQ doorbells, which are processed synchronously on the writer's goroutine
// inside the write), Deliver (on its caller's goroutine) and the timer
// callbacks (command latency, CQ moderation) all take it. Neither
// Config.Interrupt nor Config.Wire is ever called with mu held: interrupts
// raised while processing are collected in Device.irq and fired after the
// unlock, and transmitted frames are handed to the wire after the unlock, so a
// driver may ring doorbells from its interrupt handler.
//
// # Memory ordering with the guest
//
// The model reads guest memory only through Config.Mem. It reads doorbell
// records (SQ/RQ producer counters, CQ set_ci) with 32-bit atomic loads and
// publishes every entry it hands back (command status_own, CQE op_own,
// EQE owner) with a 32-bit atomic store of the entry's last dword after the
// rest of the entry: a driver that stores its doorbell records atomically and
// loads ownership dwords atomically is race-free against the model even when
// frames arrive on another goroutine.
//
// The SQ engine always works in the "reorder" mode of §7.14: on a doorbell
// it reads the SQ doorbell record first and touches only WQEs the record
// says exist; a doorbell naming a WQE beyond the record is a violation, and
// a WQE that extends past the record fails with LOCAL_QP_OP.
//
// # Model choices (sim) beyond the spec's letter
//
//   - Object numbers (§7.7) are allocated next-fit in disjoint ranges: UAR
//     8-255, PD 0x10-0x1f (16 PDs, so they never meet TD numbers), TD
//     0x20-0x2f, mkey index 0x100-0x10f, EQN 1-8, CQN 0x400+, SQN 0x800+,
//     RQN 0xc00+, TISN 0x1000+, TIRN 0x1400+, RQTN 0x1800+, flow table and
//     group 0x10+, Q counter 1-15. A number outside its kind's range is
//     IX_ERR, an unallocated one in range BAD_RES. RES_BUSY guards every
//     reference (UAR, PD and TD included, and TIRs named by flow entries).
//   - A command's CMD EQE goes to every EQ that exists when it completes,
//     including the EQ the command created.
//   - TX: an LSO MSS below 88 (Linux's TCP_MIN_MSS) or headers not inline
//     fail with LOCAL_QP_OP; a SEND shorter than an Ethernet header fails with
//     LOCAL_LENGTH; frames above Config.TxFrameSize (9216) complete but are
//     dropped (tx_oversize). A doorbell on an SQ in ERR is ignored.
//   - RX: an RX error CQE (LOCAL_LENGTH, LOCAL_PROT) consumes its WQE and
//     leaves the RQ RDY. Frames whose 802.1Q tag the switch carries in
//     packet.Meta are treated as tagged (stripped to the CQE unless vsd).
//   - MANAGE_PAGES GIVE refuses duplicates and pages outside guest memory
//     (BAD_PARAM); TEARDOWN_HCA and DISABLE_HCA destroy leftover objects and
//     count them in DeviceState.DestroyedByReset; pages stay owned until
//     TAKE (or FLR).
//   - After surprise removal the config space also reads all ones.
//
// # BAR access widths
//
// Registers are big-endian dwords; Read32/Write32 carry the register value.
// A 64-bit access covers two consecutive registers as a big-endian quadword:
// Write64(off, v) writes v>>32 to the register at off and uint32(v) to the one
// at off+4 (so mlxhw.CQArm.Value is written as is), and Read64 is the mirror.
// The MSI-X table and PBA are PCI structures and little-endian: there a
// 64-bit access puts the low half at off.
// Doorbells written as two 32-bit halves are latched on the first dword and
// acted on at the second (§7.8).
package mlxdev
