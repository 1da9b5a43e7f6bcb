package pcap

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// sink is a driver that frees what it transmits.
type sink struct{}

func (sink) Transmit(b *packet.Batch) (int, error) {
	n := b.Len()
	b.Free()
	return n, nil
}
func (sink) Ioctl(ifnet.Request) error { return nil }

func newIf(t testing.TB) *ifnet.Interface {
	t.Helper()
	ifp, err := ifnet.New(ifnet.Config{Name: "cap0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}, sink{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		t.Fatal(err)
	}
	ifp.SetRunning(true)
	return ifp
}

// udpFrame builds an Ethernet/IPv4/UDP frame with a payload of n bytes.
func udpFrame(t testing.TB, src, dst byte, seq, n int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, src}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, dst},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: uint16(seq),
		SrcIP: net.IP{10, 0, 0, src}, DstIP: net.IP{10, 0, 0, dst}}
	udp := &layers.UDP{SrcPort: layers.UDPPort(20000 + seq), DstPort: 40000}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{byte(seq)}, n)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type sent struct {
	dir   ifnet.Direction
	frame []byte
}

// drive sends out and receives in frames through ifp and returns them in
// capture order.
func drive(t *testing.T, ifp *ifnet.Interface) []sent {
	pool := packet.MustPool(packet.PoolConfig{})
	b := packet.NewBatch(8)
	var all []sent
	for round := range 3 {
		dir := ifnet.DirOut
		if round == 1 {
			dir = ifnet.DirIn
		}
		for i := range 4 {
			var f []byte
			if dir == ifnet.DirOut {
				f = udpFrame(t, 1, 2, round*10+i, 20+100*i)
			} else {
				f = udpFrame(t, 2, 1, round*10+i, 1400-i)
			}
			p := pool.Get()
			if err := p.SetBytes(f); err != nil {
				t.Fatal(err)
			}
			b.Add(p)
			all = append(all, sent{dir, f})
		}
		if dir == ifnet.DirOut {
			if n, err := ifp.Transmit(b); err != nil || n != 4 {
				t.Fatalf("transmit %d %v", n, err)
			}
		} else {
			ifp.Input(b)
		}
	}
	return all
}

func decodeCheck(t *testing.T, data []byte, want []byte) {
	t.Helper()
	if !bytes.Equal(data, want) {
		t.Fatalf("frame differs:\n got %x\nwant %x", data, want)
	}
	pk := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	if pk.Layer(layers.LayerTypeUDP) == nil {
		t.Fatal("no UDP layer")
	}
}

func TestPcapBothDirections(t *testing.T) {
	ifp := newIf(t)
	path := filepath.Join(t.TempDir(), "cap.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Start(ifp, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ifp, io.Discard, Options{}); !errors.Is(err, ifnet.ErrBusy) {
		t.Fatalf("second capture on one interface: %v", err)
	}
	want := drive(t, ifp)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); !errors.Is(err, ErrStopped) {
		t.Fatalf("second stop: %v", err)
	}
	if st := c.Stats(); st.In != 4 || st.Out != 8 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	// After Stop nothing more is written.
	drive(t, ifp)

	rf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	r, err := pcapgo.NewReader(rf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != DefaultSnapLen {
		t.Fatalf("link type %v snaplen %d", r.LinkType(), r.Snaplen())
	}
	for i, w := range want {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ci.Length != len(w.frame) {
			t.Fatalf("frame %d: length %d want %d", i, ci.Length, len(w.frame))
		}
		decodeCheck(t, data, w.frame)
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("extra frames: %v", err)
	}
	tshark(t, path)
}

func TestPcapNGDirectionsAndSnapLen(t *testing.T) {
	ifp := newIf(t)
	var buf bytes.Buffer
	c, err := Start(ifp, &buf, Options{NG: true, SnapLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := drive(t, ifp)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	long := 0
	for _, w := range want {
		if len(w.frame) > 100 {
			long++
		}
	}
	if st := c.Stats(); st.Truncated != uint64(long) {
		t.Fatalf("truncated %d, want %d", st.Truncated, long)
	}
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ci.Length != len(w.frame) || !bytes.Equal(data, w.frame[:min(100, len(w.frame))]) {
			t.Fatalf("frame %d: len %d/%d, data %x", i, ci.Length, len(w.frame), data)
		}
		wantDir := pcapgo.NgEpbFlagDirectionInbound
		if w.dir == ifnet.DirOut {
			wantDir = pcapgo.NgEpbFlagDirectionOutbound
		}
		if opts.Flags == nil || opts.Flags.Direction != wantDir {
			t.Fatalf("frame %d: flags %+v, want direction %v", i, opts.Flags, wantDir)
		}
	}
	tshark(t, path)
}

// tshark reads the file with Wireshark's reader where it is installed.
func tshark(t *testing.T, path string) {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: skipping the tshark -r check")
		return
	}
	out, err := exec.Command(bin, "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", path, err, out)
	}
	t.Logf("tshark -r %s:\n%s", filepath.Base(path), out)
}

func TestCaptureWriteError(t *testing.T) {
	ifp := newIf(t)
	c, err := Start(ifp, failWriter{}, Options{BufferSize: 16})
	if err == nil {
		drive(t, ifp)
		err = c.Stop()
	}
	if err == nil {
		t.Fatal("write errors not reported")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func BenchmarkCapture(b *testing.B) {
	ifp := newIf(b)
	c, err := Start(ifp, io.Discard, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 64})
	bt := packet.NewBatch(32)
	frame := udpFrame(b, 1, 2, 1, 1000)
	b.ReportAllocs()
	for b.Loop() {
		pool.GetBatch(bt, 32)
		for _, p := range bt.Packets() {
			_ = p.SetBytes(frame)
		}
		ifp.Input(bt)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/pkt")
}
