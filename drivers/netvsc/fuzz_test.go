package netvsc

import (
	"encoding/binary"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
)

// fuzzSynth is a synth with a receive buffer and no channel: enough for the
// receive-side decoding, which is where host bytes enter the driver.
func fuzzSynth() *synth {
	cfg := &Config{Clock: kernel.RealClock{}, Logger: kernel.DiscardLogger(), RxBatch: 8,
		RxPool: packet.MustPool(packet.PoolConfig{Size: 4096, Max: 64})}
	d := &Device{cfg: cfg, log: kernel.DiscardLogger()}
	s := &synth{dev: d, cfg: cfg, log: d.log, ver: nvsp.Version61, rxSlot: 2048, rxSize: 8192,
		rxRegion: &kernel.Region{Bytes: make([]byte, 8192)}, stop: make(chan struct{})}
	s.ctl.init()
	s.rx.init(s)
	return s
}

func seedPacket() []byte {
	var info rndis.PacketInfo
	info.Present = rndis.HasVLAN | rndis.HasChecksum | rndis.HasHashValue | rndis.HasHashInfo
	info.VLAN, info.Checksum = rndis.NewVLANInfo(100, 3), uint32(rndis.RxChecksumTCPSucceeded|rndis.RxChecksumIPSucceeded)
	info.HashValue, info.HashInfo = 0x12345678, rndis.HashFunctionToeplitz|rndis.HashTCPIPv4
	b := make([]byte, 256)
	n, _ := rndis.PutPacket(b, &info, make([]byte, 60), 1)
	return b[:n]
}

// FuzzReceive feeds arbitrary receive-buffer contents and ranges, and
// arbitrary in-band NVSP messages, to the receive path: nothing may panic,
// and every frame it accepts lies inside the buffer.
func FuzzReceive(f *testing.F) {
	f.Add(uint32(0), uint32(0), seedPacket(), []byte{})
	f.Add(uint32(0), uint32(24+4), (&rndis.QueryComplete{RequestID: 1, Info: []byte{1, 2, 3, 4}}).Encode(), []byte{})
	f.Add(uint32(100), uint32(20), (&rndis.IndicateStatus{Status: rndis.StatusMediaDisconnect}).Encode(),
		(&nvsp.SendVFAssociation{Allocated: true, Serial: 5}).Encode())
	f.Add(uint32(8000), uint32(500), seedPacket(), (&nvsp.SwitchDataPath{DataPath: 0}).Encode())
	f.Fuzz(func(t *testing.T, off, n uint32, data, inband []byte) {
		s := fuzzSynth()
		copy(s.rxRegion.Bytes[off%8192:], data)
		s.ctl.waitID.Store(1)
		if n == 0 {
			n = uint32(len(data))
		}
		s.receiveRange(&s.rx, ring.XferRange{ByteOffset: off, ByteCount: n})
		s.receiveRange(&s.rx, ring.XferRange{ByteOffset: off % 8192, ByteCount: n % 4096})
		p := &ring.Packet{Payload: inband}
		p.Flags = ring.FlagCompletionRequested
		s.inband(&s.rx, p)
		for _, pk := range s.rx.batch.Packets() {
			if pk.Len() == 0 || pk.Len() > 2048 {
				t.Fatalf("accepted a %d-byte frame", pk.Len())
			}
		}
		s.rx.release()
	})
}

// FuzzL4Offset: the transmit-side header walk never reads out of bounds
// and never points past the frame.
func FuzzL4Offset(f *testing.F) {
	f.Add([]byte{})
	v4 := make([]byte, 60)
	binary.BigEndian.PutUint16(v4[12:], etherTypeIPv4)
	v4[14] = 0x45
	f.Add(v4)
	f.Fuzz(func(t *testing.T, frame []byte) {
		off, _, ok := l4Offset(frame)
		if ok && off > len(frame) {
			t.Fatalf("offset %d past a %d-byte frame", off, len(frame))
		}
		var info rndis.PacketInfo
		m := packet.Meta{Csum: packet.CsumTxTCPv4 | packet.CsumTxTSOv4 | packet.CsumTxIPv4, MSS: 1400, HasVLAN: true, VLAN: 5}
		fillTxInfo(&info, &m, frame)
	})
}
