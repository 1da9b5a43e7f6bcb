// Package netstack connects gVisor's TCP/IP stack (gvisor.dev/gvisor
// pkg/tcpip, the synthetic "go" branch) to an hvguest network interface: an
// Endpoint is a stack.LinkEndpoint over an *ifnet.Interface.
//
// It sits on the stack side of ifnet (guest side; the simulated host never
// imports it): the stack writes through ifnet.Interface.Transmit and the
// endpoint installs itself as the interface's input with SetInput, so input
// overrides (hn's transparent VF mode, capture taps) stay in front of it.
//
// # What maps to what
//
//   - MTU: the interface's MTU, read live (an MTU change by ioctl is seen by
//     the next route lookup); SetMTU from the stack issues an ifnet SetMTU.
//   - Link address: the interface's MAC; SetLinkAddress issues SetMAC.
//   - Link state: IsAttached reports a dispatcher attached and the interface
//     up, running and its link not down. Otherwise input is dropped
//     (DropDown, or DropNoInput with no dispatcher) and writes fail with
//     tcpip.ErrClosedForSend.
//   - Capabilities: CapabilityResolutionRequired always (Ethernet, ARP/NDP);
//     CapabilityRXChecksumOffload while RXCSUM or RXCSUM_IPV6 is enabled;
//     CapabilityTXChecksumOffload while TXCSUM or TXCSUM_IPV6 is enabled;
//     host GSO (stack.HostGSOSupported) while TSO4 or TSO6 is enabled.
//   - Transmit offloads: each frame carries packet.Meta flags for what the
//     driver must do (CsumTxTCPv4, CsumTxTSOv4 with Meta.MSS, ...), chosen
//     from the interface's hardware-assist flags. The L4 checksum field then
//     holds the pseudo-header checksum (addresses, protocol, L4 length), the
//     FreeBSD CSUM_TCP / Linux CHECKSUM_PARTIAL convention; for TSO the
//     length is that of the unsegmented payload, as gVisor writes it. What
//     the hardware cannot do the endpoint does in software (checksums,
//     segmentation of a GSO packet), so offload flags changing under a live
//     connection lose nothing.
//   - Receive offloads: gVisor skips checksum verification for every packet
//     of an endpoint that advertises RX checksum offload. So while it does,
//     the endpoint keeps that promise: packets the driver marked good
//     (CsumRxL4OK, and CsumRxIPOK for IPv4) pass, packets marked bad are
//     dropped (DropInvalid), and unmarked ones are verified in software.
//     (Non-first IP fragments cannot be verified per packet; like any gVisor
//     endpoint with RX offload, the reassembled datagram is not re-checked.)
//
// # Data path
//
// WritePackets converts the whole list into one packet.Batch and makes one
// ifnet Transmit of it (a list longer than the batch, or one GSO packet
// segmented in software, is sent as several batches). Input delivers each
// packet of a received batch to the stack's NetworkDispatcher and frees the
// batch with one pool operation. Both copy the frame once (gVisor owns its
// buffers); apart from gVisor's own PacketBuffer and chunk pools they
// allocate nothing per packet.
//
// Use a queueing discipline that batches (gVisor's link/qdisc/fifo) to get
// batches from the stack: without one the NIC writes one packet at a time.
package netstack
