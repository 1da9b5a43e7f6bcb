package packet

// DefaultBatchSize is the batch capacity used when none is configured.
const DefaultBatchSize = 64

// Batch is a reusable, fixed-capacity list of packets: the unit that crosses
// boundaries (transmit, input, ring reads). Its capacity never grows, so
// filling and draining it allocates nothing.
//
// A Batch is a container: whoever owns the batch owns the packets in it, and
// the functions it is handed to say which packets they take. Clear forgets
// the packets without freeing them (after their ownership moved elsewhere);
// Free returns them to their pools.
//
// A Batch is not safe for concurrent use.
type Batch struct {
	pkts []*Packet
}

// NewBatch returns an empty batch that holds up to capacity packets
// (DefaultBatchSize if capacity <= 0).
func NewBatch(capacity int) *Batch {
	if capacity <= 0 {
		capacity = DefaultBatchSize
	}
	return &Batch{pkts: make([]*Packet, 0, capacity)}
}

// Len returns the number of packets in the batch.
func (b *Batch) Len() int { return len(b.pkts) }

// Cap returns the batch's fixed capacity.
func (b *Batch) Cap() int { return cap(b.pkts) }

// Full reports whether the batch is at capacity.
func (b *Batch) Full() bool { return len(b.pkts) == cap(b.pkts) }

// Add appends p and reports whether there was room; on false the caller
// still owns p.
func (b *Batch) Add(p *Packet) bool {
	if len(b.pkts) == cap(b.pkts) {
		return false
	}
	b.pkts = append(b.pkts, p)
	return true
}

// At returns the i-th packet.
func (b *Batch) At(i int) *Packet { return b.pkts[i] }

// Packets returns the packets as a slice that aliases the batch: it is valid
// until the batch changes. Callers may rewrite entries in place and then
// Truncate, to filter a batch without allocating.
func (b *Batch) Packets() []*Packet { return b.pkts }

// Bytes returns the total data length of the packets.
func (b *Batch) Bytes() int {
	n := 0
	for _, p := range b.pkts {
		n += p.Len()
	}
	return n
}

// Truncate keeps the first n packets and forgets the rest without freeing
// them.
func (b *Batch) Truncate(n int) {
	if n < 0 || n > len(b.pkts) {
		panic("packet: Batch.Truncate out of range")
	}
	clear(b.pkts[n:])
	b.pkts = b.pkts[:n]
}

// Consume removes the first n packets without freeing them (their new owner
// took them) and moves the rest to the front. It is how a driver that
// accepted only part of a batch leaves the remainder with the caller.
func (b *Batch) Consume(n int) {
	if n < 0 || n > len(b.pkts) {
		panic("packet: Batch.Consume out of range")
	}
	if n == 0 {
		return
	}
	k := copy(b.pkts, b.pkts[n:])
	clear(b.pkts[k:])
	b.pkts = b.pkts[:k]
}

// MoveTo moves as many packets as fit from the front of b to the end of dst
// (ownership goes with them) and returns how many it moved.
func (b *Batch) MoveTo(dst *Batch) int {
	n := min(len(b.pkts), cap(dst.pkts)-len(dst.pkts))
	dst.pkts = append(dst.pkts, b.pkts[:n]...)
	b.Consume(n)
	return n
}

// Clear forgets all packets without freeing them.
func (b *Batch) Clear() {
	clear(b.pkts)
	b.pkts = b.pkts[:0]
}

// Free frees every packet (runs of packets from the same pool under one pool
// lock) and empties the batch.
func (b *Batch) Free() {
	pk := b.pkts
	for i := 0; i < len(pk); {
		pool := pk[i].pool
		j := i + 1
		for j < len(pk) && pk[j].pool == pool {
			j++
		}
		if pool == nil {
			for _, p := range pk[i:j] {
				p.Reset()
			}
		} else {
			pool.putRun(pk[i:j])
		}
		i = j
	}
	b.Clear()
}
