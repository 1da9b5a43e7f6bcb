package tapdev

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenErrors(t *testing.T) {
	if _, _, err := Open("a-name-that-is-too-long", ""); err == nil {
		t.Fatal("long name accepted")
	}
	if _, _, err := Open("hvtapx", "/nonexistent/netns"); err == nil {
		t.Fatal("missing netns accepted")
	}
}

// TestOpenClose: a TAP appears on Open and disappears when its descriptor
// is closed.
func TestOpenClose(t *testing.T) {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("skipping: /dev/net/tun is missing (%v)", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating a TAP device needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: ip is not installed (apt-get install iproute2)")
	}
	fd, name, err := Open("hvtapdev0", "")
	if err != nil {
		t.Fatal(err)
	}
	if name != "hvtapdev0" {
		t.Errorf("name %q", name)
	}
	if out, err := exec.Command("ip", "link", "show", name).CombinedOutput(); err != nil {
		t.Errorf("TAP not visible: %v\n%s", err, out)
	}
	if err := unix.Close(fd); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "link", "show", name).CombinedOutput(); err == nil {
		t.Errorf("TAP still there after close:\n%s", out)
	}
}
