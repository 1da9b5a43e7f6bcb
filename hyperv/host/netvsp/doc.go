// Package netvsp is the simulated Hyper-V host's synthetic NIC (host side):
// the NetVSP end of NVSP and RNDIS (spec/nvsp-rndis.md), as a hyperv/host
// Device of class tlfs.GUIDNetwork whose frames go to and come from a
// hyperv/host/vswitch port. It behaves as Hyper-V and OpenVMM's netvsp do,
// quirks included (spec/openvmm-notes.md §2); where they differ, OpenVMM's
// observable behaviour wins and the comment says so.
//
// # Control path
//
// NVSP: INIT (exact match against Config.Versions, INIT_COMPLETE with
// status NONE otherwise), NDIS version and config (MTU clamped to
// 1514..9216, SR-IOV capability noted), receive buffer (mapped through its
// GPADL, one section of slots of 256 + MTU + 36 bytes, the first
// ControlSlots slots kept for control messages), send buffer (6144-byte
// sections), SEND_RNDIS_PKT, revokes, SWITCH_DATA_PATH (answered with an
// empty completion), SUBCHANNEL (up to Config.MaxQueues - 1 subchannels
// sharing the primary's buffers, then SEND_INDIRECTION_TABLE; subchan.go),
// OID_QUERY_EX (NOT_SUPPORTED).
//
// RNDIS on the control channel: INITIALIZE (OpenVMM's INITIALIZE_CMPLT
// values), QUERY (MAC, MTU, link state and speed, vendor, friendly name,
// offload capabilities and current configuration, RSS capabilities, packet
// filter; a query whose info_buf_offset is 0 fails, as on Hyper-V),
// SET (packet filter, offload parameters, multicast list, RSS parameters,
// RNDIS config parameter NetworkAddress), KEEPALIVE, RESET (not
// supported), HALT (no reply). Every control reply travels in a
// receive-buffer slot in a transfer-page packet on channel type 1.
//
// # Data path
//
// Guest transmit: RNDIS PACKET messages from a send-buffer section, from
// GPA-direct ranges, or both (partial copy: section bytes first), several
// per section; each frame becomes a packet.Packet with its per-packet info
// in packet.Meta (VLAN tag, checksum requests, LSO MSS) and the batch goes
// into the switch. Guest receive: frames the switch delivers pass the
// RNDIS packet filter, are written into free receive slots as PACKET
// messages (VLAN and checksum-verified per-packet info) and leave in
// transfer-page packets, up to Config.MaxRangesPerPacket frames each; the
// guest's completion of a transfer-page packet frees its slots.
// With RSS parameters set, each frame's Toeplitz hash (rndis.HashFrame)
// picks its channel through the guest's indirection table and travels in
// the hash value and hash info per-packet info.
//
// # SR-IOV data path
//
// The NIC and its VF share the MAC on the switch. New puts the MAC under a
// vswitch.Steering whose synthetic port is the NIC's; SetVFPort binds the
// VF device model's port. A guest SWITCH_DATA_PATH(VF), honoured only
// while a VF is present and advertised, moves unicast for the MAC to the
// VF port before its empty completion is sent; SWITCH_DATA_PATH
// (synthetic), a channel close and SetVF(false) move it back. Broadcast,
// multicast and (Config.SYNToSynthetic) TCP SYNs stay on the synthetic
// NIC (spec/vf-modes.md §1.8). On VF removal the host switches first,
// waiting for frames already headed to the VF, then sends SWITCH_DATA_PATH
// (synthetic) and the withdrawn VF association (spec/openvmm-notes.md
// §2.4 C). Stats.PathSynthetic and Stats.PathVF count what each path got.
//
// # Input validation
//
// Everything from the guest is untrusted: NVSP and RNDIS messages are
// decoded by the wire packages, section indexes and sizes are checked
// against the send buffer, GPA ranges against guest memory and a gather
// bound, completion ids against the slots in flight. A bad message is
// answered as the host does (a failure status, NOT_SUPPORTED, INVALID_DATA)
// and counted in Stats.Errors; nothing the guest sends makes the host
// panic or stop reading the channel.
package netvsp
