package ring

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// signal emulates an event: a one-slot channel that coalesces.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func raceSpec(seq uint64) pktSpec {
	types := [...]PacketType{TypeInBand, TypeInBand, TypeCompletion, TypeGPADirect, TypeXferPages}
	x := seq * 0x9E3779B97F4A7C15
	return pktSpec{typ: types[x>>61%uint64(len(types))], n: int(x>>40) % 700, seq: seq, npages: 1 + int(x>>20)%3}
}

// TestConcurrentWriterReader runs a writer and a reader goroutine over one
// ring, with signals emulated by channels, and checks every packet. Run it
// with -race: the data copies are ordered only by the index atomics.
func TestConcurrentWriterReader(t *testing.T) {
	n := uint64(300000)
	if testing.Short() {
		n = 30000
	}
	w, r, _ := newPair(t, 16384)
	dataCh := make(chan struct{}, 1)  // writer -> reader
	spaceCh := make(chan struct{}, 1) // reader -> writer
	errc := make(chan error, 2)
	var writerSignals, readerSignals, waits int

	go func() { // writer
		var buf [2048]byte
		rg := gpa.Range{PFNs: make([]uint64, 0, 4)}
		seq := uint64(0)
		for seq < n {
			s := raceSpec(seq)
			err := writeSpec(w, s, buf[:], &rg)
			if err == ErrFull {
				if w.Commit() {
					writerSignals++
					signal(dataCh)
				}
				ready, err := w.ArmPendingSend(s.size())
				if err != nil {
					errc <- err
					return
				}
				if !ready {
					waits++
					select {
					case <-spaceCh:
					case <-time.After(20 * time.Second):
						errc <- fmt.Errorf("writer: no space signal at packet %d", seq)
						return
					}
				}
				continue
			}
			if err != nil {
				errc <- err
				return
			}
			seq++
			if seq%7 == 0 || seq == n {
				if w.Commit() {
					writerSignals++
					signal(dataCh)
				}
			}
		}
		errc <- nil
	}()

	go func() { // reader
		var want [2048]byte
		rg := gpa.Range{PFNs: make([]uint64, 0, 4)}
		next := uint64(0)
		visit := func(p *Packet) error {
			s := raceSpec(next)
			if p.Type != s.typ || p.TransID != s.seq || len(p.Payload) != align8(s.n) ||
				!bytes.Equal(p.Payload[:s.n], fill(want[:s.n], s.seq)) {
				return fmt.Errorf("packet %d: got %v trans %d len %d", next, p.Type, p.TransID, len(p.Payload))
			}
			if s.typ == TypeGPADirect {
				it := p.GPARanges()
				if !it.Next(&rg) || len(rg.PFNs) != s.npages || rg.PFNs[0] != s.seq<<8 {
					return fmt.Errorf("packet %d: range %+v %v", next, rg, it.Err())
				}
			}
			if s.typ == TypeXferPages && p.XferRange(0).ByteCount != uint32(s.seq) {
				return fmt.Errorf("packet %d: xfer range %+v", next, p.XferRange(0))
			}
			next++
			return nil
		}
		for next < n {
			r.BeginRead()
			_, sig, err := r.Drain(32, visit)
			if err != nil {
				errc <- err
				return
			}
			if sig {
				readerSignals++
				signal(spaceCh)
			}
			if r.EndRead() {
				continue
			}
			if next == n {
				break
			}
			select {
			case <-dataCh:
			case <-time.After(20 * time.Second):
				errc <- fmt.Errorf("reader: no data signal after packet %d", next)
				return
			}
		}
		errc <- nil
	}()

	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d packets: %d writer signals, %d reader signals, writer waited %d times",
		n, writerSignals, readerSignals, waits)
}
