package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// gpadlKey names a GPADL as OpenVMM does: handle and channel.
type gpadlKey struct {
	id uint32
	ch *channel
}

// gpadl is one created GPADL. Owned by the loop goroutine.
type gpadl struct {
	id       uint32
	ch       *channel
	ranges   []gpa.Range
	size     int  // bytes over all ranges
	users    int  // open rings and device views holding it
	teardown bool // the guest asked; GPADL_TORNDOWN once users drops to 0
	dead     bool // dropped (reset, relid released); nothing is sent for it
}

func (b *bus) gpadlFailed(relid, id uint32) {
	b.s.send(&vmbusmsg.GPADLCreated{ChildRelID: relid, GPADL: id, CreationStatus: StatusUnsuccessful})
}

// onGPADLHeader starts a GPADL. Every error the header shows is answered
// with GPADL_CREATED carrying a failure status (OpenVMM); a rescinded
// channel's requests are not answered at all (spec §2.5 item 7).
func (b *bus) onGPADLHeader(h *vmbusmsg.GPADLHeader) {
	s := b.s
	c := b.channel(h.ChildRelID)
	fail := func(why string) {
		s.log.Warn("vmbus host: GPADL header refused", "relid", h.ChildRelID, "gpadl", h.GPADL, "why", why)
		b.gpadlFailed(h.ChildRelID, h.GPADL)
	}
	switch {
	case c == nil:
		fail("unknown relid")
		return
	case c.rescinded:
		return
	case h.GPADL == 0:
		fail("zero handle")
		return
	case b.gpadls[gpadlKey{h.GPADL, c}] != nil:
		fail("handle in use on this channel")
		return
	case len(b.gpadls)+b.asm.Pending() >= s.cfg.MaxGPADLs:
		fail("too many GPADLs")
		return
	case int(h.RangeBufLen)/8-int(h.RangeCount) > s.cfg.MaxGPADLPages:
		fail("too many pages")
		return
	case !rangeBufLenFits(h):
		fail("range_buflen does not match the ranges' page counts")
		return
	}
	g, err := b.asm.Header(h)
	if err != nil {
		fail(err.Error())
		return
	}
	if g == nil {
		b.inprog[h.GPADL] = c
		return
	}
	b.gpadlComplete(c, g)
}

// rangeBufLenFits checks what the header alone can show: once every
// range's header is in sight, their page counts must add up to
// range_buflen exactly (for the usual single range: 8 + 8 × pages).
func rangeBufLenFits(h *vmbusmsg.GPADLHeader) bool {
	off, n := 0, 0
	for off+gpa.HeaderSize <= len(h.Data) && n < int(h.RangeCount) {
		bc := binary.LittleEndian.Uint32(h.Data[off:])
		bo := binary.LittleEndian.Uint32(h.Data[off+4:])
		off += gpa.HeaderSize + 8*gpa.PagesFor(bo, bc)
		n++
	}
	return n < int(h.RangeCount) || off == int(h.RangeBufLen)
}

// onGPADLBody continues a GPADL. A body for an unknown handle cannot be
// answered (bodies carry no relid); a bad body fails the GPADL.
func (b *bus) onGPADLBody(m *vmbusmsg.GPADLBody) {
	s := b.s
	c := b.inprog[m.GPADL]
	if c == nil {
		s.log.Warn("vmbus host: GPADL body for an unknown GPADL", "gpadl", m.GPADL)
		return
	}
	g, err := b.asm.Body(m)
	if err != nil {
		delete(b.inprog, m.GPADL)
		s.log.Warn("vmbus host: GPADL body refused", "gpadl", m.GPADL, "err", err)
		if c.relid != 0 && !c.rescinded {
			b.gpadlFailed(c.relid, m.GPADL)
		}
		return
	}
	if g != nil {
		delete(b.inprog, m.GPADL)
		b.gpadlComplete(c, g)
	}
}

// gpadlComplete checks a fully received GPADL against guest memory and
// answers GPADL_CREATED.
func (b *bus) gpadlComplete(c *channel, g *vmbusmsg.GPADL) {
	if c.relid == 0 || c.rescinded {
		return // rescinded while in progress: no answer
	}
	size := 0
	for i := range g.Ranges {
		size += int(g.Ranges[i].ByteCount)
		for _, pfn := range g.Ranges[i].PFNs {
			if _, err := b.s.cfg.Memory.Page(pfn); err != nil {
				b.s.log.Warn("vmbus host: GPADL page outside guest memory", "gpadl", g.ID, "pfn", pfn)
				b.gpadlFailed(c.relid, g.ID)
				return
			}
		}
	}
	if b.gpadls[gpadlKey{g.ID, c}] != nil { // created meanwhile under the same handle
		b.gpadlFailed(c.relid, g.ID)
		return
	}
	b.gpadls[gpadlKey{g.ID, c}] = &gpadl{id: g.ID, ch: c, ranges: g.Ranges, size: size}
	b.s.send(&vmbusmsg.GPADLCreated{ChildRelID: c.relid, GPADL: g.ID})
}

// onGPADLTeardown removes a GPADL. One still used by an open ring or a
// device view is torn down when the last user lets go (the channel
// closes), and only then answered.
func (b *bus) onGPADLTeardown(m *vmbusmsg.GPADLTeardown) {
	s := b.s
	c := b.channel(m.ChildRelID)
	if c == nil {
		s.log.Warn("vmbus host: GPADL teardown for an unknown relid", "relid", m.ChildRelID)
		return
	}
	g := b.gpadls[gpadlKey{m.GPADL, c}]
	if g == nil || g.teardown {
		s.log.Warn("vmbus host: GPADL teardown for an unknown GPADL", "relid", m.ChildRelID, "gpadl", m.GPADL)
		return
	}
	g.teardown = true
	if g.users > 0 {
		s.log.Info("vmbus host: GPADL teardown deferred while in use", "gpadl", m.GPADL, "users", g.users)
		return
	}
	b.finishTeardown(g)
}

func (b *bus) finishTeardown(g *gpadl) {
	delete(b.gpadls, gpadlKey{g.id, g.ch})
	g.dead = true
	b.s.send(&vmbusmsg.GPADLTorndown{GPADL: g.id})
}

// acquire takes a reference for a ring or a view.
func (b *bus) acquire(c *channel, id uint32) (*gpadl, error) {
	g := b.gpadls[gpadlKey{id, c}]
	if g == nil || g.teardown {
		return nil, fmt.Errorf("%w: %#x not created on relid %d", ErrGPADL, id, c.relid)
	}
	g.users++
	return g, nil
}

// release drops a reference; a pending teardown completes on the last.
func (b *bus) release(g *gpadl) {
	g.users--
	if g.users == 0 && g.teardown && !g.dead {
		b.finishTeardown(g)
	}
}

// dropChannelGPADLs forgets c's GPADLs, created or in progress, without
// telling the guest (its relid is being released).
func (b *bus) dropChannelGPADLs(c *channel) {
	for k, g := range b.gpadls {
		if k.ch == c {
			g.dead = true
			delete(b.gpadls, k)
		}
	}
	for id, x := range b.inprog {
		if x == c {
			b.asm.Cancel(id)
			delete(b.inprog, id)
		}
	}
}

func (b *bus) dropAllGPADLs() {
	for _, g := range b.gpadls {
		g.dead = true
	}
	clear(b.gpadls)
	clear(b.inprog)
	b.asm.Reset()
}

// GPADLView is a device's hold on a GPADL of its channel (a netvsc
// receive or send buffer). While held, the guest's GPADL_TEARDOWN is not
// answered. Release it when done; the channel's close releases it too.
// Reads and writes go to guest memory through the GPADL's pages.
type GPADLView struct {
	ID     uint32
	Ranges []gpa.Range // do not modify
	Size   int         // bytes over all ranges

	mem      kernel.PhysMem
	g        *gpadl
	ch       *Channel
	released atomic.Bool
}

// Release gives the GPADL back. It is safe to call more than once.
func (v *GPADLView) Release() {
	if v.released.Swap(true) {
		return
	}
	s := v.ch.s
	s.post(func() { s.bus.releaseView(v) })
}

// ReadAt copies len(p) bytes at byte offset off of the GPADL into p.
func (v *GPADLView) ReadAt(p []byte, off int64) (int, error) { return v.rw(p, off, false) }

// WriteAt copies p into the GPADL at byte offset off.
func (v *GPADLView) WriteAt(p []byte, off int64) (int, error) { return v.rw(p, off, true) }

// Bytes returns the whole GPADL as one slice of guest memory when it is a
// single range that the memory can present contiguously.
func (v *GPADLView) Bytes() ([]byte, error) {
	if len(v.Ranges) != 1 {
		return nil, fmt.Errorf("%w: %d ranges", ErrGPADL, len(v.Ranges))
	}
	r := &v.Ranges[0]
	b, err := v.mem.View(r.PFNs)
	if err != nil {
		return nil, err
	}
	return b[r.ByteOffset : r.ByteOffset+r.ByteCount], nil
}

func (v *GPADLView) rw(p []byte, off int64, write bool) (int, error) {
	if v.released.Load() {
		return 0, ErrClosed
	}
	if off < 0 || off > int64(v.Size) || int64(len(p)) > int64(v.Size)-off {
		return 0, fmt.Errorf("%w: %d bytes at %d of a %d-byte GPADL", ErrGPADL, len(p), off, v.Size)
	}
	done := 0
	for i := range v.Ranges {
		r := &v.Ranges[i]
		if off >= int64(r.ByteCount) {
			off -= int64(r.ByteCount)
			continue
		}
		n, err := rangeCopy(v.mem, r, uint32(off), p[done:], write)
		done += n
		if err != nil || done == len(p) {
			return done, err
		}
		off = 0
	}
	return done, nil
}

// rangeCopy copies between buf and range r from byte off, page by page,
// up to the end of the range or of buf.
func rangeCopy(mem kernel.PhysMem, r *gpa.Range, off uint32, buf []byte, write bool) (int, error) {
	done := 0
	for done < len(buf) && off < r.ByteCount {
		addr, n := r.Span(off)
		n = min(n, uint32(len(buf)-done))
		page, err := mem.Page(addr >> gpa.PageShift)
		if err != nil {
			return done, err
		}
		in := addr & (gpa.PageSize - 1)
		if write {
			copy(page[in:in+uint64(n)], buf[done:])
		} else {
			copy(buf[done:], page[in:in+uint64(n)])
		}
		done += int(n)
		off += n
	}
	return done, nil
}

// ReadRange copies the bytes a GPA range describes (a GPA-direct packet's
// range) from guest memory into dst, which must hold r.ByteCount bytes.
func ReadRange(mem kernel.PhysMem, r *gpa.Range, dst []byte) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if len(dst) < int(r.ByteCount) {
		return errors.New("host: ReadRange destination too short")
	}
	_, err := rangeCopy(mem, r, 0, dst[:r.ByteCount], false)
	return err
}

// WriteRange copies src (r.ByteCount bytes) into the guest memory r
// describes.
func WriteRange(mem kernel.PhysMem, r *gpa.Range, src []byte) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if len(src) < int(r.ByteCount) {
		return errors.New("host: WriteRange source too short")
	}
	_, err := rangeCopy(mem, r, 0, src[:r.ByteCount], true)
	return err
}
