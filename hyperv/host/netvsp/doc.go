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
