package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// pingResult is what a ping run through an interface saw.
type pingResult struct {
	Sent, Replies, Duplicates, Corrupt int
	Elapsed                            time.Duration
}

// pingPayload is the payload of echo request seq: the bytes a reply must
// carry back unchanged.
func pingPayload(seq uint16, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(int(seq)*7 + i)
	}
	return b
}

// ping sends n ICMP echo requests of size payload bytes out of ifp to
// target (at dstMAC), keeping up to window in flight, and checks every
// reply: the right id and sequence, once, the payload byte for byte. It
// waits up to wait for the last replies.
func ping(ifp *ifnet.Interface, self, target netip.Addr, dstMAC net.HardwareAddr, n, size, window int, wait time.Duration) (pingResult, error) {
	const id = 0x4856 // "HV"
	var mu sync.Mutex
	got := make([]bool, n)
	res := pingResult{Sent: n}
	space := make(chan struct{}, window)
	for range window {
		space <- struct{}{}
	}
	allIn := make(chan struct{})
	var eth layers.Ethernet
	var ip4 layers.IPv4
	var icmp layers.ICMPv4
	var pay gopacket.Payload
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &icmp, &pay)
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 4)
	ifp.SetInput(func(_ *ifnet.Interface, b *packet.Batch) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range b.Packets() {
			if err := parser.DecodeLayers(p.Bytes(), &decoded); err != nil || len(decoded) < 3 ||
				icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != id {
				continue
			}
			seq := int(icmp.Seq)
			switch {
			case seq >= n:
				res.Corrupt++
			case got[seq]:
				res.Duplicates++
			case !bytes.Equal(icmp.Payload, pingPayload(icmp.Seq, size)):
				res.Corrupt++
			default:
				got[seq] = true
				res.Replies++
				select {
				case space <- struct{}{}:
				default:
				}
				if res.Replies == n {
					close(allIn)
				}
			}
		}
		b.Free()
	})
	defer ifp.SetInput(nil)

	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	start := time.Now()
	for seq := range n {
		select {
		case <-space:
		case <-time.After(wait):
			return res, fmt.Errorf("ping: no reply frees the window after %d requests", seq)
		}
		e := layers.Ethernet{SrcMAC: ifp.MAC(), DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
		i4 := layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: self.AsSlice(), DstIP: target.AsSlice(), Id: uint16(seq)}
		ic := layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: uint16(seq)}
		if err := gopacket.SerializeLayers(buf, opts, &e, &i4, &ic, gopacket.Payload(pingPayload(uint16(seq), size))); err != nil {
			return res, err
		}
		p := packet.New(packet.DefaultHeadroom, len(buf.Bytes()))
		if err := p.SetBytes(buf.Bytes()); err != nil {
			return res, err
		}
		b := packet.NewBatch(1)
		b.Add(p)
		for b.Len() > 0 {
			if _, err := ifp.Transmit(b); err != nil {
				b.Free()
				return res, fmt.Errorf("ping: transmit: %w", err)
			}
		}
	}
	select {
	case <-allIn:
	case <-time.After(wait):
	}
	mu.Lock()
	defer mu.Unlock()
	res.Elapsed = time.Since(start)
	if res.Replies != n || res.Duplicates != 0 || res.Corrupt != 0 {
		return res, fmt.Errorf("ping: %d of %d replies, %d duplicated, %d corrupt", res.Replies, n, res.Duplicates, res.Corrupt)
	}
	return res, nil
}
