//go:build linux

// Package taptest holds what the real-TAP tests of net/tap and the host
// switch's TAP port share: the skip when TAP devices cannot be made here,
// running ip(8), and a throw-away network namespace.
//
// Side: both (test support).
package taptest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// NeedTAP skips the test where TAP devices cannot be made (no
// /dev/net/tun, not root) or the tools the test drives are missing.
func NeedTAP(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("skipping: /dev/net/tun is missing (%v); the test needs the tun driver", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating a TAP device and a network namespace needs root")
	}
	for _, bin := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipping: %s is not installed (apt-get install iproute2 iputils-ping)", bin)
		}
	}
}

// Run runs a command and fails the test if it fails; it returns the output.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewNetns creates a network namespace named after prefix, the test and
// the process, which the test's cleanup deletes.
func NewNetns(t testing.TB, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%s-%d", prefix, strings.ToLower(t.Name()), os.Getpid())
	Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	return ns
}
