// Package failover is the guest-side failover aggregate for hn(4)'s
// non-transparent VF mode: the interface users put the synthetic NIC and
// its VF into, as FreeBSD users put them into a failover lagg(4) and
// Linux's net_failover enslaves a virtio standby and a VF primary
// (spec/vf-modes.md §2.1, §2.4, A.10).
//
// # Model
//
// A Failover owns one ifnet.Interface of kind ifnet.KindAggregate with the
// members' MAC address and two member slots: the primary (the VF, a plain
// Ethernet interface) and the standby (hn, the synthetic interface). It
// claims each member (ifnet.Claim), so that only the aggregate configures
// them, and overrides each member's input (ifnet.OverrideInput).
//
//   - Transmit: the primary while it is up, running and has link, else the
//     standby under the same condition, else nothing (ErrDown), as
//     net_failover_start_xmit does. The choice is made per batch from the
//     members' atomics; no lock is taken. If the chosen member refuses the
//     whole batch as down or detached (a race with its link or itself going
//     away), the other one is tried.
//   - Receive: batches from either member are counted per member and handed
//     to the aggregate's Input, which relabels them as the aggregate's. Both
//     members are accepted, unlike net_failover, because on Hyper-V
//     broadcast, multicast and possibly TCP SYNs keep arriving on the
//     synthetic path while the VF carries the rest (§1.8, §2.3).
//   - Configuration: SetFlags, SetMTU, AddMulti and DelMulti go to both
//     members (primary first; a member's failure undoes the others);
//     SetCapabilities enables the requested set on both and reports what
//     both have in effect. Capabilities, enabled set and hardware assist are
//     the intersection of the members', TSO limits the smaller of each
//     (ifnet.TSOLimits.Intersect). The link is up while any member has link.
//     GetMedia answers for the current transmit member.
//   - Membership: with Config.Manual unset, the failover follows the
//     registry: an attached interface with the aggregate's MAC joins as
//     primary if it is of kind ifnet.KindEthernet, as standby if of kind
//     ifnet.KindSynthetic, whenever that slot is free (net_failover's
//     automatic enslaving by MAC, net/core/failover.c). A member that
//     detaches leaves its slot; a VF that comes back (hot re-add after host
//     servicing or live migration, §A.9) rejoins as primary. A member joins
//     with the aggregate's MTU, flags and multicast list.
//
// # Concurrency
//
// The data path (the aggregate's Transmit, the members' input overrides)
// reads the member slots (atomic pointers) and counts with atomics; it
// allocates nothing. Failover.mu serializes membership changes and the
// aggregate's ioctls. Lock order: the aggregate's ioctl lock, Failover.mu,
// a member's ioctl lock, the interfaces' state locks. Registry events run
// on the registry's dispatcher; the package starts no goroutine of its own.
//
// Side: guest.
package failover
