package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx"
	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vpci"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
	"github.com/hvguest/hvguest/pci/hvpci"
	"github.com/hvguest/hvguest/pci/hvpci/vpciwire"
	"github.com/hvguest/hvguest/pci/shmio"
	"github.com/hvguest/hvguest/tools/hvsim/internal/testbed"
)

// The VF across processes: `hvsim serve -vf FILE` offers a vPCI bus with
// an mlx-lite VF whose registers, configuration window and MSI-X messages
// travel through a pci/shmio channel in FILE (guest RAM, which the VF
// DMAs into, is in the synic file already), and `hvsim guest -vf FILE`
// runs the VF driver and hn0 in transparent mode over it.

const (
	serveVFSerial   = 0x5eed
	serveWindowBase = 0xF000_0000
	vfReqSlots      = 256
	vfIrqSlots      = 256
	vfMaxVector     = 63
)

// vfFileSize is the channel file's size: a power of two (a PCI BAR size,
// for QEMU's ivshmem) that holds the channel.
func vfFileSize() int {
	n := 4096
	for n < shmio.Size(vfReqSlots, vfIrqSlots) {
		n *= 2
	}
	return n
}

// servedVF is the host's VF: the vPCI bus, the channel that carries the
// registers of whichever device model is plugged in now, and that model on
// the switch. A live migration replaces the model (a new VF, as a host
// hands the guest after a move).
type servedVF struct {
	ch   *shmio.Host
	vbus *vpci.Bus
	nic  *netvsp.Device
	sw   *vswitch.Switch
	ram  kernel.PhysMem
	log  *slog.Logger
	mem  []byte

	// The plugged model (nil between a withdrawal and the next offer);
	// written by offer/withdraw (serve's goroutines, one at a time), read
	// by the channel's pump and the model's interrupts.
	cur  atomic.Pointer[vfModel]
	slot vpciwire.Slot
	// Counters of the models that were unplugged.
	gone struct{ tx, rx, violations uint64 }
}

// wirePort joins a device model to the switch (it is the model's Wire
// and the switch's port). sp is published once after Attach and cleared
// when the model is unplugged.
type wirePort struct {
	dev *mlxdev.Device
	sp  atomic.Pointer[vswitch.SwitchPort]
}

func (p *wirePort) Deliver(b *packet.Batch) { p.dev.Deliver(b) }

func (p *wirePort) Transmit(b *packet.Batch) {
	if sp := p.sp.Load(); sp != nil {
		sp.Input(b)
		return
	}
	b.Free()
}

// vfModel is one plugged device model and its switch port.
type vfModel struct {
	dev  *mlxdev.Device
	sp   *vswitch.SwitchPort
	port *wirePort
}

// vfHandler answers the guest's accesses: BAR 0 is the plugged model's
// registers (all-ones between models, as an ejected function reads), the
// configuration window the vPCI server's.
type vfHandler struct {
	s   *servedVF
	win pci.MMIO
}

func (h vfHandler) Read(space int, off uint64, size int) uint64 {
	if space == shmio.SpaceConfigWindow && size <= 4 {
		return uint64(h.win.ReadMMIO(off, size))
	}
	m := h.s.cur.Load()
	switch {
	case m == nil || space != 0:
	case size == 4:
		return uint64(m.dev.BAR(0).Read32(off))
	case size == 8:
		return m.dev.BAR(0).Read64(off)
	}
	return ^uint64(0)
}

func (h vfHandler) Write(space int, off uint64, size int, v uint64) {
	if space == shmio.SpaceConfigWindow && size <= 4 {
		h.win.WriteMMIO(off, size, uint32(v))
		return
	}
	m := h.s.cur.Load()
	switch {
	case m == nil || space != 0:
	case size == 4:
		m.dev.BAR(0).Write32(off, uint32(v))
	case size == 8:
		m.dev.BAR(0).Write64(off, v)
	}
}

// serveVF offers the vPCI bus and a first VF, associated with nic.
func serveVF(path string, srv *host.Server, ram kernel.PhysMem, sw *vswitch.Switch, nic *netvsp.Device, log *slog.Logger) (*servedVF, error) {
	mem, err := kernel.MapSharedFile(path, vfFileSize(), true)
	if err != nil {
		return nil, err
	}
	s := &servedVF{mem: mem, nic: nic, sw: sw, ram: ram, log: log}
	s.vbus = vpci.New(vpci.Config{EjectTimeout: 10 * time.Second, Logger: log.With("dev", "vpci")})
	if err := srv.AddDevice(s.vbus); err != nil {
		kernel.UnmapShared(mem)
		return nil, err
	}
	if s.ch, err = shmio.NewHost(mem, vfReqSlots, vfIrqSlots, vfHandler{s: s, win: s.vbus.Window(serveWindowBase)}); err != nil {
		kernel.UnmapShared(mem)
		return nil, err
	}
	if err := s.offer(true); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// offer plugs a fresh model: on the switch, as the NIC's VF port, the
// association, then the vPCI function (the association first, as
// OpenVMM orders it).
func (s *servedVF) offer(first bool) error {
	m := &vfModel{port: &wirePort{}}
	dev, err := mlxdev.New(mlxdev.Config{Mem: s.ram, MAC: testbed.GuestMAC, Serial: serveVFSerial, Wire: m.port,
		Interrupt: func(v int) { s.ch.Interrupt(uint32(v)) }, Logger: s.log.With("dev", "mlxdev")})
	if err != nil {
		return err
	}
	m.dev, m.port.dev = dev, dev
	if m.sp, err = s.sw.Attach("vf", m.port, vswitch.VLANConfig{}); err != nil {
		dev.Close()
		return err
	}
	m.port.sp.Store(m.sp)
	if err := s.nic.SetVFPort(m.sp); err != nil {
		m.sp.Detach()
		dev.Close()
		return err
	}
	s.cur.Store(m)
	s.nic.SetVF(true, serveVFSerial)
	if first {
		s.slot, err = s.vbus.AddFunction(dev)
	} else {
		err = s.vbus.AddFunctionAt(s.slot, dev)
	}
	return err
}

// withdraw is a planned removal: the data path back to synthetic and the
// association withdrawn (SetVF(false) does both, waiting for frames on
// their way to the VF), a pause, then the vPCI eject, which returns after
// the guest's EJECTION_COMPLETE; then the model goes.
func (s *servedVF) withdraw(ejectDelay time.Duration) error {
	m := s.cur.Load()
	if m == nil {
		return nil
	}
	s.nic.SetVF(false, serveVFSerial)
	time.Sleep(ejectDelay)
	err := s.vbus.Eject(s.slot)
	s.nic.SetVFPort(nil)
	s.cur.Store(nil)
	m.unplug(s)
	return err
}

func (m *vfModel) unplug(s *servedVF) {
	m.port.sp.Store(nil)
	m.sp.Detach()
	st := m.dev.Stats()
	s.gone.tx += st.TxPackets
	s.gone.rx += st.RxPackets
	s.gone.violations += uint64(st.Violations)
	m.dev.Close()
}

// migrate performs n live migrations, every apart, once the guest has
// taken the first VF: withdraw, a while on the synthetic path, a new VF;
// each waits until the guest has switched to the new one.
func (s *servedVF) migrate(ctx context.Context, w io.Writer, n int, every time.Duration) {
	taken := func() bool { return s.nic.State().DataPath == nvsp.DataPathVF }
	wait := func(what string) bool {
		for deadline := time.Now().Add(30 * time.Second); !taken(); time.Sleep(5 * time.Millisecond) {
			if ctx.Err() != nil || time.Now().After(deadline) {
				fmt.Fprintf(w, "host: migration stopped: the guest did not take %s\n", what)
				return false
			}
		}
		return true
	}
	if !wait("the first VF") {
		return
	}
	for i := range n {
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return
		}
		start := time.Now()
		if err := s.withdraw(100 * time.Millisecond); err != nil {
			fmt.Fprintf(w, "host: migration %d: eject: %v\n", i+1, err)
		}
		removed := time.Since(start)
		time.Sleep(120 * time.Millisecond) // the move: on the synthetic path meanwhile
		if err := s.offer(false); err != nil {
			fmt.Fprintf(w, "host: migration %d: offer: %v\n", i+1, err)
			return
		}
		if !wait("the new VF") {
			return
		}
		fmt.Fprintf(w, "host: migration %d: VF withdrawn and ejected in %v, the guest took the new one %v after the withdrawal\n",
			i+1, removed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "host: %d migrations done\n", n)
}

func (s *servedVF) close() {
	if m := s.cur.Swap(nil); m != nil {
		m.unplug(s)
	}
	if s.ch != nil {
		s.ch.Close()
	}
	kernel.UnmapShared(s.mem)
}

func (s *servedVF) report(w io.Writer) {
	tx, rx, vio := s.gone.tx, s.gone.rx, s.gone.violations
	cmds := uint64(0)
	if m := s.cur.Load(); m != nil {
		ds := m.dev.Stats()
		tx, rx, vio, cmds = tx+ds.TxPackets, rx+ds.RxPackets, vio+uint64(ds.Violations), ds.Commands
		for i, v := range m.dev.Violations() {
			if i == 3 {
				break
			}
			fmt.Fprintf(w, "host: VF model violation: %v\n", v)
		}
	}
	cs := s.ch.Stats()
	fmt.Fprintf(w, "host: VF models tx %d rx %d frames, %d commands (current model), %d violations; channel %d reads %d writes %d interrupts (%d bad requests)\n",
		tx, rx, cmds, vio, cs.Reads, cs.Writes, cs.Interrupts, cs.BadRequests)
}

// guestVF is the guest's side: the channel, the vPCI bus driver over it
// and the mlx VF driver.
type guestVF struct {
	ch    *shmio.Guest
	pci   *hvpci.Driver
	bd    *mlx.BusDriver
	mem   []byte
	unmap func()
}

// newGuestVF maps the channel file and builds the vPCI and VF drivers;
// the caller connects VMBus with g.pci for hvpci.Class.
func newGuestVF(path string, reg *ifnet.Registry, ram kernel.Memory, log *slog.Logger) (*guestVF, error) {
	g := &guestVF{}
	if pciAddr, ok := strings.CutPrefix(path, "pci:"); ok {
		// Inside a VM: the channel is an ivshmem device's BAR 2.
		bar, err := mapIvshmem(pciAddr, shmioMagic)
		if err != nil {
			return nil, err
		}
		g.mem, g.unmap = bar.Mem(), func() { bar.Close() }
	} else {
		mem, err := kernel.MapSharedFile(path, vfFileSize(), false)
		if err != nil {
			return nil, err
		}
		g.mem, g.unmap = mem, func() { kernel.UnmapShared(mem) }
	}
	mem := g.mem
	var err error
	var bd atomic.Pointer[mlx.BusDriver]
	if g.ch, err = shmio.NewGuest(mem, shmio.GuestConfig{MaxVector: vfMaxVector, OnInterrupt: func(v uint32) {
		if b := bd.Load(); b != nil {
			b.Interrupt(serveVFSerial, int(v))
		}
	}}); err != nil {
		g.unmap()
		return nil, err
	}
	win := g.ch.ConfigWindow()
	if g.pci, err = hvpci.NewDriver(hvpci.Config{
		Window: func(tlfs.GUID) (hvpci.Window, error) { return hvpci.MMIOWindow(serveWindowBase, win), nil },
		MapBAR: func(_ *hvpci.Function, bar int, _, size uint64) (pci.BAR, error) { return g.ch.BAR(bar, size), nil },
		MMIO:   []hvpci.MMIORange{{Base: 0xF800_0000, Size: 64 << 20}, {Base: 0x10_0000_0000, Size: 1 << 30}},
		Logger: log.With("dev", "hvpci"),
	}); err != nil {
		g.close()
		return nil, err
	}
	if g.bd, err = mlx.NewBusDriver(mlx.BusConfig{
		VF:  mlx.Config{Name: "mlx", Registry: reg, Memory: ram, Logger: log.With("dev", "mlx")},
		Bus: g.pci,
	}); err != nil {
		g.close()
		return nil, err
	}
	bd.Store(g.bd)
	return g, nil
}

func (g *guestVF) close() {
	if g.bd != nil {
		g.bd.Close(context.Background())
	}
	if g.ch != nil {
		g.ch.Close()
	}
	g.unmap()
}
