package mlxdev

import (
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/pci"
)

// bar0 is BAR0 as the driver sees it (spec §7.2): the init segment, the
// MSI-X table and PBA, and the UAR pages. Every access takes Device.mu.
type bar0 struct{ d *Device }

// Firmware identity the model reports (§7.3, sim).
const (
	fwMajor       = 16
	fwMinor       = 35
	fwSub         = 0x07d0
	healthTick    = 100 * time.Millisecond
	uarAreaStart  = mlxhw.FirstUAR * mlxhw.UARPageSize
	cmdqGeometryL = mlxhw.LogCmdqSize<<mlxhw.LogCmdqSizeShift | mlxhw.LogCmdqStride
)

func (b *bar0) Len() uint64 { return mlxhw.BAR0Size }

func (b *bar0) Read32(off uint64) uint32 {
	if off%4 != 0 || off >= mlxhw.BAR0Size {
		return ^uint32(0)
	}
	d := b.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return mlxhw.SurpriseRemovalValue
	}
	return d.read32Locked(off)
}

func (b *bar0) Read64(off uint64) uint64 {
	if off%8 != 0 || off >= mlxhw.BAR0Size {
		return ^uint64(0)
	}
	d := b.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return ^uint64(0)
	}
	if isMSIX(off) { // a PCI structure: little-endian quadwords
		return uint64(d.read32Locked(off+4))<<32 | uint64(d.read32Locked(off))
	}
	return uint64(d.read32Locked(off))<<32 | uint64(d.read32Locked(off+4))
}

// isMSIX reports whether off is in the MSI-X table or PBA, which PCI
// defines little-endian (the device's own registers are big-endian).
func isMSIX(off uint64) bool {
	return off >= mlxhw.MSIXTableOff && off < mlxhw.MSIXPBAOff+8
}

func (b *bar0) Write32(off uint64, v uint32) {
	if off%4 != 0 || off >= mlxhw.BAR0Size {
		return
	}
	d := b.d
	d.mu.Lock()
	if d.removed || d.closed {
		d.mu.Unlock()
		return
	}
	tx := d.beginTx()
	d.write32Locked(off, v, false)
	d.endTx(tx)
}

func (b *bar0) Write64(off uint64, v uint64) {
	if off%8 != 0 || off >= mlxhw.BAR0Size {
		return
	}
	d := b.d
	d.mu.Lock()
	if d.removed || d.closed {
		d.mu.Unlock()
		return
	}
	tx := d.beginTx()
	if off >= uarAreaStart {
		d.uarWrite64Locked(off, uint32(v>>32), uint32(v))
	} else if isMSIX(off) {
		d.write32Locked(off, uint32(v), false)
		d.write32Locked(off+4, uint32(v>>32), false)
	} else {
		d.write32Locked(off, uint32(v>>32), false)
		d.write32Locked(off+4, uint32(v), false)
	}
	d.endTx(tx)
}

// now is the device clock (mu held or not; the clock is safe).
func (d *Device) now() time.Time { return d.clock.Now() }

func (d *Device) healthCounterLocked() uint32 {
	if d.hstall {
		return d.hfrozen
	}
	el := d.now().Sub(d.epoch) - d.hskip
	return uint32(el/healthTick) & mlxhw.HealthCounterMask
}

func (d *Device) read32Locked(off uint64) uint32 {
	switch {
	case off == mlxhw.RegFWRev, off == mlxhw.RegHealthFWVer:
		return mlxhw.FWRev(fwMajor, fwMinor)
	case off == mlxhw.RegCmdIfRevFWSub:
		return mlxhw.CmdIfRev<<16 | fwSub
	case off == mlxhw.RegCmdqAddrH:
		return d.cmdqH
	case off == mlxhw.RegCmdqAddrLSz:
		return d.cmdqL&mlxhw.CmdqAddrMask | uint32(d.nicIfc&mlxhw.NICIfcMask)<<mlxhw.NICIfcShift | cmdqGeometryL
	case off == mlxhw.RegInitializing:
		if d.now().Before(d.initUntil) {
			return mlxhw.InitializingBit
		}
		return 0
	case off == mlxhw.RegHealthSynd:
		return uint32(d.hsynd)<<16 | uint32(d.hextSynd)
	case off == mlxhw.RegInternalTimerH, off == mlxhw.RegInternalTimerL:
		ns := uint64(d.now().Sub(d.epoch))
		if off == mlxhw.RegInternalTimerH {
			return uint32(ns >> 32)
		}
		return uint32(ns)
	case off == mlxhw.RegHealthCounter:
		return d.healthCounterLocked()
	case off >= mlxhw.MSIXTableOff && off < mlxhw.MSIXTableOff+mlxhw.MSIXVectors*pci.MSIXEntrySize:
		i := (off - mlxhw.MSIXTableOff) / pci.MSIXEntrySize
		e := &d.msix[i]
		switch off % pci.MSIXEntrySize {
		case pci.MSIXEntryAddrLo:
			return e.addrLo
		case pci.MSIXEntryAddrHi:
			return e.addrHi
		case pci.MSIXEntryData:
			return e.data
		default:
			return e.ctrl
		}
	case off == mlxhw.MSIXPBAOff:
		return d.pba
	}
	return 0
}

// write32Locked handles a 32-bit register write; second reports that it
// is the second half of a 64-bit doorbell (unused outside the UARs).
func (d *Device) write32Locked(off uint64, v uint32, second bool) {
	switch {
	case off == mlxhw.RegCmdqAddrH:
		d.cmdqH = v
	case off == mlxhw.RegCmdqAddrLSz:
		d.writeCmdqLLocked(v)
	case off == mlxhw.RegCmdDoorbell:
		d.cmdDoorbellLocked(v)
	case off >= mlxhw.MSIXTableOff && off < mlxhw.MSIXTableOff+mlxhw.MSIXVectors*pci.MSIXEntrySize:
		i := (off - mlxhw.MSIXTableOff) / pci.MSIXEntrySize
		e := &d.msix[i]
		switch off % pci.MSIXEntrySize {
		case pci.MSIXEntryAddrLo:
			e.addrLo = v &^ 3
		case pci.MSIXEntryAddrHi:
			e.addrHi = v
		case pci.MSIXEntryData:
			e.data = v
		default:
			e.ctrl = v & pci.MSIXEntryMasked
			d.deliverPendingLocked()
		}
	case off >= uarAreaStart:
		d.uarWrite32Locked(off, v)
	default:
		d.violate(VioBadRegisterWrite, "write %#x to BAR0 offset %#x (read-only or reserved)", v, off)
	}
}

// writeCmdqLLocked is a write of cmdq_addr_l_sz (§7.3): bits 31:12 latch the
// address and configure the queue, bits 10:8 request a NIC interface state.
func (d *Device) writeCmdqLLocked(v uint32) {
	d.cmdqL = v & mlxhw.CmdqAddrMask
	d.nicIfc = uint8(v>>mlxhw.NICIfcShift) & mlxhw.NICIfcMask
	addr := d.cmdqAddr()
	if addr == 0 {
		d.violate(VioCmdq, "command queue address 0")
		d.cmdqSet = false
		return
	}
	if _, err := d.cfg.Mem.Page(addr >> 12); err != nil {
		d.violate(VioDMA, "command queue at %#x outside guest memory", addr)
	}
	d.cmdqSet = true
	d.initUntil = d.now().Add(d.cfg.InitDelay)
	if d.phase == PhaseReset {
		d.phase = PhaseCmdqReady
	}
}

func (d *Device) cmdqAddr() uint64 { return uint64(d.cmdqH)<<32 | uint64(d.cmdqL&mlxhw.CmdqAddrMask) }

// ---- MSI-X (§7.2) ----

// msixState reads the capability's control word and the command register.
func (d *Device) msixDeliverable() (enabled, maskAll, master bool) {
	ctl, cmd := d.msixCtl, d.cmdReg
	return ctl&pci.MSIXFlagsEnable != 0, ctl&pci.MSIXFlagsMaskAll != 0,
		cmd&(pci.CommandMemory|pci.CommandMaster) == pci.CommandMemory|pci.CommandMaster
}

// raise fires vector (mu held): queued for after the unlock when MSI-X is
// enabled, the function and the entry unmasked and memory and bus mastering
// on; left pending in the PBA while masked; dropped otherwise.
func (d *Device) raise(vector uint8) {
	if int(vector) >= mlxhw.MSIXVectors || d.removed {
		return
	}
	en, maskAll, master := d.msixDeliverable()
	if !en || !master {
		d.stats.InterruptsSuppressed++
		return
	}
	if maskAll || d.msix[vector].ctrl&pci.MSIXEntryMasked != 0 {
		d.pba |= 1 << vector
		d.stats.InterruptsPending++
		return
	}
	d.irq |= 1 << vector
	d.stats.Interrupts++
}

// deliverPendingLocked sends pending vectors whose masks were lifted.
func (d *Device) deliverPendingLocked() {
	if d.pba == 0 {
		return
	}
	en, maskAll, master := d.msixDeliverable()
	if !en || maskAll || !master {
		return
	}
	for i := range mlxhw.MSIXVectors {
		if d.pba&(1<<i) != 0 && d.msix[i].ctrl&pci.MSIXEntryMasked == 0 {
			d.pba &^= 1 << i
			d.irq |= 1 << i
			d.stats.Interrupts++
		}
	}
}

// configWritten is the config space hook (outside MemConfig's lock): FLR
// initiation and MSI-X unmasking.
func (d *Device) configWritten(off, size int) {
	devctl := d.expOff + 8
	if off <= devctl+1 && off+size > devctl {
		if v := d.pcfg.Read16(devctl); v&(1<<15) != 0 {
			_ = d.pcfg.SetRaw(devctl, []byte{byte(v), byte(v>>8) &^ 0x80})
			d.FLR()
			return
		}
	}
	d.mu.Lock()
	d.refreshConfigLocked()
	d.deliverPendingLocked()
	d.unlock()
}

// refreshConfigLocked caches the command register and the MSI-X control
// word, which every DMA and interrupt consults (mu held).
func (d *Device) refreshConfigLocked() {
	d.cmdReg = d.pcfg.Read16(pci.Command)
	d.msixCtl = d.pcfg.Read16(d.msixOff + pci.MSIXFlags)
}
