package mlx

import (
	"bytes"
	"context"
	"fmt"
	"net"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/pci"
)

// Ioctls the way mlx5e handles them (spec §4.3, §4.4): the MTU goes to
// PMTU and the NIC vport context (hardware MTU = software + 22), the
// promiscuous and allmulti flags to the vport context's promisc bits, the
// multicast list to its MC address list (falling back to allmulti when
// the list is longer than the device takes), media from the vport state
// and PTYS.

const (
	promiscAll = 1 << iota
	promiscMC
)

// Ioctl implements ifnet.Driver.
func (v *VF) Ioctl(req ifnet.Request) error {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	if v.detached {
		return fmt.Errorf("mlx: %s: %w", v.cfg.Name, ifnet.ErrDetached)
	}
	ctx := context.Background()
	ifp := v.ifp.Load()
	switch r := req.(type) {
	case *ifnet.SetFlags:
		old := ifp.Flags()
		f := old&^ifnet.UserFlags | r.Flags&ifnet.UserFlags
		if promiscBits(f) != promiscBits(old) || (f&ifnet.FlagAllMulti != old&ifnet.FlagAllMulti) {
			if err := v.setPromisc(ctx, v.promiscFor(f, len(ifp.Multicast()))); err != nil {
				return v.wrap(err)
			}
		}
		ifp.SetRunning(f&ifnet.FlagUp != 0)
		return nil
	case *ifnet.SetMTU:
		if err := v.setHWMTU(ctx, r.MTU); err != nil {
			return v.wrap(err)
		}
		return nil
	case *ifnet.AddMulti:
		list := append(ifp.Multicast(), r.Addr)
		return v.wrap(v.setMulticast(ctx, ifp.Flags(), list))
	case *ifnet.DelMulti:
		var list []net.HardwareAddr
		for _, a := range ifp.Multicast() {
			if a.String() != r.Addr.String() {
				list = append(list, a)
			}
		}
		return v.wrap(v.setMulticast(ctx, ifp.Flags(), list))
	case *ifnet.SetCapabilities:
		// Offloads are per WQE and per CQE here: enabling or disabling
		// one needs no command, only what the data path does.
		v.caps.Store(uint32(r.Enable))
		r.HWAssist = ifnet.DeriveHWAssist(r.Enable)
		return nil
	case *ifnet.GetMedia:
		v.updateLink(ctx)
		r.State = v.media()
		return nil
	case *ifnet.SetMAC:
		// mlx5e_set_mac on a VF: the permanent address is the host's; the
		// VF receives another one through its vport's unicast list.
		return v.wrap(v.setUnicast(ctx, r.MAC))
	case *ifnet.SetMedia:
		if r.Media.Type != ifnet.MediaEthernet || !r.Media.Auto {
			return fmt.Errorf("mlx: %s: only autoselect Ethernet: %w", v.cfg.Name, ifnet.ErrInvalid)
		}
		return nil
	}
	return fmt.Errorf("mlx: %s: %s: %w", v.cfg.Name, req.RequestName(), ifnet.ErrNotSupported)
}

// wrap maps a command failure to an ifnet error.
func (v *VF) wrap(err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-v.gone:
		return fmt.Errorf("mlx: %s: %w: %w", v.cfg.Name, ifnet.ErrDetached, err)
	default:
	}
	return fmt.Errorf("mlx: %s: %w: %w", v.cfg.Name, ifnet.ErrInvalid, err)
}

func promiscBits(f ifnet.Flags) ifnet.Flags { return f & ifnet.FlagPromisc }

// promiscFor returns the promisc bits for flags f with nmulti groups.
func (v *VF) promiscFor(f ifnet.Flags, nmulti int) int {
	p := 0
	if f&ifnet.FlagPromisc != 0 {
		p |= promiscAll
	}
	if f&ifnet.FlagAllMulti != 0 || nmulti > v.maxMC() {
		p |= promiscMC
	}
	return p
}

func (v *VF) maxMC() int { return 1 << v.gen.LogMaxMCList }

// setHWMTU programs PMTU admin and the vport MTU (mlx5e_set_mtu order).
func (v *VF) setHWMTU(ctx context.Context, mtu int) error {
	hw := mtu + hwMTUOverhead
	reg := make([]byte, mlxhw.PMTUSize)
	p := mlxhw.PMTU{LocalPort: 1, AdminMTU: uint16(hw)}
	p.Put(reg)
	var out mlxhw.AccessRegOut
	if err := v.cmd.exec(ctx, &mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegWrite, RegisterID: mlxhw.RegIDPMTU, Data: reg}, &out); err != nil {
		return err
	}
	return v.cmd.exec(ctx, &mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectMTU,
		Ctx: mlxhw.NICVportContext{MTU: uint16(hw)}}, nil)
}

// setPromisc programs promisc_all and promisc_mc (promisc_uc stays 0, as
// mlx5e's vport update does).
func (v *VF) setPromisc(ctx context.Context, p int) error {
	return v.cmd.exec(ctx, &mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectPromisc,
		Ctx: mlxhw.NICVportContext{PromiscAll: p&promiscAll != 0, PromiscMC: p&promiscMC != 0}}, nil)
}

// setUnicast makes the vport accept mac besides its permanent address
// (an empty UC list when mac is the permanent one).
func (v *VF) setUnicast(ctx context.Context, mac net.HardwareAddr) error {
	ctxv := mlxhw.NICVportContext{ListType: mlxhw.ListUC}
	if !bytes.Equal(mac, v.mac[:]) {
		ctxv.Addresses = [][6]byte{[6]byte(mac)}
	}
	return v.cmd.exec(ctx, &mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectAddressesList, Ctx: ctxv}, nil)
}

// setMulticast programs the MC address list (or allmulti when it is too
// long for the device), then the promisc bits.
func (v *VF) setMulticast(ctx context.Context, f ifnet.Flags, list []net.HardwareAddr) error {
	ctxv := mlxhw.NICVportContext{ListType: mlxhw.ListMC}
	if len(list) <= v.maxMC() {
		for _, a := range list {
			var m [6]byte
			copy(m[:], a)
			ctxv.Addresses = append(ctxv.Addresses, m)
		}
	}
	if err := v.cmd.exec(ctx, &mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectAddressesList, Ctx: ctxv}, nil); err != nil {
		return err
	}
	return v.setPromisc(ctx, v.promiscFor(f, len(list)))
}

// Detach tears the VF down in the reverse of bring-up: the interface
// leaves the registry, the send queues drain, every object is destroyed,
// TEARDOWN_HCA, every page is reclaimed, DISABLE_HCA, and all memory is
// freed. Commands that fail (device gone, timed out) do not stop it; the
// first failure is returned.
func (v *VF) Detach(ctx context.Context) error {
	v.cfgMu.Lock()
	if v.detached {
		v.cfgMu.Unlock()
		return ErrClosed
	}
	v.detached = true
	v.cfgMu.Unlock()
	return v.unwind(ctx)
}

// Surprise handles a device that vanished: no command is sent, the
// interface is detached, outstanding frames are counted lost, every buffer
// is freed. It never blocks on the device. Calling it during or after
// Detach only cuts a running teardown short.
func (v *VF) Surprise() {
	v.markGone()
	v.cfgMu.Lock()
	if v.detached {
		v.cfgMu.Unlock()
		return
	}
	v.detached = true
	v.cfgMu.Unlock()
	v.qsReady.Store(false)
	// Should the function still answer (the bus went, not the device),
	// stop its DMA before the memory goes back: a config write never
	// blocks, and on a vanished function it is simply dropped.
	pci.SetCommand(v.dev.Config, 0, pci.CommandMaster)
	if ifp := v.ifp.Load(); ifp != nil {
		ifp.SetRunning(false)
		ifp.SetLinkState(ifnet.LinkDown)
		if !ifp.Detached() {
			_ = v.cfg.Registry.Detach(ifp)
		}
	}
	v.undo = nil
	v.stopGoroutines()
	v.releaseMemory()
}

// markGone records that the device is gone: waits on it end at once.
func (v *VF) markGone() {
	v.goneOnce.Do(func() {
		close(v.gone)
		if v.cmd != nil {
			v.cmd.done.Signal()
		}
	})
}
