package pair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// collector is a stack input that keeps copies of what it receives.
type collector struct {
	mu    sync.Mutex
	data  [][]byte
	metas []packet.Meta
	n     atomic.Int64
}

func (c *collector) input(_ *ifnet.Interface, b *packet.Batch) {
	c.mu.Lock()
	for _, p := range b.Packets() {
		c.data = append(c.data, append([]byte(nil), p.Bytes()...))
		c.metas = append(c.metas, p.Meta)
	}
	c.mu.Unlock()
	c.n.Add(int64(b.Len()))
	b.Free()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func up(t testing.TB, p *Pair) {
	t.Helper()
	for _, ifp := range []*ifnet.Interface{p.A, p.B} {
		must(t, ifp.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp}))
	}
}

func frame(t testing.TB, pool *packet.Pool, b *packet.Batch, id uint32, csum packet.Csum) {
	t.Helper()
	p := pool.Get()
	data, err := p.Append(60)
	must(t, err)
	clear(data)
	copy(data, []byte{0x02, 0xee, 0, 0, 0, 0x0b, 0x02, 0xee, 0, 0, 0, 0x0a, 0x08, 0x00})
	binary.BigEndian.PutUint32(data[14:], id)
	p.Meta.Csum = csum
	p.Meta.Hash, p.Meta.HashType = 99, packet.HashTCPv4
	if !b.Add(p) {
		t.Fatal("batch full")
	}
}

func TestPairDeliversBytesAndOffloads(t *testing.T) {
	p, err := New(Config{Capabilities: ifnet.CapHWCsum | ifnet.CapTSO4})
	must(t, err)
	defer p.Close()
	up(t, p)
	r := ifnet.NewRegistry()
	defer r.Close()
	must(t, r.Attach(p.A))
	must(t, r.Attach(p.B))
	var atB collector
	p.B.SetInput(atB.input)
	pool := packet.MustPool(packet.PoolConfig{Size: 256})
	b := packet.NewBatch(8)
	frame(t, pool, b, 1, packet.CsumTxIPv4|packet.CsumTxTCPv4)
	frame(t, pool, b, 2, 0)
	frame(t, pool, b, 3, packet.CsumTxTCPv6) // B has no IPv6 rx csum
	n, err := p.A.Transmit(b)
	must(t, err)
	if n != 3 || b.Len() != 0 || atB.n.Load() != 3 {
		t.Fatalf("sent %d, left %d, delivered %d", n, b.Len(), atB.n.Load())
	}
	for i, d := range atB.data {
		if got := binary.BigEndian.Uint32(d[14:]); got != uint32(i+1) || len(d) != 60 || d[5] != 0x0b {
			t.Fatalf("frame %d: id %d len %d", i, got, len(d))
		}
	}
	m := atB.metas
	if m[0].Csum != packet.CsumRxIPOK|packet.CsumRxL4OK || m[1].Csum != 0 || m[2].Csum != 0 {
		t.Fatalf("offload flags %v %v %v", m[0].Csum, m[1].Csum, m[2].Csum)
	}
	if m[0].RcvIf != p.B.Index() || m[0].Hash != 0 || m[0].HashType != packet.HashNone {
		t.Fatalf("meta %+v", m[0])
	}
	if a, bs := p.A.Stats(), p.B.Stats(); a.OutPackets != 3 || a.OutBytes != 180 || bs.InPackets != 3 || bs.InBytes != 180 {
		t.Fatalf("stats A %+v B %+v", a, bs)
	}
	if pool.Stats().InUse != 0 {
		t.Fatal("leak")
	}
}

func TestPairLinkAndLoss(t *testing.T) {
	p, err := New(Config{NameA: "va", NameB: "vb"})
	must(t, err)
	defer p.Close()
	up(t, p)
	r := ifnet.NewRegistry()
	var mu sync.Mutex
	var links []string
	_, err = r.Subscribe(func(ev ifnet.Event) {
		if ev.Type == ifnet.EventLink {
			mu.Lock()
			links = append(links, fmt.Sprintf("%s:%v", ev.Name, ev.Link))
			mu.Unlock()
		}
	})
	must(t, err)
	must(t, r.Attach(p.A))
	must(t, r.Attach(p.B))
	var atB collector
	p.B.SetInput(atB.input)
	pool := packet.MustPool(packet.PoolConfig{Size: 128})
	b := packet.NewBatch(16)

	p.SetLink(false)
	if p.A.LinkState() != ifnet.LinkDown || p.B.Media().Status&ifnet.MediaActive != 0 {
		t.Fatal("link down not published")
	}
	frame(t, pool, b, 1, 0)
	n, err := p.A.Transmit(b)
	if !errors.Is(err, ifnet.ErrDown) || n != 0 || b.Len() != 1 {
		t.Fatalf("down link: n %d err %v", n, err)
	}
	p.SetLink(true)
	for i := 2; i <= 10; i++ {
		frame(t, pool, b, uint32(i), 0)
	}
	must(t, p.SetLoss(p.A, DropEvery(3)))
	n, err = p.A.Transmit(b)
	must(t, err)
	if n != 10 || atB.n.Load() != 7 || p.A.Stats().Drops[ifnet.DropLoss] != 3 {
		t.Fatalf("loss: sent %d delivered %d lost %d", n, atB.n.Load(), p.A.Stats().Drops[ifnet.DropLoss])
	}
	for i, want := range []uint32{1, 2, 4, 5, 7, 8, 10} {
		if got := binary.BigEndian.Uint32(atB.data[i][14:]); got != want {
			t.Fatalf("delivered[%d] = %d, want %d", i, got, want)
		}
	}
	must(t, p.SetLoss(p.A, nil))
	if err := p.SetLoss(nil, nil); !errors.Is(err, ifnet.ErrInvalid) {
		t.Fatalf("foreign interface: %v", err)
	}
	must(t, r.Close())
	want := []string{"va:down", "vb:down", "va:up", "vb:up"}
	if fmt.Sprint(links) != fmt.Sprint(want) {
		t.Fatalf("link events %v, want %v", links, want)
	}
	if pool.Stats().InUse != 0 {
		t.Fatal("leak")
	}
}

func TestPairIoctls(t *testing.T) {
	p, err := New(Config{Capabilities: ifnet.CapHWCsum | ifnet.CapTSO4 | ifnet.CapJumboMTU, Speed: 1_000_000_000})
	must(t, err)
	defer p.Close()
	a := p.A
	must(t, a.Ioctl(&ifnet.SetFlags{Flags: ifnet.FlagUp | ifnet.FlagPromisc}))
	if a.Flags()&(ifnet.FlagRunning|ifnet.FlagPromisc) != ifnet.FlagRunning|ifnet.FlagPromisc {
		t.Fatalf("flags %v", a.Flags())
	}
	must(t, a.Ioctl(&ifnet.SetMTU{MTU: 9000}))
	must(t, a.Ioctl(&ifnet.SetCapabilities{Enable: ifnet.CapTxCsum}))
	if a.HWAssist() != ifnet.AssistCsumIPv4 {
		t.Fatalf("hwassist %v", a.HWAssist())
	}
	g := &ifnet.GetMedia{}
	must(t, a.Ioctl(g))
	if g.State.Active.Speed != 1_000_000_000 || g.State.Status != ifnet.MediaValid|ifnet.MediaActive {
		t.Fatalf("media %+v", g.State)
	}
	if err := a.Ioctl(&ifnet.SetMedia{Media: ifnet.Media{Type: ifnet.MediaEthernet, Speed: 5}}); !errors.Is(err, ifnet.ErrInvalid) {
		t.Fatalf("bad media: %v", err)
	}
	must(t, a.Ioctl(&ifnet.SetMedia{Media: ifnet.Media{Type: ifnet.MediaEthernet, Speed: 1_000_000_000, FullDuplex: true}}))
	must(t, p.SetIoctlHook(a, func(r ifnet.Request) error {
		if _, ok := r.(*ifnet.SetCapabilities); ok {
			return fmt.Errorf("injected: %w", ifnet.ErrBusy)
		}
		return nil
	}))
	if err := a.Ioctl(&ifnet.SetCapabilities{Enable: 0}); !errors.Is(err, ifnet.ErrBusy) {
		t.Fatalf("hook: %v", err)
	}
	must(t, p.SetIoctlHook(a, nil))
	must(t, a.Ioctl(&ifnet.SetCapabilities{Enable: 0}))
	if err := a.Ioctl(&other{}); !errors.Is(err, ifnet.ErrNotSupported) {
		t.Fatalf("unknown request: %v", err)
	}
}

type other struct{}

func (*other) RequestName() string { return "other" }

func TestPairAsync(t *testing.T) {
	before := runtime.NumGoroutine()
	p, err := New(Config{QueueLen: 2, BatchSize: 4})
	must(t, err)
	up(t, p)
	var atB collector
	block := make(chan struct{})
	started := make(chan struct{}, 8)
	p.B.SetInput(func(ifp *ifnet.Interface, b *packet.Batch) {
		started <- struct{}{}
		<-block
		atB.input(ifp, b)
	})
	pool := packet.MustPool(packet.PoolConfig{Size: 128})
	b := packet.NewBatch(16)
	for i := range 16 {
		frame(t, pool, b, uint32(i), 0)
	}
	// Two batches of four fit in flight; the rest stays with the caller.
	n, err := p.A.Transmit(b)
	if !errors.Is(err, ifnet.ErrBusy) || n != 8 || b.Len() != 8 {
		t.Fatalf("async backpressure: n %d left %d err %v", n, b.Len(), err)
	}
	<-started
	close(block)
	deadline := time.Now().Add(5 * time.Second)
	for b.Len() > 0 && time.Now().Before(deadline) {
		if _, err := p.A.Transmit(b); err != nil && !errors.Is(err, ifnet.ErrBusy) {
			t.Fatal(err)
		}
	}
	for atB.n.Load() < 16 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if atB.n.Load() != 16 {
		t.Fatalf("delivered %d", atB.n.Load())
	}
	for i, d := range atB.data {
		if binary.BigEndian.Uint32(d[14:]) != uint32(i) {
			t.Fatal("async delivery reordered packets")
		}
	}
	must(t, p.Close())
	must(t, p.Close())
	if _, err := p.A.Transmit(b); err != nil {
		t.Fatal("empty transmit after close must be a no-op")
	}
	frame(t, pool, b, 99, 0)
	if _, err := p.A.Transmit(b); !errors.Is(err, ifnet.ErrDown) {
		t.Fatalf("transmit after close: %v", err)
	}
	b.Free()
	if pool.Stats().InUse != 0 {
		t.Fatal("leak")
	}
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if runtime.NumGoroutine() > before {
		t.Fatal("delivery goroutines leaked")
	}
}

func TestPairAllocs(t *testing.T) {
	for _, q := range []int{0, 4} {
		p, err := New(Config{QueueLen: q})
		must(t, err)
		up(t, p)
		var got atomic.Int64
		p.B.SetInput(func(_ *ifnet.Interface, b *packet.Batch) { got.Add(int64(b.Len())); b.Free() })
		must(t, p.SetLoss(p.A, DropEvery(5)))
		pool := packet.MustPool(packet.PoolConfig{Prealloc: 256})
		b := packet.NewBatch(32)
		allocs := testing.AllocsPerRun(100, func() {
			pool.GetBatch(b, 32)
			for _, pk := range b.Packets() {
				_, _ = pk.Append(64)
			}
			for b.Len() > 0 {
				_, _ = p.A.Transmit(b)
			}
		})
		must(t, p.Close())
		if allocs != 0 {
			t.Fatalf("queue %d: %.1f allocs per 32-packet transmit", q, allocs)
		}
	}
}
