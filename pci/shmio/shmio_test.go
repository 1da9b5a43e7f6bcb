package shmio

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/pci"
)

// regs is a test device: BAR 0 is a pci.MemBAR, the config window records
// what it was given; block, when set, holds the pump inside a read.
type regs struct {
	bar0   *pci.MemBAR
	mu     sync.Mutex
	window map[uint64]uint64
	block  atomic.Pointer[chan struct{}] // set: reads wait for it to close
}

func newRegs() *regs { return &regs{bar0: pci.NewMemBAR(0x1000), window: map[uint64]uint64{}} }

func (r *regs) Read(space int, off uint64, size int) uint64 {
	if b := r.block.Load(); b != nil {
		<-*b
	}
	switch space {
	case 0:
		if size == 8 {
			return r.bar0.Read64(off)
		}
		return uint64(r.bar0.Read32(off&^3) >> (8 * (off & 3)))
	case SpaceConfigWindow:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.window[off]
	}
	return ^uint64(0)
}

func (r *regs) Write(space int, off uint64, size int, v uint64) {
	switch space {
	case 0:
		if size == 8 {
			r.bar0.Write64(off, v)
		} else {
			r.bar0.Write32(off, uint32(v))
		}
	case SpaceConfigWindow:
		r.mu.Lock()
		r.window[off] = v
		r.mu.Unlock()
	}
}

func area(t testing.TB, req, irq int) []byte {
	t.Helper()
	words := make([]uint64, (Size(req, irq)+7)/8)
	return unsafeBytes(words)
}

func pair(t *testing.T, cfg GuestConfig) (*Host, *Guest, *regs, []byte) {
	t.Helper()
	before := runtime.NumGoroutine()
	mem := area(t, 16, 8)
	r := newRegs()
	h, err := NewHost(mem, 16, 8, r)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGuest(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		h.Close()
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
				return
			}
		}
	})
	return h, g, r, mem
}

// Posted writes land in order and a read after them sees them (PCI's
// ordering), through the BAR and the config window, at every size.
func TestBARAndWindow(t *testing.T) {
	h, g, r, _ := pair(t, GuestConfig{})
	b := g.BAR(0, 0x1000)
	for i := range uint64(200) {
		b.Write32(i*4, uint32(i*0x01010101))
		if got := b.Read32(i * 4); got != uint32(i*0x01010101) {
			t.Fatalf("BAR 0 %#x: read %#x after writing %#x", i*4, got, uint32(i*0x01010101))
		}
	}
	b.Write64(0x800, 0x1122334455667788)
	if got := b.Read64(0x800); got != 0x1122334455667788 || r.bar0.Read64(0x800) != 0x1122334455667788 {
		t.Fatalf("64-bit: %#x, device %#x", got, r.bar0.Read64(0x800))
	}
	if b.Read32(0x1000) != ^uint32(0) || b.Read32(2) != ^uint32(0) || b.Read64(4) != ^uint64(0) {
		t.Fatal("out of range or misaligned BAR reads do not read all-ones")
	}
	w := g.ConfigWindow()
	w.WriteMMIO(0, 4, 0x10) // slot select
	w.WriteMMIO(0x1004, 2, 0x0406)
	w.WriteMMIO(0x1010, 1, 0x1ff) // masked to a byte
	if w.ReadMMIO(0x1004, 2) != 0x0406 || w.ReadMMIO(0x1010, 1) != 0xff || w.ReadMMIO(0, 4) != 0x10 {
		t.Fatalf("window %v", r.window)
	}
	if w.ReadMMIO(0, 3) != ^uint32(0) {
		t.Fatal("a 3-byte window read")
	}
	hs, gs := h.Stats(), g.Stats()
	if hs.Reads != gs.Reads || hs.Writes != gs.Writes || hs.BadRequests != 0 || gs.Timeouts != 0 {
		t.Fatalf("host %+v guest %+v", hs, gs)
	}
	if hs.Reads != 204 || hs.Writes != 204 { // 200+1 BAR, 3 window each way (the 3-byte read stays local)
		t.Fatalf("host counted %d reads, %d writes", hs.Reads, hs.Writes)
	}
}

// Many goroutines share the guest: every read sees its own value.
func TestConcurrentGuests(t *testing.T) {
	_, g, _, _ := pair(t, GuestConfig{})
	b := g.BAR(0, 0x1000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := uint64(w) * 64
			for i := range uint32(300) {
				b.Write32(off, i<<8|uint32(w))
				if got := b.Read32(off); got != i<<8|uint32(w) {
					errs <- errors.New("lost a write")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// Interrupts arrive in order; a vector above MaxVector is dropped and
// counted; a full ring refuses and counts.
func TestInterrupts(t *testing.T) {
	got := make(chan uint32, 64)
	h, g, _, _ := pair(t, GuestConfig{OnInterrupt: func(v uint32) { got <- v }, MaxVector: 31})
	for v := range uint32(40) {
		for !h.Interrupt(v) {
			time.Sleep(time.Millisecond)
		}
	}
	for want := range uint32(32) {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("vector %d, want %d", v, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("vector %d never came", want)
		}
	}
	waitFor(t, func() bool { return g.Stats().BadVectors == 8 })
	if s := g.Stats(); s.Interrupts != 32 {
		t.Fatalf("guest %+v", s)
	}
	// With the guest gone, the ring fills and the host counts the loss.
	g.Close()
	before := h.Stats().InterruptsLost // retries above, while the guest drained
	lost := 0
	for range 20 {
		if !h.Interrupt(1) {
			lost++
		}
	}
	if lost != 12 || h.Stats().InterruptsLost-before != 12 {
		t.Fatalf("lost %d (stats %+v)", lost, h.Stats())
	}
}

// A host that stops answering: the read times out all-ones; the late
// reply is not taken for the next read's.
func TestReadTimeoutAndLateReply(t *testing.T) {
	_, g, r, _ := pair(t, GuestConfig{Timeout: 50 * time.Millisecond})
	b := g.BAR(0, 0x1000)
	b.Write32(0, 7)
	b.Write32(4, 9)
	if b.Read32(0) != 7 {
		t.Fatal("warm-up read")
	}
	block := make(chan struct{})
	r.block.Store(&block)
	start := time.Now()
	if v := b.Read32(0); v != ^uint32(0) || g.Stats().Timeouts != 1 {
		t.Fatalf("stalled read %#x, stats %+v", v, g.Stats())
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the timeout took too long")
	}
	r.block.Store(nil)
	close(block) // the host answers the old read now, then the next
	if v := b.Read32(4); v != 9 {
		t.Fatalf("read after a timed-out one: %#x, want 9", v)
	}
}

// A closed host: reads answer all-ones at once; a new guest is refused.
func TestHostClosed(t *testing.T) {
	h, g, _, mem := pair(t, GuestConfig{})
	h.Close()
	start := time.Now()
	if v := g.BAR(0, 0x1000).Read64(0); v != ^uint64(0) || time.Since(start) > time.Second {
		t.Fatalf("read after close %#x in %v", v, time.Since(start))
	}
	if g.Stats().ReadsAfterHostClosed != 1 {
		t.Fatalf("stats %+v", g.Stats())
	}
	if _, err := NewGuest(mem, GuestConfig{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("guest on a closed channel: %v", err)
	}
}

// Garbage the guest wrote into its ring is counted and dropped; a read
// among it still gets an answer (all-ones); the counters are repaired.
func TestBadRequests(t *testing.T) {
	h, g, _, mem := pair(t, GuestConfig{})
	v := g.v
	g.mu.Lock()
	prod := v.u32(offReqProd).Load()
	for i, rec := range []request{
		{op: 9, space: 0, size: 4},
		{op: opRead, space: 99, size: 4, tag: 77},
		{op: opWrite, space: 0, size: 3},
		{op: opWrite, space: 0, size: 4, off: 2},
		{op: opWrite, space: 0, size: 1, val: 0x100},
	} {
		rec.put(v.reqSlot(prod + uint32(i)))
	}
	v.u32(offReqProd).Store(prod + 5)
	g.mu.Unlock()
	waitFor(t, func() bool { return h.Stats().BadRequests == 5 })
	if v.u32(offReplySeq).Load() != 77 || v.u64(offReplyVal).Load() != ^uint64(0) {
		t.Fatalf("bad read answered tag %d value %#x", v.u32(offReplySeq).Load(), v.u64(offReplyVal).Load())
	}
	// A producer count beyond the ring.
	g.mu.Lock()
	v.u32(offReqProd).Store(v.u32(offReqProd).Load() + 1000)
	g.mu.Unlock()
	waitFor(t, func() bool { return h.Stats().BadCounters == 1 })
	b := g.BAR(0, 0x1000)
	b.Write32(8, 5)
	if b.Read32(8) != 5 {
		t.Fatal("the channel did not recover")
	}
	_ = mem
}

func TestLayoutErrors(t *testing.T) {
	if _, err := NewHost(area(t, 16, 8), 12, 8, newRegs()); !errors.Is(err, ErrLayout) {
		t.Errorf("12 slots: %v", err)
	}
	if _, err := NewHost(make([]byte, 100), 16, 8, newRegs()); !errors.Is(err, ErrLayout) {
		t.Errorf("small area: %v", err)
	}
	mem := area(t, 16, 8)
	if _, err := NewGuest(mem, GuestConfig{}); !errors.Is(err, ErrLayout) {
		t.Errorf("guest on an empty area: %v", err)
	}
	h, _ := NewHost(mem, 16, 8, newRegs())
	defer h.Close()
	binary.LittleEndian.PutUint32(mem[offVersion:], 2)
	if _, err := NewGuest(mem, GuestConfig{}); !errors.Is(err, ErrLayout) {
		t.Errorf("version 2: %v", err)
	}
	binary.LittleEndian.PutUint32(mem[offVersion:], version)
	g, err := NewGuest(mem, GuestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := NewGuest(mem, GuestConfig{}); !errors.Is(err, ErrLayout) {
		t.Errorf("second guest: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
