package vmbusmsg

import (
	"fmt"

	"github.com/hvguest/hvguest/hyperv/gpa"
)

// DefaultMaxPages is the Assembler budget NewAssembler(0) uses: 65536
// range-array words (512 KiB of buffered GPADL descriptors, describing up
// to 256 MiB of guest memory) across all GPADLs in progress.
const DefaultMaxPages = 1 << 16

// GPADL is a complete, validated GPADL as the host sees it.
type GPADL struct {
	ChildRelID uint32
	ID         uint32
	Ranges     []gpa.Range
}

// PageCount returns the number of PFNs over all ranges.
func (g *GPADL) PageCount() int {
	n := 0
	for i := range g.Ranges {
		n += len(g.Ranges[i].PFNs)
	}
	return n
}

// GPADLError is the error the Assembler returns, naming the GPADL (and,
// when known, its channel) so the host can answer GPADL_CREATED with a
// failure status. It wraps one of the package's sentinel errors.
type GPADLError struct {
	ChildRelID uint32 // 0 when the GPADL was unknown
	GPADL      uint32
	Err        error
}

func (e *GPADLError) Error() string {
	return fmt.Sprintf("vmbusmsg: GPADL %#x (relid %d): %v", e.GPADL, e.ChildRelID, e.Err)
}

func (e *GPADLError) Unwrap() error { return e.Err }

type pendingGPADL struct {
	relid  uint32
	count  int
	buflen int
	data   []byte
}

// Assembler rebuilds GPADLs on the host from a GPADL_HEADER and the
// GPADL_BODY messages that follow it, keyed by GPADL id (bodies carry no
// relid). It holds at most maxPages range-array words (each word is one
// PFN or one range header) across all GPADLs in progress: a header whose
// range_buflen would exceed that is refused with ErrTooLarge, which bounds
// what a guest can make the host allocate. It only knows GPADLs in
// progress; rejecting an id that is already created is the caller's job.
//
// Any error about a GPADL in progress drops it. An Assembler is not safe
// for concurrent use.
type Assembler struct {
	maxWords int
	used     int
	pending  map[uint32]*pendingGPADL
}

// NewAssembler returns an Assembler with a budget of maxPages words;
// maxPages <= 0 means DefaultMaxPages.
func NewAssembler(maxPages int) *Assembler {
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	return &Assembler{maxWords: maxPages, pending: map[uint32]*pendingGPADL{}}
}

// Add feeds a GPADL_HEADER or GPADL_BODY; other messages are an error. It
// returns the GPADL when this message completed it, nil while bodies are
// still due.
func (a *Assembler) Add(m Message) (*GPADL, error) {
	switch m := m.(type) {
	case *GPADLHeader:
		return a.Header(m)
	case *GPADLBody:
		return a.Body(m)
	}
	return nil, fmt.Errorf("%w: %s is not a GPADL message", ErrUnknownType, m.Type())
}

// Header starts a GPADL. A header that carries the whole range array
// completes it at once and nothing is kept.
func (a *Assembler) Header(h *GPADLHeader) (*GPADL, error) {
	fail := func(err error) (*GPADL, error) {
		return nil, &GPADLError{ChildRelID: h.ChildRelID, GPADL: h.GPADL, Err: err}
	}
	if err := h.Validate(); err != nil {
		return fail(err)
	}
	if _, dup := a.pending[h.GPADL]; dup {
		return fail(ErrDuplicateGPADL)
	}
	words := int(h.RangeBufLen) / 8
	if words > a.maxWords-a.used {
		return fail(fmt.Errorf("%w: %d words, %d of %d in use", ErrTooLarge, words, a.used, a.maxWords))
	}
	if h.Complete() {
		return a.finish(h.ChildRelID, h.GPADL, int(h.RangeCount), h.Data)
	}
	p := &pendingGPADL{relid: h.ChildRelID, count: int(h.RangeCount), buflen: int(h.RangeBufLen)}
	p.data = append(make([]byte, 0, p.buflen), h.Data...)
	a.pending[h.GPADL] = p
	a.used += words
	return nil, nil
}

// Body continues a GPADL. A body for an id with no header in progress is
// ErrUnknownGPADL; one carrying more than range_buflen announced is
// ErrExtraData.
func (a *Assembler) Body(b *GPADLBody) (*GPADL, error) {
	p := a.pending[b.GPADL]
	if p == nil {
		return nil, &GPADLError{GPADL: b.GPADL, Err: ErrUnknownGPADL}
	}
	fail := func(err error) (*GPADL, error) {
		a.Cancel(b.GPADL)
		return nil, &GPADLError{ChildRelID: p.relid, GPADL: b.GPADL, Err: err}
	}
	switch {
	case len(b.Data) == 0 || len(b.Data)%8 != 0:
		return fail(fmt.Errorf("%w: body of %d bytes", ErrInconsistent, len(b.Data)))
	case len(b.Data) > p.buflen-len(p.data):
		return fail(fmt.Errorf("%w: %d bytes with %d of %d outstanding", ErrExtraData, len(b.Data), p.buflen-len(p.data), p.buflen))
	}
	p.data = append(p.data, b.Data...)
	if err := checkRangePrefix(p.data, p.count, p.buflen); err != nil {
		return fail(err)
	}
	if len(p.data) < p.buflen {
		return nil, nil
	}
	a.drop(b.GPADL, p)
	return a.finish(p.relid, b.GPADL, p.count, p.data)
}

func (a *Assembler) finish(relid, id uint32, count int, data []byte) (*GPADL, error) {
	ranges, err := parseRanges(data, count)
	if err != nil {
		return nil, &GPADLError{ChildRelID: relid, GPADL: id, Err: err}
	}
	return &GPADL{ChildRelID: relid, ID: id, Ranges: ranges}, nil
}

func (a *Assembler) drop(id uint32, p *pendingGPADL) {
	delete(a.pending, id)
	a.used -= p.buflen / 8
}

// Cancel forgets a GPADL in progress and reports whether there was one.
func (a *Assembler) Cancel(id uint32) bool {
	p := a.pending[id]
	if p != nil {
		a.drop(id, p)
	}
	return p != nil
}

// CancelChannel forgets every GPADL in progress for a channel (on close,
// rescind or unload) and returns how many there were.
func (a *Assembler) CancelChannel(relid uint32) int {
	n := 0
	for id, p := range a.pending {
		if p.relid == relid {
			a.drop(id, p)
			n++
		}
	}
	return n
}

// Reset forgets everything in progress.
func (a *Assembler) Reset() {
	clear(a.pending)
	a.used = 0
}

// Pending returns the number of GPADLs in progress.
func (a *Assembler) Pending() int { return len(a.pending) }

// PendingWords returns the budget in use, in range-array words.
func (a *Assembler) PendingWords() int { return a.used }
