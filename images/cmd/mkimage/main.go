// Command mkimage builds hvguest's guest initramfs (see package images):
//
//	go run ./images/cmd/mkimage -o hvguest-initramfs.cpio
//
// Boot it with a Linux kernel and an ivshmem device carrying the file of
// `hvsim serve -ivshmem -shm FILE`:
//
//	qemu-system-x86_64 -m 1G -nographic -kernel vmlinuz -initrd hvguest-initramfs.cpio \
//	  -append console=ttyS0 \
//	  -object memory-backend-file,id=hvsim,share=on,mem-path=FILE,size=SIZE \
//	  -device ivshmem-plain,memdev=hvsim
//
// Side: guest (the image).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hvguest/hvguest/images"
)

func main() {
	out := flag.String("o", "hvguest-initramfs.cpio", "initramfs to write")
	root := flag.String("C", ".", "the module root (where go.mod is)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "hvguest-image")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	initBin, hvsimBin, err := images.BuildBinaries(*root, dir)
	if err == nil {
		err = images.WriteInitramfs(*out, initBin, hvsimBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(*out)
}
