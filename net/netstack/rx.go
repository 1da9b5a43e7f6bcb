package netstack

import (
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// input is the endpoint's ifnet.InputFunc: it delivers each frame of the
// batch to the stack and frees the batch's packets with one pool operation.
// It runs on the driver's receive goroutine.
func (e *Endpoint) input(ifp *ifnet.Interface, b *packet.Batch) {
	dp := e.disp.Load()
	switch {
	case dp == nil:
		ifp.CountDrops(ifnet.DropNoInput, b.Len())
		b.Free()
		return
	case !e.linkUsable():
		ifp.CountDrops(ifnet.DropDown, b.Len())
		b.Free()
		return
	}
	verify := e.Capabilities()&stack.CapabilityRXChecksumOffload != 0
	mac := e.mac.Load()
	for _, p := range b.Packets() {
		frame := p.Bytes()
		if len(frame) < ethHdrLen {
			ifp.CountDrops(ifnet.DropInvalid, 1)
			continue
		}
		if p.Meta.HasVLAN && p.Meta.VLANID() != 0 {
			// A tag the hardware stripped: gVisor has no VLAN interfaces.
			ifp.CountDrops(ifnet.DropFiltered, 1)
			continue
		}
		if verify && !rxChecksumOK(p, frame) {
			ifp.CountDrops(ifnet.DropInvalid, 1)
			continue
		}
		eth := header.Ethernet(frame)
		proto := eth.Type()
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
			Payload: buffer.MakeWithData(frame),
		})
		pkt.LinkHeader().Consume(ethHdrLen)
		pkt.NetworkProtocolNumber = proto
		pkt.PktType = e.packetType(frame, &mac)
		pkt.Hash = p.Meta.Hash
		dp.d.DeliverNetworkPacket(proto, pkt)
		pkt.DecRef()
	}
	b.Free()
}

// packetType classifies a frame by its destination address, as gVisor's
// ethernet endpoint does. The unicast check compares with the cached MAC and
// reloads it on a mismatch (the MAC may have changed by ioctl), so the
// common case allocates nothing.
func (e *Endpoint) packetType(frame []byte, mac **[6]byte) tcpip.PacketType {
	dst := frame[:6]
	switch {
	case dst[0]&1 != 0:
		if dst[0]&dst[1]&dst[2]&dst[3]&dst[4]&dst[5] == 0xff {
			return tcpip.PacketBroadcast
		}
		return tcpip.PacketMulticast
	case [6]byte(dst) == **mac:
		return tcpip.PacketHost
	}
	if *mac = e.refreshMAC(); [6]byte(dst) == **mac {
		return tcpip.PacketHost
	}
	return tcpip.PacketOtherHost
}
