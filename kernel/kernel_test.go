package kernel

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSimRAMAllocFreeView(t *testing.T) {
	m := NewSimRAM(16)
	a, err := m.Alloc(3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	if a.PFNs[0] != DefaultBasePFN || a.PFNs[2] != DefaultBasePFN+2 || b.PFNs[0] != DefaultBasePFN+3 {
		t.Fatalf("pfns a=%x b=%x", a.PFNs, b.PFNs)
	}
	if got := m.FreePages(); got != 9 {
		t.Fatalf("free pages %d, want 9", got)
	}
	copy(b.Bytes[PageSize-2:], "hello")
	if g := b.GPA(PageSize - 2); g != (DefaultBasePFN+3)<<PageShift|(PageSize-2) {
		t.Fatalf("gpa %#x", g)
	}
	// The host sees the same bytes by PFN, across the page boundary.
	got := make([]byte, 5)
	if err := CopyFromPhys(m, got, b.GPA(PageSize-2)); err != nil || string(got) != "hello" {
		t.Fatalf("CopyFromPhys %q %v", got, err)
	}
	if err := CopyToPhys(m, a.GPA(PageSize*3-1), []byte("X")); err != nil || a.Bytes[PageSize*3-1] != 'X' {
		t.Fatalf("CopyToPhys: %v", err)
	}
	v, err := m.View(b.PFNs)
	if err != nil || &v[0] != &b.Bytes[0] || len(v) != 4*PageSize {
		t.Fatalf("view: %v", err)
	}
	if _, err := m.View([]uint64{b.PFNs[0], b.PFNs[2]}); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("non-contiguous view: %v", err)
	}
	if _, err := m.Page(DefaultBasePFN + 16); !errors.Is(err, ErrBadPFN) {
		t.Fatalf("page past end: %v", err)
	}
	if _, err := m.Page(0); !errors.Is(err, ErrBadPFN) {
		t.Fatalf("page 0: %v", err)
	}
	if _, err := m.View([]uint64{DefaultBasePFN + 15, DefaultBasePFN + 16}); !errors.Is(err, ErrBadPFN) {
		t.Fatalf("view past end: %v", err)
	}
	if _, err := m.Alloc(10); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("overcommit: %v", err)
	}
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	if err := m.Free(a); !errors.Is(err, ErrBadRegion) {
		t.Fatalf("double free: %v", err)
	}
	// Freed memory comes back zeroed.
	c, err := m.Alloc(3)
	if err != nil || c.PFNs[0] != DefaultBasePFN || c.Bytes[PageSize*3-1] != 0 {
		t.Fatalf("realloc: %v %x", err, c.PFNs)
	}
	if m.Allocations() != 2 {
		t.Fatalf("allocations %d", m.Allocations())
	}
	sub := b.Sub(1, 2)
	if sub.PFNs[0] != b.PFNs[1] || len(sub.Bytes) != 2*PageSize {
		t.Fatal("sub region")
	}
}

func TestSharedFileMappingsAlias(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ram")
	a, err := MapSharedFile(path, 8*PageSize, true)
	if err != nil {
		t.Fatal(err)
	}
	defer UnmapShared(a)
	b, err := MapSharedFile(path, 8*PageSize, false)
	if err != nil {
		t.Fatal(err)
	}
	defer UnmapShared(b)
	if &a[0] == &b[0] {
		t.Fatal("expected two distinct mappings")
	}
	guest, _ := NewSimRAMOver(a[PageSize:], 0x500)
	host, _ := NewSimRAMOver(b[PageSize:], 0x500)
	r, err := guest.Alloc(2)
	if err != nil {
		t.Fatal(err)
	}
	copy(r.Bytes[PageSize:], "through the file")
	p, err := host.Page(r.PFNs[1])
	if err != nil || !bytes.HasPrefix(p, []byte("through the file")) {
		t.Fatalf("host view: %v %q", err, p[:16])
	}
	if _, err := MapSharedFile(path, 9*PageSize, false); err == nil {
		t.Fatal("mapping past the file's end must fail")
	}
}

func TestFakeClock(t *testing.T) {
	c := NewFakeClock(time.Unix(1000, 0))
	t2 := c.NewTimer(2 * time.Second)
	t1 := c.NewTimer(time.Second)
	t3 := c.NewTimer(3 * time.Second)
	if !t3.Stop() || t3.Stop() {
		t.Fatal("stop semantics")
	}
	c.Advance(1500 * time.Millisecond)
	select {
	case at := <-t1.C():
		if !at.Equal(time.Unix(1001, 0)) {
			t.Fatalf("t1 fired with %v", at)
		}
	default:
		t.Fatal("t1 did not fire")
	}
	select {
	case <-t2.C():
		t.Fatal("t2 fired early")
	default:
	}
	if c.Timers() != 1 {
		t.Fatalf("%d timers", c.Timers())
	}
	done := make(chan struct{})
	go func() {
		c.WaitForTimers(2)
		close(done)
	}()
	time.Sleep(10 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("WaitForTimers returned with one timer")
	default:
	}
	c.NewTimer(time.Hour)
	<-done
	c.Advance(time.Second)
	if _, ok := <-t2.C(); !ok || !c.Now().Equal(time.Unix(1002, 500e6)) {
		t.Fatal("t2")
	}
}

func TestEventCoalesces(t *testing.T) {
	e := NewEvent()
	e.Signal()
	e.Signal()
	if !e.Pending() || e.Pending() {
		t.Fatal("two signals must coalesce into one")
	}
}

func TestRateLimit(t *testing.T) {
	var buf bytes.Buffer
	clk := NewFakeClock(time.Unix(0, 0))
	l := slog.New(RateLimit(slog.NewTextHandler(&buf, nil), 2, time.Second, clk)).With("dev", "x")
	for i := 0; i < 10; i++ {
		l.Warn("bad packet", "i", i)
	}
	clk.Advance(time.Second)
	l.Warn("bad packet", "i", 10)
	out := buf.String()
	if n := strings.Count(out, "bad packet"); n != 3 {
		t.Fatalf("%d lines passed, want 3:\n%s", n, out)
	}
	if !strings.Contains(out, "i=10 suppressed=8") || !strings.Contains(out, "dev=x") {
		t.Fatalf("missing suppressed count or attrs:\n%s", out)
	}
}
