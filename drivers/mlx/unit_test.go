package mlx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// Unit tests of the driver's pure parts, without a device: the queues are
// built in simulated RAM and the tests play the device by writing CQEs and
// EQEs by hand.

// bareVF is a VF with one SQ/CQ and one RQ/CQ and no device behind it.
type bareVF struct {
	v    *VF
	ram  *kernel.SimRAM
	bar  *pci.MemBAR
	s    *sq
	r    *rq
	ifp  *ifnet.Interface
	mu   sync.Mutex
	got  [][]byte
	meta []packet.Meta
	dbs  []uint64 // 64-bit UAR writes (offset<<32 is lost; value only)
}

func newBareVF(tb testing.TB, sqSize, rqSize int) *bareVF {
	tb.Helper()
	ram := kernel.NewSimRAM(4096)
	b := &bareVF{ram: ram, bar: pci.NewMemBAR(mlxhw.BAR0Size)}
	v := &VF{cfg: Config{Name: "mlxt", Clock: kernel.RealClock{}, MaxMTU: 1500, CommandTimeout: time.Second},
		bar: b.bar, log: kernel.DiscardLogger(), irq: kernel.NewEvent(), ctl: kernel.NewEvent(),
		stop: make(chan struct{}), gone: make(chan struct{}), cqByN: map[uint32]func(int) int{},
		gen: mlxhw.ModelGeneralCaps(), eth: mlxhw.ModelEthCaps(), lkey: 0x1005a, uar: 8, uarOff: mlxhw.UAROffset(8)}
	v.dma.mem = ram
	v.maxFrame = 1518
	v.rxPool = rxPoolFor(1536, 16)
	b.bar.OnWrite = func(off uint64, size int, val uint64) {
		if size == 8 {
			b.mu.Lock()
			b.dbs = append(b.dbs, val)
			b.mu.Unlock()
		}
	}
	dbrs, err := v.dma.alloc(1, "dbr")
	if err != nil {
		tb.Fatal(err)
	}
	txcq, _, err := v.allocCQ(log2(sqSize), 1, dbrs.Bytes[0:8])
	if err != nil {
		tb.Fatal(err)
	}
	txcq.n = 0x400
	s, _, err := v.allocSQ(0, sqSize, txcq, dbrs.Bytes[64:72])
	if err != nil {
		tb.Fatal(err)
	}
	s.n, s.ready = 0x800, true
	rxcq, _, err := v.allocCQ(log2(rqSize), 1, dbrs.Bytes[128:136])
	if err != nil {
		tb.Fatal(err)
	}
	rxcq.n = 0x401
	r, _, err := v.allocRQ(0, rqSize, rxcq, 1536, dbrs.Bytes[192:200])
	if err != nil {
		tb.Fatal(err)
	}
	r.n = 0xc00
	v.sqs, v.rqs = []*sq{s}, []*rq{r}
	v.cqByN[txcq.n] = func(n int) int { return s.complete(v.bar, n) }
	v.cqByN[rxcq.n] = func(n int) int { return r.complete(v.bar, n) }
	caps, en := v.capabilities()
	v.caps.Store(uint32(en))
	ifp, err := ifnet.New(ifnet.Config{Name: "mlxt", MAC: []byte{2, 0, 0, 0, 0, 1}, Capabilities: caps, Enabled: en}, v)
	if err != nil {
		tb.Fatal(err)
	}
	ifp.SetInput(func(_ *ifnet.Interface, bt *packet.Batch) {
		b.mu.Lock()
		for _, p := range bt.Packets() {
			b.got = append(b.got, bytes.Clone(p.Bytes()))
			b.meta = append(b.meta, p.Meta)
		}
		b.mu.Unlock()
		bt.Free()
	})
	v.ifp.Store(ifp)
	v.qsReady.Store(true)
	b.v, b.s, b.r, b.ifp = v, s, r, ifp
	return b
}

// putCQE writes a CQE at producer index prod of q the way the device does.
func putCQE(tb testing.TB, q *cq, prod uint32, c mlxhw.CQE) {
	tb.Helper()
	c.Owner = mlxhw.OwnerBit(prod, q.logSize)
	off := int(mlxhw.EntryIndex(prod, q.logSize)) * mlxhw.CQESize
	var tmp [mlxhw.CQESize]byte
	if err := mlxhw.PutCQE(tmp[:], &c); err != nil {
		tb.Fatal(err)
	}
	copy(q.mem[off:off+0x3c], tmp[:0x3c])
	storeBE32(q.mem, off+0x3c, binary.BigEndian.Uint32(tmp[0x3c:]))
}

func frame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	for i := 14; i < n; i++ {
		f[i] = seed + byte(i)
	}
	return f
}

// gather reads back the frame a send WQE describes: inline headers, then
// its data segments out of the ring.
func gather(tb testing.TB, s *sq, idx int) (mlxhw.SendWQE, []byte) {
	tb.Helper()
	var w mlxhw.SendWQE
	segs := make([]mlxhw.DataSeg, 64)
	off := (idx & (s.size() - 1)) * mlxhw.WQEBBSize
	n, err := mlxhw.ParseSendWQE(s.wq[off:], &w, segs)
	if err != nil {
		tb.Fatal(err)
	}
	out := bytes.Clone(w.Inline)
	for _, d := range segs[:n] {
		if d.LKey != s.lkey {
			tb.Fatalf("lkey %#x", d.LKey)
		}
		b := make([]byte, d.ByteCount)
		if err := kernel.CopyFromPhys(s.v.dma.mem.(*kernel.SimRAM), b, d.Addr); err != nil {
			tb.Fatal(err)
		}
		out = append(out, b...)
	}
	return w, out
}

func TestSQPostGatherComplete(t *testing.T) {
	b := newBareVF(t, 64, 16)
	s := b.s
	bt := packet.NewBatch(8)
	var frames [][]byte
	for i := range 5 {
		f := frame(60+i*300, byte(i))
		frames = append(frames, f)
		p := packet.New(0, 2048)
		_ = p.SetBytes(f)
		if i == 1 {
			p.Meta.Csum = packet.CsumTxIPv4 | packet.CsumTxTCPv4
		}
		if i == 2 {
			p.Meta.SetVLAN(0x2005)
		}
		bt.Add(p)
	}
	n, err := b.v.Transmit(bt)
	if n != 5 || err != nil || bt.Len() != 0 {
		t.Fatalf("Transmit = %d, %v, left %d", n, err, bt.Len())
	}
	if got := loadBE32(s.dbr, mlxhw.DBRSendOff); got != uint32(s.pc) || s.pc != 5 {
		t.Fatalf("SQ DBR %d, pc %d", got, s.pc)
	}
	if len(b.dbs) != 1 {
		t.Fatalf("%d doorbells for one batch", len(b.dbs))
	}
	d0, d1 := uint32(b.dbs[0]>>32), uint32(b.dbs[0])
	if db := mlxhw.ParseSQDoorbell(d0, d1); db.SQN != s.n || db.WQEIndex != 4 || db.Opcode != mlxhw.WQEOpSend {
		t.Fatalf("doorbell %+v", db)
	}
	for i, f := range frames {
		w, got := gather(t, s, i)
		if !bytes.Equal(got, f) {
			t.Fatalf("frame %d: WQE gathers %d bytes, want %d", i, len(got), len(f))
		}
		if w.WQEIndex != uint16(i) || w.SQN != s.n || w.FmCeSe&mlxhw.CEMask != mlxhw.CECQEAlways {
			t.Fatalf("WQE %d: %+v", i, w)
		}
		wantCS := uint8(0)
		if i == 1 {
			wantCS = mlxhw.CSL3 | mlxhw.CSL4
		}
		if w.CSFlags != wantCS {
			t.Fatalf("WQE %d cs_flags %#x", i, w.CSFlags)
		}
		if (i == 2) != w.VLAN || (i == 2 && w.VLANTCI != 0x2005) {
			t.Fatalf("WQE %d VLAN %v %#x", i, w.VLAN, w.VLANTCI)
		}
	}
	// The device completes WQEs 0..2 with one CQE for WQE 2 and 3 alone.
	putCQE(t, s.cq, 0, mlxhw.CQE{Opcode: mlxhw.CQEReq, WQECounter: 2, SopDropQPN: s.n})
	putCQE(t, s.cq, 1, mlxhw.CQE{Opcode: mlxhw.CQEReq, WQECounter: 3, SopDropQPN: s.n})
	// A hostile completion for a WQE that was never posted.
	putCQE(t, s.cq, 2, mlxhw.CQE{Opcode: mlxhw.CQEReq, WQECounter: 40, SopDropQPN: s.n})
	if n := s.complete(b.bar, 100); n != 3 {
		t.Fatalf("consumed %d CQEs", n)
	}
	st := b.v.Stats()
	if st.TxPackets != 4 || s.cc != 4 || s.outstanding() != 1 || st.DeviceErrors != 1 {
		t.Fatalf("after completions: %+v cc %d", st, s.cc)
	}
	if loadBE32(s.cq.dbr, 0) != 3 {
		t.Fatalf("CQ set_ci %d", loadBE32(s.cq.dbr, 0))
	}
	if s.tail != s.info[4].end-uint64(len(frames[4])) {
		t.Fatalf("ring tail %d", s.tail)
	}
}

func TestSQEdgeNOPsAndRingFull(t *testing.T) {
	b := newBareVF(t, 64, 16)
	s := b.s
	// Fill to 62 WQEBBs with one-WQEBB frames, complete them, then a frame
	// needing 2 WQEBBs (a 4-page split is not needed: use an inline-heavy
	// LSO) must be preceded by 2 NOPs.
	send := func(f []byte, m packet.Meta) (int, error) {
		bt := packet.NewBatch(1)
		p := packet.New(0, 70000)
		_ = p.SetBytes(f)
		p.Meta = m
		bt.Add(p)
		return b.v.Transmit(bt)
	}
	for i := range 63 {
		if n, err := send(frame(100, byte(i)), packet.Meta{}); n != 1 || err != nil {
			t.Fatalf("frame %d: %d %v", i, n, err)
		}
	}
	putCQE(t, s.cq, 0, mlxhw.CQE{Opcode: mlxhw.CQEReq, WQECounter: 62, SopDropQPN: s.n})
	s.complete(b.bar, 10)
	lso := tcpFrame(t, 4000)
	if n, err := send(lso, packet.Meta{Csum: packet.CsumTxTSOv4 | packet.CsumTxIPv4 | packet.CsumTxTCPv4, MSS: 1000}); n != 1 || err != nil {
		t.Fatalf("LSO: %d %v", n, err)
	}
	if s.pc != 63+1+2 {
		t.Fatalf("pc %d after an edge-crossing WQE", s.pc)
	}
	var w mlxhw.SendWQE
	if _, err := mlxhw.ParseSendWQE(s.wq[63*64:], &w, make([]mlxhw.DataSeg, 4)); err != nil || w.Opcode != mlxhw.WQEOpNOP {
		t.Fatalf("edge WQE: %+v %v", w, err)
	}
	w, got := gather(t, s, 0)
	if w.Opcode != mlxhw.WQEOpLSO || w.MSS != 1000 || len(w.Inline) != 54 || !bytes.Equal(got, lso) {
		t.Fatalf("LSO WQE %+v, %d bytes", w, len(got))
	}
	// Fill the ring: Transmit must stop with ErrBusy and keep the rest.
	bt := packet.NewBatch(128)
	for range 100 {
		p := packet.New(0, 2048)
		_ = p.SetBytes(frame(100, 1))
		bt.Add(p)
	}
	n, err := b.v.Transmit(bt)
	if !errors.Is(err, ifnet.ErrBusy) || n != 64-3 || bt.Len() != 100-n {
		t.Fatalf("full ring: took %d, %v, left %d", n, err, bt.Len())
	}
	bt.Free()
}

// tcpFrame is an Ethernet/IPv4/TCP frame with payload bytes.
func tcpFrame(tb testing.TB, payload int) []byte {
	f := make([]byte, 54+payload)
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 1234)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	tcp[12] = 5 << 4
	for i := range payload {
		f[54+i] = byte(i * 7)
	}
	return f
}

func TestLSOHeaderLen(t *testing.T) {
	f := tcpFrame(t, 10)
	if n, ok := lsoHeaderLen(f); !ok || n != 54 {
		t.Fatalf("IPv4/TCP: %d %v", n, ok)
	}
	v := append(append(bytes.Clone(f[:12]), 0x81, 0, 0, 5), f[12:]...)
	if n, ok := lsoHeaderLen(v); !ok || n != 58 {
		t.Fatalf("VLAN IPv4/TCP: %d %v", n, ok)
	}
	v6 := make([]byte, 14+40+32)
	copy(v6[12:], []byte{0x86, 0xdd})
	v6[14], v6[14+6] = 0x60, 6
	v6[54+12] = 8 << 4
	if n, ok := lsoHeaderLen(v6); !ok || n != 14+40+32 {
		t.Fatalf("IPv6/TCP with options: %d %v", n, ok)
	}
	udp := bytes.Clone(f)
	udp[14+9] = 17
	for _, bad := range [][]byte{udp, f[:30], f[:40], nil} {
		if _, ok := lsoHeaderLen(bad); ok {
			t.Fatalf("accepted %x", bad)
		}
	}
}

func TestRQDeliver(t *testing.T) {
	b := newBareVF(t, 64, 16)
	r := b.r
	if loadBE32(r.dbr, 0) != 16 {
		t.Fatalf("RQ DBR %d after fill", loadBE32(r.dbr, 0))
	}
	// Every WQE points at its own buffer.
	for i := range 16 {
		_, n, err := mlxhw.ParseRecvWQE(r.wq[i*r.stride:(i+1)*r.stride], false, make([]mlxhw.DataSeg, 4))
		if err != nil || n != 1 {
			t.Fatalf("WQE %d: %d %v", i, n, err)
		}
	}
	for lap := range 3 {
		for i := range 16 {
			prod := uint32(lap*16 + i)
			f := frame(64+i, byte(prod))
			copy(r.bufs.Bytes[i*r.bufSize:], f)
			c := mlxhw.CQE{Opcode: mlxhw.CQERespSend, WQECounter: uint16(prod), SopDropQPN: r.n, ByteCnt: uint32(len(f)),
				HdsIPExt: mlxhw.CQEL2OK | mlxhw.CQEL3OK, L4L3HdrType: mlxhw.CQEL3IPv4<<2 | mlxhw.CQEL4TCP<<4 | 1, VLANInfo: 7}
			if i == 3 {
				c.ByteCnt = 5000 // larger than the buffer: hostile
			}
			putCQE(t, r.cq, prod, c)
		}
		if n := r.complete(b.bar, 1000); n != 16 {
			t.Fatalf("lap %d: consumed %d", lap, n)
		}
	}
	st := b.v.Stats()
	if st.RxPackets != 45 || st.DeviceErrors != 3 || st.RxDrops != 3 || len(b.got) != 45 {
		t.Fatalf("stats %+v, got %d", st, len(b.got))
	}
	if r.cc != 48 || r.pc != 64 || loadBE32(r.dbr, 0) != 64 || loadBE32(r.cq.dbr, 0) != 48 {
		t.Fatalf("cc %d pc %d dbr %d", r.cc, r.pc, loadBE32(r.dbr, 0))
	}
	m := b.meta[0]
	if m.Csum != packet.CsumRxIPOK|packet.CsumRxL4Bad || !m.HasVLAN || m.VLAN != 7 {
		t.Fatalf("meta %+v", m)
	}
	if !bytes.Equal(b.got[0], frame(64, 0)) {
		t.Fatalf("frame 0 %x", b.got[0])
	}
}

func TestEQPoll(t *testing.T) {
	b := newBareVF(t, 64, 16)
	r, _ := b.v.dma.alloc(4, "eq")
	mlxhw.InitEQ(r.Bytes)
	q := &eq{n: 3, logSize: 8, mem: r.Bytes}
	put := func(prod uint32, e mlxhw.EQE) {
		e.Owner = mlxhw.OwnerBit(prod, q.logSize)
		off := int(mlxhw.EntryIndex(prod, q.logSize)) * mlxhw.EQESize
		var tmp [64]byte
		_ = mlxhw.PutEQE(tmp[:], &e)
		copy(q.mem[off:off+60], tmp[:60])
		storeBE32(q.mem, off+60, binary.BigEndian.Uint32(tmp[60:]))
	}
	var writes []uint64
	b.bar.OnWrite = func(off uint64, size int, v uint64) {
		if size == 4 {
			writes = append(writes, off<<32|v)
		}
	}
	var e mlxhw.EQE
	var seen []uint32
	for prod := range uint32(256) {
		put(prod, mlxhw.EQEComp(prod))
	}
	n, more := q.poll(b.bar, b.v.uarOff, 256, &e, func(e *mlxhw.EQE) { seen = append(seen, e.CompCQN()) })
	if n != 256 || !more || q.ci != 256 {
		t.Fatalf("poll: %d %v ci %d", n, more, q.ci)
	}
	for prod := uint32(256); prod < 300; prod++ {
		put(prod, mlxhw.EQEComp(prod))
	}
	n, more = q.poll(b.bar, b.v.uarOff, 256, &e, func(e *mlxhw.EQE) { seen = append(seen, e.CompCQN()) })
	if n != 44 || more || q.ci != 300 {
		t.Fatalf("second poll: %d %v ci %d", n, more, q.ci)
	}
	for i, c := range seen {
		if c != uint32(i) {
			t.Fatalf("entry %d is cqn %d", i, c)
		}
	}
	// A CI update (no arm) every 64 entries: ci 64, 128, 192, 256.
	if len(writes) != 4 || writes[0] != (b.v.uarOff+mlxhw.UAREQDoorbellNoAr)<<32|uint64(mlxhw.EQDoorbell(3, 64)) {
		t.Fatalf("doorbells %x", writes)
	}
	q.arm(b.bar, b.v.uarOff)
	if w := writes[len(writes)-1]; w != (b.v.uarOff+mlxhw.UAREQDoorbellArm)<<32|uint64(mlxhw.EQDoorbell(3, 300)) {
		t.Fatalf("arm %x", w)
	}
}

// fakeDevice completes commands inside the doorbell write (or never).
type fakeDevice struct {
	ram    *kernel.SimRAM
	c      *cmdq
	answer func(in []byte) []byte // nil: never complete
	status mlxhw.DeliveryStatus
}

func (f *fakeDevice) ReadDMA(a uint64, b []byte) error  { return kernel.CopyFromPhys(f.ram, b, a) }
func (f *fakeDevice) WriteDMA(a uint64, b []byte) error { return kernel.CopyToPhys(f.ram, a, b) }

func (f *fakeDevice) doorbell() {
	if f.answer == nil {
		return
	}
	var e mlxhw.CmdEntry
	_ = mlxhw.ParseCmdEntry(f.c.slot, &e)
	in, err := mlxhw.GatherInput(f, &e, make([]byte, e.InLen), make([]byte, mlxhw.MailboxSize))
	if err != nil {
		panic(err)
	}
	out := f.answer(in)
	_ = mlxhw.ScatterOutput(f, &e, out, make([]byte, mlxhw.MailboxSize))
	var tmp [64]byte
	copy(tmp[:], f.c.slot)
	_ = mlxhw.CompleteCmdEntry(tmp[:], e.Out[:], f.status)
	copy(f.c.slot[:0x3c], tmp[:0x3c])
	storeBE32(f.c.slot, 0x3c, binary.BigEndian.Uint32(tmp[0x3c:]))
}

func newFakeCmd(t *testing.T, timeout time.Duration) (*fakeDevice, chan struct{}) {
	ram := kernel.NewSimRAM(256)
	page, _ := ram.Alloc(1)
	mbox, _ := ram.Alloc(cmdMboxPages)
	bar := pci.NewMemBAR(mlxhw.BAR0Size)
	gone := make(chan struct{})
	f := &fakeDevice{ram: ram}
	f.c = newCmdq(bar, kernel.RealClock{}, gone, timeout, page, mbox, mlxhw.LogCmdqStride)
	bar.OnWrite = func(off uint64, _ int, v uint64) {
		if off == mlxhw.RegCmdDoorbell && v == 1 {
			f.doorbell()
		}
	}
	bar.Write32(mlxhw.RegHealthFWVer, 0x230010)
	return f, gone
}

func TestCommandExec(t *testing.T) {
	f, _ := newFakeCmd(t, time.Second)
	ctx := context.Background()
	var seen []byte
	f.answer = func(in []byte) []byte {
		seen = in
		o := mlxhw.QueryHCACapOut{}
		for i := range o.Cap {
			o.Cap[i] = byte(i)
		}
		return o.AppendTo(nil)
	}
	var out mlxhw.QueryHCACapOut
	in := &mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(1, 1)}
	if err := f.c.exec(ctx, in, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seen, in.AppendTo(nil)) || out.Cap[0x123] != 0x23 || out.Cap[4095] != 0xff {
		t.Fatalf("input %x, output cap[0x123]=%#x", seen, out.Cap[0x123])
	}
	// A command status error.
	f.answer = func([]byte) []byte { return mlxhw.AppendErrorOutput(nil, mlxhw.StatusBadParam, 0x1234) }
	err := f.c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpAllocPD}, &mlxhw.ObjectOut{Op: mlxhw.OpAllocPD})
	var se *mlxhw.StatusError
	if !errors.Is(err, ErrCommand) || !errors.As(err, &se) || se.Status != mlxhw.StatusBadParam || se.Syndrome != 0x1234 {
		t.Fatalf("status error: %v", err)
	}
	// A delivery error.
	f.status = mlxhw.DeliveryToken
	if err := f.c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpNOP}, nil); !errors.Is(err, ErrCommand) {
		t.Fatalf("delivery error: %v", err)
	}
	f.status = 0
	// A command that never completes times out, and the queue is then
	// refused at once.
	f.answer = nil
	f.c.timeout = 20 * time.Millisecond
	start := time.Now()
	if err := f.c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpNOP}, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("timeout took too long")
	}
	if err := f.c.exec(ctx, &mlxhw.SimpleIn{Op: mlxhw.OpNOP}, nil); !errors.Is(err, ErrTimeout) || f.c.timeouts.Load() != 1 {
		t.Fatalf("after timeout: %v", err)
	}
}

func TestCommandGone(t *testing.T) {
	f, gone := newFakeCmd(t, time.Minute)
	done := make(chan error)
	go func() { done <- f.c.exec(context.Background(), &mlxhw.SimpleIn{Op: mlxhw.OpNOP}, nil) }()
	time.Sleep(10 * time.Millisecond)
	close(gone)
	select {
	case err := <-done:
		if !errors.Is(err, ErrGone) {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("command hung after the device went away")
	}
	// All-ones registers are noticed without the channel too.
	f2, _ := newFakeCmd(t, time.Minute)
	f2.c.bar.Write32(mlxhw.RegHealthFWVer, 0xffffffff)
	if err := f2.c.exec(context.Background(), &mlxhw.SimpleIn{Op: mlxhw.OpNOP}, nil); !errors.Is(err, ErrGone) {
		t.Fatal(err)
	}
}

func TestTxDropsCounted(t *testing.T) {
	b := newBareVF(t, 64, 16)
	tso := packet.Meta{Csum: packet.CsumTxTSOv4 | packet.CsumTxIPv4 | packet.CsumTxTCPv4, MSS: 1000}
	udp := tcpFrame(t, 3000)
	udp[14+9] = 17
	cases := []struct {
		f []byte
		m packet.Meta
	}{
		{tcpFrame(t, 1<<16), tso}, // larger than max_lso_cap
		{udp, tso},                // LSO of a non-TCP frame
		{tcpFrame(t, 100), packet.Meta{Csum: packet.CsumTxTSOv4}}, // no MSS
		{frame(3000, 1), packet.Meta{}},                           // above the MTU without TSO
	}
	bt := packet.NewBatch(8)
	for _, c := range cases {
		p := packet.New(0, len(c.f))
		_ = p.SetBytes(c.f)
		p.Meta = c.m
		bt.Add(p)
	}
	n, err := b.v.Transmit(bt)
	if n != len(cases) || err != nil {
		t.Fatalf("Transmit took %d, %v", n, err)
	}
	s := b.v.Stats()
	ifs := b.ifp.Stats()
	if s.TxDrops != 4 || b.s.pc != 0 || ifs.Drops[ifnet.DropInvalid] != 3 || ifs.Drops[ifnet.DropTooBig] != 1 {
		t.Fatalf("stats %+v, drops %v, pc %d", s, ifs.Drops, b.s.pc)
	}
}
