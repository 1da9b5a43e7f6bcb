// Package packet provides the packet buffers, metadata, pools and batches that
// cross every data-path boundary in hvguest (driver transmit, driver input,
// ring reads, the netstack link endpoint).
//
// It belongs to both sides: guest drivers (netvsc, mlx, ifnet) and the
// simulated host (vswitch, device models) use it, so it imports nothing from
// either. A packet names its receiving interface by index (Meta.RcvIf), not by
// pointer, so that this package stays below net/ifnet.
//
// # Buffers
//
// A Packet owns one fixed-size byte buffer. The packet's data is a window
// [off, end) into it; the bytes before the window are headroom for headers to
// be prepended without copying (Prepend), the bytes after it tailroom
// (Append). Meta carries what offload hardware and the stack exchange:
// checksum requests and results, VLAN tag, TSO segment size, RSS hash and
// queue index.
//
// # Ownership
//
// At any moment exactly one party owns a packet and only the owner may read,
// change or free it. Ownership moves with the pointer:
//
//   - Pool.Get hands a packet to the caller.
//   - Packet.Free (or Batch.Free) returns it to its pool; after that the
//     former owner must not touch it. Freeing twice panics, because it is a
//     bug that would otherwise hand one buffer to two owners.
//   - Putting a packet into a Batch does not move ownership: the batch is a
//     container and whoever owns the batch owns its packets. Handing a batch to
//     a function hands over the packets according to that function's contract
//     (see ifnet.Interface.Transmit and ifnet.Interface.Input).
//
// # Allocation
//
// Steady-state transmit and receive allocate nothing: a Pool keeps a free list
// of packets (a mutex-protected stack; batched Get/Put take the lock once per
// batch), and a Batch is a reusable fixed-capacity slice. A Pool may be
// bounded (Max), in which case Get returns nil when it is exhausted; receive
// paths treat that as a drop with a reason, not as an error to propagate.
//
// Why a free list rather than sync.Pool: sync.Pool empties itself on every
// garbage collection, so a GC cycle would cost a burst of allocations of
// packet-sized buffers exactly when the heap is under pressure, and it cannot
// bound how many buffers exist. A free list is deterministic, boundable and
// observable (Pool.Stats).
package packet
