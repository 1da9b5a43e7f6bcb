package vswitch

import (
	"sync/atomic"

	"github.com/hvguest/hvguest/net/packet"
)

// Sink is a port that counts and frees whatever it is given. It allocates
// nothing.
type Sink struct {
	frames, bytes atomic.Uint64
}

// Deliver implements Port.
func (s *Sink) Deliver(b *packet.Batch) {
	s.frames.Add(uint64(b.Len()))
	s.bytes.Add(uint64(b.Bytes()))
	b.Free()
}

// Frames returns how many frames the sink received.
func (s *Sink) Frames() uint64 { return s.frames.Load() }

// Bytes returns how many bytes the sink received.
func (s *Sink) Bytes() uint64 { return s.bytes.Load() }

// Generator sends copies of a template frame into the switch through its
// port, in batches, allocating nothing per frame. Frames delivered to the
// generator's port are counted and freed (it embeds a Sink).
type Generator struct {
	Sink
	port     *SwitchPort
	pool     *packet.Pool
	batch    *packet.Batch
	template []byte
	meta     packet.Meta
	sent     atomic.Uint64
	short    atomic.Uint64
}

// NewGenerator attaches a generator to sw. The template is copied; the
// pool (nil: a new unbounded one) supplies the frames.
func NewGenerator(sw *Switch, name string, vc VLANConfig, template []byte, meta packet.Meta, pool *packet.Pool) (*Generator, error) {
	if pool == nil {
		pool = packet.MustPool(packet.PoolConfig{})
	}
	g := &Generator{pool: pool, batch: packet.NewBatch(packet.DefaultBatchSize), template: append([]byte(nil), template...), meta: meta}
	p, err := sw.Attach(name, g, vc)
	if err != nil {
		return nil, err
	}
	g.port = p
	return g, nil
}

// SwitchPort returns the generator's port.
func (g *Generator) SwitchPort() *SwitchPort { return g.port }

// SetTemplate replaces the template frame (not concurrently with Generate).
func (g *Generator) SetTemplate(frame []byte, meta packet.Meta) {
	g.template = append(g.template[:0], frame...)
	g.meta = meta
}

// Generate sends n frames and returns how many it could build (fewer if
// the pool ran out). It must not be called concurrently with itself.
func (g *Generator) Generate(n int) int {
	done := 0
	for done < n {
		k := min(n-done, g.batch.Cap())
		got := g.pool.GetBatch(g.batch, k)
		for _, p := range g.batch.Packets() {
			if err := p.SetBytes(g.template); err != nil {
				continue
			}
			p.Meta = g.meta
		}
		g.port.Input(g.batch)
		done += got
		if got < k {
			g.short.Add(uint64(n - done))
			break
		}
	}
	g.sent.Add(uint64(done))
	return done
}

// Sent returns how many frames the generator sent.
func (g *Generator) Sent() uint64 { return g.sent.Load() }
