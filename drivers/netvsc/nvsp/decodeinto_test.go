package nvsp_test

import (
	"errors"
	"testing"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
)

func TestDecodeSendRNDISPacketInto(t *testing.T) {
	want := &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: 7, SectionSize: 300}
	b := nvsp.AppendPadded(nil, want, 40)
	var m nvsp.SendRNDISPacket
	if err := nvsp.DecodeSendRNDISPacketInto(b, &m); err != nil || m != *want {
		t.Fatalf("got %+v, %v", m, err)
	}
	// It agrees with the generic decoder.
	g, err := nvsp.DecodeFromGuest(b, nvsp.Version61)
	if err != nil || *g.(*nvsp.SendRNDISPacket) != m {
		t.Fatalf("DecodeFromGuest %+v, %v", g, err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = nvsp.DecodeSendRNDISPacketInto(b, &m) }); n != 0 {
		t.Fatalf("%v allocs per decode", n)
	}
	if err := nvsp.DecodeSendRNDISPacketInto(b[:10], &m); !errors.Is(err, nvsp.ErrShort) {
		t.Fatalf("short: %v", err)
	}
	other := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacketComplete{Status: nvsp.StatusSuccess}, 40)
	if err := nvsp.DecodeSendRNDISPacketInto(other, &m); !errors.Is(err, nvsp.ErrInvalid) {
		t.Fatalf("other type: %v", err)
	}
	if err := nvsp.DecodeSendRNDISPacketInto(nil, &m); !errors.Is(err, nvsp.ErrShort) {
		t.Fatalf("empty: %v", err)
	}
}

func BenchmarkDecodeSendRNDISPacket(b *testing.B) {
	msg := nvsp.AppendPadded(nil, &nvsp.SendRNDISPacket{ChannelType: nvsp.ChannelData, SectionIndex: 7, SectionSize: 300}, 40)
	b.Run("FromGuest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = nvsp.DecodeFromGuest(msg, nvsp.Version61)
		}
	})
	b.Run("Into", func(b *testing.B) {
		b.ReportAllocs()
		var m nvsp.SendRNDISPacket
		for b.Loop() {
			_ = nvsp.DecodeSendRNDISPacketInto(msg, &m)
		}
	})
}
