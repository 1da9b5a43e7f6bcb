package netvsp

import (
	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/net/packet"
)

// slotTable hands out receive-buffer slots. Slots below ControlSlots are
// for control messages. The slots of one transfer-page packet are chained
// from its first slot, whose index is the packet's transaction id (as in
// OpenVMM); the guest's completion names it.
type slotTable struct {
	size     int
	freeData []uint32
	freeCtl  []uint32
	next     []int32 // next slot of the same packet, -1 at the end
	head     []bool  // first slot of a packet in flight
	busy     []bool
}

func (t *slotTable) init(n, size int) {
	t.size = size
	t.freeData = make([]uint32, 0, n)
	t.freeCtl = make([]uint32, 0, ControlSlots)
	for i := n - 1; i >= 0; i-- {
		if i < ControlSlots {
			t.freeCtl = append(t.freeCtl, uint32(i))
		} else {
			t.freeData = append(t.freeData, uint32(i))
		}
	}
	t.next = make([]int32, n)
	t.head = make([]bool, n)
	t.busy = make([]bool, n)
}

func (t *slotTable) get(control bool) (uint32, bool) {
	list := &t.freeData
	if control {
		list = &t.freeCtl
		if len(*list) == 0 {
			list = &t.freeData
		}
	}
	k := len(*list)
	if k == 0 {
		return 0, false
	}
	s := (*list)[k-1]
	*list = (*list)[:k-1]
	t.busy[s] = true
	t.next[s] = -1
	return s, true
}

func (t *slotTable) put(s uint32) {
	t.busy[s] = false
	t.head[s] = false
	if s < ControlSlots {
		t.freeCtl = append(t.freeCtl, s)
	} else {
		t.freeData = append(t.freeData, s)
	}
}

// release frees the packet whose first slot is id; it reports whether id
// named a packet in flight.
func (t *slotTable) release(id uint64) bool {
	if id >= uint64(len(t.head)) || !t.head[id] {
		return false
	}
	s := int32(id)
	for s >= 0 {
		n := t.next[s]
		t.put(uint32(s))
		s = n
	}
	return true
}

func (t *slotTable) inFlight() int {
	n := 0
	for _, b := range t.busy {
		if b {
			n++
		}
	}
	return n
}

// rxCompletion handles the guest's completion of a transfer-page packet.
func (c *conn) rxCompletion(id uint64) {
	if id&transVFAssociation != 0 {
		return // completion of a host request (VF association, data path)
	}
	c.mu.Lock()
	ok := c.recv != nil && c.slots.release(id)
	c.mu.Unlock()
	if !ok {
		c.bad("completion for no receive packet in flight", "id", id)
	}
}

// slotBytes returns slot s's memory to write into (the receive buffer
// itself, or scratch to copy from with flushSlot). Runs with mu held.
func (c *conn) slotBytes(s uint32) []byte {
	off := int(s) * c.slots.size
	if c.recvMem != nil {
		return c.recvMem[off : off+c.slots.size]
	}
	return c.rxScratch[:c.slots.size]
}

func (c *conn) flushSlot(s uint32, b []byte) bool {
	if c.recvMem != nil {
		return true
	}
	_, err := c.recv.WriteAt(b, int64(int(s)*c.slots.size))
	return err == nil
}

// rxReady says whether frames may go to the guest. Runs with mu held.
func (c *conn) rxReady() bool {
	return !c.closed && c.recv != nil && c.st.RNDIS == RNDISInitialized && c.st.PacketFilter != 0
}

// accept applies the RNDIS packet filter. Runs with mu held.
func (c *conn) accept(frame []byte) bool {
	f := c.st.PacketFilter
	if f&rndis.PacketTypePromiscuous != 0 {
		return true
	}
	if len(frame) < 14 {
		return false
	}
	dst := [6]byte(frame[0:6])
	switch {
	case dst == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		return f&rndis.PacketTypeBroadcast != 0
	case dst[0]&1 != 0:
		if f&rndis.PacketTypeAllMulticast != 0 {
			return true
		}
		if f&rndis.PacketTypeMulticast != 0 {
			for _, m := range c.st.Multicast {
				if m == dst {
					return true
				}
			}
		}
		return false
	default:
		return f&rndis.PacketTypeDirected != 0 && dst == c.st.CurrentMAC
	}
}

// receive writes the frames of b into receive slots and sends them in
// transfer-page packets. It takes b's packets.
func (c *conn) receive(b *packet.Batch) {
	d := c.d
	c.mu.Lock()
	if !c.rxReady() {
		c.mu.Unlock()
		d.stats.rxDropped.Add(uint64(b.Len()))
		b.Free()
		return
	}
	if c.dataMsg == nil {
		c.dataMsg = nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: nvsp.NoSection}, nvsp.HostMessageSize(c.st.Version))
	}
	var first, last int32 = -1, -1
	var bytes uint64
	out := c.ch
	if b.Len() > 0 {
		out = c.queueChannel(b.At(0).Meta.Queue) // deliver groups a batch by queue
	}
	for _, p := range b.Packets() {
		frame := p.Bytes()
		if !c.accept(frame) {
			d.stats.rxDropped.Add(1)
			d.stats.rxFiltered.Add(1)
			continue
		}
		s, ok := c.slots.get(false)
		if !ok {
			d.stats.rxDropped.Add(1)
			continue
		}
		var info rndis.PacketInfo
		d.rxOffload(&c.st.Offload, frame, &p.Meta)
		rxInfo(&p.Meta, &info)
		dst := c.slotBytes(s)
		n, err := rndis.PutPacket(dst, &info, frame, 0)
		if err != nil || !c.flushSlot(s, dst[:n]) {
			c.slots.put(s)
			d.stats.rxDropped.Add(1)
			continue
		}
		c.ranges = append(c.ranges, ring.XferRange{ByteCount: uint32(n), ByteOffset: uint32(int(s) * c.slots.size)})
		bytes += uint64(len(frame))
		if first < 0 {
			first = int32(s)
			c.slots.head[s] = true
		} else {
			c.slots.next[last] = int32(s)
		}
		last = int32(s)
		if len(c.ranges) == cap(c.ranges) {
			c.flushData(out, uint32(first), bytes)
			first, last, bytes = -1, -1, 0
		}
	}
	if first >= 0 {
		c.flushData(out, uint32(first), bytes)
	}
	c.mu.Unlock()
	b.Free()
}

// flushData sends the ranges collected in c.ranges as one transfer-page
// packet without waiting for ring space: a full ring drops the frames, as
// a NIC whose receive queue is full does. Runs with mu held.
func (c *conn) flushData(out *host.Channel, first uint32, bytes uint64) {
	d := c.d
	n := len(c.ranges)
	var werr error
	err := out.WriteBatch(func(w *ring.Writer) error {
		werr = w.WriteXferPages(uint64(first), true, c.st.RecvBufferID, false, c.ranges, c.dataMsg)
		return werr
	})
	c.ranges = c.ranges[:0]
	if err != nil || werr != nil {
		c.slots.release(uint64(first))
		d.stats.rxDropped.Add(uint64(n))
		return
	}
	d.stats.rxFrames.Add(uint64(n))
	d.stats.rxBytes.Add(bytes)
	d.stats.rxPackets.Add(1)
}

// rxInfo converts a frame's metadata into receive per-packet info.
func rxInfo(m *packet.Meta, info *rndis.PacketInfo) {
	if m.HasVLAN {
		info.Present |= rndis.HasVLAN
		info.VLAN = rndis.VLANInfoFromTCI(m.VLAN)
	}
	var cs rndis.RxChecksumInfo
	if m.Csum&packet.CsumRxIPOK != 0 {
		cs |= rndis.RxChecksumIPSucceeded
	}
	if m.Csum&packet.CsumRxIPBad != 0 {
		cs |= rndis.RxChecksumIPFailed
	}
	if m.Csum&packet.CsumRxL4OK != 0 {
		cs |= rndis.RxChecksumTCPSucceeded | rndis.RxChecksumUDPSucceeded
	}
	if m.Csum&packet.CsumRxL4Bad != 0 {
		cs |= rndis.RxChecksumTCPFailed | rndis.RxChecksumUDPFailed
	}
	if cs != 0 {
		info.Present |= rndis.HasChecksum
		info.Checksum = uint32(cs)
	}
	if m.HashType != packet.HashNone {
		info.Present |= rndis.HasHashValue
		info.HashValue = m.Hash
		if hi := typeHashInfo(m.HashType); hi != 0 {
			info.Present |= rndis.HasHashInfo
			info.HashInfo = hi
		}
	}
}

// sendControl writes an RNDIS control message into a slot and sends it on
// the control channel type, waiting for ring space. Runs with mu held.
func (c *conn) sendControl(m rndis.Message) {
	if c.recv == nil || c.closed {
		c.bad("RNDIS reply with no receive buffer", "type", m.Type())
		return
	}
	if m.EncodedLen() > c.slots.size {
		c.bad("RNDIS reply larger than a receive slot", "type", m.Type())
		return
	}
	s, ok := c.slots.get(true)
	if !ok {
		c.bad("no receive slot for an RNDIS reply", "type", m.Type())
		return
	}
	dst := c.slotBytes(s)
	out := m.AppendTo(dst[:0])
	if !c.flushSlot(s, out) {
		c.slots.put(s)
		c.bad("cannot write an RNDIS reply")
		return
	}
	c.slots.head[s] = true
	if c.ctlMsg == nil {
		c.ctlMsg = nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelControl, SectionIndex: nvsp.NoSection}, nvsp.HostMessageSize(c.st.Version))
	}
	r := [1]ring.XferRange{{ByteCount: uint32(len(out)), ByteOffset: uint32(int(s) * c.slots.size)}}
	if err := c.ch.SendXferPages(uint64(s), true, c.st.RecvBufferID, r[:], c.ctlMsg); err != nil {
		c.slots.release(uint64(s))
		c.sendErr(err)
	}
}

// indicateLink sends MEDIA_CONNECT or MEDIA_DISCONNECT.
// indicateNetworkChange sends NETWORK_CHANGE with its change type.
func (c *conn) indicateNetworkChange(t rndis.NetworkChangeType) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.RNDIS != RNDISInitialized {
		return
	}
	c.sendControl(rndis.NewNetworkChange(t))
}

func (c *conn) indicateLink(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.RNDIS != RNDISInitialized {
		return
	}
	st := rndis.StatusMediaDisconnect
	if up {
		st = rndis.StatusMediaConnect
	}
	c.sendControl(&rndis.IndicateStatus{Status: st})
}
