package packet

import (
	"fmt"
	"sync"
)

// Default pool geometry: room for a 1500-byte MTU Ethernet frame with VLAN
// tag, and headroom for encapsulation headers (RNDIS packet message,
// NVSP, VXLAN).
const (
	DefaultHeadroom = 128
	DefaultSize     = 2048
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Size is the data capacity of each buffer, excluding headroom
	// (default DefaultSize).
	Size int
	// Headroom is reserved before the data of each fresh packet
	// (default DefaultHeadroom; use a negative value for none).
	Headroom int
	// Max bounds how many packets the pool ever creates (0: unbounded). When
	// all are in use, Get returns nil.
	Max int
	// Prealloc packets are created up front (at most Max).
	Prealloc int
}

// PoolStats is a snapshot of a pool's counters.
type PoolStats struct {
	Created int    // packets created so far
	Free    int    // packets on the free list now
	InUse   int    // Created - Free
	Max     int    // the configured bound (0: unbounded)
	Misses  uint64 // Get calls that found the pool exhausted
}

// Pool is a free list of fixed-size packets. It is safe for concurrent use.
//
// Concurrency: mu guards free, created and misses, and every packet's inPool
// flag. The lock is held only to push or pop pointers; GetBatch and
// Batch.Free take it once per batch.
type Pool struct {
	size, headroom, max int

	mu      sync.Mutex
	free    []*Packet
	created int
	misses  uint64
}

// NewPool returns a pool configured by cfg.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	switch {
	case cfg.Headroom == 0:
		cfg.Headroom = DefaultHeadroom
	case cfg.Headroom < 0:
		cfg.Headroom = 0
	}
	if cfg.Size < 0 || cfg.Max < 0 || cfg.Prealloc < 0 {
		return nil, fmt.Errorf("%w: pool size %d, max %d, prealloc %d", ErrInvalid, cfg.Size, cfg.Max, cfg.Prealloc)
	}
	if cfg.Max > 0 && cfg.Prealloc > cfg.Max {
		cfg.Prealloc = cfg.Max
	}
	p := &Pool{size: cfg.Size, headroom: cfg.Headroom, max: cfg.Max}
	capHint := cfg.Max
	if capHint == 0 {
		capHint = cfg.Prealloc
	}
	p.free = make([]*Packet, 0, capHint)
	for range cfg.Prealloc {
		pk := p.newPacket()
		pk.inPool = true
		p.free = append(p.free, pk)
	}
	p.created = cfg.Prealloc
	return p, nil
}

// MustPool is NewPool that panics on a bad configuration (for package-level
// pools and tests with constant configurations).
func MustPool(cfg PoolConfig) *Pool {
	p, err := NewPool(cfg)
	if err != nil {
		panic(err)
	}
	return p
}

// Size returns the data capacity of the pool's buffers (excluding headroom).
func (p *Pool) Size() int { return p.size }

// Headroom returns the headroom of a fresh packet.
func (p *Pool) Headroom() int { return p.headroom }

func (p *Pool) newPacket() *Packet {
	pk := &Packet{buf: make([]byte, p.headroom+p.size), headroom: p.headroom, pool: p}
	pk.Reset()
	return pk
}

// Get returns an empty packet (data window at the headroom, zero metadata),
// or nil if the pool is bounded and exhausted.
func (p *Pool) Get() *Packet {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		pk := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		pk.inPool = false
		p.mu.Unlock()
		return pk
	}
	if p.max > 0 && p.created >= p.max {
		p.misses++
		p.mu.Unlock()
		return nil
	}
	p.created++
	p.mu.Unlock()
	return p.newPacket()
}

// GetBatch adds up to n fresh packets to b (bounded by b's free capacity)
// and returns how many it added; fewer than asked means the pool is
// exhausted or the batch full.
func (p *Pool) GetBatch(b *Batch, n int) int {
	if room := b.Cap() - b.Len(); n > room {
		n = room
	}
	got := 0
	p.mu.Lock()
	for got < n && len(p.free) > 0 {
		k := len(p.free) - 1
		pk := p.free[k]
		p.free[k] = nil
		p.free = p.free[:k]
		pk.inPool = false
		b.pkts = append(b.pkts, pk)
		got++
	}
	fresh := n - got
	if p.max > 0 && p.created+fresh > p.max {
		fresh = p.max - p.created
	}
	if got+fresh < n {
		p.misses++
	}
	p.created += fresh
	p.mu.Unlock()
	for range fresh {
		b.pkts = append(b.pkts, p.newPacket())
	}
	return got + fresh
}

// put returns one packet to the free list.
func (p *Pool) put(pk *Packet) {
	pk.Reset()
	p.mu.Lock()
	if pk.inPool {
		p.mu.Unlock()
		panic("packet: double free")
	}
	pk.inPool = true
	p.free = append(p.free, pk)
	p.mu.Unlock()
}

// putRun returns a run of packets that all belong to p, under one lock.
func (p *Pool) putRun(run []*Packet) {
	for _, pk := range run {
		pk.Reset()
	}
	p.mu.Lock()
	for _, pk := range run {
		if pk.inPool {
			p.mu.Unlock()
			panic("packet: double free")
		}
		pk.inPool = true
		p.free = append(p.free, pk)
	}
	p.mu.Unlock()
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Created: p.created, Free: len(p.free), InUse: p.created - len(p.free), Max: p.max, Misses: p.misses}
}
