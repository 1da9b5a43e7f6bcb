// Package tapdev opens Linux TAP devices: the raw open of /dev/net/tun with
// IFF_TAP|IFF_NO_PI, optionally inside another network namespace, and
// nothing else. It imports only golang.org/x/sys and net/packet, so that both the guest
// side (net/tap, which bridges an ifnet interface) and the simulated host
// (hyperv/host/vswitch, whose TAP uplink must not import guest logic) can
// use it. Linux only.
package tapdev
