package testbed

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/hvguest/hvguest/net/packet"
)

// The numbered frame stream. Each frame is an Ethernet frame of EtherType
// StreamEtherType (IEEE 802 local experimental 1) whose payload carries a
// magic word, the direction, a sequence number and the send time, followed
// by a fill pattern derived from the sequence number so the receiver can
// check the payload arrived intact.

// StreamEtherType is the EtherType of stream frames.
const StreamEtherType = 0x88B5

const (
	ethHeaderLen   = 14
	streamMagic    = 0x68767353 // "hvsS"
	streamHdrLen   = 24         // magic, dir, pad, seq, send time
	minStreamFrame = ethHeaderLen + streamHdrLen
)

// Direction of a stream.
type Direction uint8

const (
	ToGuest   Direction = 1 // the remote station sends, the guest receives
	ToStation Direction = 2 // the guest sends, the remote station receives
)

func (d Direction) String() string {
	switch d {
	case ToGuest:
		return "to_guest"
	case ToStation:
		return "to_station"
	}
	return "unknown"
}

// Stream errors (counted, never fatal: a frame that fails is reported).
var (
	errNotStream = errors.New("testbed: not a stream frame")
	errCorrupt   = errors.New("testbed: stream frame payload corrupt")
)

// encodeStream writes a stream frame into b (len(b) is the frame size, at
// least minStreamFrame).
func encodeStream(b []byte, dst, src [6]byte, dir Direction, seq uint64, sentNS int64) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], StreamEtherType)
	h := b[ethHeaderLen:]
	binary.BigEndian.PutUint32(h[0:4], streamMagic)
	h[4] = byte(dir)
	h[5], h[6], h[7] = 0, 0, 0
	binary.BigEndian.PutUint64(h[8:16], seq)
	binary.BigEndian.PutUint64(h[16:24], uint64(sentNS))
	fill := h[streamHdrLen:]
	for i := range fill {
		fill[i] = byte(seq) + byte(i)
	}
}

// peekStream returns the direction and sequence number of a stream frame
// without checking its payload (the per-path observers use it).
func peekStream(b []byte) (Direction, uint64, bool) {
	if len(b) < minStreamFrame || binary.BigEndian.Uint16(b[12:14]) != StreamEtherType {
		return 0, 0, false
	}
	h := b[ethHeaderLen:]
	if binary.BigEndian.Uint32(h[0:4]) != streamMagic {
		return 0, 0, false
	}
	return Direction(h[4]), binary.BigEndian.Uint64(h[8:16]), true
}

// decodeStream checks a whole stream frame: header and fill pattern.
func decodeStream(b []byte) (Direction, uint64, error) {
	dir, seq, ok := peekStream(b)
	if !ok {
		return 0, 0, errNotStream
	}
	h := b[ethHeaderLen:]
	for i, v := range h[streamHdrLen:] {
		if v != byte(seq)+byte(i) {
			return dir, seq, errCorrupt
		}
	}
	return dir, seq, nil
}

// isStream reports whether p is a stream frame (by EtherType only).
func isStream(p *packet.Packet) bool {
	b := p.Bytes()
	return len(b) >= ethHeaderLen && binary.BigEndian.Uint16(b[12:14]) == StreamEtherType
}

// Path is the data path a frame took.
type Path uint8

const (
	PathSynthetic Path = 0
	PathVF        Path = 1
)

func (p Path) String() string {
	if p == PathVF {
		return "vf"
	}
	return "synthetic"
}

// bitset is a fixed-size set of sequence numbers, safe for concurrent use.
type bitset []atomic.Uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (s bitset) set(i uint64) {
	if w := i / 64; w < uint64(len(s)) {
		s[w].Or(1 << (i % 64))
	}
}

func (s bitset) has(i uint64) bool {
	w := i / 64
	return w < uint64(len(s)) && s[w].Load()&(1<<(i%64)) != 0
}

// streamRx is the receiving end's accounting of one direction. The arrays
// are sized for the most frames the run can send and written with atomics:
// the synthetic and the VF receive paths deliver concurrently.
type streamRx struct {
	dir     Direction
	arrival []atomic.Int64 // ns since the run's epoch, +1 (0: not yet)
	path    bitset         // set: delivered by the VF path
	onVF    bitset         // set by the VF interface's observer
	dups    atomic.Uint64
	corrupt atomic.Uint64
	foreign atomic.Uint64 // wrong direction or sequence out of range
}

func newStreamRx(dir Direction, max int) *streamRx {
	return &streamRx{dir: dir, arrival: make([]atomic.Int64, max), path: newBitset(max), onVF: newBitset(max)}
}

// deliver records one frame delivered at now (ns since the epoch).
func (r *streamRx) deliver(b []byte, now int64) {
	dir, seq, err := decodeStream(b)
	switch {
	case errors.Is(err, errCorrupt):
		r.corrupt.Add(1)
		return
	case err != nil || dir != r.dir || seq >= uint64(len(r.arrival)):
		r.foreign.Add(1)
		return
	}
	if !r.arrival[seq].CompareAndSwap(0, now+1) {
		r.dups.Add(1)
		return
	}
	if r.onVF.has(seq) {
		r.path.set(seq)
	}
}

// markVF records that frame seq crossed the VF interface (observer).
func (r *streamRx) markVF(b []byte) {
	if dir, seq, ok := peekStream(b); ok && dir == r.dir {
		r.onVF.set(seq)
	}
}

// delivery is one delivered frame: when and on which path.
type delivery struct {
	at   int64 // ns since the epoch
	path Path
}

// deliveries returns the delivered frames of the first sent sequence
// numbers, in sequence order, and how many were received.
func (r *streamRx) deliveries(sent uint64) ([]delivery, uint64) {
	out := make([]delivery, 0, sent)
	for i := uint64(0); i < sent && i < uint64(len(r.arrival)); i++ {
		if t := r.arrival[i].Load(); t != 0 {
			p := PathSynthetic
			if r.path.has(i) {
				p = PathVF
			}
			out = append(out, delivery{at: t - 1, path: p})
		}
	}
	return out, uint64(len(out))
}
