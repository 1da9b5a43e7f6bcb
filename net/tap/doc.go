// Package tap bridges an ifnet interface to a Linux TAP device, so that the
// Linux kernel's network stack can use a NIC driver that runs in userspace
// (hvguest's guest image exposes hn0 to the kernel this way).
//
// It sits on the stack side of ifnet, in place of a userspace stack: the
// bridge installs itself as the interface's input (SetInput) and writes
// every frame the interface receives to the TAP; a reader goroutine reads
// the frames the kernel sends into the TAP, in batches, and hands them to
// the interface's Transmit. Close stops the reader and uninstalls the
// input. The TAP is created with IFF_TAP|IFF_NO_PI, optionally inside
// another network namespace. Linux only.
package tap
