package mlxdev_test

import (
	"os/exec"
	"strings"
	"testing"
)

// wirePackages are the wire formats shared by both sides; the device model
// may import them (ARCHITECTURE.md: the host imports wire packages, never
// guest logic).
var wirePackages = map[string]bool{
	"drivers/mlx/mlxhw":    true,
	"drivers/netvsc/nvsp":  true,
	"drivers/netvsc/rndis": true,
	"pci/hvpci/vpciwire":   true,
}

// The device model must never import guest logic: a mistake in the driver
// would then cancel the same mistake in the model.
func TestNoGuestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hvguest/hvguest/drivers/mlx/mlxdev").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v\n%s", err, out)
	}
	const mod = "github.com/hvguest/hvguest/"
	forbidden := []string{"drivers", "hyperv/vmbus", "pci/hvpci", "net/ifnet", "net/netstack"}
	seen := 0
	for _, p := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(p, mod)
		if !ok {
			continue
		}
		seen++
		if wirePackages[rel] || rel == "drivers/mlx/mlxdev" {
			continue
		}
		for _, f := range forbidden {
			if rel == f || strings.HasPrefix(rel, f+"/") {
				t.Errorf("drivers/mlx/mlxdev depends on guest-side package %s", p)
			}
		}
	}
	if seen < 3 {
		t.Fatalf("go list -deps listed only %d module packages:\n%s", seen, out)
	}
}
