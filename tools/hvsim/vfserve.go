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

// servedVF is the host's VF: the device model on the vPCI bus and the
// switch, and the channel that carries its registers.
type servedVF struct {
	ch   *shmio.Host
	dev  *mlxdev.Device
	sp   *vswitch.SwitchPort
	port *wirePort
	mem  []byte
}

// wirePort joins the device model to the switch (it is the model's Wire
// and the switch's port). sp is published once after Attach.
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

// vfHandler answers the guest's accesses: BAR 0 is the model's registers,
// the configuration window is the vPCI server's.
type vfHandler struct {
	dev *mlxdev.Device
	win pci.MMIO
}

func (h vfHandler) Read(space int, off uint64, size int) uint64 {
	switch {
	case space == 0 && size == 4:
		return uint64(h.dev.BAR(0).Read32(off))
	case space == 0 && size == 8:
		return h.dev.BAR(0).Read64(off)
	case space == shmio.SpaceConfigWindow && size <= 4:
		return uint64(h.win.ReadMMIO(off, size))
	}
	return ^uint64(0)
}

func (h vfHandler) Write(space int, off uint64, size int, v uint64) {
	switch {
	case space == 0 && size == 4:
		h.dev.BAR(0).Write32(off, uint32(v))
	case space == 0 && size == 8:
		h.dev.BAR(0).Write64(off, v)
	case space == shmio.SpaceConfigWindow && size <= 4:
		h.win.WriteMMIO(off, size, uint32(v))
	}
}

// serveVF offers the vPCI bus and its VF, associated with nic.
func serveVF(path string, srv *host.Server, ram kernel.PhysMem, sw *vswitch.Switch, nic *netvsp.Device, log *slog.Logger) (*servedVF, error) {
	mem, err := kernel.MapSharedFile(path, vfFileSize(), true)
	if err != nil {
		return nil, err
	}
	vbus := vpci.New(vpci.Config{EjectTimeout: 10 * time.Second, Logger: log.With("dev", "vpci")})
	if err := srv.AddDevice(vbus); err != nil {
		kernel.UnmapShared(mem)
		return nil, err
	}
	s := &servedVF{mem: mem, port: &wirePort{}}
	var ch atomic.Pointer[shmio.Host]
	dev, err := mlxdev.New(mlxdev.Config{Mem: ram, MAC: testbed.GuestMAC, Serial: serveVFSerial, Wire: s.port,
		Interrupt: func(v int) {
			if c := ch.Load(); c != nil {
				c.Interrupt(uint32(v))
			}
		},
		Logger: log.With("dev", "mlxdev")})
	if err != nil {
		kernel.UnmapShared(mem)
		return nil, err
	}
	s.dev, s.port.dev = dev, dev
	if s.ch, err = shmio.NewHost(mem, vfReqSlots, vfIrqSlots, vfHandler{dev: dev, win: vbus.Window(serveWindowBase)}); err != nil {
		s.close()
		return nil, err
	}
	ch.Store(s.ch)
	if s.sp, err = sw.Attach("vf0", s.port, vswitch.VLANConfig{}); err != nil {
		s.close()
		return nil, err
	}
	s.port.sp.Store(s.sp)
	if err := nic.SetVFPort(s.sp); err != nil {
		s.close()
		return nil, err
	}
	nic.SetVF(true, serveVFSerial)
	if _, err := vbus.AddFunction(dev); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *servedVF) close() {
	if s.ch != nil {
		s.ch.Close()
	}
	if s.sp != nil {
		s.sp.Detach()
	}
	if s.dev != nil {
		s.dev.Close()
	}
	kernel.UnmapShared(s.mem)
}

func (s *servedVF) report(w io.Writer) {
	ds, cs := s.dev.Stats(), s.ch.Stats()
	fmt.Fprintf(w, "host: VF model tx %d rx %d frames, %d commands, %d violations; channel %d reads %d writes %d interrupts (%d bad requests)\n",
		ds.TxPackets, ds.RxPackets, ds.Commands, ds.Violations, cs.Reads, cs.Writes, cs.Interrupts, cs.BadRequests)
	for i, v := range s.dev.Violations() {
		if i == 3 {
			break
		}
		fmt.Fprintf(w, "host: VF model violation: %v\n", v)
	}
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
