package vmbusmsg

import (
	"errors"
	"testing"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

func split(t *testing.T, relid, id uint32, n int) (*GPADLHeader, []*GPADLBody) {
	t.Helper()
	h, b, err := SplitGPADL(relid, id, []gpa.Range{PageRange(pfns(n, 0x40))})
	if err != nil {
		t.Fatal(err)
	}
	return h, b
}

func TestAssemblerErrors(t *testing.T) {
	a := NewAssembler(0)
	h, bodies := split(t, 4, 0x10, 100)

	// Body before header.
	_, err := a.Body(bodies[0])
	var ge *GPADLError
	if !errors.Is(err, ErrUnknownGPADL) || !errors.As(err, &ge) || ge.GPADL != 0x10 {
		t.Fatal(err)
	}
	if _, err := a.Header(h); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Header(h); !errors.Is(err, ErrDuplicateGPADL) || a.Pending() != 1 {
		t.Fatal(err)
	}
	// Extra PFNs: a body longer than what is outstanding drops the GPADL.
	for _, b := range bodies[:len(bodies)-1] {
		if _, err := a.Body(b); err != nil {
			t.Fatal(err)
		}
	}
	big := &GPADLBody{GPADL: 0x10, Data: make([]byte, len(bodies[len(bodies)-1].Data)+8)}
	if _, err := a.Body(big); !errors.Is(err, ErrExtraData) || !errors.As(err, &ge) || ge.ChildRelID != 4 {
		t.Fatal(err)
	}
	if a.Pending() != 0 || a.PendingWords() != 0 {
		t.Fatal("failed GPADL kept")
	}
	// A ragged or empty body built by hand.
	a.Header(h)
	if _, err := a.Body(&GPADLBody{GPADL: 0x10}); !errors.Is(err, ErrInconsistent) {
		t.Fatal(err)
	}
	// A non-GPADL message.
	if _, err := a.Add(&Unload{}); !errors.Is(err, ErrUnknownType) {
		t.Fatal(err)
	}
	// A header built by hand that decoding would refuse.
	if _, err := a.Header(&GPADLHeader{GPADL: 1, RangeBufLen: 16, RangeCount: 1, Data: make([]byte, 8)}); !errors.Is(err, ErrInconsistent) {
		t.Fatal(err)
	}
}

// A body whose words turn the range array inconsistent is caught before
// the GPADL completes.
func TestAssemblerBadRangeInBody(t *testing.T) {
	a := NewAssembler(0)
	// Two ranges: the first fills the header (26 PFNs); the second's
	// header arrives in the body with a zero byte count.
	ranges := []gpa.Range{PageRange(pfns(26, 1)), PageRange(pfns(3, 100))}
	h, bodies, err := SplitGPADL(1, 2, ranges)
	if err != nil || len(bodies) != 1 {
		t.Fatal(err, len(bodies))
	}
	if _, err := a.Header(h); err != nil {
		t.Fatal(err)
	}
	bad := &GPADLBody{GPADL: 2, Data: append([]byte(nil), bodies[0].Data...)}
	le.PutUint32(bad.Data, 0)
	if _, err := a.Body(bad); !errors.Is(err, ErrInconsistent) || a.Pending() != 0 {
		t.Fatal(err)
	}
}

func TestAssemblerBudget(t *testing.T) {
	a := NewAssembler(300)
	h1, _ := split(t, 1, 1, 200) // 201 words
	h2, _ := split(t, 1, 2, 100) // 101 words
	h3, b3 := split(t, 1, 3, 90) // 91 words
	if _, err := a.Header(h1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Header(h2); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if _, err := a.Header(h3); err != nil || a.PendingWords() != 292 {
		t.Fatal(err, a.PendingWords())
	}
	// Completing or cancelling returns the budget.
	for _, b := range b3 {
		a.Body(b)
	}
	if a.PendingWords() != 201 {
		t.Fatal(a.PendingWords())
	}
	if !a.Cancel(1) || a.Cancel(1) || a.PendingWords() != 0 {
		t.Fatal("cancel")
	}
	if _, err := a.Header(h2); err != nil {
		t.Fatal(err)
	}
	// A GPADL completed by its header needs budget only momentarily.
	small, _ := split(t, 9, 5, 3)
	if g, err := a.Header(small); err != nil || g == nil || g.ChildRelID != 9 {
		t.Fatal(g, err)
	}
	// CancelChannel and Reset.
	h4, _ := split(t, 7, 4, 50)
	a.Header(h4)
	if a.CancelChannel(7) != 1 || a.Pending() != 1 {
		t.Fatal("cancel channel")
	}
	a.Reset()
	if a.Pending() != 0 || a.PendingWords() != 0 {
		t.Fatal("reset")
	}
	// One GPADL alone bigger than the budget.
	big, _ := split(t, 1, 8, 400)
	if _, err := a.Header(big); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
}
