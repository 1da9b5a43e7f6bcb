package vmbusmsg

import (
	"errors"
	"testing"
)

func TestDirection(t *testing.T) {
	offer := (&OfferChannel{ChildRelID: 1}).Encode()
	if _, err := DecodeFromGuest(offer); !errors.Is(err, ErrWrongDirection) {
		t.Fatalf("offer at the host: %v", err)
	}
	hdr := (&GPADLTeardown{ChildRelID: 1, GPADL: 2}).Encode()
	if _, err := DecodeFromHost(hdr); !errors.Is(err, ErrWrongDirection) {
		t.Fatalf("teardown at the guest: %v", err)
	}
	// Every known type is accepted one way and refused the other.
	for typ := MessageType(1); typ < msgCount; typ++ {
		b := make([]byte, MaxMessageSize)
		le.PutUint32(b, uint32(typ))
		fromHost, errH := DecodeFromHost(b[:typ.MinSize()])
		fromGuest, errG := DecodeFromGuest(b[:typ.MinSize()])
		switch typ.Direction() {
		case HostToGuest:
			if !errors.Is(errG, ErrWrongDirection) || fromGuest != nil {
				t.Errorf("%s accepted from the guest: %v", typ, errG)
			}
			_ = fromHost
		case GuestToHost:
			if !errors.Is(errH, ErrWrongDirection) || fromHost != nil {
				t.Errorf("%s accepted from the host: %v", typ, errH)
			}
		default:
			t.Errorf("%s has no direction", typ)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"7 bytes", make([]byte, 7), ErrShort},
		{"type 0", make([]byte, 8), ErrUnknownType},
		{"type 30", lay(8, 30), ErrUnknownType},
		{"type max", lay(8, 0xFFFFFFFF), ErrUnknownType},
		{"241 bytes", lay(241, MsgOfferChannel), ErrTooLong},
		{"short offer", lay(195, MsgOfferChannel), ErrShort},
		{"short rescind", lay(11, MsgRescindChannelOffer), ErrShort},
		{"short version response", lay(15, MsgVersionResponse), ErrShort},
		{"short open result", lay(19, MsgOpenChannelResult), ErrShort},
		{"short gpadl created", lay(19, MsgGPADLCreated), ErrShort},
		{"short torndown", lay(11, MsgGPADLTorndown), ErrShort},
		{"short modify response", lay(15, MsgModifyChannelResponse), ErrShort},
		{"short tl result", lay(43, MsgTLConnectResult), ErrShort},
		{"short modify conn response", lay(8, MsgModifyConnectionResponse), ErrShort},
	}
	for _, c := range cases {
		if _, err := DecodeFromHost(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	guest := []struct {
		name string
		b    []byte
		want error
	}{
		{"short open", lay(147, MsgOpenChannel), ErrShort},
		{"short initiate", lay(39, MsgInitiateContact), ErrShort},
		{"short tl connect", lay(39, MsgTLConnectRequest), ErrShort},
		{"short gpadl header", lay(27, MsgGPADLHeader), ErrShort},
		{"empty gpadl body", lay(16, MsgGPADLBody), ErrShort},
		{"ragged gpadl body", lay(28, MsgGPADLBody), ErrInconsistent},
		{"short reserved open", lay(27, MsgOpenReservedChannel), ErrShort},
		{"short modify connection", lay(23, MsgModifyConnection), ErrShort},
	}
	for _, c := range guest {
		if _, err := DecodeFromGuest(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// Sizes between and beyond the documented forms decode to the largest
// form that fits; the extra bytes are ignored.
func TestAlternateSizes(t *testing.T) {
	for _, c := range []struct {
		typ  MessageType
		size int
		form func(Message) int
	}{
		{MsgVersionResponse, 16, func(m Message) int { return int(m.(*VersionResponse).Form) }},
		{MsgVersionResponse, 20, func(m Message) int { return int(m.(*VersionResponse).Form) }},
		{MsgVersionResponse, 24, func(m Message) int { return int(m.(*VersionResponse).Form) }},
		{MsgVersionResponse, 40, func(m Message) int { return int(m.(*VersionResponse).Form) }},
		{MsgVersionResponse, 48, func(m Message) int { return int(m.(*VersionResponse).Form) }},
	} {
		m, err := DecodeFromHost(lay(c.size, c.typ))
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]int{16: 0, 20: 1, 24: 1, 40: 2, 48: 2}[c.size]
		if c.form(m) != want {
			t.Errorf("%s of %d bytes: form %d want %d", c.typ, c.size, c.form(m), want)
		}
		if m.EncodedLen() > c.size {
			t.Errorf("re-encodes longer than the input")
		}
	}
	for size, v2 := range map[int]bool{148: false, 152: false, 156: true, 200: true} {
		m, err := DecodeFromGuest(lay(size, MsgOpenChannel))
		if err != nil || m.(*OpenChannel).V2 != v2 {
			t.Errorf("open of %d: %v", size, err)
		}
	}
	for size, v2 := range map[int]bool{40: false, 48: false, 56: true} {
		m, err := DecodeFromGuest(lay(size, MsgInitiateContact))
		if err != nil || m.(*InitiateContact).V2 != v2 {
			t.Errorf("initiate of %d: %v", size, err)
		}
		m, err = DecodeFromGuest(lay(size, MsgTLConnectRequest))
		if err != nil || m.(*TLConnectRequest).V2 != v2 {
			t.Errorf("tl connect of %d: %v", size, err)
		}
	}
	// Fixed-size messages with trailing bytes (a newer host's longer form).
	m, err := DecodeFromHost(lay(24, MsgRescindChannelOffer, fld{8, uint32(3)}))
	if err != nil || m.(*RescindChannelOffer).ChildRelID != 3 {
		t.Fatal(err)
	}
}

func TestPeekAndNames(t *testing.T) {
	if typ, err := PeekType(lay(8, MsgUnload)); err != nil || typ != MsgUnload {
		t.Fatal(typ, err)
	}
	if MsgGPADLHeader.String() != "GPADL_HEADER" || MessageType(99).String() != "CHANNELMSG(99)" {
		t.Fatal("names")
	}
	if MessageType(99).Known() || MessageType(99).Direction() != 0 || MessageType(99).MinSize() != 0 || MessageType(99).MinVersion() != 0 {
		t.Fatal("unknown type info")
	}
	if MsgModifyChannelResponse.MinVersion() != VersionWin10V5_3 || MsgPause.RequiredFeature() != FeaturePauseResume {
		t.Fatal("versions")
	}
	if HostToGuest.String() != "host-to-guest" || Direction(0).String() != "no-direction" {
		t.Fatal("direction names")
	}
}

func TestOfferHelpers(t *testing.T) {
	o := &OfferChannel{SubChannelIndex: 1, MonitorID: 37, MonitorAllocated: 1, DedicatedInterrupt: 1}
	le.PutUint32(o.UserDefined[:], PipeModeMessage)
	if !o.IsSubchannel() || !o.Monitored() || !o.IsDedicatedInterrupt() || o.PipeMode() != PipeModeMessage {
		t.Fatal("helpers")
	}
	if g, b := o.MonitorGroup(); g != 1 || b != 5 {
		t.Fatal(g, b)
	}
	o = &OfferChannel{MonitorAllocated: 0xFE, DedicatedInterrupt: 0xFFFE}
	if o.IsSubchannel() || o.Monitored() || o.IsDedicatedInterrupt() {
		t.Fatal("reserved bits read as flags")
	}
}

func TestInitiateContactTargetInfo(t *testing.T) {
	var m InitiateContact
	m.SetTargetInfo(2, 1, FeatureClientID|FeatureModifyConnection)
	sint, vtl, f := m.TargetInfo()
	if sint != 2 || vtl != 1 || f != 0xc || m.InterruptPageOrTarget != 0x0000000c_00000102 {
		t.Fatalf("%#x", m.InterruptPageOrTarget)
	}
}

func TestNewInitiateContact(t *testing.T) {
	m := NewInitiateContact(VersionWin10, 1, 0x7000, 0x8000, 0x9000, FeatureClientID)
	if m.InterruptPageOrTarget != 0x7000 || m.V2 {
		t.Fatalf("%+v", m)
	}
	m = NewInitiateContact(VersionWin10V5_3, 1, 0x7000, 0x8000, 0x9000, FeatureClientID)
	if sint, vtl, f := m.TargetInfo(); sint != 2 || vtl != 0 || f != 0 {
		t.Fatalf("%+v", m)
	}
	m = NewInitiateContact(VersionWin10V6_0, 0, 0x7000, 0, 0, FeatureClientID)
	if _, _, f := m.TargetInfo(); f != FeatureClientID || m.EncodedLen() != InitiateContactSize {
		t.Fatalf("%+v", m)
	}
}
