package main

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci/sysfs"
)

// The QEMU path: `hvsim serve -ivshmem` lays the transport out in a file
// whose size is a power of two, QEMU maps it into a VM as the BAR 2 of an
// ivshmem-plain device (-object memory-backend-file,share=on,... -device
// ivshmem-plain,memdev=...), and `hvsim guest -pci auto` inside the VM maps
// that BAR through sysfs and attaches, polling (the two sides do not share
// a kernel, so no futex wake-up crosses).

// ivshmem-plain's PCI identity (QEMU hw/misc/ivshmem.c: Red Hat/Qumranet
// vendor 0x1af4, device 0x1110) and the BAR that carries the memory.
const (
	ivshmemVendor = 0x1af4
	ivshmemDevice = 0x1110
	ivshmemBAR    = 2
)

// ivshmemPages grows pages so that the whole file is a power of two: PCI
// BAR sizes are, and QEMU refuses a memory backend of another size there.
func ivshmemPages(pages int) int {
	size := uint64(synic.SharedSize(pages))
	pow := uint64(1) << bits.Len64(size-1)
	return pages + int((pow-size)/kernel.PageSize)
}

// openGuest attaches to the shared transport: the file at path, or the
// ivshmem function at pciAddr ("auto": the first one) inside a VM. done
// closes the transport, then unmaps what it mapped.
func openGuest(path, pciAddr string, peerTimeout time.Duration) (sg *synic.SharedGuest, done func(), err error) {
	switch {
	case path != "" && pciAddr != "":
		return nil, nil, fmt.Errorf("%w: guest takes -shm or -pci, not both", errUsage)
	case path != "":
		sg, err := synic.OpenShared(path, synic.WithPeerTimeout(peerTimeout))
		if err != nil {
			return nil, nil, err
		}
		return sg, func() { sg.Close() }, nil
	case pciAddr == "":
		return nil, nil, fmt.Errorf("%w: guest needs -shm FILE or -pci ADDR", errUsage)
	}
	if pciAddr == "auto" {
		a, err := findIvshmem(sysfs.DevicesDir)
		if err != nil {
			return nil, nil, err
		}
		pciAddr = a
	}
	fn, err := sysfs.Open(sysfs.DevicesDir, pciAddr)
	if err != nil {
		return nil, nil, err
	}
	bar, err := fn.BAR(ivshmemBAR)
	if err != nil {
		return nil, nil, err
	}
	sg, err = synic.NewSharedGuestOver(bar.Mem(), synic.WithPolling(), synic.WithPeerTimeout(peerTimeout))
	if err != nil {
		bar.Close()
		return nil, nil, fmt.Errorf("ivshmem %s: %w", pciAddr, err)
	}
	return sg, func() { sg.Close(); bar.Close() }, nil
}

// findIvshmem returns the address of the first ivshmem function under root.
func findIvshmem(root string) (string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("looking for ivshmem: %w", err)
	}
	for _, e := range ents {
		if id(filepath.Join(root, e.Name(), "vendor")) == ivshmemVendor && id(filepath.Join(root, e.Name(), "device")) == ivshmemDevice {
			return e.Name(), nil
		}
	}
	return "", errors.New("no ivshmem device (QEMU -device ivshmem-plain) on the PCI bus")
}

// id reads a sysfs id file ("0x1af4\n"); -1 if it cannot.
func id(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var v int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "0x%x", &v); err != nil {
		return -1
	}
	return v
}
