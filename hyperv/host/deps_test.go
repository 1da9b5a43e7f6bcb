package host_test

import (
	"os/exec"
	"strings"
	"testing"
)

// wirePackages are the wire formats shared by both sides (ARCHITECTURE.md:
// the host imports wire packages, never guest logic).
var wirePackages = map[string]bool{
	"hyperv/vmbus/vmbusmsg": true,
	"drivers/netvsc/nvsp":   true,
	"drivers/netvsc/rndis":  true,
	"pci/hvpci/vpciwire":    true,
}

// The host side must never import guest logic: a mistake on one side
// would then cancel the same mistake on the other (ARCHITECTURE.md).
func TestNoGuestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hvguest/hvguest/hyperv/host/...").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v\n%s", err, out)
	}
	const mod = "github.com/hvguest/hvguest/"
	forbidden := []string{"hyperv/vmbus", "drivers", "net/ifnet", "net/netstack", "pci/hvpci"}
	for _, p := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(p, mod)
		if !ok || wirePackages[rel] {
			continue
		}
		for _, f := range forbidden {
			if rel == f || strings.HasPrefix(rel, f+"/") {
				t.Errorf("hyperv/host depends on guest-side package %s", p)
			}
		}
	}
}
