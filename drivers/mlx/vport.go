package mlx

import (
	"context"
	"net"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
)

// Host-initiated vport changes (spec §4.1, §7.11): with the
// nic_vport_change_event capability the driver arms NIC_VPORT_CHANGE for
// address and MTU changes; the event is one-shot, so after each one the
// driver re-reads the context, publishes a new permanent address on the
// interface (EventMAC: hn re-checks its pairing) and arms it again.

const vportEvents = mlxhw.EventOnUCAddress | mlxhw.EventOnMTU

// armVportChange arms the event, if the device has it.
func (v *VF) armVportChange(ctx context.Context) error {
	if !v.gen.NICVportChangeEvent {
		return nil
	}
	return v.cmd.exec(ctx, &mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectChangeEvent,
		Ctx: mlxhw.NICVportContext{ArmChangeEvent: true, EventOn: vportEvents}}, nil)
}

// vportChanged runs on the control goroutine after a NIC_VPORT_CHANGE.
func (v *VF) vportChanged(ctx context.Context) {
	v.stats.vportEvents.Add(1)
	var q mlxhw.QueryNICVportContextOut
	if err := v.cmd.exec(ctx, &mlxhw.QueryNICVportContextIn{}, &q); err != nil {
		v.log.Warn("mlx: query vport context after a change event", "err", err)
		return
	}
	if ifp := v.ifp.Load(); ifp != nil {
		mac := q.Ctx.PermanentAddress
		if err := ifp.SetHardwareAddr(net.HardwareAddr(mac[:])); err != nil {
			// A device handing out a multicast or zero address is broken;
			// the interface keeps the one it has.
			v.deviceError("vport change", err)
		}
		if hw := int(q.Ctx.MTU) - mlxhw.MTUOverhead; hw < ifp.MTU() {
			v.log.Warn("mlx: the host lowered the hardware MTU below the interface's", "hw_mtu", hw, "mtu", ifp.MTU())
		}
	}
	if err := v.armVportChange(ctx); err != nil {
		v.log.Warn("mlx: re-arm vport change events", "err", err)
	}
}
