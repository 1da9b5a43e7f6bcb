// Package images builds hvguest's bootable guest image and boots it under
// QEMU against the simulated host.
//
// Side: guest (the image) and the test harness around it.
//
// The image is a Linux kernel plus an initramfs that this package writes
// with u-root's cpio library: /init is cmd/hvguest-init, /bin/hvsim the
// hvsim binary, both static Go. In the VM, `hvsim guest -pci auto` finds
// QEMU's ivshmem-plain device, maps its BAR 2 through sysfs (pci/sysfs)
// and runs VMBus, the echo device and hn0 over the shared-memory transport
// (hyperv/synic, polling: no futex crosses a VM boundary) against `hvsim
// serve -ivshmem` on the machine, whose file QEMU maps into the VM
// (-object memory-backend-file,share=on -device ivshmem-plain).
//
// The kernel is Debian's cloud kernel (linux-image-*-cloud-amd64): it has
// PCI, sysfs, devtmpfs and the 8250 console built in, which is all the
// image needs. images/qemu.sh installs QEMU and extracts that kernel;
// `make qemu` runs TestQEMUBoot with it (TCG, no KVM needed).
package images
