package vpci

import (
	"errors"
	"slices"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
)

// Failure statuses, as spec §5.1 lists them: a message the bus cannot
// parse or that names a slot with no function is BAD_DATA; a message that
// is not valid in the current state or protocol version, or one the bus
// does not implement, is NOT_SUPPORTED; an unaccepted version is
// REVISION_MISMATCH.
const (
	statusBad      = vpciwire.StatusBadData
	statusNotNow   = vpciwire.StatusNotSupported
	statusRevision = vpciwire.StatusRevisionMismatch
)

// maxInterrupts bounds the interrupts one function may hold (OpenVMM:
// 500 resources less 6 BARs).
const maxInterrupts = vpciwire.MaxMSIResources

// handler serves the bus channel.
type handler struct {
	b  *Bus
	ch *host.Channel
}

func (h *handler) Close() {
	b := h.b
	b.mu.Lock()
	if b.ch == h.ch {
		b.ch = nil
		b.resetLocked()
	}
	b.mu.Unlock()
}

// Packet implements host.Handler. Nothing the guest sends stops the
// channel: bad input is answered with a failure status when the guest
// asked for a completion, and dropped otherwise.
func (h *handler) Packet(p *ring.Packet) error {
	if p.Type != ring.TypeInBand {
		return nil
	}
	b := h.b
	b.mu.Lock()
	b.stats.Packets++
	b.mu.Unlock()
	reply, relations := h.handle(p.Payload)
	if relations {
		// OpenVMM sends the relations before the D0 entry completion.
		b.sendRelations(true)
	}
	if reply == nil {
		return nil
	}
	if !p.CompletionRequested() {
		return nil
	}
	if err := h.ch.SendCompletion(p.TransID, reply); err != nil && !errors.Is(err, host.ErrClosed) {
		return err
	}
	return nil
}

func status(s vpciwire.Status) []byte { return (&vpciwire.StatusReply{Status: s}).Encode() }

// handle runs one message and returns the completion payload (nil: none)
// and whether bus relations go out first.
func (h *handler) handle(payload []byte) (reply []byte, relations bool) {
	b := h.b
	m, err := vpciwire.DecodeFromGuest(payload)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		return h.reject(statusBad, "undecodable message", err)
	}
	if _, ok := m.(*vpciwire.QueryProtocolVersion); !ok && b.version == 0 {
		return h.reject(statusNotNow, "message before version negotiation", nil)
	}
	switch m := m.(type) {
	case *vpciwire.QueryProtocolVersion:
		if b.d0 {
			return h.reject(statusNotNow, "version query in D0", nil)
		}
		r := &vpciwire.VersionReply{Status: statusRevision, Version: m.Version}
		for _, v := range b.cfg.Versions {
			if v == m.Version {
				r.Status = vpciwire.StatusSuccess
				b.version = v
			}
		}
		return r.Encode(), false

	case *vpciwire.Bare:
		if m.MsgType == vpciwire.MsgQueryBusRelations {
			return nil, true
		}
		// BUS_D0EXIT
		if !b.d0 {
			return h.reject(statusNotNow, "D0 exit outside D0", nil)
		}
		b.d0, b.mmioBase, b.selected = false, 0, 0
		for _, f := range b.funcs {
			f.assigned, f.irqs = nil, nil
		}
		return status(vpciwire.StatusSuccess), false

	case *vpciwire.BusD0Entry:
		if b.d0 {
			return h.reject(statusNotNow, "D0 entry in D0", nil)
		}
		if m.MMIOBase == 0 || m.MMIOBase%4096 != 0 {
			return h.reject(statusBad, "config window base not page aligned", nil)
		}
		b.d0, b.mmioBase = true, m.MMIOBase
		return status(vpciwire.StatusSuccess), true

	case *vpciwire.SlotMessage:
		f := b.funcs[m.Slot]
		switch m.MsgType {
		case vpciwire.MsgQueryResourceRequirements:
			r := &vpciwire.ResourceRequirementsReply{Status: vpciwire.StatusSuccess}
			if f == nil {
				b.stats.Rejected++
				r.Status = statusBad
			} else {
				r.ProbedBAR = f.probed
			}
			return r.Encode(), false
		case vpciwire.MsgResourcesReleased:
			if f == nil {
				return h.reject(statusBad, "release of an empty slot", nil)
			}
			f.assigned, f.irqs = nil, nil
			return status(vpciwire.StatusSuccess), false
		default: // RESET_DEVICE
			if b.version < vpciwire.Version1_5 {
				return h.reject(statusNotNow, "reset before protocol 1.5", nil)
			}
			if f == nil {
				return h.reject(statusBad, "reset of an empty slot", nil)
			}
			return status(vpciwire.StatusSuccess), false
		}

	case *vpciwire.ResourcesAssigned:
		return h.assign(m), false

	case *vpciwire.CreateInterrupt:
		return h.createInterrupt(m), false

	case *vpciwire.DeleteInterrupt:
		f := b.funcs[m.Slot]
		if f == nil {
			return h.reject(statusBad, "interrupt delete on an empty slot", nil)
		}
		for i, irq := range f.irqs {
			if irq.Translate == m.Interrupt {
				f.irqs = append(f.irqs[:i], f.irqs[i+1:]...)
				return status(vpciwire.StatusSuccess), false
			}
		}
		return h.reject(statusBad, "delete of an unknown interrupt", nil)

	case *vpciwire.EjectionComplete:
		f := b.funcs[m.Slot]
		if f == nil || f.ejecting == nil {
			return h.reject(statusBad, "ejection complete without an eject", nil)
		}
		close(f.ejecting)
		f.ejecting = nil
		return nil, false

	case *vpciwire.PowerStateChange:
		f := b.funcs[m.Slot]
		if f == nil {
			return h.reject(statusBad, "power change on an empty slot", nil)
		}
		if m.State != vpciwire.PowerD0 && m.State != vpciwire.PowerD3 {
			return h.reject(statusBad, "unknown power state", nil)
		}
		return (&vpciwire.PowerStateReply{Status: vpciwire.StatusSuccess, Slot: m.Slot, State: m.State}).Encode(), false

	default: // READ_BLOCK, WRITE_BLOCK and anything else: no config blocks here
		return h.reject(statusNotNow, "unsupported message", nil)
	}
}

// reject counts and logs a refused message; called with b.mu held.
func (h *handler) reject(s vpciwire.Status, why string, err error) ([]byte, bool) {
	h.b.stats.Rejected++
	h.b.log.Debug("vpci: guest message refused", "why", why, "status", s, "err", err)
	return status(s), false
}

// assign records RESOURCES_ASSIGNED(2,3); called with b.mu held.
func (h *handler) assign(m *vpciwire.ResourcesAssigned) []byte {
	b := h.b
	switch {
	case !b.d0:
		r, _ := h.reject(statusNotNow, "resources assigned outside D0", nil)
		return r
	case m.Variant >= 2 && b.version < vpciwire.Version1_2:
		r, _ := h.reject(statusNotNow, "RESOURCES_ASSIGNED2 before protocol 1.2", nil)
		return r
	}
	f := b.funcs[m.Slot]
	if f == nil {
		r, _ := h.reject(statusBad, "resources for an empty slot", nil)
		return r
	}
	a := *m
	f.assigned = &a
	return (&vpciwire.ResourcesAssignedReply{Status: vpciwire.StatusSuccess, Slot: m.Slot, Memory: m.Memory, MSICount: m.MSICount}).Encode()
}

// createInterrupt translates CREATE_INTERRUPT(2,3) into an x86 MSI
// address/data pair aimed at the first requested processor; called with
// b.mu held.
func (h *handler) createInterrupt(m *vpciwire.CreateInterrupt) []byte {
	b := h.b
	fail := func(s vpciwire.Status, why string) []byte {
		h.reject(s, why, nil)
		return (&vpciwire.CreateInterruptReply{Status: s}).Encode()
	}
	switch {
	case !b.d0:
		return fail(statusNotNow, "interrupt outside D0")
	case m.Variant == 2 && b.version < vpciwire.Version1_2, m.Variant == 3 && b.version < vpciwire.Version1_4:
		return fail(statusNotNow, "interrupt message newer than the protocol")
	}
	f := b.funcs[m.Slot]
	switch {
	case f == nil:
		return fail(statusBad, "interrupt for an empty slot")
	case m.VectorCount == 0 || m.VectorCount > 32 || m.Vector > 0xFF:
		return fail(statusBad, "bad vector")
	case m.Variant != 1 && len(m.Processors) == 0:
		return fail(statusBad, "no target processor")
	case len(f.irqs) >= maxInterrupts:
		return fail(statusNotNow, "too many interrupts")
	}
	apic := uint64(0)
	if m.Variant == 1 {
		for i := range 64 {
			if m.CPUMask&(1<<i) != 0 {
				apic = uint64(i)
				break
			}
		}
	} else {
		apic = uint64(m.Processors[0])
	}
	t := vpciwire.TranslatedInterrupt{
		VectorCount: m.VectorCount,
		Data:        m.Vector | uint32(m.DeliveryMode&7)<<8,
		Address:     0xFEE00000 | (apic&0xFF)<<12,
	}
	req := *m
	req.Processors = slices.Clone(m.Processors)
	f.irqs = append(f.irqs, Interrupt{Request: req, Translate: t})
	return (&vpciwire.CreateInterruptReply{Status: vpciwire.StatusSuccess, Interrupt: t}).Encode()
}
