// Package vswitch is the simulated Hyper-V host's virtual Ethernet switch
// (host side): a learning bridge whose ports are the host ends of synthetic
// NICs (hyperv/host/netvsp), simulated stations, traffic generators and
// sinks, and an uplink to a real TAP device (TAPPort).
//
// # Ports
//
// Anything that implements Port (one method, Deliver, taking a batch of
// frames) can be attached. Attach returns the switch's handle for that port
// (*SwitchPort), through which the port's owner injects frames (Input),
// reads its counters, sets its VLAN mode and its link state.
//
// # Forwarding
//
// The switch learns source MAC addresses per VLAN (independent VLAN
// learning) and forwards known unicast to the learned port; broadcast,
// multicast and unknown unicast are flooded to every other port that is a
// member of the frame's VLAN and whose link is up. A learned address ages
// out after Config.AgingTime of silence, measured on Config.Clock; an aged
// entry is ignored at once (lazy expiry) and removed by Age or by the ager
// goroutine. Static entries (AddStatic) never age.
//
// # Steering (SR-IOV)
//
// A guest NIC with a VF has two ports sharing one MAC address: the
// synthetic NIC's and the VF's. Switch.Steer binds the address to the
// synthetic port; Steering.SetVFPort binds the VF port and
// Steering.SetPath moves unicast for the address between them, as
// Hyper-V/Azure moves the MAC filter when the guest switches its data path
// (netvsp drives it from SWITCH_DATA_PATH). Broadcast and multicast always
// reach the synthetic port, optionally TCP SYNs too (SetSYNToSynthetic);
// the VF port never gets flooded frames, neither member gets the other's,
// and the address is not learned. Switching back (and unbinding or
// detaching the VF) waits for frames already headed to the VF, so none is
// delivered to a VF after its removal began (steer.go).
//
// # VLANs
//
// Frames carry their 802.1Q tag in packet.Meta (HasVLAN, VLAN), not in the
// bytes; a frame that arrives with the tag in its bytes is normalised into
// Meta on ingress. A port is either an access port on one VLAN (untagged
// frames join it; frames tagged with another VLAN are dropped; egress frames
// leave untagged) or a trunk (tagged frames of allowed VLANs pass with their
// tag; untagged frames join the native VLAN, or are dropped if there is
// none; frames of the native VLAN leave untagged). A priority tag (VLAN ID
// 0) counts as untagged, its priority is kept.
//
// # Ownership and concurrency
//
// SwitchPort.Input takes every packet of the batch it is given (forwarded,
// copied for a flood, or freed on a drop) and leaves the batch empty.
// Port.Deliver receives a batch whose packets it then owns; the switch
// clears the batch when Deliver returns. Input may be called from any number
// of goroutines at once, and reentrantly from inside a Deliver (a station
// that answers an ARP request does exactly that), so a Port's Deliver must
// be safe for concurrent calls.
//
// # Allocation
//
// Forwarding allocates nothing in steady state: the working state of an
// Input call comes from a free list, flood copies come from packet pools,
// and only a newly learned address allocates its table entry.
//
// # TAP uplink
//
// TAPPort (Linux) attaches a real TAP device to the switch, so that the
// kernel, and ping, tcpdump or iperf in its network namespace, talk to the
// simulated network. It opens the device through net/tapdev (which imports
// only x/sys), not net/tap, which is guest logic. To attach one:
//
//	sw := vswitch.New(vswitch.Config{})
//	tp, err := vswitch.NewTAPPort(sw, vswitch.TAPConfig{Name: "hvsw0", NetNS: "/var/run/netns/sim"})
//	...
//	defer tp.Close() // stops the reader, detaches the port, removes the TAP
//
// and then, as root: ip -n sim addr add 10.0.0.1/24 dev hvsw0; ip -n sim link
// set hvsw0 up. Frames are exchanged without a virtio-net header, so frames
// on the switch must carry complete checksums (netvsp completes a guest's
// offload requests before switching). The simulator command (tools/hvsim
// serve) has no switch yet, so it has no -tap flag.
package vswitch
