package netvsc

// Guest-only data-path cost: the driver over a real VMBus channel whose
// host end is this goroutine (ring reads and writes, no host logic), so
// the allocation counts are the driver's alone.

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
)

type guestRig struct {
	s     *synth
	hostR *ring.Reader // the guest's outbound ring
	hostW *ring.Writer // the guest's inbound ring
	guest *ring.Reader // reads the inbound ring in place of the channel's goroutine
	comp  []byte
	pkts  []ring.Packet
}

func newGuestRig(tb testing.TB) *guestRig {
	tb.Helper()
	ram := kernel.NewSimRAM(2048)
	const ringPages = 64
	reg, err := ram.Alloc(2 * ringPages)
	if err != nil {
		tb.Fatal(err)
	}
	out, in, err := ring.SplitPair(reg.Bytes, ringPages)
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range []ring.Memory{out, in} {
		if err := ring.InitControl(m.Control); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := &Config{Memory: ram, Clock: kernel.RealClock{}, Logger: kernel.DiscardLogger(), BounceSlots: 4, RxBatch: 32,
		RxPool: packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 256})}
	d := &Device{cfg: cfg, log: kernel.DiscardLogger()}
	s := &synth{dev: d, cfg: cfg, log: d.log, ver: nvsp.Version61, secSize: nvsp.SendSectionSize, secCount: 64,
		rxSlot: 2048, rxSlots: 64, stop: make(chan struct{})}
	if s.txRegion, err = ram.Alloc(64 * nvsp.SendSectionSize / kernel.PageSize); err != nil {
		tb.Fatal(err)
	}
	if s.rxRegion, err = ram.Alloc(64 * 2048 / kernel.PageSize); err != nil {
		tb.Fatal(err)
	}
	s.rxSize = uint32(len(s.rxRegion.Bytes))
	if s.ch, err = vmbus.NewChannel(vmbus.ChannelConfig{Out: out, In: in, Signal: func() error { return nil }}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.ch.Close)
	s.ctl.init()
	s.rx.init(s)
	if err := s.tx.init(s); err != nil {
		tb.Fatal(err)
	}
	d.syn = s
	g := &guestRig{s: s, pkts: make([]ring.Packet, 8)}
	if g.hostR, err = ring.NewReader(out.Control, out.Data, nil); err != nil {
		tb.Fatal(err)
	}
	if g.hostW, err = ring.NewWriter(in.Control, in.Data); err != nil {
		tb.Fatal(err)
	}
	if g.guest, err = ring.NewReader(in.Control, in.Data, nil); err != nil {
		tb.Fatal(err)
	}
	g.comp = binary.LittleEndian.AppendUint32(nil, uint32(nvsp.MsgSendRNDISPacketComplete))
	g.comp = binary.LittleEndian.AppendUint32(g.comp, uint32(nvsp.StatusSuccess))
	return g
}

// hostDrain reads what the guest sent and completes every send.
func (g *guestRig) hostDrain() (n int) {
	var pk ring.Packet
	for g.hostR.Next(&pk) == nil {
		if pk.Type != ring.TypeCompletion {
			g.s.tx.complete(pk.TransID, g.comp)
		}
		n++
	}
	g.hostR.Commit()
	return n
}

// txRound sends one batch of 32 frames and completes them.
func (g *guestRig) txRound(batch *packet.Batch, pool *packet.Pool, frame []byte) int {
	for !batch.Full() {
		p := pool.Get()
		_ = p.SetBytes(frame)
		p.Meta.Csum = packet.CsumTxUDPv4
		batch.Add(p)
	}
	n, _ := g.s.transmit(batch)
	g.hostDrain()
	return n
}

// rxSetup writes 32 RNDIS data messages into the receive buffer.
func (g *guestRig) rxSetup(tb testing.TB, size int) ([]ring.XferRange, []byte) {
	ranges := make([]ring.XferRange, 32)
	info := rndis.PacketInfo{Present: rndis.HasChecksum, Checksum: uint32(rndis.RxChecksumUDPSucceeded)}
	for i := range ranges {
		off := i * 2048
		n, err := rndis.PutPacket(g.s.rxRegion.Bytes[off:off+2048], &info, make([]byte, size), 1)
		if err != nil {
			tb.Fatal(err)
		}
		ranges[i] = ring.XferRange{ByteCount: uint32(n), ByteOffset: uint32(off)}
	}
	return ranges, nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{SectionIndex: nvsp.NoSection}, nvsp.MessageSizeV61)
}

// rxRound delivers one transfer-page packet of 32 frames and takes back
// its completion.
func (g *guestRig) rxRound(tb testing.TB, id uint64, ranges []ring.XferRange, msg []byte) {
	if err := g.hostW.WriteXferPages(id, true, nvsp.ReceiveBufferID, false, ranges, msg); err != nil {
		tb.Fatal(err)
	}
	g.hostW.Commit()
	n, err := g.guest.ReadBatch(g.pkts)
	if err != nil || n != 1 {
		tb.Fatalf("read %d: %v", n, err)
	}
	g.s.HandlePackets(g.s.ch, g.pkts[:n])
	g.guest.Commit()
	if g.hostDrain() != 1 {
		tb.Fatal("no completion")
	}
}

func BenchmarkGuestTransmit(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			g := newGuestRig(b)
			frame := make([]byte, size)
			batch := packet.NewBatch(32)
			pool := packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 64})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				sent += g.txRound(batch, pool, frame)
			}
			b.StopTimer()
			batch.Free()
		})
	}
}

func BenchmarkGuestReceive(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			g := newGuestRig(b)
			ranges, msg := g.rxSetup(b, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for got := 0; got < b.N; got += 32 {
				g.rxRound(b, uint64(got), ranges, msg)
			}
			b.StopTimer()
			if got := g.s.rx.st.packets.Load(); got < uint64(b.N) {
				b.Fatalf("received %d of %d", got, b.N)
			}
		})
	}
}

// TestGuestDataPathAllocatesNothing holds the zero-allocation rule for the
// driver's own transmit and receive paths (no other goroutine runs here,
// so the count is the driver's).
func TestGuestDataPathAllocatesNothing(t *testing.T) {
	for _, size := range []int{64, 1500} {
		g := newGuestRig(t)
		frame := make([]byte, size)
		batch := packet.NewBatch(32)
		pool := packet.MustPool(packet.PoolConfig{Size: 2048, Prealloc: 64})
		if a := testing.AllocsPerRun(200, func() { g.txRound(batch, pool, frame) }); a != 0 {
			t.Errorf("transmit %dB: %.1f allocs per batch of 32", size, a)
		}
		ranges, msg := g.rxSetup(t, size)
		id := uint64(0)
		if a := testing.AllocsPerRun(200, func() { id++; g.rxRound(t, id, ranges, msg) }); a != 0 {
			t.Errorf("receive %dB: %.1f allocs per batch of 32", size, a)
		}
		if st := g.s.tx.st; st.completions != st.packets || g.s.tx.secInUse != 0 {
			t.Errorf("accounting: %+v, %d sections in use", st, g.s.tx.secInUse)
		}
	}
}
