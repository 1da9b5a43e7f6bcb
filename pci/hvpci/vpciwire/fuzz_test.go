package vpciwire

import (
	"errors"
	"reflect"
	"testing"
)

var sentinels = []error{ErrShort, ErrUnknownType, ErrWrongDirection, ErrInconsistent}

func hasSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// checkRoundTrip: a decoded message re-encodes to bytes that decode to the
// same message, and re-encoding those gives identical bytes.
func checkRoundTrip(t *testing.T, b []byte, dec func([]byte) (Message, error)) {
	m, err := dec(b)
	if err != nil {
		if !hasSentinel(err) {
			t.Fatalf("error without a sentinel: %v", err)
		}
		return
	}
	enc := m.Encode()
	if len(enc) != m.EncodedLen() {
		t.Fatalf("%s: encoded %d bytes, EncodedLen %d", m.Type(), len(enc), m.EncodedLen())
	}
	m2, err := dec(enc)
	if err != nil {
		t.Fatalf("%s: re-encoded message refused: %v\n%x", m.Type(), err, enc)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("%s: round trip differs\n %+v\n %+v", m.Type(), m, m2)
	}
	if enc2 := m2.Encode(); string(enc2) != string(enc) {
		t.Fatalf("%s: encoding not stable", m.Type())
	}
}

// checkReplies runs every completion decoder over b: each either refuses
// with a sentinel or round-trips.
func checkReplies(t *testing.T, b []byte) {
	try := func(r Reply, err error, redo func([]byte) (Reply, error)) {
		if err != nil {
			if !hasSentinel(err) {
				t.Fatalf("reply error without a sentinel: %v", err)
			}
			return
		}
		enc := r.Encode()
		r2, err := redo(enc)
		if err != nil || !reflect.DeepEqual(r, r2) || len(enc) != r.EncodedLen() {
			t.Fatalf("reply round trip: %+v -> %x -> %+v (%v)", r, enc, r2, err)
		}
	}
	wrap := func(f func([]byte) (Reply, error)) (Reply, error, func([]byte) (Reply, error)) {
		r, err := f(b)
		return r, err, f
	}
	try(wrap(func(b []byte) (Reply, error) { return DecodeStatusReply(b) }))
	try(wrap(func(b []byte) (Reply, error) { return DecodeResourceRequirementsReply(b) }))
	try(wrap(func(b []byte) (Reply, error) { return DecodeCreateInterruptReply(b) }))
	try(wrap(func(b []byte) (Reply, error) { return DecodePowerStateReply(b) }))
	try(wrap(func(b []byte) (Reply, error) { return DecodeResourcesAssignedReply(b) }))
	if len(b) >= 8 { // a 4-byte reply has no version word and re-encodes to 8
		try(wrap(func(b []byte) (Reply, error) { return DecodeVersionReply(b) }))
	}
	if len(b) > 0 {
		n := int(b[0]) % (MaxBlockSize + 1)
		try(wrap(func(b []byte) (Reply, error) { return DecodeReadBlockReply(b, n) }))
	}
}

func seed(f *testing.F, dir Direction) {
	for _, g := range goldens() {
		if g.want.Type().Direction() == dir {
			f.Add([]byte(g.wire))
		}
	}
	f.Add([]byte{})
	f.Add([]byte(lay(4, MessageBase)))
}

func FuzzDecodeFromHost(f *testing.F) {
	seed(f, HostToGuest)
	f.Add([]byte(lay(28, 0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRoundTrip(t, b, DecodeFromHost)
		checkReplies(t, b)
	})
}

func FuzzDecodeFromGuest(f *testing.F) {
	seed(f, GuestToHost)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRoundTrip(t, b, DecodeFromGuest)
		if _, _, err := ClassifyWindowAccess(uint64(len(b))<<4, len(b)%9, len(b)%2 == 0); err != nil && !errors.Is(err, ErrWindow) {
			t.Fatal(err)
		}
	})
}
