package netvsc_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/hvguest/hvguest/hyperv/host/netvsp"
	"github.com/hvguest/hvguest/net/packet"
)

func tcpFrame(t testing.TB, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(hnMAC[:]), DstMAC: net.HardwareAddr(stationMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: hnIP, DstIP: stationIP.AsSlice()}
	tcp := &layers.TCP{SrcPort: 45000, DstPort: 45001, Seq: 1, ACK: true, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, payload/3+1)[:payload]
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(data)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Checksum and LSO requests travel as per-packet info; a frame bigger than
// a send section goes GPA-direct from a bounce slot.
func TestChecksumAndLSOInfo(t *testing.T) {
	// PassOffload: the host passes the requests on instead of doing them
	// (offload_e2e_test.go checks the emulated result).
	w := newWorld(t, worldOpts{hostCfg: func(c *netvsp.Config) { c.PassOffload = true }})
	w.up()
	small := tcpFrame(t, 1000)
	big := tcpFrame(t, 20000)
	metas := []packet.Meta{{Csum: packet.CsumTxTCPv4}, {Csum: packet.CsumTxTCPv4 | packet.CsumTxTSOv4, MSS: 1448}}
	w.send([][]byte{small, big}, metas)
	got := w.stationFrames(2)
	if len(got[0].Data) > len(got[1].Data) {
		got[0], got[1] = got[1], got[0]
	}
	if !bytes.Equal(got[0].Data, small) || got[0].Meta.Csum&packet.CsumTxTCPv4 == 0 {
		t.Fatalf("small frame: csum %s equal %v", got[0].Meta.Csum, bytes.Equal(got[0].Data, small))
	}
	if !bytes.Equal(got[1].Data, big) || got[1].Meta.Csum&packet.CsumTxTSOv4 == 0 || got[1].Meta.MSS != 1448 {
		t.Fatalf("LSO frame: %d bytes csum %s mss %d", len(got[1].Data), got[1].Meta.Csum, got[1].Meta.MSS)
	}
	if st := w.dev.Stats(); st.TxGPADirectSends != 1 || st.TxSectionSends != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The station can see the frames before the send completions are
	// back at the guest: wait for them rather than read once.
	waitFor(t, "both sends to complete and free their section and slot", func() bool {
		st := w.dev.Stats()
		return st.TxCompletions == 2 && st.TxOutstanding == 0 && st.SectionsInUse == 0 && st.BounceInUse == 0
	})
}
