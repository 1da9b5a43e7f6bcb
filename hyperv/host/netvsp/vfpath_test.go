package netvsp_test

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/net/packet"
)

// vfModel stands in for the VF device model (drivers/mlx/mlxdev): a
// switch port that keeps the payloads it is given.
type vfModel struct {
	mu     sync.Mutex
	frames [][]byte
}

func (v *vfModel) Deliver(b *packet.Batch) {
	v.mu.Lock()
	for _, p := range b.Packets() {
		v.frames = append(v.frames, append([]byte(nil), p.Bytes()...))
	}
	v.mu.Unlock()
	b.Free()
}

func (v *vfModel) take() [][]byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.frames
	v.frames = nil
	return f
}

// vfEnv is a ready guest with a VF port bound and advertised (serial 7).
type vfEnv struct {
	*env
	g    *guest
	vf   *vfModel
	vfp  *vswitch.SwitchPort
	gen  *vswitch.Generator // the remote station (stationMAC)
	sent int
}

func newVFEnv(t *testing.T, cfg netvsp.Config) *vfEnv {
	t.Helper()
	e, g := ready(t, cfg)
	v := &vfEnv{env: e, g: g, vf: &vfModel{}}
	var err error
	if v.vfp, err = e.sw.Attach("vf", v.vf, vswitch.VLANConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := e.dev.SetVFPort(v.vfp); err != nil {
		t.Fatal(err)
	}
	e.dev.SetVF(true, 7)
	if va := decodeHost[*nvsp.SendVFAssociation](g, g.MustRead().Payload); !va.Allocated || va.Serial != 7 {
		t.Fatalf("association %+v", va)
	}
	if v.gen, err = vswitch.NewGenerator(e.sw, "station", vswitch.VLANConfig{}, nil, packet.Meta{}, nil); err != nil {
		t.Fatal(err)
	}
	return v
}

// send makes the station send one frame to dst with payload tag.
func (v *vfEnv) send(dst vswitch.MAC, tag string) {
	v.gen.SetTemplate(rawFrame(dst, stationMAC, tag), packet.Meta{})
	if v.gen.Generate(1) != 1 {
		v.t.Fatal("generator out of frames")
	}
	v.sent++
}

func (v *vfEnv) switchPath(p nvsp.DataPath) {
	v.t.Helper()
	id := v.g.sendNVSP(&nvsp.SwitchDataPath{DataPath: p}, true)
	if b := v.g.Completion(id); len(b) != 0 {
		v.t.Fatalf("SWITCH_DATA_PATH completion carries % x", b)
	}
}

// onGuest expects the guest to receive exactly the tagged frames.
func (v *vfEnv) onGuest(what string, tags ...string) {
	v.t.Helper()
	for _, tag := range tags {
		f := v.g.readData()
		if len(f) != 1 || string(f[0].data[14:]) != tag {
			v.t.Fatalf("%s: guest got %d frames, want %q", what, len(f), tag)
		}
	}
	if p, ok := v.g.Read(20 * time.Millisecond); ok {
		v.t.Fatalf("%s: unexpected %v from the host", what, p.Type)
	}
}

// onVF expects the VF to have received exactly the tagged frames.
func (v *vfEnv) onVF(what string, tags ...string) {
	v.t.Helper()
	got := v.vf.take()
	if len(got) != len(tags) {
		v.t.Fatalf("%s: VF got %d frames, want %d", what, len(got), len(tags))
	}
	for i, tag := range tags {
		if string(got[i][14:]) != tag {
			v.t.Fatalf("%s: VF frame %d is %q, want %q", what, i, got[i][14:], tag)
		}
	}
}

func TestVFDataPathSteering(t *testing.T) {
	v := newVFEnv(t, netvsp.Config{})
	mcast := vswitch.MAC{0x01, 0x00, 0x5e, 0, 0, 7}

	v.send(guestMAC, "before")
	v.onGuest("before the switch", "before")
	v.onVF("before the switch")

	v.switchPath(nvsp.DataPathVF)
	if st := v.dev.State(); st.DataPath != nvsp.DataPathVF || !v.dev.Steering().Active() {
		t.Fatalf("path %v, steering active %v", st.DataPath, v.dev.Steering().Active())
	}
	v.send(guestMAC, "vf1")
	v.send(guestMAC, "vf2")
	v.onVF("after the switch", "vf1", "vf2")
	v.onGuest("after the switch")

	v.send(vswitch.Broadcast, "bcast")
	v.send(mcast, "mcast")
	v.onGuest("broadcast/multicast on the VF path", "bcast", "mcast")
	v.onVF("broadcast/multicast on the VF path")

	// Guest transmit on the synthetic path still reaches the station.
	if s := v.g.sendSection(0, [][]byte{rawFrame(stationMAC, guestMAC, "tx")}, []*rndis.PacketInfo{{}}); s != nvsp.StatusSuccess {
		t.Fatalf("send: %v", s)
	}
	if v.gen.Frames() != 1 {
		t.Fatalf("station got %d frames", v.gen.Frames())
	}

	// The guest switches back.
	v.switchPath(nvsp.DataPathSynthetic)
	v.send(guestMAC, "back")
	v.onGuest("after switch-back", "back")
	v.onVF("after switch-back")

	// VF again, then the host removes it: switch first, then tell.
	v.switchPath(nvsp.DataPathVF)
	v.send(guestMAC, "vf3")
	v.onVF("second switch", "vf3")
	v.dev.SetVF(false, 7)
	if v.dev.Steering().Path() {
		t.Fatal("host path still VF after SetVF(false)")
	}
	p := v.g.MustRead()
	if sp := decodeHost[*nvsp.SwitchDataPath](v.g, p.Payload); sp.DataPath != nvsp.DataPathSynthetic || p.TransID != 0x8000000000000001 {
		t.Fatalf("host switch %+v", sp)
	}
	if va := decodeHost[*nvsp.SendVFAssociation](v.g, v.g.MustRead().Payload); va.Allocated || va.Serial != 7 {
		t.Fatalf("withdrawal %+v", va)
	}
	v.send(guestMAC, "gone")
	v.onGuest("after VF removal", "gone")
	v.onVF("after VF removal")

	// A guest that switches to a VF that is gone is completed, ignored.
	v.switchPath(nvsp.DataPathVF)
	if v.dev.State().DataPath != nvsp.DataPathSynthetic || v.dev.Steering().Path() {
		t.Fatal("switch to a withdrawn VF honoured")
	}
	v.send(guestMAC, "still")
	v.onGuest("refused switch", "still")

	// No frame lost or duplicated: the guest got 6 of the station's
	// frames, the VF 3, and the counters agree.
	s := v.dev.Stats()
	if v.sent != 9 || s.RxFrames != 6 || s.PathSynthetic != 6 || s.PathVF != 3 ||
		s.PathSwitches != 4 || s.PathRefused != 1 || s.PathFallbacks != 0 || s.Errors != 0 {
		t.Fatalf("sent %d, stats %+v", v.sent, s)
	}
	if ps := v.vfp.Stats(); ps.TxFrames != 3 {
		t.Fatalf("VF port %+v", ps)
	}
}

// A VF bound while the guest's path is VF, and the VF port detached
// without SetVF: the switch falls back to synthetic by itself.
func TestVFPortDetachFallsBack(t *testing.T) {
	v := newVFEnv(t, netvsp.Config{})
	v.switchPath(nvsp.DataPathVF)
	v.vfp.Detach()
	v.send(guestMAC, "x")
	v.onGuest("VF port detached", "x")
	if s := v.dev.Stats(); s.PathFallbacks != 1 || s.PathSynthetic != 1 || s.PathVF != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A new VF port (a re-offered VF) is steered to again.
	nv := &vfModel{}
	np, _ := v.sw.Attach("vf2", nv, vswitch.VLANConfig{})
	if err := v.dev.SetVFPort(np); err != nil {
		t.Fatal(err)
	}
	v.send(guestMAC, "y")
	if f := nv.take(); len(f) != 1 || string(f[0][14:]) != "y" {
		t.Fatalf("new VF got %d frames", len(f))
	}
}

// Closing the channel forgets the guest's data path on the switch too.
func TestVFPathResetOnClose(t *testing.T) {
	v := newVFEnv(t, netvsp.Config{})
	v.switchPath(nvsp.DataPathVF)
	v.Post(&vmbusmsg.CloseChannel{ChildRelID: v.g.Offer.ChildRelID})
	for deadline := time.Now().Add(waitTimeout); v.dev.Stats().Closes == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("channel not closed")
		}
	}
	if v.dev.Steering().Path() {
		t.Fatal("path still VF after the channel closed")
	}
	if err := (&netvsp.Device{}).SetVFPort(nil); !errors.Is(err, netvsp.ErrNoSwitch) {
		t.Fatalf("SetVFPort without a switch: %v", err)
	}
}

func tcpSYN(t *testing.T, flags string) []byte {
	eth := layers.Ethernet{SrcMAC: net.HardwareAddr(stationMAC[:]), DstMAC: net.HardwareAddr(guestMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: stationIP.AsSlice(), DstIP: guestIP.AsSlice()}
	tcp := layers.TCP{SrcPort: 40000, DstPort: 22, SYN: flags != "ack", ACK: flags != "syn", Window: 1024}
	_ = tcp.SetNetworkLayerForChecksum(&ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, &eth, &ip, &tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVFSYNToSynthetic(t *testing.T) {
	v := newVFEnv(t, netvsp.Config{SYNToSynthetic: true})
	v.switchPath(nvsp.DataPathVF)
	syn, ack := tcpSYN(t, "syn"), tcpSYN(t, "ack")
	for _, f := range [][]byte{syn, ack} {
		v.gen.SetTemplate(f, packet.Meta{})
		v.gen.Generate(1)
	}
	if f := v.g.readData(); len(f) != 1 || !bytes.Equal(f[0].data, syn) {
		t.Fatalf("guest got %d frames, want the SYN", len(f))
	}
	if f := v.vf.take(); len(f) != 1 || !bytes.Equal(f[0], ack) {
		t.Fatalf("VF got %d frames, want the ACK", len(f))
	}
	if s := v.dev.Stats(); s.PathSYNs != 1 || s.PathVF != 1 {
		t.Fatalf("stats %+v", s)
	}
}
