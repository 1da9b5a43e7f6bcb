package main

// serve and guest: the simulated host and a guest in two processes over a
// shared-memory file (the transport the QEMU image uses through ivshmem).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/hvguest/hvguest/pci/hvpci"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/tools/hvsim/internal/testbed"
)

// The station the served switch carries: it answers ARP and ping.
var (
	serveStationMAC = vswitch.MAC{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	serveStationIP  = netip.MustParseAddr("192.0.2.2")
	serveGuestIP    = netip.MustParseAddr("192.0.2.1")
)

// migrations is serve's live-migration plan for its VF.
type migrations struct {
	n     int
	every time.Duration
}

func serve(ctx context.Context, w io.Writer, log *slog.Logger, path string, pages int, tap, vfPath string, mig migrations, opts ...synic.SharedOption) error {
	if path == "" {
		return fmt.Errorf("%w: serve needs -shm FILE", errUsage)
	}
	var late synic.LateHandler
	sh, err := synic.CreateShared(path, pages, &late, opts...)
	if err != nil {
		return err
	}
	defer sh.Close()
	srv, err := host.NewServer(host.Config{Memory: sh.RAM(), ConnIDs: host.ConnIDCompact, Logger: log.With("side", "host")})
	if err != nil {
		return err
	}
	defer srv.Close()
	late.Set(srv)
	if err := srv.Attach(sh.Host()); err != nil {
		return err
	}
	dev := echo.New(echo.Options{})
	if err := srv.AddDevice(dev); err != nil {
		return err
	}
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	// The station is on the switch before the NIC is offered: the guest
	// may open the NIC and send at once.
	st, err := vswitch.NewStation(sw, vswitch.StationConfig{Name: "station", MAC: serveStationMAC, IP: serveStationIP})
	if err != nil {
		return err
	}
	if tap != "" {
		tp, err := vswitch.NewTAPPort(sw, vswitch.TAPConfig{Name: tap})
		if err != nil {
			return fmt.Errorf("serve: TAP uplink %s: %w", tap, err)
		}
		defer tp.Close()
		fmt.Fprintf(w, "host: switch uplinked to TAP %s (give it an address in 192.0.2.0/24 to reach the guest)\n", tap)
	}
	nic, err := netvsp.New(netvsp.Config{MAC: testbed.GuestMAC, Switch: sw, Logger: log.With("side", "host", "dev", "netvsp")})
	if err != nil {
		return err
	}
	if err := srv.AddDevice(nic); err != nil {
		return err
	}
	var vf *servedVF
	if vfPath != "" {
		if vf, err = serveVF(vfPath, srv, sh.RAM(), sw, nic, log.With("side", "host")); err != nil {
			return fmt.Errorf("serve: VF: %w", err)
		}
		defer vf.close()
		fmt.Fprintf(w, "host: vPCI bus with an mlx-lite VF (serial %#x) whose registers travel through %s\n", serveVFSerial, vfPath)
	}
	fmt.Fprintf(w, "host: serving %s (%d pages of guest RAM): echo device, synthetic NIC %v on a switch with station %v (%v)\n",
		path, pages, testbed.GuestMAC, serveStationIP, serveStationMAC)
	fmt.Fprintf(w, "host: run: hvsim guest -shm %s\n", path)
	if vf != nil && mig.n > 0 {
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); vf.migrate(mctx, w, mig.n, mig.every) }()
		defer func() { stop(); <-done }() // before vf.close, which runs later
	}
	select {
	case <-sh.Done():
		fmt.Fprintln(w, "host: guest detached")
	case <-ctx.Done():
	}
	es := dev.Stats()
	fmt.Fprintf(w, "host: echo device saw %d packets, %d bytes, sent %d replies, %d errors\n", es.Packets, es.Bytes, es.Replies, es.Errors)
	ns, ss := nic.Stats(), st.Stats()
	fmt.Fprintf(w, "host: netvsp tx %d rx %d frames; station got %d frames, sent %d ARP replies\n", ns.TxFrames, ns.RxFrames, ss.Frames, ss.ARPReplies)
	if vf != nil {
		vf.report(w)
	}
	return nil
}

// guest attaches to `hvsim serve`: echo round trips, then hn0 up, printed,
// an ARP exchange with the host's station through it and pings of the
// station, each reply checked.
func guest(w io.Writer, log *slog.Logger, sg *synic.SharedGuest, packets, size, pings int, pingFor time.Duration, vfPath string) error {
	ctx := context.Background()
	reg := ifnet.NewRegistry()
	defer reg.Close()
	drv, err := netvsc.NewDriver(netvsc.Config{Memory: sg.RAM(), Registry: reg, RecvBufferSize: 4 << 20, SendBufferSize: 1 << 20,
		Logger: log.With("side", "guest", "dev", "hn")})
	if err != nil {
		return err
	}
	found := make(offers, 1)
	drivers := map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: found, netvsc.Class: drv}
	var vf *guestVF
	if vfPath != "" {
		if vf, err = newGuestVF(vfPath, reg, sg.RAM(), log.With("side", "guest")); err != nil {
			return fmt.Errorf("guest: VF channel: %w", err)
		}
		drivers[hvpci.Class] = vf.pci
	}
	bus, err := vmbus.Connect(ctx, vmbus.Config{Port: sg.Guest(), Memory: sg.RAM(), Logger: log.With("side", "guest")}, drivers)
	if err != nil {
		return err
	}
	defer bus.Close(ctx)
	if vf != nil {
		defer vf.close() // before the bus closes: the VF's teardown still reaches the device
	}
	fmt.Fprintf(w, "guest: connected, VMBus protocol %v\n", bus.Version())
	if packets > 0 {
		if err := runEcho(w, found, packets, size); err != nil {
			return err
		}
	}
	var hn *netvsc.Device
	for deadline := time.Now().Add(10 * time.Second); hn == nil; time.Sleep(time.Millisecond) {
		if errs := drv.Errors(); len(errs) > 0 {
			return errs[0]
		}
		if d := drv.Devices(); len(d) > 0 && !d[0].Interface().Detached() {
			hn = d[0]
		} else if time.Now().After(deadline) {
			return errors.New("guest: no synthetic NIC offered (is the host an older hvsim serve?)")
		}
	}
	ifp := hn.Interface()
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		return err
	}
	info := hn.Info()
	fmt.Fprintf(w, "guest: %s up: NVSP %v, %v\n", ifp.Name(), info.NVSP, info.NDIS)
	testbed.WriteIfconfig(w, ifp, "")
	mac, rtt, err := arping(ifp, serveGuestIP, serveStationIP)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "guest: ARP through %s: %v is-at %v (%v)\n", ifp.Name(), serveStationIP, mac, rtt.Round(time.Microsecond))
	if vf != nil {
		if err := waitVFActive(w, hn, 15*time.Second); err != nil {
			return err
		}
	}
	before := hn.Stats()
	if pings > 0 {
		// Rounds of pings until pingFor has passed (at least one), each
		// reply checked: a live migration on the host loses none.
		var r pingResult
		for start := time.Now(); r.Sent == 0 || time.Since(start) < pingFor; {
			rr, err := ping(ifp, serveGuestIP, serveStationIP, mac, pings, 512, 32, 10*time.Second)
			r.Sent, r.Replies, r.Elapsed = r.Sent+rr.Sent, r.Replies+rr.Replies, r.Elapsed+rr.Elapsed
			if err != nil {
				return fmt.Errorf("%w (after %d pings)", err, r.Sent-rr.Sent)
			}
		}
		fmt.Fprintf(w, "guest: %d pings of 512 bytes through %s: %d replies, payloads intact, %.1f µs/ping (32 in flight)\n",
			r.Sent, ifp.Name(), r.Replies, float64(r.Elapsed.Microseconds())/float64(r.Sent))
		if vf != nil {
			st := hn.Stats()
			tx, rx := st.VFTxPackets-before.VFTxPackets, st.VFRxPackets-before.VFRxPackets
			fmt.Fprintf(w, "guest: through the VF: %d sent, %d received (synthetic: %d sent, %d received)\n",
				tx, rx, st.TxPackets-before.TxPackets, st.RxPackets-before.RxPackets)
			if tx+st.TxPackets-before.TxPackets < uint64(r.Sent) || tx == 0 || rx == 0 {
				return fmt.Errorf("guest: the pings did not take the VF (%d sent, %d received through it)", tx, rx)
			}
			vs := hn.VFStatus()
			fmt.Fprintf(w, "guest: %s: VF %s %s, association generation %d\n", ifp.Name(), vs.VF, vs.State, vs.Association.Generation)
		}
	}
	return nil
}

// waitVFActive waits for hn's transparent VF to take the data path (the
// 2 s attach wait included) and prints it.
func waitVFActive(w io.Writer, hn *netvsc.Device, d time.Duration) error {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		st := hn.VFStatus()
		if st.State == netvsc.VFActive {
			fmt.Fprintf(w, "guest: %s: VF %s active (serial %#x, association generation %d), transmit to %s\n",
				hn.Interface().Name(), st.VF, st.Serial, st.Association.Generation, st.TxTarget)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("guest: the VF did not become active: %+v", st)
		}
	}
}

// arping sends an ARP request for target out of ifp and waits for the
// answer on ifp's input.
func arping(ifp *ifnet.Interface, self, target netip.Addr) (net.HardwareAddr, time.Duration, error) {
	got := make(chan net.HardwareAddr, 1)
	ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		for _, p := range b.Packets() {
			f := p.Bytes()
			if len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == 0x0806 && binary.BigEndian.Uint16(f[20:22]) == 2 &&
				netip.AddrFrom4([4]byte(f[28:32])) == target {
				select {
				case got <- net.HardwareAddr(append([]byte(nil), f[22:28]...)):
				default:
				}
			}
		}
		b.Free()
	})
	defer ifp.SetInput(nil)
	f := make([]byte, 42)
	copy(f[0:6], vswitch.Broadcast[:])
	copy(f[6:12], ifp.MAC())
	binary.BigEndian.PutUint16(f[12:14], 0x0806)
	binary.BigEndian.PutUint16(f[14:16], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:18], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:22], 1) // request
	copy(f[22:28], ifp.MAC())
	s4, t4 := self.As4(), target.As4()
	copy(f[28:32], s4[:])
	copy(f[38:42], t4[:])
	start := time.Now()
	for try := 0; try < 5; try++ {
		p := packet.New(packet.DefaultHeadroom, len(f))
		if err := p.SetBytes(f); err != nil {
			return nil, 0, err
		}
		b := packet.NewBatch(1)
		b.Add(p)
		if _, err := ifp.Transmit(b); err != nil {
			b.Free()
			return nil, 0, fmt.Errorf("guest: ARP request: %w", err)
		}
		select {
		case mac := <-got:
			return mac, time.Since(start), nil
		case <-time.After(time.Second):
		}
	}
	return nil, 0, fmt.Errorf("guest: no ARP reply from %v", target)
}
