package mlxdev

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/packet"
)

type rxEnv struct {
	*env
	eq *teq
	cq *tcq
	rq *trq
}

func newRxEnv(t testing.TB, vsd bool) *rxEnv {
	e := newEnv(newHarness(t, nil))
	x := &rxEnv{env: e}
	x.eq = e.createEQ(7, mlxhw.EventComp.Bit()|mlxhw.EventCQError.Bit(), 2)
	x.cq = e.createCQ(8, x.eq.n)
	x.rq = e.createRQ(x.cq, 6, vsd)
	x.rq.fill(64)
	e.directTIR(x.rq.n)
	return x
}

// deliver hands frames to the device as the switch does.
func deliver(d *Device, frames ...[]byte) {
	b := packet.NewBatch(len(frames))
	for _, f := range frames {
		p := packet.New(0, len(f))
		_ = p.AppendBytes(f)
		b.Add(p)
	}
	d.Deliver(b)
}

func deliverTagged(d *Device, f []byte, tci uint16) {
	b := packet.NewBatch(1)
	p := packet.New(0, len(f))
	_ = p.AppendBytes(f)
	p.Meta.SetVLAN(tci)
	b.Add(p)
	d.Deliver(b)
}

func mac(b ...byte) net.HardwareAddr { return net.HardwareAddr(b) }

func (x *rxEnv) modifyVport(fs uint32, c mlxhw.NICVportContext) {
	x.must(&mlxhw.ModifyNICVportContextIn{FieldSelect: fs, Ctx: c})
}

func TestRxFilter(t *testing.T) {
	x := newRxEnv(t, false)
	self := net.HardwareAddr(testMAC[:])
	other := mac(0x00, 0x15, 0x5d, 9, 9, 9)
	mc := mac(0x01, 0x00, 0x5e, 0, 0, 1)
	mc2 := mac(0x33, 0x33, 0, 0, 0, 1)
	bcast := mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	try := func(name string, dst net.HardwareAddr, accept bool) {
		t.Helper()
		before := x.dev.Stats()
		f := tcpFrame(t, dst, 1, 2, []byte(name), true)
		deliver(x.dev, f)
		after := x.dev.Stats()
		cqes := x.cq.poll()
		if accept {
			if len(cqes) != 1 || cqes[0].Opcode != mlxhw.CQERespSend || !bytes.Equal(x.rq.frame(&cqes[0]), f) {
				t.Fatalf("%s: not received (%d CQEs)", name, len(cqes))
			}
			x.rq.fill(1)
		} else if len(cqes) != 0 || after.RxDrops[DropFilter] != before.RxDrops[DropFilter]+1 {
			t.Fatalf("%s: not filtered (%d CQEs)", name, len(cqes))
		}
	}
	try("own unicast", self, true)
	try("other unicast", other, false)
	try("broadcast", bcast, true)
	try("multicast", mc, false)
	x.modifyVport(mlxhw.FieldSelectAddressesList, mlxhw.NICVportContext{ListType: mlxhw.ListMC, Addresses: [][6]byte{[6]byte(mc)}})
	try("listed multicast", mc, true)
	try("unlisted multicast", mc2, false)
	x.modifyVport(mlxhw.FieldSelectPromisc, mlxhw.NICVportContext{PromiscMC: true})
	try("allmulti", mc2, true)
	try("allmulti other unicast", other, false)
	x.modifyVport(mlxhw.FieldSelectAddressesList, mlxhw.NICVportContext{ListType: mlxhw.ListUC, Addresses: [][6]byte{[6]byte(other)}})
	try("listed unicast", other, true)
	x.modifyVport(mlxhw.FieldSelectAddressesList, mlxhw.NICVportContext{ListType: mlxhw.ListUC})
	try("unlisted again", other, false)
	x.modifyVport(mlxhw.FieldSelectPromisc, mlxhw.NICVportContext{PromiscUC: true})
	try("promisc unicast", other, true)
	try("promisc_uc multicast", mc2, false)
	x.modifyVport(mlxhw.FieldSelectPromisc, mlxhw.NICVportContext{PromiscAll: true})
	try("promisc all", mc2, true)
	// The query returns what was set.
	q := x.must(&mlxhw.QueryNICVportContextIn{ListType: mlxhw.ListMC, MaxList: 16}).(*mlxhw.QueryNICVportContextOut)
	if !q.Ctx.PromiscAll || q.Ctx.PermanentAddress != testMAC || len(q.Ctx.Addresses) != 1 || q.Ctx.MTU != 1522 {
		t.Fatalf("context %+v", q.Ctx)
	}
	// Too many UC addresses.
	x.expect(&mlxhw.ModifyNICVportContextIn{FieldSelect: mlxhw.FieldSelectAddressesList,
		Ctx: mlxhw.NICVportContext{ListType: mlxhw.ListUC, Addresses: make([][6]byte, 17)}}, mlxhw.StatusBadParam)
	x.noViolations()
}

func TestRxVLANStripAndChecksum(t *testing.T) {
	x := newRxEnv(t, false)
	f := tcpFrame(t, mac(testMAC[:]...), 10, 20, []byte("checksummed"), true)
	tagged := append(append(append([]byte{}, f[:12]...), 0x81, 0x00, 0xa0, 0x05), f[12:]...)
	deliver(x.dev, tagged)
	deliverTagged(x.dev, f, 0x0007)
	bad := append([]byte{}, f...)
	bad[len(bad)-1] ^= 0xff // payload byte: TCP checksum now wrong
	deliver(x.dev, bad)
	badIP := append([]byte{}, f...)
	badIP[14+8]-- // TTL: IPv4 header checksum wrong
	deliver(x.dev, badIP)
	u := udp6Frame(t, []byte("v6"), true)
	copy(u, testMAC[:])
	deliver(x.dev, u)
	cqes := x.cq.poll()
	if len(cqes) != 5 {
		t.Fatalf("%d CQEs", len(cqes))
	}
	for i, c := range cqes[:2] {
		if !c.VLANStripped() || !bytes.Equal(x.rq.frame(&c), f) || c.ByteCnt != uint32(len(f)) {
			t.Fatalf("frame %d: not stripped: %+v", i, c)
		}
	}
	if cqes[0].VLANInfo != 0xa005 || cqes[1].VLANInfo != 0x0007 {
		t.Fatalf("TCI %#x %#x", cqes[0].VLANInfo, cqes[1].VLANInfo)
	}
	want := []struct{ l3, l4 bool }{{true, true}, {true, true}, {true, false}, {false, true}, {true, true}}
	for i, c := range cqes {
		if c.L3OK() != want[i].l3 || c.L4OK() != want[i].l4 || c.HdsIPExt&mlxhw.CQEL2OK == 0 {
			t.Errorf("frame %d: L3OK %v L4OK %v, want %+v", i, c.L3OK(), c.L4OK(), want[i])
		}
	}
	if c := cqes[0]; c.L3Type() != mlxhw.CQEL3IPv4 || c.L4Type() != mlxhw.CQEL4TCPAckDat {
		t.Errorf("types %d %d", c.L3Type(), c.L4Type())
	}
	if c := cqes[4]; c.L3Type() != mlxhw.CQEL3IPv6 || c.L4Type() != mlxhw.CQEL4UDP || c.VLANStripped() {
		t.Errorf("v6 types %d %d", c.L3Type(), c.L4Type())
	}
	// check_sum is the one's-complement sum after the L2 header.
	if c := cqes[2]; c.Checksum != fold(sum(0, bad[14:])) {
		t.Errorf("check_sum %#x", c.Checksum)
	}
	x.noViolations()
}

func TestRxVLANKeptWithVSD(t *testing.T) {
	x := newRxEnv(t, true)
	f := tcpFrame(t, mac(testMAC[:]...), 10, 20, []byte("x"), true)
	deliverTagged(x.dev, f, 0x0123)
	cqes := x.cq.poll()
	want := append(append(append([]byte{}, f[:12]...), 0x81, 0x00, 0x01, 0x23), f[12:]...)
	if len(cqes) != 1 || cqes[0].VLANStripped() || !bytes.Equal(x.rq.frame(&cqes[0]), want) {
		t.Fatalf("vsd: %+v", cqes)
	}
	// MODIFY_RQ's vsd bit turns stripping back on.
	x.must(&mlxhw.ModifyRQIn{CurState: mlxhw.QueueRDY, RQN: x.rq.n, Bitmask: 2, Ctx: mlxhw.RQContext{State: mlxhw.QueueRDY}})
	deliverTagged(x.dev, f, 0x0123)
	if c := x.cq.poll(); len(c) != 1 || !c[0].VLANStripped() || c[0].VLANInfo != 0x123 {
		t.Fatalf("after MODIFY_RQ vsd=0: %+v", c)
	}
}

func TestRxMTUAndBuffers(t *testing.T) {
	x := newRxEnv(t, false)
	self := mac(testMAC[:]...)
	big := tcpFrame(t, self, 1, 2, make([]byte, 1500-40+1), true) // 1515 bytes: sw MTU 1501
	ok := tcpFrame(t, self, 1, 2, make([]byte, 1500-40), true)
	deliver(x.dev, big, ok)
	if c := x.cq.poll(); len(c) != 1 || c[0].ByteCnt != uint32(len(ok)) {
		t.Fatalf("CQEs %+v", c)
	}
	if s := x.dev.Stats(); s.RxDrops[DropMTU] != 1 {
		t.Fatalf("mtu drops %d", s.RxDrops[DropMTU])
	}
	// A 9000-byte MTU lets a 3000-byte frame in, which does not fit the
	// 2 KiB buffer: LOCAL_LENGTH error CQE.
	x.modifyVport(mlxhw.FieldSelectMTU, mlxhw.NICVportContext{MTU: 9000 + mlxhw.MTUOverhead})
	deliver(x.dev, tcpFrame(t, self, 1, 2, make([]byte, 3000), true))
	c := x.cq.poll()
	if len(c) != 1 || c[0].Opcode != mlxhw.CQERespErr || c[0].Syndrome != mlxhw.SyndLocalLength {
		t.Fatalf("long frame: %+v", c)
	}
	// Run the ring dry: rx_out_of_buffer.
	before := x.dev.Stats().RxDrops[DropOutOfBuffer]
	for range 70 {
		deliver(x.dev, ok)
	}
	if c := x.cq.poll(); len(c) != 62 {
		t.Fatalf("%d CQEs with 62 buffers left", len(c))
	}
	if s := x.dev.Stats(); s.RxDrops[DropOutOfBuffer] != before+8 {
		t.Fatalf("out of buffer %d", s.RxDrops[DropOutOfBuffer])
	}
	x.noViolations()
}

// TestRSSSpread checks Toeplitz RSS through an INDIRECT TIR and an RQT of
// four RQs: the CQE carries the hash and its type, the RQ is RQT[hash%4].
func TestRSSSpread(t *testing.T) {
	e := newEnv(newHarness(t, nil))
	eq := e.createEQ(7, mlxhw.EventComp.Bit(), 1)
	cqs := make([]*tcq, 4)
	rqs := make([]*trq, 4)
	ids := make([]uint32, 4)
	for i := range rqs {
		cqs[i] = e.createCQ(8, eq.n)
		rqs[i] = e.createRQ(cqs[i], 7, false)
		rqs[i].fill(128)
		ids[i] = rqs[i].n
	}
	rqt := e.id(&mlxhw.RQTIn{Op: mlxhw.OpCreateRQT, Ctx: mlxhw.RQTContext{MaxSize: 4, RQs: ids}})
	key := rndis.DefaultHashKey
	tirc := mlxhw.TIRContext{DispType: mlxhw.TIRIndirect, IndirectTable: rqt, HashFn: mlxhw.RxHashToeplitz,
		TransportDomain: e.td, SelectorOuter: mlxhw.HashSelSrcIP | mlxhw.HashSelDstIP | mlxhw.HashSelL4SPort | mlxhw.HashSelL4DPort}
	copy(tirc.ToeplitzKey[:], key[:])
	e.id(&mlxhw.TIRIn{Op: mlxhw.OpCreateTIR, Ctx: tirc})
	const flows = 64
	for i := range flows {
		deliver(e.dev, tcpFrame(t, mac(testMAC[:]...), uint16(30000+i), 443, []byte{byte(i)}, true))
	}
	total := 0
	for q, c := range cqs {
		cqes := c.poll()
		if len(cqes) < 5 {
			t.Errorf("RQ %d got only %d of %d flows", q, len(cqes), flows)
		}
		for _, cqe := range cqes {
			total++
			f := rqs[q].frame(&cqe)
			in := make([]byte, 12)
			copy(in, f[26:34])
			copy(in[8:], f[34:38])
			h := rndis.Toeplitz(key[:], in)
			if cqe.RSSHash != h || h%4 != uint32(q) || cqe.RSSHashType != rssIPv4|rssL4TCP {
				t.Fatalf("RQ %d: hash %#x type %#x, want %#x", q, cqe.RSSHash, cqe.RSSHashType, h)
			}
		}
	}
	if total != flows {
		t.Fatalf("%d frames received", total)
	}
	// An IPv6 frame does not match the IPv4 selector: hash 0, RQT[0].
	u := udp6Frame(t, []byte("v6"), true)
	copy(u, testMAC[:])
	deliver(e.dev, u)
	if c := cqs[0].poll(); len(c) != 1 || c[0].RSSHash != 0 || c[0].RSSHashType != 0 {
		t.Fatalf("v6: %+v", c)
	}
	// RQs in the RQT cannot be destroyed.
	e.expect(obj(mlxhw.OpDestroyRQ, ids[0]), mlxhw.StatusResBusy)
	e.expect(obj(mlxhw.OpDestroyRQT, rqt), mlxhw.StatusResBusy)
	e.noViolations()
	_ = binary.BigEndian
}
