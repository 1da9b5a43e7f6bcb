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
	bar, err := mapIvshmem(pciAddr, synicMagic)
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

// The first bytes of what an ivshmem device carries, which tell the two
// apart when a VM has both: the synic transport and the VF's channel.
const (
	synicMagic = "HVGSYNIC"
	shmioMagic = "HVSHMIO1"
)

// mapIvshmem maps BAR 2 of the ivshmem function at addr, or with "auto"
// of the first one whose memory starts with magic.
func mapIvshmem(addr, magic string) (*sysfs.BAR, error) {
	addrs := []string{addr}
	if addr == "auto" {
		var err error
		if addrs, err = findIvshmem(sysfs.DevicesDir); err != nil {
			return nil, err
		}
	}
	for _, a := range addrs {
		fn, err := sysfs.Open(sysfs.DevicesDir, a)
		if err != nil {
			return nil, err
		}
		bar, err := fn.BAR(ivshmemBAR)
		if err != nil {
			return nil, err
		}
		if m := bar.Mem(); len(m) >= len(magic) && string(m[:len(magic)]) == magic {
			return bar, nil
		}
		bar.Close()
	}
	return nil, fmt.Errorf("no ivshmem device carrying %q among %v", magic, addrs)
}

// findIvshmem returns the addresses of the ivshmem functions under root.
func findIvshmem(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("looking for ivshmem: %w", err)
	}
	var out []string
	for _, e := range ents {
		if id(filepath.Join(root, e.Name(), "vendor")) == ivshmemVendor && id(filepath.Join(root, e.Name(), "device")) == ivshmemDevice {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no ivshmem device (QEMU -device ivshmem-plain) on the PCI bus")
	}
	return out, nil
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
