package rndis

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// obj lays out an NDIS object of size bytes with header {typ, rev, size}.
func obj(size int, typ, rev uint8, hdrSize uint16, fields ...fld) []byte {
	b := make([]byte, size)
	return put(b, append([]fld{{0, typ}, {1, rev}, {2, hdrSize}}, fields...)...)
}

func TestOffloadParametersGolden(t *testing.T) {
	// Linux at NVSP ≥ 5: rev 3, size 28; ip_v4_csum @4 = 1, tcp4 @5 = 4, udp4 @6 = 4, tcp6 @7 = 4,
	// udp6 @8 = 4, lso_v2 @11/@12 = 2, flags @16, rsc @22/@23.
	p := NewOffloadParameters(3)
	p.IPv4Checksum, p.TCPIPv4Checksum, p.UDPIPv4Checksum = OffloadTxRxDisabled, OffloadTxRxEnabled, OffloadTxRxEnabled
	p.TCPIPv6Checksum, p.UDPIPv6Checksum = OffloadTxRxEnabled, OffloadTxRxEnabled
	p.LSOv2IPv4, p.LSOv2IPv6, p.RSCIPv4, p.RSCIPv6 = OffloadEnabled, OffloadEnabled, OffloadDisabled, OffloadDisabled
	p.Flags, p.EncapsulationTypes = 0xA5A5A5A5, 1
	want := obj(28, 0x80, 3, 28, fld{4, []byte{1, 4, 4, 4, 4}}, fld{11, []byte{2, 2}}, fld{16, uint32(0xA5A5A5A5)},
		fld{22, []byte{1, 1}}, fld{25, uint8(1)})
	if got := p.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	if d, err := DecodeOffloadParameters(want); err != nil || !reflect.DeepEqual(d, p) {
		t.Fatalf("decode %v %+v", err, d)
	}
	// Rev 2 (size 22): RSC and encapsulation fields are not on the wire.
	p2 := *p
	p2.Header = NewOffloadParameters(2).Header
	enc := p2.Encode()
	d, err := DecodeOffloadParameters(enc)
	if len(enc) != 22 || err != nil || d.RSCIPv4 != 0 || d.EncapsulationTypes != 0 || d.LSOv2IPv6 != 2 {
		t.Fatalf("rev2: %d %v %+v", len(enc), err, d)
	}
	if NewOffloadParameters(1).Header.Size != 20 {
		t.Fatal("rev1 size")
	}
	for _, bad := range [][]byte{
		obj(28, 0x81, 3, 28), obj(28, 0x80, 0, 28), obj(28, 0x80, 3, 19), obj(28, 0x80, 3, 29), {0x80},
	} {
		if _, err := DecodeOffloadParameters(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

// OpenVMM's capability answer (spec §4.5): rev 3, size 156, encapsulation
// 802.3, IPv4 checksums incl. header, LSOv2 max 0xF53C, min 2 segments.
func TestOffloadGolden(t *testing.T) {
	o := Offload{Header: OffloadHeader(3)}
	o.Checksum = ChecksumOffload{Encap8023, CsumIPv4Options | CsumTCPOptions | CsumTCP | CsumUDP | CsumIPv4Header, Encap8023, 0x155,
		Encap8023, CsumIPv6ExtHdrs | CsumTCPOptions | CsumTCP | CsumUDP, Encap8023, 0x55}
	o.LSOv2 = LSOv2Offload{Encap8023, 0xF53C, 2, Encap8023, 0xF53C, 2, LSOv2IPv6ExtHdrs | LSOv2IPv6TCPOptions}
	o.IPsecV2 = IPsecV2Offload{Encap: 7, Bools: [11]uint8{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, SACaps: 9}
	o.RSC = RSCOffload{1, 1}
	o.EncapGRE = EncapOffload{0x11, 0x22}
	o.Flags = 3
	want := obj(156, 0xA7, 3, 156,
		fld{4, uint32(2)}, fld{8, uint32(0x155)}, fld{12, uint32(2)}, fld{16, uint32(0x155)},
		fld{20, uint32(2)}, fld{24, uint32(0x55)}, fld{28, uint32(2)}, fld{32, uint32(0x55)},
		fld{80, uint32(2)}, fld{84, uint32(0xF53C)}, fld{88, uint32(2)}, fld{92, uint32(2)}, fld{96, uint32(0xF53C)},
		fld{100, uint32(2)}, fld{104, uint32(5)}, fld{108, uint32(3)},
		fld{112, uint32(7)}, fld{116, uint8(1)}, fld{126, uint8(1)}, fld{140, uint32(9)},
		fld{144, []byte{1, 1}}, fld{148, uint32(0x11)}, fld{152, uint32(0x22)})
	if got := o.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	d, err := DecodeOffload(want)
	if err != nil || !reflect.DeepEqual(*d, o) {
		t.Fatalf("decode %v\n got %+v\nwant %+v", err, d, o)
	}
	// Rev 1 (112 bytes) ends at Flags; a 180-byte Windows object decodes its first 156.
	if d, err := DecodeOffload(want[:112:112]); err == nil {
		t.Fatalf("size field 156 in 112 bytes accepted: %+v", d)
	}
	r1 := append([]byte(nil), want[:112]...)
	put(r1, fld{1, uint8(1)}, fld{2, uint16(112)})
	if d, err := DecodeOffload(r1); err != nil || d.Flags != 3 || d.RSC.IPv4 != 0 || len(d.Encode()) != 112 {
		t.Fatal(err, d)
	}
	w := append(append([]byte(nil), want...), make([]byte, 24)...)
	put(w, fld{2, uint16(180)})
	if d, err := DecodeOffload(w); err != nil || d.EncapGRE.MaxHeaderSize != 0x22 || len(d.Encode()) != 180 {
		t.Fatal(err)
	}
	if _, err := DecodeOffload(obj(112, 0xA7, 1, 111)); !errors.Is(err, ErrLength) {
		t.Fatal(err)
	}
	if OffloadHeader(1).Size != 112 || OffloadHeader(2).Size != 144 {
		t.Fatal("sizes")
	}
}

func TestRSSCapabilitiesGolden(t *testing.T) {
	// ndis_recv_scale_cap (packed): cap_flag @4, num_int_msg @8, num_recv_que @12, u16 entries @16.
	want := obj(18, 0x88, 2, 18, fld{4, uint32(0x301)}, fld{8, uint32(1)}, fld{12, uint32(8)}, fld{16, uint16(128)})
	c := &RSSCapabilities{RSSCapabilitiesHeader, RSSCapHashToeplitz | RSSCapHashTCPIPv4 | RSSCapHashTCPIPv6, 1, 8, 128}
	if got := c.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("%x", got)
	}
	if d, err := DecodeRSSCapabilities(want); err != nil || !reflect.DeepEqual(d, c) {
		t.Fatal(err, d)
	}
	if d, err := DecodeRSSCapabilities(obj(16, 0x88, 1, 16, fld{12, uint32(4)})); err != nil || d.NumReceiveQueues != 4 {
		t.Fatal(err, d)
	}
	if _, err := DecodeRSSCapabilities(obj(18, 0x89, 2, 18)); !errors.Is(err, ErrObject) {
		t.Fatal(err)
	}
	if got := RSSCapabilitiesHeader.AppendTo(nil); !bytes.Equal(got, []byte{0x88, 2, 18, 0}) {
		t.Fatal(got)
	}
}

func TestRSSParametersGolden(t *testing.T) {
	// Linux rndis_set_rss_param_msg: size 40, hashinfo 0x1701 @8, tabsize 512 @12, table @40 (16),
	// key size 40 @20, key @552 (24); blob 592 bytes.
	p := NewRSSParameters(3)
	want := obj(592, 0x89, 2, 40, fld{8, uint32(0x1701)}, fld{12, uint16(512)}, fld{16, uint32(40)},
		fld{20, uint16(40)}, fld{24, uint32(552)}, fld{552, DefaultHashKey[:]})
	for i := 0; i < 128; i++ {
		put(want, fld{40 + 4*i, uint32(i % 3)})
	}
	if got := p.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	if d, err := DecodeRSSParameters(want); err != nil || !reflect.DeepEqual(d, p) || d.Disabled() {
		t.Fatal(err, d)
	}
	// FreeBSD: header size = whole blob, key @40, table @80.
	f := obj(40+40+16, 0x89, 2, 96, fld{4, uint16(RSSParamDisableRSS)}, fld{8, uint32(0x201)}, fld{12, uint16(16)},
		fld{16, uint32(80)}, fld{20, uint16(40)}, fld{24, uint32(40)}, fld{40, DefaultHashKey[:]},
		fld{80, uint32(1)}, fld{84, uint32(0)}, fld{88, uint32(1)}, fld{92, uint32(0)})
	d, err := DecodeRSSParameters(f)
	if err != nil || !d.KeyFirst || !reflect.DeepEqual(d.IndirectionTable, []uint32{1, 0, 1, 0}) || !d.Disabled() ||
		!bytes.Equal(d.Encode(), f) {
		t.Fatal(err, d)
	}
	// Rev 3 adds the default processor @40; table and key follow at 44.
	p.Header.Revision, p.DefaultProcessorNumber = 3, 6
	e := p.Encode()
	if d, err := DecodeRSSParameters(e); err != nil || len(e) != 596 || u32(e, 16) != 44 || !reflect.DeepEqual(d, p) {
		t.Fatal(err, len(e))
	}
	for name, bad := range map[string][]byte{
		"type":        obj(40, 0x88, 2, 40),
		"short":       obj(39, 0x89, 2, 40),
		"rev3 short":  obj(40, 0x89, 3, 44),
		"odd table":   obj(60, 0x89, 2, 40, fld{12, uint16(6)}, fld{16, uint32(40)}),
		"table past":  obj(60, 0x89, 2, 40, fld{12, uint16(24)}, fld{16, uint32(40)}),
		"table fixed": obj(60, 0x89, 2, 40, fld{12, uint16(8)}, fld{16, uint32(36)}),
		"key past":    obj(60, 0x89, 2, 40, fld{20, uint16(40)}, fld{24, uint32(40)}),
	} {
		if _, err := DecodeRSSParameters(bad); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestConfigParameterGolden(t *testing.T) {
	// rndis_config_parameter_info: name_offset 20 @0, name_len 28 @4, type 2 @8, value_offset 48 @12,
	// value_len 24 @16; "NetworkAddress" and "00155d010203" in UTF-16LE. 72 bytes; SET msg_len 100.
	p := NewMACAddressParameter([6]byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03})
	want := make([]byte, 72)
	put(want, fld{0, uint32(20)}, fld{4, uint32(28)}, fld{8, uint32(2)}, fld{12, uint32(48)}, fld{16, uint32(24)})
	for i, c := range "NetworkAddress" {
		want[20+2*i] = byte(c)
	}
	for i, c := range "00155d010203" {
		want[48+2*i] = byte(c)
	}
	if got := p.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("%x", got)
	}
	d, err := DecodeConfigParameter(want)
	if err != nil || !reflect.DeepEqual(d, p) || d.NameString() != "NetworkAddress" || d.ValueString() != "00155d010203" {
		t.Fatal(err, d)
	}
	if n := NewSet(1, OIDGenRNDISConfigParameter, want).EncodedLen(); n != 100 {
		t.Fatal(n)
	}
	for _, bad := range [][]byte{want[:19], put(append([]byte(nil), want...), fld{0, uint32(8)}), put(append([]byte(nil), want...), fld{16, uint32(26)})} {
		if _, err := DecodeConfigParameter(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}
