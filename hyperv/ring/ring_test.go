package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

func newPair(t testing.TB, dsize int) (*Writer, *Reader, []byte) {
	t.Helper()
	ctl, data := newTestRing(t, dsize)
	w, err := NewWriter(ctl, data)
	must(t, err)
	r, err := NewReader(ctl, data, nil)
	must(t, err)
	return w, r, data
}

// fill writes a payload whose bytes are derived from seq.
func fill(b []byte, seq uint64) []byte {
	for i := range b {
		b[i] = byte(seq*131 + uint64(i)*7)
	}
	return b
}

// pktSpec describes one packet of the mixed-traffic test.
type pktSpec struct {
	typ    PacketType
	n      int
	seq    uint64
	npages int
}

func (s pktSpec) size() int {
	switch s.typ {
	case TypeGPADirect:
		return DescriptorSize + ExtHeaderSize + 8 + 8*s.npages + align8(s.n) + TrailerSize
	case TypeXferPages:
		return XferPagesSize(2, s.n)
	}
	return InBandSize(s.n)
}

func writeSpec(w *Writer, s pktSpec, buf []byte, rg *gpa.Range) error {
	payload := fill(buf[:s.n], s.seq)
	switch s.typ {
	case TypeInBand:
		return w.WriteInBand(s.seq, s.seq%2 == 0, payload)
	case TypeCompletion:
		return w.WriteCompletion(s.seq, payload)
	case TypeGPADirect:
		rg.ByteOffset = uint32(s.seq % 4096)
		rg.PFNs = rg.PFNs[:s.npages]
		rg.ByteCount = uint32(s.npages*4096) - rg.ByteOffset
		for i := range rg.PFNs {
			rg.PFNs[i] = s.seq<<8 | uint64(i)
		}
		return w.WriteGPADirect(s.seq, true, []gpa.Range{*rg}, payload)
	case TypeXferPages:
		xr := [2]XferRange{{uint32(s.seq), 1}, {2, uint32(s.seq >> 32)}}
		return w.WriteXferPages(s.seq, true, uint16(s.seq), s.seq%3 == 0, xr[:], payload)
	}
	panic("bad type")
}

func checkSpec(t testing.TB, p *Packet, s pktSpec, rg *gpa.Range) {
	t.Helper()
	if p.Type != s.typ || p.TransID != s.seq {
		t.Fatalf("packet %d: got type %v trans %d", s.seq, p.Type, p.TransID)
	}
	var want [2048]byte
	if len(p.Payload) != align8(s.n) || !bytes.Equal(p.Payload[:s.n], fill(want[:s.n], s.seq)) {
		t.Fatalf("packet %d (%v, %d bytes, wrapped %v): payload differs", s.seq, s.typ, s.n, p.Wrapped)
	}
	for _, b := range p.Payload[s.n:] {
		if b != 0 {
			t.Fatalf("packet %d: padding not zero", s.seq)
		}
	}
	switch s.typ {
	case TypeGPADirect:
		it := p.GPARanges()
		if it.Len() != 1 || !it.Next(rg) || it.Next(rg) || it.Err() != nil {
			t.Fatalf("packet %d: ranges: %v", s.seq, it.Err())
		}
		if rg.ByteOffset != uint32(s.seq%4096) || len(rg.PFNs) != s.npages || rg.PFNs[s.npages-1] != s.seq<<8|uint64(s.npages-1) {
			t.Fatalf("packet %d: range %+v", s.seq, rg)
		}
	case TypeXferPages:
		if p.RangeCount != 2 || p.XferRange(0) != (XferRange{uint32(s.seq), 1}) || p.XferRange(1) != (XferRange{2, uint32(s.seq >> 32)}) ||
			p.XferSetID != uint16(s.seq) || (p.SenderOwnsSet == 1) != (s.seq%3 == 0) {
			t.Fatalf("packet %d: xfer header %+v", s.seq, p)
		}
	case TypeInBand:
		if p.CompletionRequested() != (s.seq%2 == 0) {
			t.Fatalf("packet %d: flags %#x", s.seq, p.Flags)
		}
	}
}

// TestWrapAroundMixed drives a small ring around many times with batches
// of mixed packet kinds and sizes, checking every byte, the trailers, and
// that packets straddling the end are delivered intact.
func TestWrapAroundMixed(t *testing.T) {
	const dsize = 1024
	w, r, data := newPair(t, dsize)
	rng := rand.New(rand.NewPCG(1, 2))
	types := []PacketType{TypeInBand, TypeCompletion, TypeGPADirect, TypeXferPages}
	var queue []pktSpec
	var seq uint64
	var buf [2048]byte
	wrg := gpa.Range{PFNs: make([]uint64, 0, 4)}
	rrg := gpa.Range{PFNs: make([]uint64, 0, 4)}
	wrapped, written, read := 0, 0, 0
	var p Packet
	for round := 0; round < 20000; round++ {
		// Stage a batch until the ring refuses.
		for k := rng.IntN(6); k >= 0; k-- {
			s := pktSpec{typ: types[rng.IntN(len(types))], n: rng.IntN(300), seq: seq, npages: 1 + rng.IntN(3)}
			start := w.next
			err := writeSpec(w, s, buf[:], &wrg)
			if errors.Is(err, ErrFull) {
				if err != ErrFull {
					t.Fatalf("ErrFull must be bare, got %v", err)
				}
				break
			}
			must(t, err)
			// The trailer holds the start offset in its high half.
			toff := (start + uint32(s.size()) - TrailerSize) % dsize
			if tr := binary.LittleEndian.Uint64(data[toff:]); tr != uint64(start)<<32 {
				t.Fatalf("trailer of packet %d = %#x, want %#x", seq, tr, uint64(start)<<32)
			}
			queue = append(queue, s)
			seq++
			written++
		}
		w.Commit()
		// Read a random number of them, committing once.
		for k := rng.IntN(8); k >= 0 && len(queue) > 0; k-- {
			must(t, r.Next(&p))
			if p.Wrapped {
				wrapped++
			}
			checkSpec(t, &p, queue[0], &rrg)
			queue = queue[1:]
			read++
		}
		r.Commit()
	}
	for len(queue) > 0 {
		must(t, r.Next(&p))
		checkSpec(t, &p, queue[0], &rrg)
		queue = queue[1:]
	}
	if err := r.Next(&p); err != ErrEmpty {
		t.Fatalf("drained ring: %v", err)
	}
	if laps := written * 150 / dsize; laps < 1000 || wrapped < 200 {
		t.Fatalf("only %d packets (%d wrapped): not enough laps", written, wrapped)
	}
	t.Logf("%d packets, %d wrapped around the end", written, wrapped)
}

// TestFullRingPendingSend fills the ring, arms pending_send_sz, and checks
// that the reader signals exactly on the commit that crosses it.
func TestFullRingPendingSend(t *testing.T) {
	const dsize = 4096
	w, r, _ := newPair(t, dsize)
	c := w.Control()
	payload := make([]byte, 256-DescriptorSize-TrailerSize) // 256 bytes of ring each
	n := 0
	for {
		err := w.WriteInBand(uint64(n), false, payload)
		if err == ErrFull {
			break
		}
		must(t, err)
		n++
	}
	// 16 packets would make write == read: only 15 fit.
	if n != 15 {
		t.Fatalf("%d packets fit, want 15", n)
	}
	if w.Free() != 256-8 || w.Staged() != 15*256 {
		t.Fatalf("free %d staged %d", w.Free(), w.Staged())
	}
	if !w.Commit() {
		t.Fatal("first commit into an empty, unmasked ring must signal")
	}
	// The writer wants room for a 1000-byte packet: 1024 bytes of ring.
	need := InBandSize(1000)
	ready, err := w.ArmPendingSend(need)
	must(t, err)
	if ready || c.PendingSendSize() != 1024 {
		t.Fatalf("ready %v pending %d, want false 1024", ready, c.PendingSendSize())
	}
	// Free is 256 now; it must exceed 1024, so the 4th packet's commit
	// (free 1280) signals and no other.
	var p Packet
	for i := 1; i <= 15; i++ {
		must(t, r.Next(&p))
		sig := r.Commit()
		if sig != (i == 4) {
			t.Fatalf("commit %d (free %d): signal %v", i, (i+1)*256, sig)
		}
	}
	// The writer retries and clears pending_send_sz.
	must(t, w.WriteInBand(99, false, make([]byte, 1000)))
	if c.PendingSendSize() != 0 {
		t.Fatal("successful write did not clear pending_send_sz")
	}
	if !w.Commit() {
		t.Fatal("ring was empty and unmasked: commit must signal")
	}

	// Batched read crossing the threshold in one commit signals once.
	w2, r2, _ := newPair(t, dsize)
	for w2.WriteInBand(0, false, payload) == nil {
	}
	w2.Commit()
	if ready, _ := w2.ArmPendingSend(need); ready {
		t.Fatal("ready on a full ring")
	}
	batch := make([]Packet, 8)
	if n, err := r2.ReadBatch(batch); n != 8 || err != nil {
		t.Fatalf("ReadBatch = %d, %v", n, err)
	}
	if !r2.Commit() {
		t.Fatal("batch commit freeing 256 -> 2304 with pending 1024 must signal")
	}
	if n, _ := r2.ReadBatch(batch); n != 7 || r2.Commit() {
		t.Fatal("second batch must not signal again")
	}

	// ArmPendingSend finds space at once if the reader already freed it.
	w3, r3, _ := newPair(t, dsize)
	for w3.WriteInBand(0, false, payload) == nil {
	}
	w3.Commit()
	r3.Drain(0, func(*Packet) error { return nil })
	if ready, err := w3.ArmPendingSend(need); !ready || err != nil || w3.Control().PendingSendSize() != 0 {
		t.Fatalf("ArmPendingSend after a drain = %v, %v", ready, err)
	}
}

func TestPendingSendFeatureOff(t *testing.T) {
	w, r, _ := newPair(t, 4096)
	for w.WriteInBand(0, false, make([]byte, 232)) == nil {
	}
	w.Commit()
	w.ArmPendingSend(1024)
	w.Control().SetFeatureBits(0)
	if _, sig, _ := r.Drain(0, func(*Packet) error { return nil }); sig {
		t.Fatal("reader signalled although the writer did not advertise pending_send_sz")
	}
	// Low bits of pending_send_sz are ignored: ring size - 1 means
	// "signal when completely empty" (OpenVMM).
	w, r, _ = newPair(t, 4096)
	for w.WriteInBand(0, false, make([]byte, 232)) == nil {
	}
	w.Commit()
	w.Control().SetPendingSendSize(4096 - 1)
	var p Packet
	for i := 0; i < 15; i++ {
		must(t, r.Next(&p))
		if sig := r.Commit(); sig != (i == 14) {
			t.Fatalf("commit %d: signal %v", i, sig)
		}
	}
}

// TestWriterSignals checks the writer's decision in scripted sequences.
func TestWriterSignals(t *testing.T) {
	w, r, _ := newPair(t, 4096)
	c := w.Control()
	var p Packet
	pl := []byte("x")

	if w.Commit() {
		t.Fatal("empty commit signalled")
	}
	must(t, w.WriteInBand(1, false, pl))
	if !w.Commit() {
		t.Fatal("empty -> non-empty, unmasked: want signal")
	}
	must(t, w.WriteInBand(2, false, pl))
	if w.Commit() {
		t.Fatal("ring was not empty: no signal")
	}
	// Reader consumes one of two: still non-empty before the next write.
	must(t, r.Next(&p))
	r.Commit()
	must(t, w.WriteInBand(3, false, pl))
	if w.Commit() {
		t.Fatal("reader had not caught up: no signal")
	}
	// Reader catches up; the next write signals again.
	r.Drain(0, func(*Packet) error { return nil })
	must(t, w.WriteInBand(4, false, pl))
	must(t, w.WriteInBand(5, false, pl))
	if !w.Commit() {
		t.Fatal("batch into an empty ring: want one signal")
	}
	r.Drain(0, func(*Packet) error { return nil })

	// A masked reader is not signalled.
	r.BeginRead()
	if c.InterruptMask() != 1 {
		t.Fatal("BeginRead did not set interrupt_mask")
	}
	must(t, w.WriteInBand(6, false, pl))
	if w.Commit() {
		t.Fatal("masked reader signalled")
	}
	// The unmask-then-recheck race: the reader drained before the write
	// above, unmasks, and must see the packet it was not signalled for.
	if !r.EndRead() {
		t.Fatal("EndRead missed data written while masked")
	}
	if c.InterruptMask() != 0 {
		t.Fatal("EndRead did not clear interrupt_mask")
	}
	r.BeginRead()
	n, _, err := r.Drain(0, func(p *Packet) error {
		if p.TransID != 6 {
			return fmt.Errorf("got %d", p.TransID)
		}
		return nil
	})
	if n != 1 || err != nil {
		t.Fatalf("drain after EndRead: %d %v", n, err)
	}
	if r.EndRead() {
		t.Fatal("EndRead on an empty ring reported more")
	}
	// Unmasked and empty: the next write signals, so no packet is lost.
	must(t, w.WriteInBand(7, false, pl))
	if !w.Commit() {
		t.Fatal("write after EndRead == false must signal")
	}
}

func TestPeekRollbackCommit(t *testing.T) {
	w, r, _ := newPair(t, 4096)
	for i := uint64(0); i < 5; i++ {
		must(t, w.WriteInBand(i, false, []byte{byte(i)}))
	}
	w.Commit()
	batch := make([]Packet, 3)
	if n, err := r.ReadBatch(batch); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if r.Control().ReadIndex() != 0 {
		t.Fatal("peeking published read_index")
	}
	r.Rollback()
	if n, _ := r.ReadBatch(batch); n != 3 || batch[0].TransID != 0 || batch[2].TransID != 2 {
		t.Fatal("rollback did not re-deliver")
	}
	r.Commit()
	if r.Control().ReadIndex() != 3*32 {
		t.Fatalf("read index %d after committing 3 packets", r.Control().ReadIndex())
	}
	if r.Available() != 2*32 {
		t.Fatalf("available %d", r.Available())
	}
	// A visitor error leaves its packet in the ring.
	stop := errors.New("stop")
	n, _, err := r.Drain(0, func(p *Packet) error {
		if p.TransID == 4 {
			return stop
		}
		return nil
	})
	if n != 1 || err != stop {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	var p Packet
	if must(t, r.Next(&p)); p.TransID != 4 {
		t.Fatalf("packet after a refused visit: %d", p.TransID)
	}
	// Drain with a limit.
	r.Rollback()
	if n, _, _ := r.Drain(1, func(*Packet) error { return nil }); n != 1 || r.Available() != 0 {
		t.Fatal("limited drain")
	}
}

func TestWriterLimits(t *testing.T) {
	w, _, _ := newPair(t, 4096)
	if err := w.WriteInBand(0, false, make([]byte, 4096)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized packet: %v", err)
	}
	// The largest packet fits an empty ring exactly up to 8 bytes.
	if err := w.WriteInBand(0, false, make([]byte, w.MaxPacketSize()-InBandSize(0))); err != nil {
		t.Fatalf("largest packet: %v", err)
	}
	w.Abort()
	if w.Staged() != 0 {
		t.Fatal("Abort kept staged bytes")
	}
	if err := w.WriteGPADirect(0, true, nil, nil); !errors.Is(err, ErrArgument) {
		t.Fatalf("gpa-direct without ranges: %v", err)
	}
	bad := []gpa.Range{{ByteCount: 10, ByteOffset: 0, PFNs: []uint64{1, 2}}}
	if err := w.WriteGPADirect(0, true, bad, nil); !errors.Is(err, ErrArgument) || !errors.Is(err, gpa.ErrPageCount) {
		t.Fatalf("bad range: %v", err)
	}
	if _, err := w.ArmPendingSend(8192); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("arming for an impossible packet: %v", err)
	}
	big, _, _ := newPair(t, 1<<20)
	if err := big.WriteInBand(0, false, make([]byte, MaxPacketLen)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("packet beyond len8: %v", err)
	}
}

func TestScratch(t *testing.T) {
	ctl, data := newTestRing(t, 1024)
	w, err := NewWriter(ctl, data)
	must(t, err)
	r, err := NewReader(ctl, data, &ReaderOptions{Scratch: make([]byte, 64)})
	must(t, err)
	var p Packet
	// Move both ends to 1024-64 so the next packet wraps.
	for i := 0; i < 15; i++ {
		must(t, w.WriteInBand(0, false, make([]byte, 40)))
	}
	w.Commit()
	r.Drain(0, func(*Packet) error { return nil })
	must(t, w.WriteInBand(1, false, make([]byte, 40))) // 64 bytes, wraps: fits scratch
	must(t, w.WriteInBand(2, false, make([]byte, 40)))
	w.Commit()
	must(t, r.Next(&p))
	if p.Offset != 1024-64 || p.Wrapped {
		t.Fatalf("packet ending exactly at the end: offset %d wrapped %v", p.Offset, p.Wrapped)
	}
	must(t, r.Next(&p))
	r.Commit()
	// Now at 64: fill so that a packet starts at 1024-32 with 96 bytes.
	for i := 0; i < 14; i++ {
		must(t, w.WriteInBand(0, false, make([]byte, 40)))
	}
	must(t, w.WriteInBand(0, false, make([]byte, 8))) // 32 bytes: up to 1024-32
	w.Commit()
	for i := 0; i < 15; i++ {
		must(t, r.Next(&p))
	}
	r.Commit()
	must(t, w.WriteInBand(3, false, make([]byte, 72))) // 88 bytes + trailer at 1024-32
	w.Commit()
	if err := r.Next(&p); !errors.Is(err, ErrScratch) {
		t.Fatalf("wrapped packet larger than scratch: %v (offset %d)", err, p.Offset)
	}
	if err2 := r.Next(&p); err2 == nil || err2.Error() != r.Err().Error() {
		t.Fatal("scratch error is not persistent")
	}
}

func TestNewErrors(t *testing.T) {
	buf := make([]byte, 2*ControlSize+8)
	if _, err := NewWriter(buf[:100], buf[ControlSize:]); !errors.Is(err, ErrMemory) {
		t.Fatalf("short control page: %v", err)
	}
	if _, err := NewReader(buf[1:ControlSize+1], buf[ControlSize:2*ControlSize], nil); !errors.Is(err, ErrMemory) {
		t.Fatalf("misaligned control page: %v", err)
	}
	if _, err := NewReader(buf[:ControlSize], buf[ControlSize:ControlSize+20], nil); !errors.Is(err, ErrMemory) {
		t.Fatalf("tiny data area: %v", err)
	}
	if _, err := NewReader(buf[:ControlSize], buf[ControlSize:2*ControlSize+4], nil); !errors.Is(err, ErrMemory) {
		t.Fatalf("unaligned data size: %v", err)
	}
	c, _ := NewControl(buf)
	c.SetReadIndex(12)
	if _, err := NewReader(buf[:ControlSize], buf[ControlSize:2*ControlSize], nil); !errors.Is(err, ErrIndex) {
		t.Fatalf("misaligned read index: %v", err)
	}
	c.SetReadIndex(0)
	c.SetWriteIndex(ControlSize)
	if _, err := NewWriter(buf[:ControlSize], buf[ControlSize:2*ControlSize]); !errors.Is(err, ErrIndex) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("write index out of range: %v", err)
	}
}

func TestSplitPair(t *testing.T) {
	region := make([]byte, 10*PageSize)
	region[0], region[4*PageSize] = 1, 2
	region[PageSize], region[5*PageSize] = 3, 4
	a, b, err := SplitPair(region, 4)
	must(t, err)
	if len(a.Control) != ControlSize || len(a.Data) != 3*PageSize || len(b.Data) != 5*PageSize ||
		a.Control[0] != 1 || b.Control[0] != 2 || a.Data[0] != 3 || b.Data[0] != 4 {
		t.Fatal("SplitPair cut the region in the wrong places")
	}
	for _, n := range []int{0, 1, 9, 10, 11} {
		if _, _, err := SplitPair(region, n); !errors.Is(err, ErrMemory) {
			t.Errorf("first ring of %d pages: %v", n, err)
		}
	}
	if _, _, err := SplitPair(region[:10*PageSize-8], 4); !errors.Is(err, ErrMemory) {
		t.Errorf("ragged region: %v", err)
	}
	// The halves really work as rings: guest writes the first, host reads it.
	must(t, InitControl(a.Control))
	w, err := NewWriter(a.Control, a.Data)
	must(t, err)
	r, err := NewReader(a.Control, a.Data, nil)
	must(t, err)
	must(t, w.WriteInBand(42, true, []byte("hi")))
	w.Commit()
	var p Packet
	if must(t, r.Next(&p)); p.TransID != 42 {
		t.Fatal("round trip through SplitPair memory")
	}
}
