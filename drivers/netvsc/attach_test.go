package netvsc_test

import (
	"net"
	"runtime"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
)

func TestAttachNegotiatesNewest(t *testing.T) {
	w := newWorld(t, worldOpts{})
	info := w.dev.Info()
	if info.NVSP != nvsp.Version61 || info.NDIS != nvsp.NDIS630 {
		t.Fatalf("negotiated NVSP %s NDIS %s, want 6.1 / 6.30", info.NVSP, info.NDIS)
	}
	if got := w.ifp.MAC(); got.String() != net.HardwareAddr(hnMAC[:]).String() {
		t.Fatalf("MAC %s, want %s", got, net.HardwareAddr(hnMAC[:]))
	}
	if w.ifp.MTU() != 1500 {
		t.Fatalf("MTU %d", w.ifp.MTU())
	}
	if info.RecvSlots == 0 || info.RecvSlotSize < 68 || info.SectionSize != nvsp.SendSectionSize || info.Sections == 0 {
		t.Fatalf("buffers %+v", info)
	}
	caps := w.ifp.Capabilities()
	for _, c := range []ifnet.Cap{ifnet.CapTxCsum, ifnet.CapTxCsumIPv6, ifnet.CapTSO4, ifnet.CapTSO6, ifnet.CapRxCsum, ifnet.CapVLANHWTagging} {
		if caps&c == 0 {
			t.Errorf("capability %s missing from %s", c, caps)
		}
	}
	if tso := w.ifp.TSOLimits(); tso.MaxBytes == 0 || tso.MaxBytes > 62780 {
		t.Errorf("TSO limits %+v", tso)
	}
	st := w.nic.State()
	if st.Version != nvsp.Version61 || st.NDIS != nvsp.NDIS630 || st.MTU != 1514 ||
		st.Capabilities&(nvsp.CapSRIOV|nvsp.CapIEEE8021Q) != nvsp.CapSRIOV|nvsp.CapIEEE8021Q {
		t.Fatalf("host state %+v", st)
	}
	if st.RecvBufferID != nvsp.ReceiveBufferID || st.RNDIS != 1 {
		t.Fatalf("host state %+v", st)
	}
	if st.Offload.TCPIPv4Checksum != rndis.OffloadTxRxEnabled || st.Offload.LSOv2IPv4 != rndis.OffloadEnabled {
		t.Fatalf("offload parameters the host got: %+v", st.Offload)
	}
	if w.ifp.LinkState() != ifnet.LinkUp {
		t.Fatalf("link %s", w.ifp.LinkState())
	}
	if st.PacketFilter != rndis.PacketTypeNone {
		t.Fatalf("filter %#x before up", st.PacketFilter)
	}
	// Linux rndis_set_multicast: directed + broadcast, all-multicast once
	// a group is joined (or ALLMULTI), promiscuous alone, 0 when down.
	w.up()
	wantFilter(t, w, rndis.PacketTypeDirected|rndis.PacketTypeBroadcast)
	if err := w.ifp.Ioctl(&ifnet.AddMulti{Addr: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	wantFilter(t, w, rndis.PacketFilterDefault)
	if err := w.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagPromisc}); err != nil {
		t.Fatal(err)
	}
	wantFilter(t, w, rndis.PacketTypePromiscuous)
	if err := w.ifp.Ioctl(&ifnet.DelMulti{Addr: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagAllMulti}); err != nil {
		t.Fatal(err)
	}
	wantFilter(t, w, rndis.PacketFilterDefault)
	if err := w.ifp.Ioctl(&ifnet.SetFlags{}); err != nil {
		t.Fatal(err)
	}
	wantFilter(t, w, rndis.PacketTypeNone)
	if w.ifp.Flags()&ifnet.FlagRunning != 0 {
		t.Fatal("running while down")
	}
}

func wantFilter(t *testing.T, w *world, f rndis.PacketFilter) {
	t.Helper()
	if got := w.nic.State().PacketFilter; got != f {
		t.Fatalf("host packet filter %#x, want %#x", got, f)
	}
}

func TestAttachOldHost(t *testing.T) {
	w := newWorld(t, worldOpts{versions: []nvsp.Version{nvsp.Version2}, maxNDIS: nvsp.NDIS61})
	info := w.dev.Info()
	if info.NVSP != nvsp.Version2 || info.NDIS != nvsp.NDIS61 {
		t.Fatalf("negotiated NVSP %s NDIS %s, want 2 / 6.1", info.NVSP, info.NDIS)
	}
	st := w.nic.State()
	if st.Capabilities&nvsp.CapSRIOV != 0 {
		t.Fatalf("SR-IOV advertised at NVSP 2: %#x", st.Capabilities)
	}
	if st.Offload.UDPIPv4Checksum != rndis.OffloadNoChange {
		t.Fatalf("UDP checksum offload asked of an NVSP 2 host: %+v", st.Offload)
	}
	w.up()
	echoBothWays(t, w, 8)
}

func TestDetachLeavesNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	w := newWorld(t, worldOpts{})
	w.up()
	echoBothWays(t, w, 4)
	w.dev.Close(t.Context())
	if w.dev.Info().NVSP != 0 {
		t.Fatal("still attached")
	}
	if !w.ifp.Detached() {
		t.Fatal("interface still attached")
	}
	if st := w.nic.State(); st.Version != 0 && !st.Revoked {
		t.Fatalf("host state after detach %+v", st)
	}
	w.close()
	if n := w.ram.Allocations(); n != 0 {
		t.Fatalf("%d guest regions still allocated", n)
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base+2 })
}

func TestSetMAC(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mac := net.HardwareAddr{0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc}
	if err := w.ifp.Ioctl(&ifnet.SetMAC{MAC: mac}); err != nil {
		t.Fatal(err)
	}
	if got := w.nic.State().CurrentMAC; net.HardwareAddr(got[:]).String() != mac.String() || w.ifp.MAC().String() != mac.String() {
		t.Fatalf("host current MAC %x, interface %s", got, w.ifp.MAC())
	}
	// An MTU change re-attaches; the address set survives it.
	if err := w.ifp.Ioctl(&ifnet.SetMTU{MTU: 2000}); err != nil {
		t.Fatal(err)
	}
	if got := w.nic.State().CurrentMAC; net.HardwareAddr(got[:]).String() != mac.String() {
		t.Fatalf("host current MAC %x after re-attach", got)
	}
}
