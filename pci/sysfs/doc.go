// Package sysfs backs the pci seams with a Linux PCI function as sysfs
// shows it: ConfigSpace over /sys/bus/pci/devices/DDDD:BB:DD.F/config
// (pread/pwrite) and BAR over an mmap of its resourceN file, so the guest
// drivers (drivers/mlx over pci.BAR) run against a real device from Linux
// userspace, the way DPDK's mlx5 PMD or a VFIO user does.
//
// Side: guest (the Linux userspace platform of ARCHITECTURE.md).
//
// Facts (Linux Documentation/PCI/sysfs-pci.rst; drivers/pci/pci-sysfs.c):
// "config" is the function's configuration space (256 bytes, or 4096 for
// PCIe), read and written at any offset with pread/pwrite; "resourceN" is
// BAR N, mmap-able with MAP_SHARED from offset 0 for the BAR's size (the
// file's size), and a write to it is a posted MMIO write. Only root (or a
// process holding the files) may open them, and the kernel must not have a
// driver bound that owns the BAR (unbind it or bind uio/vfio-pci first).
//
// Byte order: BAR registers are accessed as the machine's native 32- and
// 64-bit loads and stores, which on the little-endian machines Hyper-V
// runs on (x86-64, arm64) is what pci.MemBAR models. Accesses are single
// aligned atomic loads and stores, so none is torn or merged.
package sysfs
