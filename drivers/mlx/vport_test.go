package mlx

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/ifnet"
)

// The host changes the VF's permanent address (a hypervisor MAC change):
// the device posts NIC_VPORT_CHANGE, the driver re-reads the vport context
// and the interface announces the new MAC; the event is one-shot, so the
// driver re-arms it and a second change is seen too.
func TestHostChangesMAC(t *testing.T) {
	r := newRig(t, rigOpts{})
	var mu sync.Mutex
	var macs []net.HardwareAddr
	sub, err := r.reg.Subscribe(func(ev ifnet.Event) {
		if ev.Type == ifnet.EventMAC {
			mu.Lock()
			macs = append(macs, ev.MAC)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	vf := r.waitVF()
	dev := r.device()
	for i, mac := range [][6]byte{{0x00, 0x15, 0x5d, 0x0a, 0x0b, 0x01}, {0x00, 0x15, 0x5d, 0x0a, 0x0b, 0x02}} {
		dev.SetPermanentAddress(mac)
		eventually(t, "the new MAC on the interface", func() bool { return bytes.Equal(vf.Interface().MAC(), mac[:]) })
		eventually(t, "EventMAC", func() bool { mu.Lock(); defer mu.Unlock(); return len(macs) == i+1 })
		mu.Lock()
		got := macs[i]
		mu.Unlock()
		if !bytes.Equal(got, mac[:]) || vf.Stats().VportEvents != uint64(i+1) {
			t.Fatalf("change %d: event MAC %v, %d vport events", i, got, vf.Stats().VportEvents)
		}
	}
	if vf.MAC() != vfMAC {
		t.Fatalf("MAC() %x: the attach-time permanent address", vf.MAC())
	}
	noViolations(t, dev)
}

// SetMAC on the VF (hn moving its pair's address, mlx5e_set_mac): the
// vport's unicast list takes the new address, frames to it arrive, and
// going back to the permanent address empties the list.
func TestSetMAC(t *testing.T) {
	r := newRig(t, rigOpts{})
	vf := r.waitVF()
	ifp := vf.Interface()
	sk := r.up(vf)
	other := net.HardwareAddr{0x00, 0x15, 0x5d, 0x0c, 0x0d, 0x0e}
	if got, dropped := deliverTo(t, r, sk, other, 2, 100, mlxdev.DropFilter); got != 0 || dropped != 2 {
		t.Fatalf("before SetMAC: %d delivered, %d dropped", got, dropped)
	}
	if err := ifp.Ioctl(&ifnet.SetMAC{MAC: other}); err != nil {
		t.Fatal(err)
	}
	if uc := ucList(t, vf); len(uc) != 1 || !bytes.Equal(uc[0][:], other) || !bytes.Equal(ifp.MAC(), other) {
		t.Fatalf("UC list %x, MAC %v", uc, ifp.MAC())
	}
	if got, _ := deliverTo(t, r, sk, other, 3, 100, mlxdev.DropFilter); got != 3 {
		t.Fatalf("frames to the new MAC: %d of 3", got)
	}
	if err := ifp.Ioctl(&ifnet.SetMAC{MAC: net.HardwareAddr(vfMAC[:])}); err != nil {
		t.Fatal(err)
	}
	if uc := ucList(t, vf); len(uc) != 0 {
		t.Fatalf("UC list back at the permanent address: %x", uc)
	}
	noViolations(t, r.device())
}

func ucList(t testing.TB, vf *VF) [][6]byte {
	t.Helper()
	var out mlxhw.QueryNICVportContextOut
	if err := vf.cmd.exec(context.Background(), &mlxhw.QueryNICVportContextIn{ListType: mlxhw.ListUC, MaxList: 16}, &out); err != nil {
		t.Fatal(err)
	}
	return out.Ctx.Addresses
}
