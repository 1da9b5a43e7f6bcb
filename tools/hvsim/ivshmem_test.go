package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hvguest/hvguest/hyperv/synic"
)

// -ivshmem grows the guest RAM so the file is a power of two (a PCI BAR
// size), never shrinking it.
func TestIvshmemPages(t *testing.T) {
	for _, pages := range []int{1, 100, 16384, 32748, 32749} {
		got := ivshmemPages(pages)
		size := synic.SharedSize(got)
		if got < pages || size&(size-1) != 0 {
			t.Errorf("ivshmemPages(%d) = %d: %d bytes", pages, got, size)
		}
		if half := size / 2; half >= synic.SharedSize(pages) {
			t.Errorf("ivshmemPages(%d) = %d: %d bytes, but %d would do", pages, got, size, half)
		}
	}
}

// findIvshmem picks the ivshmem function by its ids in a sysfs tree.
func TestFindIvshmem(t *testing.T) {
	root := t.TempDir()
	fn := func(addr, vendor, device string) {
		d := filepath.Join(root, addr)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "vendor"), []byte(vendor+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "device"), []byte(device+"\n"), 0o644)
	}
	fn("0000:00:01.0", "0x8086", "0x7000")
	fn("0000:00:03.0", "0x1af4", "0x1000") // virtio-net: Red Hat, not ivshmem
	if _, err := findIvshmem(root); err == nil {
		t.Fatal("found an ivshmem where there is none")
	}
	fn("0000:00:04.0", "0x1af4", "0x1110")
	fn("0000:00:05.0", "0x1af4", "0x1110")
	if a, err := findIvshmem(root); err != nil || len(a) != 2 || a[0] != "0000:00:04.0" || a[1] != "0000:00:05.0" {
		t.Fatalf("findIvshmem: %q %v", a, err)
	}
	if _, err := findIvshmem(filepath.Join(root, "nope")); err == nil {
		t.Fatal("missing sysfs accepted")
	}
}
