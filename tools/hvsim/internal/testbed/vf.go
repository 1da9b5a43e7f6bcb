package testbed

import (
	"context"
	"fmt"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// The VF as the host offers it: a function on the vPCI bus, and the
// association netvsp sends for it.
//
// Until the mlx-lite device model and the guest VF driver are in the tree
// the function is a vpci.TestFunction: the vPCI half of every migration
// (eject with EJECTION_COMPLETE, surprise removal, hot add) is real, but no
// VF interface appears in the guest, so the data path stays synthetic.
const vfWired = false

// hostVF is one offered VF function.
type hostVF struct {
	index int
	fn    vpci.Function
	slot  vpciwire.Slot
}

// attachVFDriver registers the guest's VF driver with the vPCI bus driver
// (nothing yet: see vfWired).
func (tb *Testbed) attachVFDriver() error { return nil }

// offerVF hot-adds a fresh VF function and associates it with the
// synthetic NIC (spec/openvmm-notes.md §2.4 F: the association, then the
// device).
func (tb *Testbed) offerVF(index int) (*hostVF, error) {
	fn := vpci.NewTestFunction(VFSerial)
	slot, err := tb.vbus.AddFunction(fn)
	if err != nil {
		return nil, fmt.Errorf("%w: hot add VF %d: %v", ErrMigrate, index, err)
	}
	tb.nic.SetVF(true, VFSerial)
	return &hostVF{index: index, fn: fn, slot: slot}, nil
}

// withdrawVF removes the VF the way the host does for a planned live
// migration (spec/openvmm-notes.md §2.4 C, spec/vf-modes.md A.9): switch the
// data path back to synthetic and withdraw the association (SetVF(false)
// does both, in that order), then eject the vPCI function and wait for
// the guest's EJECTION_COMPLETE. With surprise set the device vanishes
// first (its rings with it) and the host cleans up after.
func (tb *Testbed) withdrawVF(vf *hostVF, surprise bool) error {
	if surprise {
		if err := tb.vbus.Remove(vf.slot); err != nil {
			return fmt.Errorf("%w: surprise-remove VF %d: %v", ErrMigrate, vf.index, err)
		}
		tb.nic.SetVF(false, VFSerial)
		return nil
	}
	tb.nic.SetVF(false, VFSerial)
	if err := tb.vbus.Eject(vf.slot); err != nil {
		return fmt.Errorf("%w: eject VF %d: %v", ErrMigrate, vf.index, err)
	}
	return nil
}

// dataPath is the data path the host's netvsp is on.
func (tb *Testbed) dataPath() Path {
	if tb.nic.State().DataPath == nvsp.DataPathVF {
		return PathVF
	}
	return PathSynthetic
}

// waitVFTaken waits until the guest has taken VF index back: its data path
// on the VF when the VF is wired, else the vPCI function present in the
// guest.
func (tb *Testbed) waitVFTaken(ctx context.Context, index int) error {
	deadline := time.Now().Add(10*time.Second + tb.cfg.AttachWait)
	for {
		if vfWired {
			if tb.dataPath() == PathVF {
				return nil
			}
		} else {
			for _, f := range tb.pciDrv.Functions() {
				if f.Serial() == VFSerial && !f.Removed() {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the guest did not take VF %d", ErrMigrate, index)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// stackInterface is the interface the guest's stack runs on.
func (tb *Testbed) stackInterface() (*ifnet.Interface, error) {
	if tb.cfg.Mode == ModeFailover {
		return nil, fmt.Errorf("%w: failover mode needs net/failover, not in the tree yet", ErrConfig)
	}
	return tb.hn.Interface(), nil
}
