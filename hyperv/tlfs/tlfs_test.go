package tlfs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Layout from TLFS HvCallPostMessage / Linux struct hv_input_post_message:
// conn id @0, rsvd @4, message type @8, payload size @12, payload @16.
func TestGoldenPostMessageInput(t *testing.T) {
	want := make([]byte, 256)
	copy(want, unhex(t, "04000000 00000000 01000000 03000000 aabbcc"))
	in, err := NewPostMessageInput(VMBusMessageConnectionID4, MsgVMBus, []byte{0xaa, 0xbb, 0xcc})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	d, err := DecodePostMessageInput(want)
	if err != nil {
		t.Fatal(err)
	}
	if d != in || !bytes.Equal(d.Data(), []byte{0xaa, 0xbb, 0xcc}) {
		t.Fatalf("decoded %+v", d)
	}
	// Only header + PayloadSize bytes are needed.
	if _, err := DecodePostMessageInput(want[:19]); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodePostMessageInput(want[:18]); !errors.Is(err, ErrShort) {
		t.Fatalf("short payload: %v", err)
	}
}

func TestPostMessageInputRejects(t *testing.T) {
	base := unhex(t, "01000000 00000000 01000000 08000000")
	for name, mut := range map[string]func(b []byte){
		"type zero":    func(b []byte) { b[8] = 0 },
		"type msb":     func(b []byte) { b[11] = 0x80 },
		"size 241":     func(b []byte) { b[12] = 241 },
		"rsvd":         func(b []byte) { b[4] = 1 },
		"conn id bits": func(b []byte) { b[3] = 1 },
	} {
		b := append(append([]byte{}, base...), make([]byte, 240)...)
		mut(b)
		_, err := DecodePostMessageInput(b)
		var st Status
		if !errors.As(err, &st) || st != StatusInvalidParameter {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := NewPostMessageInput(1, MsgVMBus, make([]byte, 241)); !errors.Is(err, ErrPayloadSize) {
		t.Fatal(err)
	}
}

// Layout from Linux struct hv_input_signal_event / FreeBSD hyperv_mon_param:
// conn id @0, flag number @4, rsvd @6; the fast form puts it all in RDX.
func TestGoldenSignalEvent(t *testing.T) {
	want := unhex(t, "0e200000 0100 0000")
	s := SignalEventInput{ConnectionID: 0x200e, FlagNumber: 1}
	if got := s.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("got %x", got)
	}
	if s.Fast() != 0x1_0000_200e {
		t.Fatalf("fast %#x", s.Fast())
	}
	d, err := DecodeSignalEventInput(want)
	if err != nil || d != s {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := SignalEventFromFast(1 << 50); !errors.Is(err, StatusInvalidParameter) {
		t.Fatal(err)
	}
	if _, err := DecodeSignalEventInput(want[:7]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
}

func TestControlAndResult(t *testing.T) {
	// Linux hv_do_fast_hypercall8(HVCALL_SIGNAL_EVENT, ...) uses 0x1005d.
	if c := Control(HvCallSignalEvent, true); c != 0x1005D {
		t.Fatalf("%#x", c)
	}
	if c := Control(HvCallPostMessage, false); c != 0x5C || ControlIsFast(c) || ControlCode(c) != HvCallPostMessage {
		t.Fatalf("%#x", c)
	}
	if c := RepControl(HvCallMmioRead, false, 3, 1); c != 0x106|3<<32|1<<48 {
		t.Fatalf("%#x", c)
	}
	if ControlVarHeaderSize(2<<17) != 2 {
		t.Fatal("var header")
	}
	r := Result(StatusInsufficientBuffers, 7)
	if StatusFromResult(r) != StatusInsufficientBuffers || RepsFromResult(r) != 7 {
		t.Fatalf("%#x", r)
	}
}

func TestStatus(t *testing.T) {
	// Values: Linux include/hyperv/hvgdk_mini.h HV_STATUS_*.
	for s, v := range map[Status]uint16{
		StatusSuccess: 0, StatusInvalidHypercallCode: 2, StatusInvalidHypercallInput: 3,
		StatusInvalidAlignment: 4, StatusInvalidParameter: 5, StatusAccessDenied: 6,
		StatusInsufficientMemory: 0xB, StatusInvalidPortID: 0x11, StatusInvalidConnectionID: 0x12,
		StatusInsufficientBuffers: 0x13, StatusNotAcknowledged: 0x14,
	} {
		if uint16(s) != v {
			t.Errorf("%v = %#x want %#x", s, uint16(s), v)
		}
	}
	if StatusSuccess.Err() != nil {
		t.Fatal("success is an error")
	}
	err := StatusInvalidConnectionID.Err()
	if !errors.Is(err, StatusInvalidConnectionID) || err.Error() != "hypervisor: HV_STATUS_INVALID_CONNECTION_ID" {
		t.Fatal(err)
	}
	if Status(0x999).String() != "HV_STATUS(0x0999)" {
		t.Fatal(Status(0x999).String())
	}
	if !StatusInsufficientBuffers.Transient() || StatusInvalidConnectionID.Transient() {
		t.Fatal("transient")
	}
}

// Layout from TLFS HV_MESSAGE / Linux struct hv_message_header / FreeBSD
// struct vmbus_message: type @0, size @4, flags @5, rsvd @6, origin @8,
// payload @16.
func TestGoldenMessage(t *testing.T) {
	want := make([]byte, 256)
	copy(want, unhex(t, "01000000 10 01 0000 0100000000000000 0f000000 00000000 00000000 00000000"))
	m, err := NewMessage(MsgVMBus, 1, unhex(t, "0f000000 00000000 00000000 00000000"))
	if err != nil {
		t.Fatal(err)
	}
	m.Flags = MessagePending
	if got := m.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	d, err := DecodeMessage(want)
	if err != nil || d != m || !d.Pending() || len(d.Data()) != 16 {
		t.Fatalf("%+v %v", d, err)
	}
	bad := append([]byte{}, want...)
	bad[4] = 241
	if _, err := DecodeMessage(bad); !errors.Is(err, ErrPayloadSize) {
		t.Fatal(err)
	}
	if _, err := DecodeMessage(want[:255]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if _, err := NewMessage(MsgVMBus, 0, make([]byte, 241)); !errors.Is(err, ErrPayloadSize) {
		t.Fatal(err)
	}
}

// Layout from Linux struct hv_timer_message_payload.
func TestGoldenTimerPayload(t *testing.T) {
	want := unhex(t, "02000000 00000000 0807060504030201 1112131415161718")
	p := TimerMessagePayload{TimerIndex: 2, ExpirationTime: 0x0102030405060708, DeliveryTime: 0x1817161514131211}
	if got := p.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("%x", got)
	}
	d, err := DecodeTimerMessagePayload(want)
	if err != nil || d != p {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := DecodeTimerMessagePayload(want[:23]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
}

func TestMessageTypes(t *testing.T) {
	if MsgTimerExpired != 0x80000010 || MsgVMBus != 1 || MsgX64LegacyFPError != 0x80010005 {
		t.Fatal("values")
	}
	if !MsgVMBus.Postable() || MsgNone.Postable() || MsgTimerExpired.Postable() {
		t.Fatal("postable")
	}
	if MsgTimerExpired.String() != "HVMSG_TIMER_EXPIRED" || MessageType(5).String() != "HVMSG(0x00000005)" {
		t.Fatal(MessageType(5).String())
	}
}

func TestVMBusConstants(t *testing.T) {
	if VMBusMessageSlotOffset != 512 || VMBusEventFlagsOffset != 512 || EventFlagsPerSINT != 2048 {
		t.Fatal("offsets")
	}
	if MSRSINTForVMBus != 0x40000092 || VMBusMaxMessageSize != 240 {
		t.Fatal("msr")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	m, _ := NewMessage(MsgVMBus, 1, []byte{4, 0, 0, 0, 0, 0, 0, 0})
	f.Add(m.Encode())
	f.Add(make([]byte, 256))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeMessage(b)
		if err != nil {
			if len(b) >= MessageSize && b[4] <= MessagePayloadMax {
				t.Fatalf("rejected a valid message: %v", err)
			}
			return
		}
		enc := d.Encode()
		// Everything but the reserved bytes survives the round trip.
		if !bytes.Equal(enc[:6], b[:6]) || !bytes.Equal(enc[8:], b[8:MessageSize]) {
			t.Fatalf("re-encode differs\n in %x\nout %x", b[:MessageSize], enc)
		}
		d2, err := DecodeMessage(enc)
		if err != nil || d2 != d {
			t.Fatalf("second decode %+v %v", d2, err)
		}
	})
}
