// Package kernel is the platform seam hvguest's drivers run on, and the
// simulated implementations its tests and host simulator use.
//
// It belongs to both sides: guest drivers allocate DMA memory, wait on
// events and read the clock through it; the simulated host reads guest
// memory by page frame number through it.
//
//   - Memory: page-aligned regions that carry their guest page frame
//     numbers (PFNs, always 4 KiB Hyper-V pages).
//   - PhysMem: access to guest memory by PFN, which is how a host (or a
//     device doing DMA) sees it.
//   - SimRAM: one region of simulated guest RAM, either a Go slice
//     in-process or a shared file that a second process (or a QEMU guest
//     through ivshmem) maps; it implements both Memory and PhysMem.
//   - Event: a coalescing wake-up, the in-process stand-in for an
//     interrupt line.
//   - Clock: real and fake time, so a driver's 2-second wait costs nothing
//     in a test.
//   - Logging: log/slog, with a rate limiter for messages that hostile
//     input can trigger.
package kernel
