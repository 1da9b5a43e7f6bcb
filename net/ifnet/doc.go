// Package ifnet is hvguest's interface layer: what the network stack sees of
// a NIC, and what FreeBSD's ifnet does for hn(4)'s transparent VF mode, in Go.
//
// It belongs to both sides in the sense that guest drivers (netvsc "hn",
// the mlx VF driver) implement it and tests drive it (net/pair provides
// in-memory interfaces); the simulated host never imports it.
//
// # Pieces
//
//   - Interface: name, index, MAC, MTU, flags, capabilities and enabled
//     capabilities, hardware-assist flags, TSO limits, multicast list, link
//     state, media and RSS configuration, counters. Create with New.
//   - Driver: what a NIC driver implements: batched Transmit and typed Ioctl.
//   - Requests: SetFlags, SetMTU, AddMulti, DelMulti, SetCapabilities,
//     GetMedia, SetMedia, SetMAC, GetRSSKey, GetRSSHash, GetReady, plus any
//     driver-specific type implementing Request.
//   - Driver-side hooks for a driver standing in front of another
//     interface (hn and its VF, driverhooks.go): ForceMTU, AccountInput,
//     SetTxObservedByDriver/ObserveTx.
//   - Input: the stack installs an InputFunc with SetInput; OverrideInput
//     puts another in front of it and returns a handle whose Restore removes
//     exactly that override (hn redirects its VF's receive path this way).
//   - Claim: exclusive configuration rights. A claimed interface refuses
//     direct ioctls that configure with ErrClaimed; the owner's
//     Claim.Ioctl passes, and so do queries (Query: requests that only
//     read) from anyone.
//   - Registry: attach, detach, lookup by name, index or MAC, and ordered
//     events to subscribers delivered by one dispatcher goroutine.
//
// # Ownership of packets
//
// Transmit: the driver takes packets from the front of the batch and removes
// them; those are its to free. What is left in the batch on return is still
// the caller's. Input: the input function takes every packet of the batch;
// the batch container itself goes back to the caller, empty.
//
// # Concurrency
//
// The data path (Transmit, Input) takes no lock and allocates nothing: it
// reads atomics and one atomic pointer to an immutable input chain.
// Configuration is serialized per interface (ioctls, claims) and guarded by
// a per-interface mutex that is never held across calls into drivers or
// subscribers; each type documents which lock guards which field. Lock
// order: Interface.ioctlMu, Interface.mu, Registry.mu.
//
// # Errors
//
// Every error wraps one of the package's sentinel errors (ErrNotSupported,
// ErrInvalid, ErrBusy, ErrClaimed, ErrNotFound, ErrExists, ErrDetached,
// ErrDown, ErrReleased, ErrClosed) with the interface name and request; no
// request, however malformed, panics.
package ifnet
