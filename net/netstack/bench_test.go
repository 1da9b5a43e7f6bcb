package netstack

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// sinkDriver frees what it transmits.
type sinkDriver struct{}

func (sinkDriver) Transmit(b *packet.Batch) (int, error) {
	n := b.Len()
	b.Free()
	return n, nil
}
func (sinkDriver) Ioctl(ifnet.Request) error { return nil }

// nullDispatcher drops what it is given.
type nullDispatcher struct{ n int }

func (d *nullDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	d.n++
}
func (d *nullDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

func benchIf(tb testing.TB, caps ifnet.Cap) *ifnet.Interface {
	tb.Helper()
	ifp, err := ifnet.New(ifnet.Config{Name: "bench0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Capabilities: caps, Enabled: caps}, sinkDriver{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}); err != nil {
		tb.Fatal(err)
	}
	ifp.SetRunning(true)
	return ifp
}

// tcpFrame returns an Ethernet/IPv4/TCP frame with payload bytes of data
// and correct checksums.
func tcpFrame(payload int) []byte {
	f := make([]byte, ethHdrLen+header.IPv4MinimumSize+header.TCPMinimumSize+payload)
	eth := header.Ethernet(f)
	eth.Encode(&header.EthernetFields{SrcAddr: "\x02\x00\x00\x00\x00\x02", DstAddr: "\x02\x00\x00\x00\x00\x01",
		Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[ethHdrLen:])
	src, dst := tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - ethHdrLen), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(ip[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 5001, DstPort: 40000, SeqNum: 1, AckNum: 1, DataOffset: header.TCPMinimumSize,
		Flags: header.TCPFlagAck, WindowSize: 65535})
	for i := range payload {
		tcp[header.TCPMinimumSize+i] = byte(i)
	}
	l := &l4Info{l3: ethHdrLen, ihl: header.IPv4MinimumSize, l4: ethHdrLen + header.IPv4MinimumSize,
		l4len: len(tcp), proto: uint8(header.TCPProtocolNumber)}
	tcp.SetChecksum(0)
	binary.BigEndian.PutUint16(tcp[16:], ^checksum.Checksum(tcp, pseudoSum(f, l, len(tcp))))
	return f
}

// benchWrite measures WritePackets of batches of 32 TCP segments of 1448
// bytes into an interface whose driver frees them.
func benchWrite(b *testing.B, caps ifnet.Cap) {
	ifp := benchIf(b, caps)
	ep, err := New(ifp, Options{Pool: packet.MustPool(packet.PoolConfig{Prealloc: 64})})
	if err != nil {
		b.Fatal(err)
	}
	frame := tcpFrame(1448)
	const n = 32
	var list stack.PacketBufferList
	for range n {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: ethHdrLen,
			Payload: buffer.MakeWithData(frame[ethHdrLen:])})
		copy(pkt.LinkHeader().Push(ethHdrLen), frame[:ethHdrLen])
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		pkt.TransportProtocolNumber = header.TCPProtocolNumber
		list.PushBack(pkt)
	}
	defer list.DecRef()
	b.ReportAllocs()
	b.SetBytes(int64(n * len(frame)))
	done := perPacket(b, n)
	for b.Loop() {
		if sent, err := ep.WritePackets(list); sent != n || err != nil {
			b.Fatalf("sent %d: %v", sent, err)
		}
	}
	done()
	if st := ifp.Stats(); st.OutPackets == 0 || st.TotalDrops() != 0 {
		b.Fatalf("stats %+v", st)
	}
}

// perPacket reports ns/pkt and allocs/pkt for a loop that moves perOp
// packets per iteration; call start before the loop and the returned
// function after it.
func perPacket(b *testing.B, perOp int) func() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	return func() {
		runtime.ReadMemStats(&ms)
		pkts := float64(b.N * perOp)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pkts, "ns/pkt")
		b.ReportMetric(float64(ms.Mallocs-mallocs)/pkts, "allocs/pkt")
	}
}

// BenchmarkWritePackets: the stack's batch through the endpoint into one
// ifnet Transmit, no offloads (the stack's checksums are kept).
func BenchmarkWritePackets(b *testing.B) { benchWrite(b, 0) }

// BenchmarkWritePacketsCsumOffload: the same with TX checksum offload, so
// every frame gets Meta flags and a pseudo-header sum.
func BenchmarkWritePacketsCsumOffload(b *testing.B) { benchWrite(b, ifnet.CapHWCsum) }

// benchDeliver measures ifnet Input of batches of 32 frames through the
// endpoint to a dispatcher that drops them: the endpoint's receive cost,
// including gVisor's PacketBuffer construction.
func benchDeliver(b *testing.B, caps ifnet.Cap, flags packet.Csum) {
	ifp := benchIf(b, caps)
	ep, err := New(ifp, Options{})
	if err != nil {
		b.Fatal(err)
	}
	d := &nullDispatcher{}
	ep.Attach(d)
	defer ep.Close()
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 64})
	frame := tcpFrame(1448)
	const n = 32
	bt := packet.NewBatch(n)
	b.ReportAllocs()
	b.SetBytes(int64(n * len(frame)))
	done := perPacket(b, n)
	for b.Loop() {
		pool.GetBatch(bt, n)
		for _, p := range bt.Packets() {
			_ = p.SetBytes(frame)
			p.Meta.Csum = flags
		}
		ifp.Input(bt)
	}
	done()
	if d.n != b.N*n {
		b.Fatalf("delivered %d of %d", d.n, b.N*n)
	}
}

// BenchmarkDeliver: receive without RX checksum offload.
func BenchmarkDeliver(b *testing.B) { benchDeliver(b, 0, 0) }

// BenchmarkDeliverRxCsumVerified: RX offload advertised, driver marked the
// checksums good.
func BenchmarkDeliverRxCsumVerified(b *testing.B) {
	benchDeliver(b, ifnet.CapHWCsum, packet.CsumRxIPOK|packet.CsumRxL4OK)
}

// BenchmarkDeliverRxCsumSoftware: RX offload advertised but the driver
// verified nothing, so the endpoint checks in software.
func BenchmarkDeliverRxCsumSoftware(b *testing.B) { benchDeliver(b, ifnet.CapHWCsum, 0) }
