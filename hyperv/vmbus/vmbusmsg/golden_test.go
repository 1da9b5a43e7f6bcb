package vmbusmsg

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/hvguest/hvguest/hyperv/tlfs"
)

// fld puts a little-endian value (or raw bytes) at a byte offset of a
// message, so that each golden vector below reads as the upstream layout
// table it was built from.
type fld struct {
	off int
	v   any // uint8, uint16, uint32, uint64, []byte, tlfs.GUID
}

func lay(size int, typ MessageType, fields ...fld) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, uint32(typ)) // header: msgtype @0, padding @4
	for _, f := range fields {
		switch v := f.v.(type) {
		case uint8:
			b[f.off] = v
		case uint16:
			binary.LittleEndian.PutUint16(b[f.off:], v)
		case uint32:
			binary.LittleEndian.PutUint32(b[f.off:], v)
		case uint64:
			binary.LittleEndian.PutUint64(b[f.off:], v)
		case []byte:
			copy(b[f.off:], v)
		case tlfs.GUID:
			copy(b[f.off:], v[:])
		default:
			panic("bad field")
		}
	}
	return b
}

var (
	guidA = tlfs.MustParseGUID("00112233-4455-6677-8899-aabbccddeeff")
	guidB = tlfs.MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	guidC = tlfs.MustParseGUID("44c4f61d-4444-4400-9d52-802e27ede19f")
)

// rng is a gpa_range record: byte_count, byte_offset, pfn[].
func rng(count, offset uint32, pfns ...uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, count)
	b = binary.LittleEndian.AppendUint32(b, offset)
	return append(b, words(pfns...)...)
}

func words(v ...uint64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
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
	var ud [120]byte
	copy(ud[:], seq(120, 1))
	return []golden{
		// Linux struct vmbus_channel_offer_channel / vmbus_channel_offer.
		{"offer", lay(196, MsgOfferChannel,
			fld{8, guidB}, fld{24, guidA}, fld{40, uint64(0x1111)}, fld{48, uint64(0x2222)},
			fld{56, uint16(0x2001)}, fld{58, uint16(32)}, fld{60, ud[:]}, fld{180, uint16(3)},
			fld{182, uint16(7)}, fld{184, uint32(14)}, fld{188, uint8(5)}, fld{189, uint8(1)},
			fld{190, uint16(1)}, fld{192, uint32(0x200e)}),
			&OfferChannel{InterfaceType: guidB, InterfaceInstance: guidA, Reserved1: 0x1111, Reserved2: 0x2222,
				Flags: OfferTLNPIProvider | OfferEnumerateDeviceInterface, MMIOMegabytes: 32, UserDefined: ud,
				SubChannelIndex: 3, MMIOMegabytesOptional: 7, ChildRelID: 14, MonitorID: 5, MonitorAllocated: 1,
				DedicatedInterrupt: 1, ConnectionID: 0x200e}},
		// struct vmbus_channel_rescind_offer: child_relid @8.
		{"rescind", lay(12, MsgRescindChannelOffer, fld{8, uint32(9)}), &RescindChannelOffer{ChildRelID: 9}},
		{"request offers", lay(8, MsgRequestOffers), &RequestOffers{}},
		{"all offers delivered", lay(8, MsgAllOffersDelivered), &AllOffersDelivered{}},
		// struct vmbus_channel_open_channel: relid @8, openid @12, gpadl @16,
		// target_vp @20, downstream offset @24, userdata @28.
		{"open", lay(148, MsgOpenChannel, fld{8, uint32(14)}, fld{12, uint32(14)}, fld{16, uint32(0xe1e10)},
			fld{20, uint32(3)}, fld{24, uint32(65)}, fld{28, ud[:]}),
			&OpenChannel{ChildRelID: 14, OpenID: 14, RingBufferGPADL: 0xe1e10, TargetVP: 3,
				DownstreamRingBufferPageOffset: 65, UserData: ud}},
		// OpenVMM OpenChannel2: + connection_id @148, event_flag @152, flags @154.
		{"open2", lay(156, MsgOpenChannel, fld{8, uint32(2)}, fld{12, uint32(2)}, fld{16, uint32(0xe1e11)},
			fld{20, uint32(0xFFFFFFFF)}, fld{24, uint32(17)}, fld{148, uint32(0x2002)}, fld{152, uint16(2)}, fld{154, uint16(1)}),
			&OpenChannel{ChildRelID: 2, OpenID: 2, RingBufferGPADL: 0xe1e11, TargetVP: TargetVPDisableInterrupts,
				DownstreamRingBufferPageOffset: 17, V2: true, ConnectionID: 0x2002, EventFlag: 2, OpenFlags: OpenChannelRedirectInterrupt}},
		// struct vmbus_channel_open_result: relid @8, openid @12, status @16.
		{"open result", lay(20, MsgOpenChannelResult, fld{8, uint32(14)}, fld{12, uint32(14)}, fld{16, uint32(0xC0000001)}),
			&OpenChannelResult{ChildRelID: 14, OpenID: 14, Status: 0xC0000001}},
		{"close", lay(12, MsgCloseChannel, fld{8, uint32(14)}), &CloseChannel{ChildRelID: 14}},
		// struct vmbus_channel_gpadl_header: relid @8, gpadl @12, range_buflen
		// @16, rangecount @18, range[0] {byte_count @20, byte_offset @24, pfn @28}.
		{"gpadl header complete", lay(44, MsgGPADLHeader, fld{8, uint32(14)}, fld{12, uint32(0xe1e10)},
			fld{16, uint16(24)}, fld{18, uint16(1)}, fld{20, uint32(8192)}, fld{24, uint32(0)},
			fld{28, uint64(0x1000)}, fld{36, uint64(0x1001)}),
			&GPADLHeader{ChildRelID: 14, GPADL: 0xe1e10, RangeBufLen: 24, RangeCount: 1,
				Data: rng(8192, 0, 0x1000, 0x1001)}},
		// A header announcing 30 pages: 26 here, 4 in a body.
		{"gpadl header partial", lay(236, MsgGPADLHeader, fld{8, uint32(1)}, fld{12, uint32(7)},
			fld{16, uint16(8 + 8*30)}, fld{18, uint16(1)}, fld{20, uint32(30 * 4096)}),
			&GPADLHeader{ChildRelID: 1, GPADL: 7, RangeBufLen: 248, RangeCount: 1,
				Data: append(rng(30*4096, 0), make([]byte, 208)...)}},
		// struct vmbus_channel_gpadl_body: msgnumber @8, gpadl @12, pfn[] @16.
		{"gpadl body", lay(32, MsgGPADLBody, fld{8, uint32(0)}, fld{12, uint32(7)}, fld{16, uint64(0x55)}, fld{24, uint64(0x56)}),
			&GPADLBody{GPADL: 7, Data: words(0x55, 0x56)}},
		// struct vmbus_channel_gpadl_created: relid @8, gpadl @12, status @16.
		{"gpadl created", lay(20, MsgGPADLCreated, fld{8, uint32(14)}, fld{12, uint32(7)}, fld{16, uint32(StatusUnsuccessful)}),
			&GPADLCreated{ChildRelID: 14, GPADL: 7, CreationStatus: StatusUnsuccessful}},
		{"gpadl teardown", lay(16, MsgGPADLTeardown, fld{8, uint32(14)}, fld{12, uint32(7)}),
			&GPADLTeardown{ChildRelID: 14, GPADL: 7}},
		{"gpadl torndown", lay(12, MsgGPADLTorndown, fld{8, uint32(7)}), &GPADLTorndown{GPADL: 7}},
		{"relid released", lay(12, MsgRelIDReleased, fld{8, uint32(14)}), &RelIDReleased{ChildRelID: 14}},
		// struct vmbus_channel_initiate_contact: version @8, target_vcpu @12,
		// interrupt_page / {msg_sint @16, msg_vtl @17, features @20}, monitor
		// pages @24 and @32.
		{"initiate contact 4.0", lay(40, MsgInitiateContact, fld{8, uint32(VersionWin10)}, fld{12, uint32(0)},
			fld{16, uint64(0x7000)}, fld{24, uint64(0x8000)}, fld{32, uint64(0x9000)}),
			&InitiateContact{VersionRequested: VersionWin10, InterruptPageOrTarget: 0x7000, MonitorPage1: 0x8000, MonitorPage2: 0x9000}},
		{"initiate contact 5.3", lay(40, MsgInitiateContact, fld{8, uint32(VersionWin10V5_3)}, fld{12, uint32(1)},
			fld{16, uint8(2)}, fld{17, uint8(0)}, fld{24, uint64(0x8000)}, fld{32, uint64(0x9000)}),
			&InitiateContact{VersionRequested: VersionWin10V5_3, TargetVCPU: 1, InterruptPageOrTarget: 2, MonitorPage1: 0x8000, MonitorPage2: 0x9000}},
		// OpenVMM InitiateContact2: + client_id @40.
		{"initiate contact2", lay(56, MsgInitiateContact, fld{8, uint32(VersionWin10V6_0)}, fld{16, uint8(2)},
			fld{20, uint32(0x0d)}, fld{40, guidC}),
			&InitiateContact{VersionRequested: VersionWin10V6_0, InterruptPageOrTarget: 2 | 0x0d<<32, V2: true, ClientID: guidC}},
		// struct vmbus_channel_version_response: supported @8, state @9, msg_conn_id @12.
		{"version response", lay(16, MsgVersionResponse, fld{8, uint8(1)}, fld{9, uint8(0)}, fld{12, uint32(1)}),
			&VersionResponse{VersionSupported: 1, MsgConnID: 1}},
		// OpenVMM VersionResponse2: + supported_features @16.
		{"version response2", lay(20, MsgVersionResponse, fld{8, uint8(1)}, fld{12, uint32(1)}, fld{16, uint32(0x27)}),
			&VersionResponse{VersionSupported: 1, MsgConnID: 1, Form: VersionResponseForm2, SupportedFeatures: 0x27}},
		// OpenVMM VersionResponse3: + padding @20, monitor pages @24, @32.
		{"version response3", lay(40, MsgVersionResponse, fld{8, uint8(1)}, fld{9, uint8(0)}, fld{12, uint32(1)},
			fld{16, uint32(0x40)}, fld{24, uint64(0xa000)}, fld{32, uint64(0xb000)}),
			&VersionResponse{VersionSupported: 1, MsgConnID: 1, Form: VersionResponseForm3, SupportedFeatures: FeatureServerSpecifiedMonitorPages,
				ParentToChildMonitorPage: 0xa000, ChildToParentMonitorPage: 0xb000}},
		{"version refused", lay(16, MsgVersionResponse, fld{9, uint8(2)}),
			&VersionResponse{ConnectionState: ConnectionFailedUnknownFailure}},
		{"unload", lay(8, MsgUnload), &Unload{}},
		{"unload response", lay(8, MsgUnloadResponse), &UnloadResponse{}},
		// OpenVMM OpenReservedChannel: channel_id @8, target_vp @12,
		// target_sint @16, gpadl @20, downstream offset @24.
		{"open reserved", lay(28, MsgOpenReservedChannel, fld{8, uint32(1)}, fld{12, uint32(2)}, fld{16, uint32(3)},
			fld{20, uint32(4)}, fld{24, uint32(5)}),
			&OpenReservedChannel{ChannelID: 1, TargetVP: 2, TargetSINT: 3, RingBufferGPADL: 4, DownstreamPageOffset: 5}},
		{"close reserved", lay(20, MsgCloseReservedChannel, fld{8, uint32(1)}, fld{12, uint32(2)}, fld{16, uint32(3)}),
			&CloseReservedChannel{ChannelID: 1, TargetVP: 2, TargetSINT: 3}},
		{"close reserved response", lay(12, MsgCloseReservedResponse, fld{8, uint32(1)}), &CloseReservedResponse{ChannelID: 1}},
		// struct vmbus_channel_tl_connect_request: endpoint @8, service @24;
		// OpenVMM TlConnectRequest2 adds silo_id @40.
		{"tl connect", lay(40, MsgTLConnectRequest, fld{8, guidA}, fld{24, guidB}),
			&TLConnectRequest{GuestEndpointID: guidA, HostServiceID: guidB}},
		{"tl connect2", lay(56, MsgTLConnectRequest, fld{8, guidA}, fld{24, guidB}, fld{40, guidC}),
			&TLConnectRequest{GuestEndpointID: guidA, HostServiceID: guidB, V2: true, SiloID: guidC}},
		// struct vmbus_channel_modifychannel: relid @8, target_vp @12.
		{"modify channel", lay(16, MsgModifyChannel, fld{8, uint32(14)}, fld{12, uint32(5)}),
			&ModifyChannel{ChildRelID: 14, TargetVP: 5}},
		// OpenVMM TlConnectResult: endpoint @8, service @24, status @40.
		{"tl result", lay(44, MsgTLConnectResult, fld{8, guidA}, fld{24, guidB}, fld{40, uint32(StatusConnectionRefused)}),
			&TLConnectResult{EndpointID: guidA, ServiceID: guidB, Status: -0x3ffffdca}},
		// struct vmbus_channel_modifychannel_response: relid @8, status @12.
		{"modify channel response", lay(16, MsgModifyChannelResponse, fld{8, uint32(14)}, fld{12, uint32(0xFFFFFFFF)}),
			&ModifyChannelResponse{ChildRelID: 14, Status: -1}},
		// OpenVMM ModifyConnection: monitor pages @8, @16.
		{"modify connection", lay(24, MsgModifyConnection, fld{8, uint64(0xa000)}, fld{16, uint64(0xb000)}),
			&ModifyConnection{ParentToChildMonitorPage: 0xa000, ChildToParentMonitorPage: 0xb000}},
		// OpenVMM ModifyConnectionResponse: connection_state u8 @8.
		{"modify connection response", lay(9, MsgModifyConnectionResponse, fld{8, uint8(1)}),
			&ModifyConnectionResponse{ConnectionState: ConnectionFailedLowResources}},
		{"pause", lay(8, MsgPause), &Pause{}},
		{"pause response", lay(8, MsgPauseResponse), &PauseResponse{}},
		{"resume", lay(8, MsgResume), &Resume{}},
	}
}

func TestGolden(t *testing.T) {
	seen := map[MessageType]bool{}
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			typ := g.want.Type()
			seen[typ] = true
			dec := DecodeFromHost
			if typ.Direction() == GuestToHost {
				dec = DecodeFromGuest
			}
			got, err := dec(g.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, g.want) {
				t.Fatalf("decoded\n got %+v\nwant %+v", got, g.want)
			}
			if enc := g.want.Encode(); !bytes.Equal(enc, g.wire) {
				t.Fatalf("encoded\n got %x\nwant %x", enc, g.wire)
			}
			if g.want.EncodedLen() != len(g.wire) {
				t.Fatalf("EncodedLen %d, wire %d", g.want.EncodedLen(), len(g.wire))
			}
			if app := g.want.AppendTo([]byte{0xAA}); app[0] != 0xAA || !bytes.Equal(app[1:], g.wire) {
				t.Fatal("AppendTo does not append")
			}
			if got, err := Decode(g.wire); err != nil || !reflect.DeepEqual(got, g.want) {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
	for typ := MessageType(1); typ < msgCount; typ++ {
		if !seen[typ] {
			t.Errorf("no golden vector for %s", typ)
		}
	}
}

// The struct sizes spec §2.3 lists, and Linux's minimum payload sizes.
func TestSizes(t *testing.T) {
	for typ, want := range map[MessageType]int{
		MsgOfferChannel: 196, MsgRescindChannelOffer: 12, MsgOpenChannelResult: 20, MsgGPADLCreated: 20,
		MsgGPADLTorndown: 12, MsgVersionResponse: 16, MsgModifyChannelResponse: 16, MsgOpenChannel: 148,
		MsgCloseChannel: 12, MsgGPADLTeardown: 16, MsgRelIDReleased: 12, MsgInitiateContact: 40,
		MsgOpenReservedChannel: 28, MsgCloseReservedChannel: 20, MsgCloseReservedResponse: 12,
		MsgTLConnectRequest: 40, MsgModifyChannel: 16, MsgTLConnectResult: 44, MsgModifyConnection: 24,
		MsgModifyConnectionResponse: 9, MsgRequestOffers: 8, MsgUnload: 8, MsgPause: 8,
	} {
		if typ.MinSize() != want {
			t.Errorf("%s min size %d want %d", typ, typ.MinSize(), want)
		}
	}
	if GPADLHeaderMaxPFNs != 26 || GPADLBodyMaxPFNs != 28 || GPADLHeaderMaxData != 216 || GPADLBodyMaxData != 224 {
		t.Fatal("GPADL geometry")
	}
}
