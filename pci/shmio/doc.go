// Package shmio carries a PCI function's register traffic across a shared
// memory area, so a device model in one process (the simulated host,
// hvsim serve) serves a driver in another process or inside a QEMU VM
// (the area reaching it as an ivshmem BAR): the guest's BAR and
// configuration-window writes are posted on a ring, its reads are
// requests the host answers in order (a read completes after every write
// posted before it, as PCI orders them), and the host's MSI-X messages
// come back on a second ring. DMA needs nothing from here: guest RAM is
// shared already (hyperv/synic's file).
//
// Side: both. NewHost serves a Handler (the device model's BAR, the vPCI
// server's configuration window); NewGuest gives a driver pci.BAR and
// pci.MMIO views and delivers interrupts. Both sides poll with a short,
// backing-off interval: no wake-up crosses a VM boundary.
//
// Area layout, version 1 (little-endian; every word both sides race on is
// a 32-bit or 64-bit atomic):
//
//	Off   Size  Field                                   Writer
//	0     8     magic "HVSHMIO1"                        host
//	8     4     layout version (1)                      host
//	12    4     request ring slots (power of two)       host
//	16    4     interrupt ring slots (power of two)     host
//	20    4     total size                              host
//	64    4     host state (0 init, 1 alive, 2 closed)  host
//	68    4     guest state (0 none, 1 attached, 2 closed) guest
//	128   4     request producer count                  guest
//	192   4     request consumer count                  host
//	256   4     read reply sequence (the answered tag)  host
//	264   8     read reply value                        host
//	320   4     interrupt producer count                host
//	384   4     interrupt consumer count                guest
//	512   ...   request ring: slots × 24 bytes
//	            {0 u8 op (1 read, 2 write), 1 u8 space, 2 u8 size (1, 2, 4, 8),
//	             3 u8 0, 4 u32 tag, 8 u64 offset, 16 u64 value}
//	...   ...   interrupt ring: slots × 4 bytes {u32 vector}, 8-byte aligned
//
// A request or interrupt slot is written before its producer count moves
// and read after the consumer sees it move; the counters are free-running
// u32s. Both sides treat what the other wrote as untrusted: a malformed
// request is counted and dropped (a read of it answers all-ones), a
// reply for another tag is ignored, a vector out of range is counted and
// dropped.
package shmio
