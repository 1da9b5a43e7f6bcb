package netvsp_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/hyperv/ring"
)

func TestBadGuestInput(t *testing.T) {
	e := newEnv(t, netvsp.Config{})
	g := e.connect()
	// Before INIT: ignored.
	g.sendNVSP(&nvsp.SendNDISConfig{MTU: 1514}, false)
	g.sendRaw([]byte{0xff, 0xff, 0, 0, 1, 2, 3, 4})
	g.attach(nvsp.Version61, 0, 32, 16)
	// RNDIS data before INITIALIZE fails.
	if s := g.sendSection(0, [][]byte{rawFrame(stationMAC, guestMAC, "x")}, []*rndis.PacketInfo{{}}); s != nvsp.StatusFailure {
		t.Fatalf("data before INITIALIZE: %v", s)
	}
	g.rndisInit()
	for _, m := range []*nvsp.SendRNDISPacket{
		{ChannelType: nvsp.ChannelData, SectionIndex: 10, SectionSize: 100}, // past the last section
		{ChannelType: nvsp.ChannelData, SectionIndex: 0, SectionSize: 6145}, // larger than a section
		{ChannelType: nvsp.ChannelData, SectionIndex: 0xFFFFFFFE, SectionSize: 1},
		{ChannelType: nvsp.ChannelData, SectionIndex: nvsp.NoSection}, // no bytes at all
	} {
		if s := g.sendRNDIS(m); s != nvsp.StatusFailure {
			t.Errorf("%+v: status %v", m, s)
		}
	}
	// Garbage RNDIS data in a section.
	copy(g.sendBuf.Bytes, []byte{1, 0, 0, 0, 0xff, 0, 0, 0})
	if s := g.sendRNDIS(&nvsp.SendRNDISPacket{SectionIndex: 0, SectionSize: 64}); s != nvsp.StatusFailure {
		t.Errorf("garbage data: %v", s)
	}
	// A GPA range outside guest memory.
	nv := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: nvsp.NoSection}, nvsp.GuestMessageSize)
	g.TID++
	id := g.TID
	bad := []gpa.Range{{ByteCount: 64, PFNs: []uint64{0x7FFFFFF}}}
	g.Write(func(w *ring.Writer) error { return w.WriteGPADirect(id, true, bad, nv) })
	if c := decodeHost[*nvsp.SendRNDISPacketComplete](g, g.Completion(id)); c.Status != nvsp.StatusFailure {
		t.Errorf("bad GPA range: %v", c.Status)
	}
	// Garbage on the control channel: the NVSP packet completes, no reply.
	if s := g.controlRaw([]byte{0x04, 0, 0, 0, 0x08, 0, 0, 0}); s != nvsp.StatusSuccess {
		t.Errorf("garbage control: %v", s)
	}
	// Completions for nothing in flight, a transfer-page packet from the
	// guest, a second receive buffer.
	g.Write(func(w *ring.Writer) error { return w.WriteCompletion(12345, nil) })
	g.Write(func(w *ring.Writer) error { return w.WriteCompletion(3, nil) })
	var rb nvsp.SendReceiveBuffer
	rb.GPADL, rb.ID = 0x100, nvsp.ReceiveBufferID
	if c := decodeHost[*nvsp.SendReceiveBufferComplete](g, g.Completion(g.sendNVSP(&rb, true))); c.Status != nvsp.StatusFailure {
		t.Errorf("second receive buffer: %+v", c)
	}
	// SUBCHANNEL beyond MaxQueues, OID_QUERY_EX.
	if c := decodeHost[*nvsp.SubchannelComplete](g, g.Completion(g.sendNVSP(&nvsp.SubchannelRequest{Op: nvsp.SubchannelAllocate, Count: 3}, true))); c.Status != nvsp.StatusFailure || c.Count != 0 {
		t.Errorf("subchannels: %+v", c)
	}
	if c := decodeHost[*nvsp.OIDQueryExComplete](g, g.Completion(g.sendNVSP(&nvsp.OIDQueryEx{OID: 1}, true))); c.Status != uint32(rndis.StatusNotSupported) {
		t.Errorf("OID_QUERY_EX: %+v", c)
	}
	// Still serving.
	if q := g.query(rndis.OIDGenMaximumFrameSize, nil); binary.LittleEndian.Uint32(q.Info) != 1500 {
		t.Fatalf("query after bad input %+v", q)
	}
	if s := e.dev.Stats(); s.Errors < 10 {
		t.Errorf("errors counted: %+v", s)
	}
	// Revoke: the buffers are released and the GPADLs can be torn down.
	g.sendNVSP(&nvsp.RevokeReceiveBuffer{}, false)
	deadline := time.Now().Add(waitTimeout)
	for !e.dev.State().Revoked {
		if time.Now().After(deadline) {
			t.Fatal("revoke not handled")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// FuzzGuestNVSP feeds arbitrary bytes to the host as an NVSP message, as a
// send-buffer section of RNDIS data and as an RNDIS control message; the
// host must neither panic nor stop answering.
func FuzzGuestNVSP(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0, 6, 0, 1, 0, 6, 0})
	f.Add(nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{SectionIndex: 0, SectionSize: 100}, 40))
	f.Add(nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: 1, SectionIndex: 0, SectionSize: 28}, 40))
	f.Add(rndis.NewQuery(1, rndis.OIDGenReceiveScaleCapabilities, rndis.RSSCapabilitiesHeader.AppendTo(nil)).Encode())
	f.Add(rndis.NewSet(1, rndis.OIDGenReceiveScaleParameters, rndis.NewRSSParameters(1).Encode()).Encode())
	f.Add(rndis.NewSet(1, rndis.OIDTCPOffloadParameters, []byte{0x80, 3, 28, 0}).Encode())
	f.Add(nvsp.AppendPadded(nil, &nvsp.RevokeSendBuffer{}, 40))
	var pkt [128]byte
	n, _ := rndis.PutPacket(pkt[:], &rndis.PacketInfo{Present: rndis.HasVLAN | rndis.HasLSO, LSO: rndis.NewLSOv2Info(1, 0, true)}, make([]byte, 20), 0)
	f.Add(pkt[:n])
	f.Fuzz(fuzzOnce)
}

func fuzzOnce(t *testing.T, data []byte) {
	{
		if len(data) > 6000 {
			return
		}
		e := newEnv(t, netvsp.Config{})
		g := e.connect()
		g.attach(nvsp.Version61, nvsp.GuestCapabilities(nvsp.Version61, false), 32, 16)
		g.rndisInit()
		g.set(rndis.OIDGenCurrentPacketFilter, binary.LittleEndian.AppendUint32(nil, 0x2f))
		// Fill the send section before anything can make the host read
		// it: a guest that rewrites memory the host is reading is a real
		// threat the host copes with, but in this simulation it is also a
		// data race the race detector rightly reports.
		copy(g.sendBuf.Bytes, data)
		if len(data) > 0 {
			g.sendRaw(data)
		}
		size := uint32(len(data))
		g.sendRNDIS(&nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: 0, SectionSize: size})
		g.sendRNDIS(&nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelControl, SectionIndex: 0, SectionSize: size})
		// The host still answers (INIT after the buffers is refused, but
		// answered).
		g.Completion(g.sendNVSP(nvsp.NewInit(nvsp.Version61), true))
	}
}
