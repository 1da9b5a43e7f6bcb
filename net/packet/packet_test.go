package packet

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestPacketWindow(t *testing.T) {
	p := New(16, 32)
	if p.Len() != 0 || p.Headroom() != 16 || p.Tailroom() != 32 || p.Cap() != 48 {
		t.Fatalf("fresh: len %d head %d tail %d cap %d", p.Len(), p.Headroom(), p.Tailroom(), p.Cap())
	}
	if err := p.AppendBytes([]byte("payload")); err != nil {
		t.Fatal(err)
	}
	hdr, err := p.Prepend(4)
	if err != nil {
		t.Fatal(err)
	}
	copy(hdr, "HDR:")
	if got := string(p.Bytes()); got != "HDR:payload" {
		t.Fatalf("data %q", got)
	}
	if _, err := p.Prepend(13); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("prepend past headroom: %v", err)
	}
	if _, err := p.Append(26); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("append past tailroom: %v", err)
	}
	if _, err := p.Append(-1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative append: %v", err)
	}
	if err := p.TrimFront(4); err != nil {
		t.Fatal(err)
	}
	if err := p.TrimBack(3); err != nil {
		t.Fatal(err)
	}
	if got := string(p.Bytes()); got != "payl" {
		t.Fatalf("after trims %q", got)
	}
	if err := p.TrimFront(5); !errors.Is(err, ErrInvalid) {
		t.Fatalf("over-trim: %v", err)
	}
	// Bytes must not let a caller append into the tailroom by accident.
	b := p.Bytes()
	if cap(b) != len(b) {
		t.Fatalf("Bytes cap %d len %d", cap(b), len(b))
	}
	if err := p.SetBytes(bytes.Repeat([]byte{1}, 33)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("SetBytes too long: %v", err)
	}
	p.Meta.SetVLAN(0x2005)
	if p.Meta.VLANID() != 5 || !p.Meta.HasVLAN {
		t.Fatalf("vlan %v", p.Meta)
	}
	q := New(0, 64)
	if err := p.CopyTo(q); err != nil {
		t.Fatal(err)
	}
	if string(q.Bytes()) != "payl" || q.Meta != p.Meta {
		t.Fatalf("copy: %q %+v", q.Bytes(), q.Meta)
	}
	p.Free()
	if p.Len() != 0 || p.Meta != (Meta{}) || p.Headroom() != 16 {
		t.Fatal("Free of unpooled packet must reset it")
	}
}

func TestMulticastAndStrings(t *testing.T) {
	p := New(0, 64)
	_ = p.SetBytes([]byte{0x01, 0, 0x5e, 0, 0, 1, 0xaa})
	if !p.IsMulticast() {
		t.Fatal("multicast not detected")
	}
	_ = p.SetBytes([]byte{0x02, 0, 0, 0, 0, 1})
	if p.IsMulticast() {
		t.Fatal("unicast seen as multicast")
	}
	if s := (CsumTxIPv4 | CsumRxL4Bad).String(); s != "TX_IPV4|RX_L4_BAD" {
		t.Fatalf("csum string %q", s)
	}
	if s := Csum(0).String(); s != "0" {
		t.Fatalf("zero csum %q", s)
	}
	if HashTCPv6.String() != "tcp6" || HashType(200).String() != "hash(200)" {
		t.Fatal("hash type strings")
	}
}

func TestPoolBoundedAndDoubleFree(t *testing.T) {
	pool := MustPool(PoolConfig{Size: 64, Headroom: 8, Max: 3, Prealloc: 1})
	st := pool.Stats()
	if st.Created != 1 || st.Free != 1 {
		t.Fatalf("prealloc stats %+v", st)
	}
	var got []*Packet
	for range 3 {
		pk := pool.Get()
		if pk == nil {
			t.Fatal("pool exhausted early")
		}
		if pk.Headroom() != 8 || pk.Tailroom() != 64 || pk.Pool() != pool {
			t.Fatalf("geometry head %d tail %d", pk.Headroom(), pk.Tailroom())
		}
		got = append(got, pk)
	}
	if pool.Get() != nil {
		t.Fatal("bounded pool handed out a 4th packet")
	}
	if st := pool.Stats(); st.Misses != 1 || st.InUse != 3 {
		t.Fatalf("stats %+v", st)
	}
	got[0].Meta.Hash = 7
	_ = got[0].AppendBytes([]byte("x"))
	got[0].Free()
	again := pool.Get()
	if again != got[0] || again.Len() != 0 || again.Meta.Hash != 0 {
		t.Fatal("recycled packet not reset")
	}
	again.Free()
	defer func() {
		if recover() == nil {
			t.Fatal("double free did not panic")
		}
	}()
	again.Free()
}

func TestBatchOps(t *testing.T) {
	pool := MustPool(PoolConfig{Size: 64, Max: 10})
	b := NewBatch(4)
	if n := pool.GetBatch(b, 10); n != 4 || !b.Full() {
		t.Fatalf("GetBatch got %d", n)
	}
	if b.Add(New(0, 1)) {
		t.Fatal("Add on a full batch")
	}
	for i, p := range b.Packets() {
		_ = p.AppendBytes(bytes.Repeat([]byte{byte(i)}, i+1))
	}
	if b.Bytes() != 1+2+3+4 {
		t.Fatalf("bytes %d", b.Bytes())
	}
	first, third := b.At(0), b.At(2)
	b.Consume(2)
	if b.Len() != 2 || b.At(0) != third {
		t.Fatal("Consume did not shift")
	}
	first.Free()
	dst := NewBatch(1)
	if n := b.MoveTo(dst); n != 1 || dst.At(0) != third || b.Len() != 1 {
		t.Fatalf("MoveTo moved %d", n)
	}
	dst.Free()
	b.Free()
	if st := pool.Stats(); st.InUse != 1 || st.Free != 3 {
		// second packet was consumed without being freed: still in use
		t.Fatalf("stats %+v", st)
	}
	// Exhaustion through GetBatch.
	big := NewBatch(16)
	if n := pool.GetBatch(big, 16); n != 9 {
		t.Fatalf("GetBatch from bounded pool: %d", n)
	}
	if pool.Stats().Misses == 0 {
		t.Fatal("miss not counted")
	}
	big.Free()
}

func TestPoolConcurrent(t *testing.T) {
	pool := MustPool(PoolConfig{Size: 128, Max: 64})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := NewBatch(8)
			for i := range 2000 {
				n := pool.GetBatch(b, 8)
				for _, p := range b.Packets()[:n] {
					_ = p.AppendBytes([]byte{byte(g), byte(i)})
				}
				for _, p := range b.Packets() {
					if p.Len() != 2 || p.Bytes()[0] != byte(g) {
						t.Error("packet shared between owners")
						return
					}
				}
				b.Free()
			}
		}()
	}
	wg.Wait()
	if st := pool.Stats(); st.InUse != 0 || st.Created > 64 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	pool := MustPool(PoolConfig{Prealloc: 64})
	b := NewBatch(32)
	payload := make([]byte, 1000)
	allocs := testing.AllocsPerRun(100, func() {
		pool.GetBatch(b, 32)
		for _, p := range b.Packets() {
			_ = p.SetBytes(payload)
			_, _ = p.Prepend(14)
		}
		b.Free()
		p := pool.Get()
		p.Free()
	})
	if allocs != 0 {
		t.Fatalf("steady state allocates %.1f per run", allocs)
	}
}

func BenchmarkPoolBatch(b *testing.B) {
	pool := MustPool(PoolConfig{Prealloc: 64})
	bt := NewBatch(32)
	b.ReportAllocs()
	for b.Loop() {
		pool.GetBatch(bt, 32)
		bt.Free()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/pkt")
}
