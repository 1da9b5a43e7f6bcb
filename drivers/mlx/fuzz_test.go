package mlx

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
)

// Hostile device: arbitrary bytes in the CQ and EQ rings. The consumers
// must not panic, must not touch memory outside their rings and buffers,
// must keep their counters inside the posted range, and must count what
// they refuse.

func seedCQEs(tb testing.TB, f *testing.F) {
	var good [4 * mlxhw.CQESize]byte
	for i, c := range []mlxhw.CQE{
		{Opcode: mlxhw.CQEReq, WQECounter: 0, SopDropQPN: 0x800},
		{Opcode: mlxhw.CQEReqErr, WQECounter: 1, SopDropQPN: 0x800, Syndrome: mlxhw.SyndLocalQPOp},
		{Opcode: mlxhw.CQERespSend, WQECounter: 0, SopDropQPN: 0xc00, ByteCnt: 64},
		{Opcode: mlxhw.CQEReq, WQECounter: 0xffff, SopDropQPN: 0x800},
	} {
		_ = mlxhw.PutCQE(good[i*64:], &c)
	}
	f.Add(good[:])
	f.Add(make([]byte, 64))
	f.Add([]byte{0xff, 0x00, 0x3f})
}

func FuzzCQE(f *testing.F) {
	seedCQEs(f, f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newBareVF(t, 64, 16)
		s, r := b.s, b.r
		bt := packet.NewBatch(8)
		for i := range 4 {
			p := packet.New(0, 2048)
			_ = p.SetBytes(frame(60+i*100, byte(i)))
			bt.Add(p)
		}
		if n, err := b.v.Transmit(bt); n != 4 || err != nil {
			t.Fatalf("transmit %d %v", n, err)
		}
		// The same bytes land in both CQs, repeated over the whole ring.
		if len(data) > 0 {
			for i := range s.cq.mem {
				s.cq.mem[i] = data[i%len(data)]
			}
			for i := range r.cq.mem {
				r.cq.mem[i] = data[(i+7)%len(data)]
			}
		}
		for range 3 {
			s.complete(b.bar, 1000)
			r.complete(b.bar, 1000)
		}
		if s.outstanding() < 0 || s.outstanding() > 4 || s.tail > s.head {
			t.Fatalf("SQ counters cc %d pc %d tail %d head %d", s.cc, s.pc, s.tail, s.head)
		}
		if int(r.pc-r.cc) != r.size() {
			t.Fatalf("RQ lost buffers: cc %d pc %d", r.cc, r.pc)
		}
		st := b.v.Stats()
		if st.RxPackets+st.RxDrops != uint64(len(b.got))+st.RxDrops || uint64(len(b.got)) != st.RxPackets {
			t.Fatalf("rx accounting %+v, delivered %d", st, len(b.got))
		}
		for _, g := range b.got {
			if len(g) > r.bufSize {
				t.Fatalf("delivered %d bytes from a %d-byte buffer", len(g), r.bufSize)
			}
		}
		// Frames either completed, counted dropped, or still outstanding.
		if st.TxPackets+st.TxDrops+uint64(countData(s)) != 4 {
			t.Fatalf("tx accounting %+v, outstanding %d", st, countData(s))
		}
	})
}

func countData(s *sq) int {
	n := 0
	for c := s.cc; c != s.pc; {
		in := s.info[int(c)&(s.size()-1)]
		if in.nbb == 0 {
			break
		}
		if in.data {
			n++
		}
		c += in.nbb
	}
	return n
}

func FuzzEQE(f *testing.F) {
	var good [3 * mlxhw.EQESize]byte
	for i, e := range []mlxhw.EQE{mlxhw.EQEComp(0x400), mlxhw.EQEPageRequest(0, -3), mlxhw.EQECmd(1)} {
		_ = mlxhw.PutEQE(good[i*64:], &e)
	}
	f.Add(good[:])
	f.Add([]byte{0, 0x0b, 0, 0, 0xff})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newBareVF(t, 64, 16)
		v := b.v
		ram := v.dma.mem.(*kernel.SimRAM)
		page, _ := ram.Alloc(1)
		mbox, _ := ram.Alloc(cmdMboxPages)
		v.cmd = newCmdq(v.bar, kernel.RealClock{}, v.gone, 0, page, mbox, mlxhw.LogCmdqStride)
		r, _ := v.dma.alloc(1, "eq")
		q := &eq{n: 1, logSize: 6, mem: r.Bytes}
		if len(data) > 0 {
			for i := range q.mem {
				q.mem[i] = data[i%len(data)]
			}
		}
		var e mlxhw.EQE
		total := 0
		for range 4 {
			n, _ := q.poll(v.bar, v.uarOff, 100, &e, v.event)
			if n > 100 {
				t.Fatalf("consumed %d > budget", n)
			}
			total += n
		}
		if q.ci != uint32(total) {
			t.Fatalf("ci %d after %d entries", q.ci, total)
		}
		if v.pending.Load() <= -mlxhw.MaxPages*int32(total+1) {
			t.Fatal("page balance out of range")
		}
		if int(b.r.pc-b.r.cc) != b.r.size() {
			t.Fatal("RQ lost buffers")
		}
	})
}

// FuzzCommandOutput: a hostile device answers a command with arbitrary
// output bytes, delivery status and entry contents; exec returns an error
// or a decoded output, never panics, never reads outside its mailboxes.
func FuzzCommandOutput(f *testing.F) {
	ok := (&mlxhw.QueryVportStateOut{State: 1}).AppendTo(nil)
	f.Add(ok, uint8(0), uint8(0))
	f.Add(mlxhw.AppendErrorOutput(nil, mlxhw.StatusBadParam, 7), uint8(0), uint8(1))
	f.Add(make([]byte, 600), uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, out []byte, status, which uint8) {
		fd, _ := newFakeCmd(t, time.Second)
		fd.status = mlxhw.DeliveryStatus(status & 0x7f)
		fd.answer = func([]byte) []byte { return out }
		var in mlxhw.Input
		var o mlxhw.Output
		switch which % 3 {
		case 0:
			in, o = &mlxhw.QueryVportStateIn{}, &mlxhw.QueryVportStateOut{}
		case 1:
			in, o = &mlxhw.QueryNICVportContextIn{ListType: mlxhw.ListMC, MaxList: 128}, &mlxhw.QueryNICVportContextOut{}
		default:
			in, o = &mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesTake, NumEntries: 64}, &mlxhw.ManagePagesOut{}
		}
		err := fd.c.exec(context.Background(), in, o)
		if err != nil && !errors.Is(err, ErrCommand) && !errors.Is(err, ErrDevice) {
			t.Fatalf("unexpected error class: %v", err)
		}
		if err == nil && fd.status != 0 {
			t.Fatalf("delivery status %d accepted", fd.status)
		}
		if mp, isMP := o.(*mlxhw.ManagePagesOut); err == nil && isMP && len(mp.PAS) > 64 {
			t.Fatalf("%d pages returned for 64 asked", len(mp.PAS))
		}
	})
}
