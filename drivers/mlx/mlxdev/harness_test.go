package mlxdev

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/pci"
)

// The tests drive the model with a scripted "driver" written here (it does
// not import drivers/mlx): guest memory is a SimRAM, time a FakeClock.

var testMAC = [6]byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}

// testWire collects transmitted frames.
type testWire struct {
	mu     sync.Mutex
	frames [][]byte
	vlans  []uint16
}

func (w *testWire) Transmit(b *packet.Batch) {
	w.mu.Lock()
	for i := range b.Len() {
		p := b.At(i)
		w.frames = append(w.frames, append([]byte(nil), p.Bytes()...))
	}
	w.mu.Unlock()
	b.Free()
}

func (w *testWire) take() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.frames
	w.frames = nil
	return f
}

type harness struct {
	t     testing.TB
	ram   *kernel.SimRAM
	clk   *kernel.FakeClock
	dev   *Device
	bar   pci.BAR
	cfg   pci.ConfigSpace
	wire  *testWire
	cmdq  *kernel.Region
	mbox  *kernel.Region // 1 KiB blocks, 4 per page
	token uint8
	irqs  [mlxhw.MSIXVectors]atomic.Int64
	blk   [mlxhw.MailboxSize]byte
}

type hdma struct{ m kernel.PhysMem }

func (h hdma) ReadDMA(a uint64, b []byte) error  { return kernel.CopyFromPhys(h.m, b, a) }
func (h hdma) WriteDMA(a uint64, b []byte) error { return kernel.CopyToPhys(h.m, a, b) }

func newHarness(t testing.TB, mod func(*Config)) *harness { return newHarnessSized(t, 4096, mod) }

// newHarnessSized makes a harness with pages of guest RAM.
func newHarnessSized(t testing.TB, pages int, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, ram: kernel.NewSimRAM(pages), clk: kernel.NewFakeClock(time.Unix(1000, 0)), wire: &testWire{}}
	cfg := Config{Mem: h.ram, MAC: testMAC, Serial: 7, Clock: h.clk, Wire: h.wire, Strict: true,
		Interrupt: func(v int) { h.irqs[v].Add(1) }}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	h.dev, h.bar, h.cfg = d, d.BAR(0), d.Config()
	h.cmdq = h.alloc(1)
	h.mbox = h.alloc(64)
	return h
}

func (h *harness) alloc(pages int) *kernel.Region {
	r, err := h.ram.Alloc(pages)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// pciUp enables memory, bus mastering and MSI-X with every vector unmasked.
func (h *harness) pciUp() {
	pci.SetCommand(h.cfg, pci.CommandMemory|pci.CommandMaster, 0)
	off, err := pci.FindCapability(h.cfg, pci.CapMSIX)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := pci.ParseMSIX(h.cfg, off)
	if err != nil {
		h.t.Fatal(err)
	}
	m.SetEnabled(h.cfg, true)
	for i := range m.TableSize {
		_ = m.WriteEntry(h.bar, i, 0xfee00000, uint32(i))
		_ = m.MaskEntry(h.bar, i, false)
	}
}

// cmdqUp performs the handshake of §2.1 and waits out the init delays.
func (h *harness) cmdqUp() {
	h.clk.Advance(2 * time.Millisecond)
	if v := h.bar.Read32(mlxhw.RegInitializing); v&mlxhw.InitializingBit != 0 {
		h.t.Fatalf("still initializing after the delay: %#x", v)
	}
	a := h.cmdq.GPA(0)
	h.bar.Write32(mlxhw.RegCmdqAddrH, uint32(a>>32))
	h.bar.Write32(mlxhw.RegCmdqAddrLSz, uint32(a))
	h.clk.Advance(2 * time.Millisecond)
}

// cmdResult is one command's outcome.
type cmdResult struct {
	delivery mlxhw.DeliveryStatus
	owned    bool // ownership never came back
	out      []byte
}

func (r cmdResult) status() mlxhw.Status {
	if len(r.out) == 0 {
		return 0xff
	}
	return mlxhw.Status(r.out[0])
}

func (r cmdResult) syndrome() uint32 {
	if len(r.out) < 8 {
		return 0
	}
	return binary.BigEndian.Uint32(r.out[4:])
}

// post writes a command into slot 0 (mutated by tweak before the
// doorbell) and rings it.
func (h *harness) post(slot int, msg []byte, outLen int, tweak func(e *mlxhw.CmdEntry)) cmdResult {
	h.t.Helper()
	h.token++
	if h.token == 0 {
		h.token = 1
	}
	dma := hdma{h.ram}
	nIn, nOut := mlxhw.MailboxBlocks(len(msg)), mlxhw.MailboxBlocks(outLen)
	if nIn+nOut > h.mbox.Pages()*4 {
		h.t.Fatalf("command needs %d mailbox blocks", nIn+nOut)
	}
	addrs := make([]uint64, nIn+nOut)
	for i := range addrs {
		addrs[i] = h.mbox.GPA(i * 1024)
	}
	if err := mlxhw.BuildChain(dma, msg, 0, addrs[:nIn], h.token, h.blk[:]); err != nil {
		h.t.Fatal(err)
	}
	if err := mlxhw.BuildChain(dma, nil, outLen, addrs[nIn:], h.token, h.blk[:]); err != nil {
		h.t.Fatal(err)
	}
	e := mlxhw.CmdEntry{Type: mlxhw.CmdTypePCIe, InLen: uint32(len(msg)), OutLen: uint32(outLen), Token: h.token, HWOwned: true}
	copy(e.In[:], msg)
	if nIn > 0 {
		e.InPtr = addrs[0]
	}
	if nOut > 0 {
		e.OutPtr = addrs[nIn]
	}
	if tweak != nil {
		tweak(&e)
	}
	ent := h.cmdq.Bytes[slot*64 : slot*64+64]
	if err := e.Put(ent); err != nil {
		h.t.Fatal(err)
	}
	h.bar.Write32(mlxhw.RegCmdDoorbell, 1<<slot)
	var got mlxhw.CmdEntry
	_ = mlxhw.ParseCmdEntry(ent, &got)
	if got.HWOwned {
		return cmdResult{owned: true}
	}
	r := cmdResult{delivery: got.Status}
	if got.Status == mlxhw.DeliveryOK {
		got.OutPtr, got.OutLen = e.OutPtr, e.OutLen
		out, err := mlxhw.GatherOutput(dma, &got, make([]byte, outLen), h.blk[:])
		if err != nil {
			h.t.Fatalf("gather output: %v", err)
		}
		r.out = out
	}
	return r
}

// exec runs one command in slot 0.
func (h *harness) exec(in mlxhw.Input) cmdResult {
	h.t.Helper()
	return h.post(0, in.AppendTo(nil), in.OutLen(), nil)
}

// must runs in and fails the test unless it succeeds; it returns the
// decoded output.
func (h *harness) must(in mlxhw.Input) mlxhw.Output {
	h.t.Helper()
	r := h.exec(in)
	if r.owned || r.delivery != mlxhw.DeliveryOK {
		h.t.Fatalf("%v: owned %v delivery %v", in.Opcode(), r.owned, r.delivery)
	}
	out, err := mlxhw.DecodeOutput(in.Opcode(), r.out)
	if err != nil {
		h.t.Fatalf("%v: %v", in.Opcode(), err)
	}
	return out
}

// expect runs in and checks its command status.
func (h *harness) expect(in mlxhw.Input, want mlxhw.Status) cmdResult {
	h.t.Helper()
	r := h.exec(in)
	if r.delivery != mlxhw.DeliveryOK || r.status() != want {
		h.t.Fatalf("%v: delivery %v status %v (syndrome %#x), want %v", in.Opcode(), r.delivery, r.status(), r.syndrome(), want)
	}
	return r
}

func (h *harness) id(in mlxhw.Input) uint32 {
	h.t.Helper()
	return h.must(in).(*mlxhw.ObjectOut).ID
}

func obj(op mlxhw.Opcode, id uint32) *mlxhw.ObjectIn { return &mlxhw.ObjectIn{Op: op, ID: id} }
func simple(op mlxhw.Opcode) *mlxhw.SimpleIn         { return &mlxhw.SimpleIn{Op: op} }

// givePages answers QUERY_PAGES op_mod with MANAGE_PAGES GIVE.
func (h *harness) givePages(opMod uint16) []uint64 {
	h.t.Helper()
	q := h.must(&mlxhw.ObjectIn{Op: mlxhw.OpQueryPages, OpMod: opMod}).(*mlxhw.QueryPagesOut)
	if q.NumPages <= 0 {
		return nil
	}
	r := h.alloc(int(q.NumPages))
	pas := make([]uint64, q.NumPages)
	for i := range pas {
		pas[i] = r.GPA(i * 4096)
	}
	h.must(&mlxhw.ManagePagesIn{OpMod: mlxhw.ManagePagesGive, PAS: pas})
	return pas
}

// bringUp runs §2.5 steps 1–11 and returns with the device RUNNING.
func (h *harness) bringUp() {
	h.t.Helper()
	h.pciUp()
	h.cmdqUp()
	h.must(obj(mlxhw.OpEnableHCA, 0))
	h.must(simple(mlxhw.OpQueryISSI))
	h.must(obj(mlxhw.OpSetISSI, 1))
	h.givePages(mlxhw.PagesBoot)
	h.must(&mlxhw.AccessRegIn{OpMod: mlxhw.AccessRegWrite, RegisterID: mlxhw.RegIDHostEndianness, Data: make([]byte, 16)})
	caps := h.must(&mlxhw.SimpleIn{Op: mlxhw.OpQueryHCACap, OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, mlxhw.CapCurrent)}).(*mlxhw.QueryHCACapOut)
	h.must(&mlxhw.SetHCACapIn{OpMod: mlxhw.CapOpMod(mlxhw.CapGeneral, mlxhw.CapMax), Cap: caps.Cap})
	h.givePages(mlxhw.PagesInit)
	h.must(simple(mlxhw.OpInitHCA))
	if s := h.dev.State(); s.Phase != PhaseRunning {
		h.t.Fatalf("phase %v after INIT_HCA", s.Phase)
	}
}

func (h *harness) noViolations() {
	h.t.Helper()
	for _, v := range h.dev.Violations() {
		h.t.Errorf("violation: %v", v)
	}
}
