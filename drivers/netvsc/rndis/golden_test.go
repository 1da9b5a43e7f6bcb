package rndis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// fld puts a little-endian value (or raw bytes) at a byte offset, so each
// golden vector reads as the layout table it was built from (spec §3.2,
// Linux hyperv_net.h struct rndis_*).
type fld struct {
	off int
	v   any // uint8, uint16, uint32, []byte
}

func put(b []byte, fields ...fld) []byte {
	for _, f := range fields {
		switch v := f.v.(type) {
		case uint8:
			b[f.off] = v
		case uint16:
			binary.LittleEndian.PutUint16(b[f.off:], v)
		case uint32:
			binary.LittleEndian.PutUint32(b[f.off:], v)
		case []byte:
			copy(b[f.off:], v)
		default:
			panic("bad field")
		}
	}
	return b
}

// msg lays out an RNDIS message: msg_type @0, msg_len @4 = size.
func msg(size int, t MessageType, fields ...fld) []byte {
	b := make([]byte, size)
	return put(b, append([]fld{{0, uint32(t)}, {4, uint32(size)}}, fields...)...)
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

type golden struct {
	name string
	wire []byte
	want Message
}

func goldens() []golden {
	mac := []byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}
	return []golden{
		// rndis_initialize_request: req_id @8, major @12, minor @16, max_xfer @20.
		{"INITIALIZE", msg(24, MsgInitialize, fld{8, uint32(1)}, fld{12, uint32(1)}, fld{20, uint32(0x4000)}),
			&Initialize{1, MajorVersion, MinorVersion, 0x4000}},
		// rndis_initialize_complete, OpenVMM's answer: status @12 .. af_list_size @48.
		{"INITIALIZE_CMPLT", msg(52, MsgInitializeComplete, fld{8, uint32(1)}, fld{16, uint32(1)}, fld{24, uint32(1)},
			fld{32, uint32(8)}, fld{36, uint32(0xEFFFFFFF)}, fld{40, uint32(3)}),
			&InitializeComplete{RequestID: 1, MajorVersion: 1, DeviceFlags: DeviceFlagConnectionless,
				MaxPacketsPerMessage: 8, MaxTransferSize: 0xEFFFFFFF, PacketAlignmentFactor: 3}},
		{"HALT", msg(12, MsgHalt, fld{8, uint32(9)}), &Halt{reqOnly{9}}},
		// rndis_query_request: req_id @8, oid @12, len @16, offset @20 (from byte 8), vc @24; no input,
		// offset still 20 (the Hyper-V quirk).
		{"QUERY", msg(28, MsgQuery, fld{8, uint32(2)}, fld{12, uint32(0x01010101)}, fld{20, uint32(20)}),
			NewQuery(2, OID8023PermanentAddress, nil)},
		// With input: an NDIS_OFFLOAD header {0xA7, 3, 156} at byte 28.
		{"QUERY/input", msg(32, MsgQuery, fld{8, uint32(3)}, fld{12, uint32(0xFC01020D)}, fld{16, uint32(4)},
			fld{20, uint32(20)}, fld{28, []byte{0xA7, 3, 156, 0}}),
			NewQuery(3, OIDTCPOffloadHardwareCapabilities, []byte{0xA7, 3, 156, 0})},
		// rndis_query_complete: req_id @8, status @12, len @16, offset @20 = 16 → data @24.
		{"QUERY_CMPLT", msg(30, MsgQueryComplete, fld{8, uint32(2)}, fld{16, uint32(6)}, fld{20, uint32(16)}, fld{24, mac}),
			&QueryComplete{2, StatusSuccess, mac}},
		{"QUERY_CMPLT/unknown", msg(24, MsgQueryComplete, fld{8, uint32(4)}, fld{12, uint32(0xC00000BB)}, fld{20, uint32(16)}),
			&QueryComplete{4, StatusNotSupported, nil}},
		// rndis_set_request: packet filter 0x0D at byte 28.
		{"SET", msg(32, MsgSet, fld{8, uint32(5)}, fld{12, uint32(0x0001010E)}, fld{16, uint32(4)}, fld{20, uint32(20)},
			fld{28, uint32(0x0D)}), NewSet(5, OIDGenCurrentPacketFilter, []byte{0x0D, 0, 0, 0})},
		// rndis_set_complete: req_id @8, status @12.
		{"SET_CMPLT", msg(16, MsgSetComplete, fld{8, uint32(5)}), &SetComplete{reqStatus{5, StatusSuccess}}},
		{"RESET", msg(12, MsgReset), &Reset{}},
		// rndis_reset_complete: status @8, addressing_reset @12.
		{"RESET_CMPLT", msg(16, MsgResetComplete, fld{12, uint32(1)}), &ResetComplete{StatusSuccess, 1}},
		// rndis_indicate_status: status @8, len @12, offset @16 (from byte 8).
		{"INDICATE_STATUS/connect", msg(20, MsgIndicateStatus, fld{8, uint32(0x4001000B)}), &IndicateStatus{StatusMediaConnect, nil}},
		{"INDICATE_STATUS/disconnect", msg(20, MsgIndicateStatus, fld{8, uint32(0x4001000C)}), &IndicateStatus{StatusMediaDisconnect, nil}},
		{"INDICATE_STATUS/speed", msg(24, MsgIndicateStatus, fld{8, uint32(0x40010013)}, fld{12, uint32(4)}, fld{16, uint32(12)},
			fld{20, uint32(100_000_000)}), NewLinkSpeedChange(10_000_000_000)},
		{"INDICATE_STATUS/netchange", msg(24, MsgIndicateStatus, fld{8, uint32(0x40010018)}, fld{12, uint32(4)}, fld{16, uint32(12)},
			fld{20, uint32(2)}), NewNetworkChange(NetworkChangeDefinite)},
		{"KEEPALIVE", msg(12, MsgKeepAlive, fld{8, uint32(7)}), &KeepAlive{reqOnly{7}}},
		{"KEEPALIVE_CMPLT", msg(16, MsgKeepAliveComplete, fld{8, uint32(7)}, fld{12, uint32(0xC0000001)}),
			&KeepAliveComplete{reqStatus{7, StatusFailure}}},
		// rndis_packet: data_offset @8 = 36+16 (from byte 8), data_len @12, ppi offset @28 = 36, ppi len @32 = 16;
		// one VLAN record {16, 6, 12, vlan} at byte 44; frame at byte 60.
		{"PACKET", msg(64, MsgPacket, fld{8, uint32(52)}, fld{12, uint32(4)}, fld{28, uint32(36)}, fld{32, uint32(16)},
			fld{44, uint32(16)}, fld{48, uint32(6)}, fld{52, uint32(12)}, fld{56, uint32(0x0643)}, fld{60, []byte{1, 2, 3, 4}}),
			&Packet{PPI: AppendPPI(nil, PPIVLAN, 0x643), Data: []byte{1, 2, 3, 4}}},
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			if enc := g.want.Encode(); !bytes.Equal(enc, g.wire) {
				t.Fatalf("encode\n got %x\nwant %x", enc, g.wire)
			}
			if g.want.EncodedLen() != len(g.wire) {
				t.Fatalf("EncodedLen %d", g.want.EncodedLen())
			}
			m, err := DecodeMessage(g.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, g.want) {
				t.Fatalf("decode\n got %+v\nwant %+v", m, g.want)
			}
			dir := g.want.Type().Direction()
			other, dec := DecodeFromHost, DecodeFromGuest
			if dir == HostToGuest {
				other, dec = DecodeFromGuest, DecodeFromHost
			}
			if _, err := dec(g.wire); err != nil {
				t.Fatalf("own direction: %v", err)
			}
			if _, err := other(g.wire); dir != Both && !errors.Is(err, ErrWrongDirection) {
				t.Fatalf("other direction: %v", err)
			}
			// Trailing bytes after msg_len are ignored.
			if m2, err := DecodeMessage(append(append([]byte(nil), g.wire...), 0xEE, 0xEE)); err != nil || !reflect.DeepEqual(m2, g.want) {
				t.Fatalf("with a tail: %v %+v", err, m2)
			}
			// msg_len below the minimum or beyond the bytes is refused.
			short := append([]byte(nil), g.wire...)
			binary.LittleEndian.PutUint32(short[4:], uint32(g.want.Type().MinSize()-1))
			if _, err := DecodeMessage(short); !errors.Is(err, ErrLength) {
				t.Fatalf("short msg_len: %v", err)
			}
			if _, err := DecodeMessage(g.wire[:len(g.wire)-1]); err == nil {
				t.Fatal("truncated message accepted")
			}
		})
	}
}

func TestControlOffsets(t *testing.T) {
	bad := [][]byte{
		// QUERY input at offset 12 (inside the fixed fields).
		msg(32, MsgQuery, fld{16, uint32(4)}, fld{20, uint32(12)}),
		// SET value past msg_len.
		msg(32, MsgSet, fld{16, uint32(8)}, fld{20, uint32(20)}),
		// QUERY_CMPLT huge offset.
		msg(28, MsgQueryComplete, fld{16, uint32(4)}, fld{20, uint32(0xFFFFFFFC)}),
		// INDICATE_STATUS buffer overlapping its header.
		msg(24, MsgIndicateStatus, fld{12, uint32(4)}, fld{16, uint32(4)}),
	}
	for _, b := range bad {
		if _, err := DecodeMessage(b); !errors.Is(err, ErrOffset) {
			t.Errorf("%x: %v", b, err)
		}
	}
	// Input placed further out than 28 is accepted.
	b := msg(36, MsgQuery, fld{16, uint32(4)}, fld{20, uint32(24)}, fld{32, uint32(0xAABBCCDD)})
	m, err := DecodeMessage(b)
	if err != nil || !bytes.Equal(m.(*Query).Info, []byte{0xDD, 0xCC, 0xBB, 0xAA}) {
		t.Fatal(err, m)
	}
	// Old vSwitch: status buffer outside msg_len but inside the range.
	b = msg(24, MsgIndicateStatus, fld{8, uint32(0x40010013)}, fld{12, uint32(4)}, fld{16, uint32(12)}, fld{20, uint32(42)})
	put(b, fld{4, uint32(20)})
	m, err = DecodeFromHost(b)
	if v, ok := m.(*IndicateStatus).U32(); err != nil || !ok || v != 42 {
		t.Fatal(err, m)
	}
	// A 48-byte INITIALIZE_CMPLT (FreeBSD's minimum).
	if m, err := DecodeMessage(msg(48, MsgInitializeComplete, fld{40, uint32(3)})); err != nil || m.(*InitializeComplete).PacketAlignment() != 8 {
		t.Fatal(err, m)
	}
	if _, err := DecodeMessage(msg(12, 0x9)); !errors.Is(err, ErrUnknownType) {
		t.Fatal(err)
	}
	if _, err := DecodeMessage([]byte{1, 0, 0}); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
}
