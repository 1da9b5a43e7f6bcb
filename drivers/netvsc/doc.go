// Package netvsc is the guest side of the Hyper-V synthetic NIC: the hn
// driver, written as Linux hv_netvsc and FreeBSD hn(4) are, over hvguest's
// VMBus client and interface layer.
//
// Side: guest. Everything from the host is untrusted: NVSP messages are
// decoded with nvsp.DecodeFromHost, RNDIS messages with the rndis package's
// validating decoders, every transfer-page range is bounds-checked against
// the receive buffer, and every transaction id the host echoes is checked
// against the driver's own table before it frees anything. A host that
// stops answering costs a timeout, never a hang or a panic.
//
// # Shape
//
//   - Driver is a vmbus.Driver for tlfs.GUIDNetwork. Each primary offer
//     becomes a Device and an ifnet.Interface named hn0, hn1, ... (lowest
//     free unit), attached to the configured ifnet.Registry.
//   - Device implements ifnet.Driver (Transmit, Ioctl). Its synthetic
//     attachment (a synth: the open channel, the receive and send buffers,
//     the negotiated versions and offloads) can be torn down and rebuilt
//     under the same interface, which is how an MTU change works (Linux
//     netvsc_change_mtu: full detach, re-attach with the new MTU).
//
// # Attach (spec/nvsp-rndis.md §5.1, Linux netvsc_connect_vsp,
// netvsc_init_buf, rndis_filter_device_add)
//
// Open the channel; NVSP INIT for 6.1, 6, 5, 4, 2, 1 (one version per INIT)
// until the host accepts one; SEND_NDIS_CONFIG (MTU + 14, capabilities:
// 802.1Q, SR-IOV and teaming from NVSP 5, RSC from 6.1) for NVSP ≥ 2;
// SEND_NDIS_VER (6.1 up to NVSP 4, 6.30 from 5); the receive buffer as a
// GPADL announced with SEND_RECV_BUF (id 0xCAFE) and checked as Linux does;
// the send buffer with SEND_SEND_BUF and its section size; RNDIS
// INITIALIZE; queries for the frame size, the MAC address, the hardware
// offload capabilities, the media connect status and (NVSP ≥ 5) the link
// speed; SET offload parameters from the capabilities. The packet filter is
// set when the interface goes up. Detach reverses it: packet filter off,
// RNDIS HALT, wait for outstanding sends, revoke both buffers, close the
// channel, tear down the GPADLs, free the memory.
//
// # Data path
//
// Transmit copies each frame, with an RNDIS PACKET header and its per-packet
// info (checksum, VLAN, LSO from packet.Meta), into a free send-buffer
// section and stages an in-band SEND_RNDIS_PKT naming it; a frame too big
// for a section (TSO), or any frame when no section is free, is copied into
// a bounce slot of guest memory and sent GPA-direct. A whole batch goes out
// with one ring commit; when the ring or the buffers are full Transmit stops
// and returns an error wrapping ifnet.ErrBusy (back-pressure). Send
// completions free the section or slot named by their transaction id.
//
// Receive runs on the channel's receive goroutine: each transfer-page
// packet's ranges are RNDIS messages in the receive buffer; data frames are
// copied into packets from a packet.Pool with their checksum, VLAN and hash
// info in packet.Meta and handed to ifnet Input in batches; control
// completions wake the waiting request; status indications drive the link
// state. Every transfer-page packet is completed (NVSP 108) at the end of
// the batch that carried it, with one ring commit; if the ring is full the
// completions wait in a queue drained by a small goroutine, so the receive
// goroutine never blocks on the host.
//
// # SR-IOV VF (spec/vf-modes.md)
//
// Each Device watches the registry (vfwatch.go: a subscription that only
// records and wakes, and one worker goroutine per hn stopped by Close).
// A VF is this hn's when it is a plain Ethernet interface with hn's MAC
// and, when its vPCI serial and the host's association are both known,
// the same serial; one per hn. Config.VFMode picks the mode:
//
//   - VFTransparent (default, vfxpnt.go, vfioctl.go): claim the VF,
//     override its input (relabelled as hn's), wait Config.VFAttachWait
//     on Config.Clock (2 s minimum), the VF's GetReady and the host's
//     "allocated"; then intersect capabilities and TSO limits, give the
//     VF hn's MTU (1500 fallback), follow its link and media, and when hn
//     is up bring the VF up, switch the host's data path (awaiting the
//     completion), align RSS (vfrss.go), and only then point transmit at
//     the VF (an atomic pointer: no lock on the data path). hn's ioctls
//     pass through. hn down, a host withdrawal or the VF's departure move
//     transmit to synthetic first; departure restores everything on hn.
//   - VFNonTransparent (vfnt.go): the VF stays the user's; while it is up
//     the data path is the VF, hn's filter promiscuous, synthetic receive
//     relabelled as the VF's and hn's link held down.
//
// VFStatus and the VF counters in Stats report it; SetVFAttachWait and
// SetVFCaptureAfter are the run-time tunables.
//
// Facts: spec/nvsp-rndis.md; spec/vf-modes.md §1.4–1.6 and A.4 (VF
// association and SWITCH_DATA_PATH); Linux drivers/net/hyperv (netvsc.c,
// netvsc_drv.c, rndis_filter.c); FreeBSD sys/dev/hyperv/netvsc (if_hn.c,
// hn_nvs.c, hn_rndis.c).
package netvsc
