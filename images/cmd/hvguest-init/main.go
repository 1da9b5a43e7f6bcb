//go:build linux

// Command hvguest-init is /init of hvguest's guest image: it mounts the
// kernel's filesystems, runs the guest (/bin/hvsim guest -pci auto: VMBus
// over the ivshmem device QEMU carries hvsim's shared file in on, the echo
// device, hn0, an ARP exchange through the simulated host's switch), prints
// one result line on the console and powers the VM off.
//
// Side: guest (the image). The kernel command line passes arguments to the
// guest as hvguest.args=a,b,c (e.g. hvguest.args=-packets,20000).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ResultPrefix starts the line the image's test waits for on the console.
const ResultPrefix = "hvguest-init: result"

func main() {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && err != unix.EBUSY {
			fmt.Printf("hvguest-init: mount %s: %v\n", m.dst, err)
		}
	}
	args := []string{"guest", "-pci", "auto"}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(f, "hvguest.args="); ok && v != "" {
				args = append(args, strings.Split(v, ",")...)
			}
		}
	}
	fmt.Printf("hvguest-init: running /bin/hvsim %s\n", strings.Join(args, " "))
	start := time.Now()
	cmd := exec.Command("/bin/hvsim", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		fmt.Printf("%s fail after %v: %v\n", ResultPrefix, time.Since(start).Round(time.Millisecond), err)
	} else {
		fmt.Printf("%s ok in %v\n", ResultPrefix, time.Since(start).Round(time.Millisecond))
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("hvguest-init: power off: %v\n", err)
	}
	select {} // init must not exit
}
