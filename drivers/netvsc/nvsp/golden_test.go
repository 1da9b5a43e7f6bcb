package nvsp

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// fld puts a little-endian value at a byte offset, so each golden vector
// reads as the layout table (spec §2.5, Linux hyperv_net.h) it was built
// from.
type fld struct {
	off int
	v   any // uint16, uint32, uint64
}

func lay(size int, typ MessageType, fields ...fld) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, uint32(typ))
	for _, f := range fields {
		switch v := f.v.(type) {
		case uint16:
			binary.LittleEndian.PutUint16(b[f.off:], v)
		case uint32:
			binary.LittleEndian.PutUint32(b[f.off:], v)
		case uint64:
			binary.LittleEndian.PutUint64(b[f.off:], v)
		default:
			panic("bad field")
		}
	}
	return b
}

type golden struct {
	name string
	dir  Direction // the direction to decode it in
	wire []byte
	want Message
}

func sendTable(off int, n int) []byte {
	b := lay(off+4*n, MsgSendIndirectionTable, fld{4, uint32(n)}, fld{8, uint32(off)})
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[off+4*i:], uint32(i%3))
	}
	return b
}

func tab(n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(i % 3)
	}
	return t
}

func goldens() []golden {
	return []golden{
		// nvsp_message_init: min @4, max @8.
		{"INIT", GuestToHost, lay(12, MsgInit, fld{4, uint32(0x60001)}, fld{8, uint32(0x60001)}), NewInit(Version61)},
		// nvsp_message_init_complete: negotiated @4, max_mdl @8, status @12 (OpenVMM answer).
		{"INIT_COMPLETE", HostToGuest, lay(16, MsgInitComplete, fld{4, uint32(0xFFFFFFFF)}, fld{8, uint32(34)}, fld{12, uint32(1)}),
			&InitComplete{VersionInvalid, MaxMDLChainLength, StatusSuccess}},
		// nvsp_1_message_send_ndis_version: major @4, minor @8.
		{"SEND_NDIS_VER", GuestToHost, lay(12, MsgSendNDISVersion, fld{4, uint32(6)}, fld{8, uint32(30)}), NewSendNDISVersion(NDIS630)},
		// nvsp_1_message_send_receive_buffer: gpadl @4, u16 id @8, reserved @10.
		{"SEND_RECV_BUF", GuestToHost, lay(12, MsgSendReceiveBuffer, fld{4, uint32(0xE1E10001)}, fld{8, uint16(0xCAFE)}),
			&SendReceiveBuffer{bufferMsg{0xE1E10001, ReceiveBufferID}}},
		// _complete: status @4, num_sections @8, section {offset @12, sub_alloc @16, num @20, end @24}.
		{"SEND_RECV_BUF_COMPLETE", HostToGuest, lay(28, MsgSendReceiveBufferComplete, fld{4, uint32(1)}, fld{8, uint32(1)},
			fld{16, uint32(1806)}, fld{20, uint32(9290)}, fld{24, uint32(1806 * 9290)}),
			&SendReceiveBufferComplete{StatusSuccess, 1, ReceiveBufferSection{0, 1806, 9290, 1806 * 9290}}},
		// nvsp_1_message_revoke_receive_buffer: u16 id @4.
		{"REVOKE_RECV_BUF", GuestToHost, lay(6, MsgRevokeReceiveBuffer, fld{4, uint16(0xCAFE)}), &RevokeReceiveBuffer{revokeMsg{0xCAFE}}},
		{"SEND_SEND_BUF", GuestToHost, lay(12, MsgSendSendBuffer, fld{4, uint32(7)}, fld{8, uint16(0xFACE)}),
			&SendSendBuffer{bufferMsg{7, SendBufferIDFreeBSD}}},
		// _send_buffer_complete: status @4, section_size @8.
		{"SEND_SEND_BUF_COMPLETE", HostToGuest, lay(12, MsgSendSendBufferComplete, fld{4, uint32(1)}, fld{8, uint32(6144)}),
			&SendSendBufferComplete{StatusSuccess, SendSectionSize}},
		{"REVOKE_SEND_BUF", GuestToHost, lay(6, MsgRevokeSendBuffer, fld{4, uint16(0)}), &RevokeSendBuffer{}},
		// nvsp_1_message_send_rndis_packet: channel_type @4, index @8, size @12.
		{"SEND_RNDIS_PKT/guest", GuestToHost, lay(16, MsgSendRNDISPacket, fld{4, uint32(0)}, fld{8, uint32(17)}, fld{12, uint32(1558)}),
			&SendRNDISPacket{ChannelData, 17, 1558}},
		{"SEND_RNDIS_PKT/host", HostToGuest, lay(16, MsgSendRNDISPacket, fld{4, uint32(1)}, fld{8, uint32(0xFFFFFFFF)}),
			&SendRNDISPacket{ChannelControl, NoSection, 0}},
		// _complete: status @4 (Linux's 8-byte receive completion).
		{"SEND_RNDIS_PKT_COMPLETE", GuestToHost, lay(8, MsgSendRNDISPacketComplete, fld{4, uint32(1)}), &SendRNDISPacketComplete{StatusSuccess}},
		{"SEND_RNDIS_PKT_COMPLETE/host", HostToGuest, lay(8, MsgSendRNDISPacketComplete, fld{4, uint32(2)}), &SendRNDISPacketComplete{StatusFailure}},
		// nvsp_2_send_ndis_config: mtu @4, reserved @8, u64 capability @12.
		{"SEND_NDIS_CONFIG", GuestToHost, lay(20, MsgSendNDISConfig, fld{4, uint32(1514)}, fld{12, uint64(0xAC)}),
			&SendNDISConfig{1514, CapIEEE8021Q | CapSRIOV | CapTeaming | CapRSC}},
		// nvsp_4_send_vf_association: allocated @4, serial @8.
		{"SEND_VF_ASSOCIATION", HostToGuest, lay(12, MsgSendVFAssociation, fld{4, uint32(1)}, fld{8, uint32(0x1234)}),
			&SendVFAssociation{true, 0x1234}},
		// nvsp_4_sw_datapath: active_datapath @4.
		{"SWITCH_DATA_PATH", GuestToHost, lay(8, MsgSwitchDataPath, fld{4, uint32(1)}), &SwitchDataPath{DataPathVF}},
		{"SWITCH_DATA_PATH/host", HostToGuest, lay(8, MsgSwitchDataPath), &SwitchDataPath{DataPathSynthetic}},
		{"OID_QUERY_EX", GuestToHost, lay(12, MsgOIDQueryEx, fld{4, uint32(0x00140196)}, fld{8, uint32(0x00010203)}),
			&OIDQueryEx{0x00140196, 0x00010203}},
		{"OID_QUERY_EX_COMPLETE", HostToGuest, lay(12, MsgOIDQueryExComplete, fld{4, uint32(0xC00000BB)}), &OIDQueryExComplete{0xC00000BB, 0}},
		// nvsp_5_subchannel_request: op @4, num_subchannels @8.
		{"SUBCHANNEL/request", GuestToHost, lay(12, MsgSubchannel, fld{4, uint32(1)}, fld{8, uint32(7)}), &SubchannelRequest{SubchannelAllocate, 7}},
		// nvsp_5_subchannel_complete: status @4, num_subchannels @8.
		{"SUBCHANNEL/complete", HostToGuest, lay(12, MsgSubchannel, fld{4, uint32(1)}, fld{8, uint32(3)}), &SubchannelComplete{StatusSuccess, 3}},
		// nvsp_5_send_indirect_table: count @4, offset @8, table @offset.
		{"SEND_INDIRECTION_TABLE", HostToGuest, sendTable(40, 16), &SendIndirectionTable{40, tab(16)}},
	}
}

func decodeDir(b []byte, v Version, d Direction) (Message, error) {
	if d == HostToGuest {
		return DecodeFromHost(b, v)
	}
	return DecodeFromGuest(b, v)
}

func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			if enc := g.want.Encode(); !reflect.DeepEqual(enc, g.wire) {
				t.Fatalf("encode\n got %x\nwant %x", enc, g.wire)
			}
			if g.want.EncodedLen() != len(g.wire) {
				t.Fatalf("EncodedLen %d, want %d", g.want.EncodedLen(), len(g.wire))
			}
			m, err := decodeDir(g.wire, Version61, g.dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, g.want) {
				t.Fatalf("decode\n got %+v\nwant %+v", m, g.want)
			}
			// Padded to 40 bytes as Linux sends it: same message.
			p := AppendPadded(nil, g.want, GuestMessageSize)
			if len(p) != max(GuestMessageSize, len(g.wire)) {
				t.Fatalf("padded to %d", len(p))
			}
			if m2, err := decodeDir(p, Version61, g.dir); err != nil || !reflect.DeepEqual(m2, g.want) {
				t.Fatalf("padded decode: %v %+v", err, m2)
			}
			// One byte short of the minimum is refused.
			if _, err := decodeDir(g.wire[:g.want.Type().MinSize()-1], Version61, g.dir); !errors.Is(err, ErrShort) {
				t.Fatalf("short: %v", err)
			}
		})
	}
}

func TestDirection(t *testing.T) {
	for _, g := range goldens() {
		if g.want.Type().Direction() == Both {
			continue
		}
		other := GuestToHost
		if g.dir == GuestToHost {
			other = HostToGuest
		}
		if _, err := decodeDir(g.wire, Version61, other); !errors.Is(err, ErrWrongDirection) {
			t.Errorf("%s received %s: %v", g.name, other, err)
		}
	}
}

func TestUnknownAndUnsupported(t *testing.T) {
	for _, typ := range []MessageType{0, 3, 99, 137, 0xFFFFFFFF} {
		if _, err := DecodeFromHost(lay(40, typ), Version61); !errors.Is(err, ErrUnknownType) {
			t.Errorf("type %d: %v", typ, err)
		}
	}
	for _, typ := range []MessageType{109, 115, 124, 126, 127, 130, 135, 136} {
		_, err := DecodeFromGuest(lay(40, typ), Version61)
		if !errors.Is(err, ErrUnsupportedType) || !typ.Known() || typ.Supported() {
			t.Errorf("type %d (%s): %v", typ, typ, err)
		}
	}
	if _, err := DecodeFromHost([]byte{1, 0, 0}, 0); !errors.Is(err, ErrShort) {
		t.Errorf("3 bytes: %v", err)
	}
}

// TestSendTableQuirk follows Linux netvsc_send_table: at most Version6 a
// message of 40 + 64 bytes or more is read at 40 whatever its offset says.
func TestSendTableQuirk(t *testing.T) {
	// A Windows host ≤ 6.0: wrong offset 12 in a 104-byte message, table at 40.
	b := sendTable(40, 16)
	binary.LittleEndian.PutUint32(b[8:], 12)
	m, err := DecodeFromHost(b, Version6)
	if err != nil || !reflect.DeepEqual(m, &SendIndirectionTable{40, tab(16)}) {
		t.Fatalf("≤6 fix-up: %v %+v", err, m)
	}
	// The same bytes at 6.1 trust the offset: the table is read at 12.
	m, err = DecodeFromHost(b, Version61)
	if err != nil || m.(*SendIndirectionTable).Offset != 12 || m.(*SendIndirectionTable).Table[8] != 1 {
		t.Fatalf("6.1: %v %+v", err, m)
	}
	// OpenVMM: table right after the body, 76 bytes: no fix-up at 6.0.
	m, err = DecodeFromHost(sendTable(12, 16), Version5)
	if err != nil || !reflect.DeepEqual(m, &SendIndirectionTable{12, tab(16)}) {
		t.Fatalf("openvmm layout: %v %+v", err, m)
	}
	// Offset 0 encodes at 40.
	if got := (&SendIndirectionTable{Table: tab(16)}).Encode(); !reflect.DeepEqual(got, sendTable(40, 16)) {
		t.Fatalf("default offset: %x", got)
	}
	for _, bad := range [][]byte{
		lay(40, MsgSendIndirectionTable, fld{4, uint32(0)}, fld{8, uint32(12)}),          // no entries
		lay(40, MsgSendIndirectionTable, fld{4, uint32(16)}, fld{8, uint32(12)}),         // does not fit
		lay(76, MsgSendIndirectionTable, fld{4, uint32(16)}, fld{8, uint32(8)}),          // overlaps the body
		lay(76, MsgSendIndirectionTable, fld{4, uint32(16)}, fld{8, uint32(0xFFFFFFF0)}), // far away
		lay(76, MsgSendIndirectionTable, fld{4, uint32(0x40000004)}, fld{8, uint32(12)}),
	} {
		if _, err := DecodeFromHost(bad, Version61); !errors.Is(err, ErrInvalid) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestVersions(t *testing.T) {
	for _, c := range []struct {
		v    Version
		ndis NDISVersion
		size int
		caps Capabilities
		max  MessageType
	}{
		{Version1, NDIS61, 28, CapIEEE8021Q, 108},
		{Version2, NDIS61, 28, CapIEEE8021Q, 127},
		{Version4, NDIS61, 28, CapIEEE8021Q, 130},
		{Version5, NDIS630, 28, 0x2C, 134},
		{Version6, NDIS630, 28, 0x2C, 136},
		{Version61, NDIS630, 40, 0xAC, 136},
	} {
		if !c.v.Known() || c.v.NDIS() != c.ndis || HostMessageSize(c.v) != c.size ||
			GuestCapabilities(c.v, false) != c.caps || c.v.MaxMessageType() != c.max {
			t.Errorf("%s: ndis %s size %d caps %#x max %d", c.v, c.v.NDIS(), HostMessageSize(c.v), GuestCapabilities(c.v, false), c.v.MaxMessageType())
		}
	}
	if GuestCapabilities(Version61, true)&CapSRIOV != 0 {
		t.Error("isolated guest announces SR-IOV")
	}
	if NDIS630.Major() != 6 || NDIS630.Minor() != 30 || NDIS630.String() != "NDIS6.30" {
		t.Error(NDIS630)
	}
	if Version(0x50001).Known() {
		t.Error("0x50001 known")
	}
	if m := NewSendNDISVersion(NDIS61); m.Version() != NDIS61 {
		t.Error(m.Version())
	}
}

func TestBufferChecks(t *testing.T) {
	ok := &SendReceiveBufferComplete{StatusSuccess, 1, ReceiveBufferSection{0, 1806, 9289, 0}}
	if err := ok.Check(16 << 20); err != nil {
		t.Fatal(err)
	}
	for _, m := range []SendReceiveBufferComplete{
		{StatusFailure, 1, ok.Section},
		{StatusSuccess, 2, ok.Section},
		{StatusSuccess, 1, ReceiveBufferSection{8, 1806, 10, 0}},
		{StatusSuccess, 1, ReceiveBufferSection{0, 67, 10, 0}},
		{StatusSuccess, 1, ReceiveBufferSection{0, 1806, 0, 0}},
		{StatusSuccess, 1, ReceiveBufferSection{0, 0x10000, 0x10000, 0}},
	} {
		if err := m.Check(16 << 20); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", m, err)
		}
	}
	s := &SendSendBufferComplete{StatusSuccess, 6144}
	if n, err := s.Sections(1 << 20); err != nil || n != 170 {
		t.Fatal(n, err)
	}
	for _, m := range []SendSendBufferComplete{{StatusFailure, 6144}, {StatusSuccess, 0}, {StatusSuccess, 6146}, {StatusSuccess, 2 << 20}} {
		if _, err := m.Sections(1 << 20); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", m, err)
		}
	}
}
