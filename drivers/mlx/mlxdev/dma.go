package mlxdev

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
)

// DMA into guest memory (spec §7.1 P3): every access goes through
// Config.Mem by guest-physical address. An access outside guest memory, or
// any DMA while bus mastering is off, is a driver violation, never a panic;
// after surprise removal DMA silently stops. All of these run with mu held.

var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// dmaAllowed reports whether the device may master the bus now.
func (d *Device) dmaAllowed() bool {
	if d.removed {
		return false
	}
	if d.cmdReg&pci.CommandMaster == 0 {
		d.violate(VioDMA, "DMA with bus mastering disabled")
		return false
	}
	return true
}

func (d *Device) dmaRead(addr uint64, b []byte) bool {
	if !d.dmaAllowed() {
		return false
	}
	if err := kernel.CopyFromPhys(d.cfg.Mem, b, addr); err != nil {
		d.violate(VioDMA, "read of %d bytes at %#x: %v", len(b), addr, err)
		return false
	}
	return true
}

func (d *Device) dmaWrite(addr uint64, b []byte) bool {
	if !d.dmaAllowed() {
		return false
	}
	if err := kernel.CopyToPhys(d.cfg.Mem, addr, b); err != nil {
		d.violate(VioDMA, "write of %d bytes at %#x: %v", len(b), addr, err)
		return false
	}
	return true
}

// word returns the aligned dword at addr for an atomic access.
func (d *Device) word(addr uint64) (*uint32, bool) {
	if addr%4 != 0 {
		d.violate(VioDMA, "misaligned doorbell or ownership dword at %#x", addr)
		return nil, false
	}
	if !d.dmaAllowed() {
		return nil, false
	}
	p, err := d.cfg.Mem.Page(addr >> kernel.PageShift)
	if err != nil {
		d.violate(VioDMA, "dword at %#x: %v", addr, err)
		return nil, false
	}
	return (*uint32)(unsafe.Pointer(&p[addr&(kernel.PageSize-1)])), true
}

// load32 reads the big-endian dword at addr with an atomic load (doorbell
// records, §7.9 "DBR rules").
func (d *Device) load32(addr uint64) (uint32, bool) {
	w, ok := d.word(addr)
	if !ok {
		return 0, false
	}
	v := atomic.LoadUint32(w)
	if nativeLE {
		v = bits.ReverseBytes32(v)
	}
	return v, true
}

// store32 writes the big-endian dword v at addr with an atomic store (the
// dword that carries an entry's ownership, written last).
func (d *Device) store32(addr uint64, v uint32) bool {
	w, ok := d.word(addr)
	if !ok {
		return false
	}
	if nativeLE {
		v = bits.ReverseBytes32(v)
	}
	atomic.StoreUint32(w, v)
	return true
}

// publish writes a 64-byte entry (CQE, EQE, command entry) at addr: bytes
// 0..59 first, then the dword at 60 holding the ownership byte atomically.
func (d *Device) publish(addr uint64, e []byte) bool {
	if !d.dmaWrite(addr, e[:60]) {
		return false
	}
	return d.store32(addr+60, binary.BigEndian.Uint32(e[60:64]))
}

// devDMA adapts the device to mlxhw.DMA for the mailbox chain walkers.
type devDMA struct{ d *Device }

func (a devDMA) ReadDMA(addr uint64, b []byte) error {
	if !a.d.dmaRead(addr, b) {
		return errDMA
	}
	return nil
}

func (a devDMA) WriteDMA(addr uint64, b []byte) error {
	if !a.d.dmaWrite(addr, b) {
		return errDMA
	}
	return nil
}

// ring is a queue buffer described by a PAS list: entry i of size esz at
// byte i*esz, pages of pageSize bytes.
type ring struct {
	pas       []uint64
	pageSize  uint64
	pageShift uint8 // log2 of pageSize
	logSize   uint8 // log2 of the entry count
	esz       uint64
}

func (r *ring) size() uint32 { return 1 << r.logSize }

// addr returns the guest address of byte off of the buffer.
func (r *ring) addr(off uint64) uint64 {
	return r.pas[off>>r.pageShift] + off&(r.pageSize-1)
}

// entryAddr returns the address of entry (counter c).
func (r *ring) entryAddr(c uint32) uint64 {
	return r.addr(uint64(c&(r.size()-1)) * r.esz)
}

// read copies n bytes from byte offset off of the buffer, across pages.
func (d *Device) ringRead(r *ring, off uint64, b []byte) bool {
	for len(b) > 0 {
		in := r.pageSize - off&(r.pageSize-1)
		n := min(uint64(len(b)), in)
		if !d.dmaRead(r.addr(off), b[:n]) {
			return false
		}
		b = b[n:]
		off += n
	}
	return true
}
