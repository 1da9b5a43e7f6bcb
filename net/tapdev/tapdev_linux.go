package tapdev

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest TAP device name the kernel accepts.
const MaxNameLen = unix.IFNAMSIZ - 1

// Open opens /dev/net/tun (non-blocking, close-on-exec) and binds it to the
// TAP device name, creating it if it does not exist; an empty name lets the
// kernel pick one (tap0, tap1, ...). If netns is set (the path of a network
// namespace, e.g. /var/run/netns/NAME or /proc/PID/ns/net), the device is
// created in that namespace; the calling goroutine's thread is switched
// there and back, and the returned descriptor works from any namespace.
// Open returns the descriptor and the device's name. Closing the
// descriptor removes a non-persistent device.
func Open(name, netns string) (fd int, ifname string, err error) {
	if len(name) > MaxNameLen {
		return -1, "", fmt.Errorf("tapdev: name %q longer than %d bytes", name, MaxNameLen)
	}
	if netns != "" {
		// setns changes only the calling thread: do the work on a locked
		// thread and switch it back before unlocking.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", fmt.Errorf("tapdev: current netns: %w", err)
		}
		defer unix.Close(orig)
		target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", fmt.Errorf("tapdev: netns %s: %w", netns, err)
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			return -1, "", fmt.Errorf("tapdev: enter netns %s: %w", netns, err)
		}
		defer func() {
			if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
				// The thread is in the wrong namespace: never unlock it,
				// so the runtime destroys it with the goroutine.
				runtime.LockOSThread()
				if err == nil {
					unix.Close(fd)
					fd, err = -1, fmt.Errorf("tapdev: return from netns: %w", rerr)
				}
			}
		}()
	}
	fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, "", fmt.Errorf("tapdev: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("tapdev: %w", err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("tapdev: TUNSETIFF %q: %w", name, err)
	}
	return fd, ifr.Name(), nil
}
