package ifnet

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hvguest/hvguest/net/packet"
)

func upIf(t testing.TB, name string) (*Interface, *fakeDriver) {
	ifp, d := newTestIf(t, name, 0)
	if err := ifp.Ioctl(&SetFlags{Flags: FlagUp}); err != nil {
		t.Fatal(err)
	}
	ifp.SetRunning(true)
	return ifp, d
}

func TestTransmitOwnershipAndCounts(t *testing.T) {
	pool := packet.MustPool(packet.PoolConfig{Size: 256, Max: 16})
	ifp, d := newTestIf(t, "t0", 0)
	b := packet.NewBatch(8)
	fill(t, pool, b, 8, 60, 0)
	b.At(7).Bytes()[0] = 0xff // broadcast
	n, err := ifp.Transmit(b)
	mustIs(t, err, ErrDown)
	if n != 0 || b.Len() != 8 {
		t.Fatal("a down interface took packets")
	}
	must(t, ifp.Ioctl(&SetFlags{Flags: FlagUp}))
	_, err = ifp.Transmit(b)
	mustIs(t, err, ErrDown) // up but not running
	ifp.SetRunning(true)

	d.txLimit = 5
	n, err = ifp.Transmit(b)
	mustIs(t, err, ErrBusy)
	if n != 5 || b.Len() != 3 || d.txPkts.Load() != 5 {
		t.Fatalf("partial transmit: n %d left %d driver %d", n, b.Len(), d.txPkts.Load())
	}
	if b.At(0).Bytes()[6] != 5 {
		t.Fatal("the unsent packets are not the tail of the batch")
	}
	d.txLimit = 0
	n, err = ifp.Transmit(b)
	must(t, err)
	if n != 3 || b.Len() != 0 {
		t.Fatalf("second transmit n %d left %d", n, b.Len())
	}
	st := ifp.Stats()
	if st.OutPackets != 8 || st.OutBytes != 480 || st.OutMulticast != 1 || d.txBytes.Load() != 480 {
		t.Fatalf("stats %+v", st)
	}
	if pool.Stats().InUse != 0 {
		t.Fatal("driver did not free sent packets")
	}
	r := NewRegistry()
	defer r.Close()
	must(t, r.Attach(ifp))
	must(t, r.Detach(ifp))
	fill(t, pool, b, 1, 60, 0)
	_, err = ifp.Transmit(b)
	mustIs(t, err, ErrDetached)
	b.Free()
}

func TestInputDefaultDropAndDetached(t *testing.T) {
	pool := packet.MustPool(packet.PoolConfig{Size: 256})
	ifp, _ := newTestIf(t, "t0", 0)
	b := packet.NewBatch(4)
	fill(t, pool, b, 4, 100, 0)
	b.At(0).Bytes()[0] = 0x01
	ifp.Input(b)
	st := ifp.Stats()
	if b.Len() != 0 || st.InPackets != 4 || st.InBytes != 400 || st.InMulticast != 1 || st.Drops[DropNoInput] != 4 {
		t.Fatalf("stats %+v", st)
	}
	if pool.Stats().InUse != 0 {
		t.Fatal("dropped packets not freed")
	}
	r := NewRegistry()
	defer r.Close()
	must(t, r.Attach(ifp))
	must(t, r.Detach(ifp))
	fill(t, pool, b, 2, 100, 0)
	ifp.Input(b)
	if ifp.Stats().Drops[DropDetached] != 2 || pool.Stats().InUse != 0 || ifp.Stats().TotalDrops() != 6 {
		t.Fatal("detached input not dropped")
	}
	ifp.CountDrops(DropReason(200), 1)
	ifp.CountInErrors(2)
	ifp.CountOutErrors(3)
	if st := ifp.Stats(); st.Drops[DropOther] != 1 || st.InErrors != 2 || st.OutErrors != 3 {
		t.Fatalf("driver counters %+v", st)
	}
	if DropQueueFull.String() != "queue-full" || DropReason(99).String() != "drop(99)" {
		t.Fatal("drop reason strings")
	}
}

// sink is a stack input that records packet ids (first 4 data bytes).
type sink struct {
	mu   sync.Mutex
	seen map[uint32]int
	rcv  map[uint32]int // by RcvIf
	n    atomic.Int64
}

func newSink() *sink { return &sink{seen: map[uint32]int{}, rcv: map[uint32]int{}} }

func (s *sink) input(ifp *Interface, b *packet.Batch) {
	s.mu.Lock()
	for _, p := range b.Packets() {
		s.seen[binary.BigEndian.Uint32(p.Bytes()[8:])]++
		s.rcv[p.Meta.RcvIf]++
	}
	s.mu.Unlock()
	s.n.Add(int64(b.Len()))
	b.Free()
}

func TestInputOverrideRelabels(t *testing.T) {
	r := NewRegistry()
	defer r.Close()
	pool := packet.MustPool(packet.PoolConfig{Size: 256})
	hn, _ := upIf(t, "hn0")
	vf, _ := upIf(t, "vf0")
	must(t, r.Attach(hn))
	must(t, r.Attach(vf))
	hnStack, vfStack := newSink(), newSink()
	hn.SetInput(hnStack.input)
	vf.SetInput(vfStack.input)
	_, err := vf.OverrideInput(nil)
	mustIs(t, err, ErrInvalid)
	ov, err := vf.OverrideInput(func(_ *Interface, b *packet.Batch) { hn.Input(b) })
	must(t, err)
	b := packet.NewBatch(4)
	fill(t, pool, b, 4, 64, 0)
	vf.Input(b)
	if hnStack.n.Load() != 4 || vfStack.n.Load() != 0 || hnStack.rcv[hn.Index()] != 4 {
		t.Fatalf("override: hn got %d (rcvif %v), vf got %d", hnStack.n.Load(), hnStack.rcv, vfStack.n.Load())
	}
	if vs, hs := vf.Stats(), hn.Stats(); vs.InPackets != 4 || vs.InBytes != 256 || hs.InPackets != 4 || hs.InBytes != 256 {
		t.Fatalf("counts vf %+v hn %+v", vs, hs)
	}
	must(t, ov.Restore())
	mustIs(t, ov.Restore(), ErrReleased)
	fill(t, pool, b, 2, 64, 0)
	vf.Input(b)
	if vfStack.n.Load() != 2 || vfStack.rcv[vf.Index()] != 2 || vf.Overridden() != 0 {
		t.Fatal("restore did not give input back to the stack")
	}
}

func TestInputOverrideNesting(t *testing.T) {
	pool := packet.MustPool(packet.PoolConfig{Size: 256})
	ifp, _ := newTestIf(t, "t0", 0)
	stack := newSink()
	ifp.SetInput(stack.input)
	var order []string
	tap, err := ifp.OverrideInput(func(_ *Interface, b *packet.Batch) {
		order = append(order, "tap")
		tapHandle.Next(b)
	})
	must(t, err)
	tapHandle = tap
	redirect := newSink()
	red, err := ifp.OverrideInput(func(ifp *Interface, b *packet.Batch) {
		order = append(order, "redirect")
		redirect.input(ifp, b)
	})
	must(t, err)
	b := packet.NewBatch(2)
	send := func() {
		fill(t, pool, b, 2, 64, 0)
		ifp.Input(b)
	}
	send() // redirect is innermost
	// Restoring the older override (tap) must not disturb the newer one.
	must(t, tap.Restore())
	send()
	if redirect.n.Load() != 4 || stack.n.Load() != 0 {
		t.Fatalf("redirect %d stack %d", redirect.n.Load(), stack.n.Load())
	}
	// Reinstall a tap above the redirect: its Next reaches the redirect.
	tap2, err := ifp.OverrideInput(func(_ *Interface, b *packet.Batch) {
		order = append(order, "tap2")
		tap2Handle.Next(b)
	})
	must(t, err)
	tap2Handle = tap2
	send()
	must(t, red.Restore())
	send() // tap2's Next now reaches the stack
	must(t, tap2.Restore())
	send()
	want := []string{"redirect", "redirect", "tap2", "redirect", "tap2"}
	if len(order) != len(want) {
		t.Fatalf("order %v", order)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
	if redirect.n.Load() != 6 || stack.n.Load() != 4 || ifp.Overridden() != 0 {
		t.Fatalf("redirect %d stack %d", redirect.n.Load(), stack.n.Load())
	}
	// Next on a restored handle delivers to the current input.
	fill(t, pool, b, 1, 64, 0)
	tap.Next(b)
	if stack.n.Load() != 5 {
		t.Fatal("stale Next lost the packet")
	}
}

var tapHandle, tap2Handle *InputOverride

// TestOverrideWhilePacketsFlow toggles hn's override of its VF's input while
// several goroutines deliver packets: every packet must arrive exactly once,
// at the VF's stack or (relabelled) at hn's stack.
func TestOverrideWhilePacketsFlow(t *testing.T) {
	hn, _ := upIf(t, "hn0")
	vf, _ := upIf(t, "vf0")
	r := NewRegistry()
	defer r.Close()
	must(t, r.Attach(hn))
	must(t, r.Attach(vf))
	hnStack, vfStack := newSink(), newSink()
	hn.SetInput(hnStack.input)
	vf.SetInput(vfStack.input)
	pool := packet.MustPool(packet.PoolConfig{Size: 128})

	const senders, batches, per = 4, 300, 8
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var toggles atomic.Int64
	wg.Add(1)
	go func() { // the owner: hn overriding and restoring, like VF attach/detach
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ov, err := vf.OverrideInput(func(_ *Interface, b *packet.Batch) { hn.Input(b) })
			if err != nil {
				t.Error(err)
				return
			}
			if err := ov.Restore(); err != nil {
				t.Error(err)
				return
			}
			toggles.Add(1)
		}
	}()
	var sendWG sync.WaitGroup
	for s := range senders {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			b := packet.NewBatch(per)
			for i := range batches {
				pool.GetBatch(b, per)
				for k, p := range b.Packets() {
					data, _ := p.Append(64)
					data[0] = 2
					binary.BigEndian.PutUint32(data[8:], uint32((s*batches+i)*per+k))
				}
				vf.Input(b)
			}
		}()
	}
	sendWG.Wait()
	close(stop)
	wg.Wait()

	const total = senders * batches * per
	if got := hnStack.n.Load() + vfStack.n.Load(); got != total {
		t.Fatalf("delivered %d of %d (hn %d, vf %d)", got, total, hnStack.n.Load(), vfStack.n.Load())
	}
	for id := range uint32(total) {
		if c := hnStack.seen[id] + vfStack.seen[id]; c != 1 {
			t.Fatalf("packet %d delivered %d times", id, c)
		}
	}
	if hnStack.rcv[vf.Index()] != 0 || vfStack.rcv[hn.Index()] != 0 {
		t.Fatal("packet with the wrong receiving interface")
	}
	if vf.Stats().InPackets != total || hn.Stats().InPackets != uint64(hnStack.n.Load()) {
		t.Fatal("input counters do not add up")
	}
	if pool.Stats().InUse != 0 {
		t.Fatal("packets leaked")
	}
	t.Logf("%d override/restore cycles; hn got %d, vf %d", toggles.Load(), hnStack.n.Load(), vfStack.n.Load())
}

func TestDataPathAllocs(t *testing.T) {
	hn, _ := upIf(t, "hn0")
	vf, _ := upIf(t, "vf0")
	hn.SetInput(func(_ *Interface, b *packet.Batch) { b.Free() })
	vf.SetInput(func(_ *Interface, b *packet.Batch) { b.Free() })
	pool := packet.MustPool(packet.PoolConfig{Prealloc: 64})
	b := packet.NewBatch(32)
	run := func() {
		pool.GetBatch(b, 32)
		for _, p := range b.Packets() {
			_, _ = p.Append(60)
		}
		vf.Input(b)
		pool.GetBatch(b, 32)
		for _, p := range b.Packets() {
			_, _ = p.Append(60)
		}
		_, _ = vf.Transmit(b)
	}
	if a := testing.AllocsPerRun(200, run); a != 0 {
		t.Fatalf("direct: %.1f allocs per run", a)
	}
	ov, err := vf.OverrideInput(func(_ *Interface, b *packet.Batch) { hn.Input(b) })
	must(t, err)
	defer ov.Restore()
	if a := testing.AllocsPerRun(200, run); a != 0 {
		t.Fatalf("overridden: %.1f allocs per run", a)
	}
}
