package vmbusmsg

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

var sentinels = []error{ErrShort, ErrTooLong, ErrUnknownType, ErrWrongDirection, ErrInconsistent}

func checkRoundTrip(t *testing.T, b []byte, dec func([]byte) (Message, error)) {
	m, err := dec(b)
	if err != nil {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error without a sentinel: %v", err)
	}
	enc := m.Encode()
	if len(enc) != m.EncodedLen() || len(enc) > len(b) || len(enc) > MaxMessageSize {
		t.Fatalf("%s: encoded %d bytes (EncodedLen %d) from %d", m.Type(), len(enc), m.EncodedLen(), len(b))
	}
	m2, err := dec(enc)
	if err != nil {
		t.Fatalf("%s: re-encoded message refused: %v\n%x", m.Type(), err, enc)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("%s: round trip differs\n %+v\n %+v", m.Type(), m, m2)
	}
}

func seedMessages(f *testing.F, dir Direction) {
	for _, g := range goldens() {
		if g.want.Type().Direction() == dir {
			f.Add(g.wire)
		}
	}
	f.Add([]byte{})
	f.Add(lay(8, 0))
	f.Add(lay(240, MsgOfferChannel))
}

func FuzzDecodeFromHost(f *testing.F) {
	seedMessages(f, HostToGuest)
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeFromHost) })
}

func FuzzDecodeFromGuest(f *testing.F) {
	seedMessages(f, GuestToHost)
	h, bodies, _ := SplitGPADL(1, 2, []gpa.Range{PageRange(pfns(40, 9))})
	f.Add(h.Encode())
	f.Add(bodies[0].Encode())
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeFromGuest) })
}

// frame joins messages as [len][bytes]... for FuzzAssembler.
func frame(msgs ...Message) []byte {
	var out []byte
	for _, m := range msgs {
		e := m.Encode()
		out = append(append(out, byte(len(e))), e...)
	}
	return out
}

const fuzzBudget = 600

// FuzzAssembler feeds a framed stream of guest messages to an Assembler.
// Nothing may panic, the budget must hold, and every completed GPADL must
// survive SplitGPADL and a second assembly unchanged.
func FuzzAssembler(f *testing.F) {
	h, bodies, _ := SplitGPADL(1, 2, []gpa.Range{PageRange(pfns(60, 9))})
	f.Add(frame(h, bodies[0], bodies[1]))
	h2, bodies2, _ := SplitGPADL(3, 4, []gpa.Range{PageRange(pfns(26, 1)), {ByteCount: 100, ByteOffset: 8, PFNs: []uint64{5}}, PageRange(pfns(30, 70))})
	f.Add(frame(h2, bodies2[0], bodies2[1], h, bodies[1], bodies[0]))
	small, _, _ := SplitGPADL(5, 6, []gpa.Range{PageRange(pfns(3, 1))})
	f.Add(frame(small, small, h))
	f.Fuzz(func(t *testing.T, stream []byte) {
		a := NewAssembler(fuzzBudget)
		for len(stream) > 0 {
			n := int(stream[0])
			stream = stream[1:]
			if n > len(stream) {
				n = len(stream)
			}
			msg := stream[:n]
			stream = stream[n:]
			m, err := DecodeFromGuest(msg)
			if err != nil {
				continue
			}
			if m.Type() != MsgGPADLHeader && m.Type() != MsgGPADLBody {
				continue
			}
			g, err := a.Add(m)
			if a.PendingWords() > fuzzBudget || a.PendingWords() < 0 {
				t.Fatalf("budget %d", a.PendingWords())
			}
			if err != nil {
				var ge *GPADLError
				if !errors.As(err, &ge) {
					t.Fatalf("not a GPADLError: %v", err)
				}
				continue
			}
			if g == nil {
				continue
			}
			for i := range g.Ranges {
				if err := g.Ranges[i].Validate(); err != nil {
					t.Fatalf("completed GPADL with a bad range: %v", err)
				}
			}
			h, bodies, err := SplitGPADL(g.ChildRelID, g.ID, g.Ranges)
			if err != nil {
				t.Fatalf("re-split: %v", err)
			}
			b := NewAssembler(0)
			g2, err := b.Header(h)
			for _, body := range bodies {
				if err != nil {
					break
				}
				g2, err = b.Body(body)
			}
			if err != nil || !reflect.DeepEqual(g, g2) {
				t.Fatalf("re-assembly differs: %v\n%+v\n%+v", err, g, g2)
			}
		}
	})
}
