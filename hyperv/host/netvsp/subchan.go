package netvsp

import (
	"sync"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/net/packet"
)

// vRSS (spec §2.11, §4.6). The guest asks the primary channel for
// subchannels with SUBCHANNEL; the host offers them on the VMBus and, once
// all are open, sends the send indirection table on the primary. The
// subchannels share the primary's receive and send buffers: a subchannel
// conn carries SEND_RNDIS_PKT data and transfer-page completions only,
// and everything it touches of the buffers lives in the primary conn under
// the primary's mu. Receive-side scaling picks, for each frame from the
// switch, the channel named by the guest's indirection table at the
// frame's Toeplitz hash, and reports the hash in per-packet info.

// rssState is the parsed RSS configuration the receive path reads
// without the conn lock (replaced whole, never mutated).
type rssState struct {
	key      []byte
	hashInfo uint32
	table    []uint32
}

// queues is the primary conn's subchannel bookkeeping, guarded by the
// primary's mu.
type queues struct {
	allocated int     // subchannels granted by SUBCHANNEL
	subs      []*conn // by subchannel index - 1; nil until open
	tableSent bool
}

// rssScratch splits a delivered batch by queue; deliverMu guards it.
type rssScratch struct {
	deliverMu sync.Mutex
	batches   []*packet.Batch
}

// prim returns the conn owning the shared buffers and RNDIS state.
func (c *conn) prim() *conn {
	if c.primary != nil {
		return c.primary
	}
	return c
}

// onSubchannel answers SUBCHANNEL: up to Config.MaxQueues - 1 subchannels
// are offered (fewer if the VMBus server limits them) and the completion
// carries how many. A host without vRSS (MaxQueues 1) fails the request,
// as OpenVMM fails any request above its limit; with vRSS this host grants
// what it can (FreeBSD clamps, Linux accepts fewer than it asked for).
func (c *conn) onSubchannel(p *ring.Packet, m *nvsp.SubchannelRequest) {
	c.mu.Lock()
	already := c.q.allocated
	c.mu.Unlock()
	if m.Op != nvsp.SubchannelAllocate || already > 0 || (m.Count > 0 && c.d.cfg.MaxQueues == 1) {
		c.bad("SUBCHANNEL refused", "op", m.Op, "allocated", already)
		c.complete(p, &nvsp.SubchannelComplete{Status: nvsp.StatusFailure})
		return
	}
	n := min(int(m.Count), c.d.cfg.MaxQueues-1)
	if n > 0 {
		c.mu.Lock()
		c.q.allocated = n // before the offers: the guest may open at once
		c.q.subs = make([]*conn, n)
		c.mu.Unlock()
		got, err := c.ch.OfferSubchannels(n)
		if err != nil {
			got = 0
		}
		if got != n {
			c.mu.Lock()
			c.q.allocated = got
			c.q.subs = c.q.subs[:got]
			c.mu.Unlock()
		}
		n = got
	}
	c.complete(p, &nvsp.SubchannelComplete{Status: nvsp.StatusSuccess, Count: uint32(n)})
}

// openSub attaches a subchannel to the open primary.
func (d *Device) openSub(c *conn) error {
	pc := d.cur.Load()
	if pc == nil {
		return host.ErrDevice
	}
	idx := int(c.ch.SubchannelIndex())
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed || idx > len(pc.q.subs) || pc.q.subs[idx-1] != nil {
		return host.ErrDevice
	}
	c.primary = pc
	c.st.Version = pc.st.Version
	pc.q.subs[idx-1] = c
	for _, s := range pc.q.subs {
		if s == nil {
			return nil
		}
	}
	if !pc.q.tableSent {
		// OpenVMM sends the send table once every subchannel is open.
		pc.q.tableSent = true
		pc.sendTable()
	}
	return nil
}

// sendTable sends SEND_INDIRECTION_TABLE: entry i is channel i mod the
// number of channels, the table at byte 40 with offset 40 (read the same
// by Linux before and after its offset fix, §2.11). Runs with mu held.
func (c *conn) sendTable() {
	m := &nvsp.SendIndirectionTable{Offset: nvsp.SendTableFixedOffset, Table: make([]uint32, nvsp.SendTableSize)}
	for i := range m.Table {
		m.Table[i] = uint32(i % (len(c.q.subs) + 1))
	}
	c.sendErr(c.ch.SendInBand(0, false, m.Encode()))
}

// closeSub detaches a subchannel from its primary.
func (c *conn) closeSub() {
	pc := c.primary
	pc.mu.Lock()
	if i := int(c.ch.SubchannelIndex()) - 1; i < len(pc.q.subs) && pc.q.subs[i] == c {
		pc.q.subs[i] = nil
	}
	pc.mu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// subPacket handles a packet on a subchannel: data and completions only.
func (c *conn) subPacket(p *ring.Packet) error {
	pc := c.primary
	if p.Type == ring.TypeCompletion {
		pc.rxCompletion(p.TransID)
		return nil
	}
	m, err := nvsp.DecodeFromGuest(p.Payload, c.st.Version)
	if err != nil {
		c.bad("undecodable NVSP message on a subchannel", "err", err)
		return nil
	}
	sm, ok := m.(*nvsp.SendRNDISPacket)
	if !ok || sm.ChannelType != nvsp.ChannelData {
		c.bad("subchannel carries data only", "type", m.Type())
		c.complete(p, &nvsp.SendRNDISPacketComplete{Status: nvsp.StatusFailure})
		return nil
	}
	c.onRNDIS(p, sm)
	return nil
}

// setRSS records RSS parameters for the receive path (OpenVMM: a short
// table is replicated to RSSIndirectionEntries). Runs with mu held.
func (c *conn) setRSS(p *rndis.RSSParameters) {
	if p.Disabled() || len(p.HashKey) != rndis.RSSHashKeySize || len(p.IndirectionTable) == 0 {
		c.rss.Store(nil)
		return
	}
	n := max(len(p.IndirectionTable), rndis.RSSIndirectionEntries)
	r := &rssState{key: append([]byte(nil), p.HashKey...), hashInfo: p.HashInfo, table: make([]uint32, n)}
	for i := range r.table {
		r.table[i] = p.IndirectionTable[i%len(p.IndirectionTable)]
	}
	c.rss.Store(r)
}

// hashInfoType maps a hash info value to the frame's metadata type.
func hashInfoType(hi uint32) packet.HashType {
	switch hi & rndis.HashTypeMask {
	case rndis.HashIPv4:
		return packet.HashIPv4
	case rndis.HashTCPIPv4:
		return packet.HashTCPv4
	case rndis.HashUDPIPv4:
		return packet.HashUDPv4
	case rndis.HashIPv6:
		return packet.HashIPv6
	case rndis.HashTCPIPv6:
		return packet.HashTCPv6
	case rndis.HashUDPIPv6:
		return packet.HashUDPv6
	}
	return packet.HashNone
}

// typeHashInfo is hashInfoType's inverse (0 for HashNone and opaque).
func typeHashInfo(t packet.HashType) uint32 {
	for _, hi := range [...]uint32{rndis.HashIPv4, rndis.HashTCPIPv4, rndis.HashUDPIPv4, rndis.HashIPv6, rndis.HashTCPIPv6, rndis.HashUDPIPv6} {
		if hashInfoType(hi) == t {
			return hi | rndis.HashFunctionToeplitz
		}
	}
	return 0
}

// deliver hashes the frames of b when RSS is on, labels each with its
// receive queue (Meta.Hash, HashType, Queue) and hands each queue's frames
// to receive. Without RSS everything goes to queue 0 with no hash.
func (c *conn) deliver(b *packet.Batch) {
	r := c.rss.Load()
	if r == nil {
		for _, p := range b.Packets() {
			p.Meta.Hash, p.Meta.HashType, p.Meta.Queue = 0, packet.HashNone, 0
		}
		c.receive(b)
		return
	}
	c.sc.deliverMu.Lock()
	defer c.sc.deliverMu.Unlock()
	for _, p := range b.Packets() {
		h, hi, ok := rndis.HashFrame(r.key, r.hashInfo, p.Bytes())
		p.Meta.Hash, p.Meta.HashType, p.Meta.Queue = 0, packet.HashNone, 0
		if ok {
			p.Meta.Hash, p.Meta.HashType = h, hashInfoType(hi)
			p.Meta.Queue = uint16(r.table[h%uint32(len(r.table))])
		}
		q := int(p.Meta.Queue)
		for len(c.sc.batches) <= q {
			c.sc.batches = append(c.sc.batches, packet.NewBatch(packet.DefaultBatchSize))
		}
		qb := c.sc.batches[q]
		if qb.Full() {
			c.receive(qb)
			qb.Clear()
		}
		qb.Add(p)
	}
	b.Clear()
	for _, qb := range c.sc.batches {
		if qb.Len() > 0 {
			c.receive(qb)
			qb.Clear()
		}
	}
}

// queueChannel returns the channel frames labelled for queue q leave on:
// the subchannel if open, else the primary. Runs with mu held.
func (c *conn) queueChannel(q uint16) *host.Channel {
	if q > 0 && int(q) <= len(c.q.subs) && c.q.subs[q-1] != nil {
		return c.q.subs[q-1].ch
	}
	return c.ch
}
