package mlxdev

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/packet"
)

var _ vswitch.Port = (*Device)(nil)

// switchWire sends the device's frames into its switch port.
type switchWire struct {
	port atomic.Pointer[vswitch.SwitchPort]
}

func (w *switchWire) Transmit(b *packet.Batch) {
	if p := w.port.Load(); p != nil {
		p.Input(b)
		return
	}
	b.Free()
}

// station is a port that records what the switch delivers.
type station struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *station) Deliver(b *packet.Batch) {
	s.mu.Lock()
	for i := range b.Len() {
		s.frames = append(s.frames, append([]byte(nil), b.At(i).Bytes()...))
	}
	s.mu.Unlock()
	b.Free()
}

// TestThroughSwitch: the device on a vswitch port, tagged on a trunk:
// its frames reach a station on the VLAN, and the station's reply comes
// back through the vport filter, VLAN strip and the RQ.
func TestThroughSwitch(t *testing.T) {
	wire := &switchWire{}
	x := newTxEnv(t, func(c *Config) { c.Wire = wire })
	sw := vswitch.New(vswitch.Config{NoAger: true})
	defer sw.Close()
	vfPort, err := sw.Attach("vf", x.dev, vswitch.Trunk(0, 100))
	if err != nil {
		t.Fatal(err)
	}
	wire.port.Store(vfPort)
	st := &station{}
	stPort, err := sw.Attach("station", st, vswitch.Access(100))
	if err != nil {
		t.Fatal(err)
	}
	rq := x.createRQ(x.cq, 4, false)
	rq.fill(8)
	x.directTIR(rq.n)
	out := tcpFrame(t, peerMAC, 1, 2, []byte("to the station"), true)
	copy(x.data, out)
	w := mlxhw.SendWQE{Opcode: mlxhw.WQEOpSend, VLAN: true, VLANTCI: 100}
	x.sq.post(&w, []mlxhw.DataSeg{{ByteCount: uint32(len(out)), LKey: x.lkey, Addr: x.base}}, true)
	st.mu.Lock()
	got := st.frames
	st.mu.Unlock()
	if len(got) != 1 || !bytes.Equal(got[0], out) { // access port: untagged
		t.Fatalf("station got %d frames", len(got))
	}
	// The reply: the switch learned the VF's MAC on VLAN 100.
	reply := tcpFrame(t, mac(testMAC[:]...), 2, 1, []byte("reply"), true)
	copy(reply[6:12], peerMAC)
	b := packet.NewBatch(1)
	p := packet.New(0, len(reply))
	_ = p.AppendBytes(reply)
	b.Add(p)
	stPort.Input(b)
	var cqes []mlxhw.CQE
	for _, c := range x.cq.poll() {
		if c.Opcode == mlxhw.CQERespSend {
			cqes = append(cqes, c)
		}
	}
	if len(cqes) != 1 || !cqes[0].VLANStripped() || cqes[0].VLANInfo&0xfff != 100 || !bytes.Equal(rq.frame(&cqes[0]), reply) {
		t.Fatalf("reply CQEs %+v", cqes)
	}
	x.noViolations()
}
