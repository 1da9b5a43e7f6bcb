package netvsc_test

// End to end with the host steering by data path (netvsp + vswitch
// Steering): the VF is a port of the host's switch, so while hn0's data
// path is the VF, unicast for hn0 arrives through the VF (relabelled as
// hn0's) and hn0's transmit leaves through it; broadcast still arrives on
// the synthetic path; after the host takes the path back, everything is
// synthetic again (spec/vf-modes.md §1.8, §3.5, §3.6, A.3, A.9).

import (
	"net"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/net/packet"
)

func TestVFEndToEndWithHostSteering(t *testing.T) {
	w := newVFWorld(t, vfWorldOpts{})
	w.up()
	vf := newFakeVF(t, fakeVFOpts{})
	w.wire(vf)
	w.attach(vf, netvsc.VFActive)
	hnHW := net.HardwareAddr(hnMAC[:])
	fromStation := func(dst net.HardwareAddr, tag byte) {
		t.Helper()
		f := make([]byte, 80)
		copy(f, dst)
		copy(f[6:], stationMAC[:])
		f[12], f[13], f[14] = 0x08, 0x00, tag
		if !w.station.Send(f, packet.Meta{}) {
			t.Fatal("station send")
		}
	}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	// Unicast through the VF, broadcast through the synthetic path; all
	// of it is hn0's.
	for i := range 3 {
		fromStation(hnHW, byte(i))
	}
	fromStation(bcast, 9)
	for _, p := range w.recv(4) {
		if p.Meta.RcvIf != w.ifp.Index() {
			t.Fatalf("frame %d received as interface %d, not hn0", p.Bytes()[14], p.Meta.RcvIf)
		}
		p.Free()
	}
	s := w.dev.Stats()
	if s.VFRxPackets != 3 || s.RxPackets != 1 || s.RxSynthWhileVF != 1 || vf.ifp.Stats().InPackets != 3 || w.ifp.Stats().InPackets != 4 {
		t.Fatalf("per-path receive %+v, VF in %d, hn in %d", s, vf.ifp.Stats().InPackets, w.ifp.Stats().InPackets)
	}
	// hn0's transmit leaves through the VF's port and reaches the station.
	w.send([][]byte{frame(stationHW, 0x21, 64), frame(stationHW, 0x22, 64)}, nil)
	got := w.stationFrames(2)
	if got[0].Data[14] != 0x21 || got[1].Data[14] != 0x22 || w.dev.Stats().VFTxPackets != 2 || w.dev.Stats().TxPackets != 0 {
		t.Fatalf("transmit: station got %d, stats %+v", len(got), w.dev.Stats())
	}

	// Planned removal: the host switches back and withdraws; unicast is
	// synthetic again even before the device leaves.
	w.setVF(false, 0)
	waitFor(t, "transmit synthetic", func() bool { return w.dev.VFStatus().TxTarget == "synthetic" })
	if w.hostPath() != nvsp.DataPathSynthetic {
		t.Fatalf("host path %d", w.hostPath())
	}
	fromStation(hnHW, 0x31)
	if p := w.recv(1)[0]; p.Bytes()[14] != 0x31 || w.dev.Stats().RxPackets != 2 || w.dev.Stats().VFRxPackets != 3 {
		t.Fatalf("after withdrawal: frame %#x, stats %+v", p.Bytes()[14], w.dev.Stats())
	}
	w.unwire(vf)
	if err := w.reg.Detach(vf.ifp); err != nil {
		t.Fatal(err)
	}
	w.waitState(netvsc.VFNone)
	sendVia(t, w, vf, 0x41, false)
}
