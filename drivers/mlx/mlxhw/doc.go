// Package mlxhw is the mlx-lite register and queue format of hvguest's
// SR-IOV VF NIC (spec/mlx-lite.md §7, built on the real mlx5 PRM layouts of
// §§1–3): the BAR0 initialization segment and UAR doorbell registers, the
// command queue entry and mailbox blocks, the kept command set with its
// input and output messages, the contexts and capabilities those commands
// carry, and the EQE, CQE, send and receive WQE and doorbell record
// formats of the data path.
//
// It is a wire package used by both sides: the guest VF driver
// (drivers/mlx) builds commands and WQEs and parses outputs, EQEs and
// CQEs; the device model (drivers/mlx/mlxdev) does the reverse. It is pure
// data and parsing: no goroutines, no I/O, no locks. Every decoder checks
// lengths and field ranges and returns an error wrapping one of the
// sentinels below; nothing panics on any input.
//
// # Encoding
//
// Everything the device sees is big-endian (§0.2). PRM structures are bit
// arrays numbered MSB first from the start of the structure; a Field names
// one such field. F(off, hi, lo) transcribes the spec's "@off bits hi:lo"
// notation, in which hi:lo number the bits of the big-endian dword that
// holds byte off (so "@0x36 bits 9:8" is port_type in the dword at 0x34).
//
// # Layers
//
//   - init.go: BAR0 map, init segment registers, UAR doorbell offsets and
//     their values (§1.2, §7.2, §7.3, §7.8).
//   - cmdq.go: the 64-byte command queue entry and the 576-byte mailbox
//     block, delivery and command status codes, splitting and gathering a
//     message across a mailbox chain (§2.2–§2.4, §7.4).
//   - opcode.go, cmd.go, cmd2.go, flow.go, counters.go: opcodes, status
//     codes and the input/output message of every command in the kept set,
//     including the reduced flow steering of compat mode and the optional
//     counters (§2.6, §2.7, §7.5). Each input
//     implements Input and each output Output; registry.go maps opcodes to
//     them (NewInput, NewOutput, DecodeInput, DecodeOutput), so the device
//     dispatches on the opcode and the driver decodes what it asked for.
//   - ctx.go, caps.go, vport.go: EQ/CQ/SQ/RQ/WQ/TIS/TIR/RQT/mkey contexts,
//     HCA capabilities, the NIC vport context and the PTYS/PMTU/PAOS
//     registers (§2.7, §2.8, §4, §7.6, §7.11).
//   - eqe.go, cqe.go, wqe.go: data path entries with zero-allocation
//     Put/Parse functions and the owner-bit arithmetic (§3, §7.9).
//   - helpers.go: small shared helpers (device-side command completion,
//     revision and removal checks, ring-edge room, RQ stride).
//
// Both sides share the chain walkers in cmdq.go (BuildChain on the driver
// side, GatherInput/ScatterOutput on the device side, GatherOutput back on
// the driver side); they move bytes through a caller-supplied DMA
// interface and do no I/O of their own. Validation here is structural
// (sizes, lengths, list counts, ownership); the model's semantic rules
// (allowed states, object numbers, value ranges) live in the device
// model, which maps a decoding failure to the status the spec names.
package mlxhw

import "errors"

// Errors returned by this package, always wrapped with context; test them
// with errors.Is.
var (
	// ErrShort: fewer bytes than the structure or message needs.
	ErrShort = errors.New("mlxhw: too short")
	// ErrLength: a length field that disagrees with the bytes present or
	// with the structure's limits.
	ErrLength = errors.New("mlxhw: bad length")
	// ErrField: a field value outside the range the model allows.
	ErrField = errors.New("mlxhw: bad field value")
	// ErrOpcode: a message whose opcode is not the one expected.
	ErrOpcode = errors.New("mlxhw: unexpected opcode")
	// ErrBuffer: the caller's buffer is too small for what it asked to
	// build.
	ErrBuffer = errors.New("mlxhw: buffer too small")
	// ErrMailbox: a mailbox chain with a bad token or block number.
	ErrMailbox = errors.New("mlxhw: bad mailbox block")
	// ErrNotOwned: an entry still owned by the other side.
	ErrNotOwned = errors.New("mlxhw: entry not owned")
)
