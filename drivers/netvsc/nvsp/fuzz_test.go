package nvsp

import (
	"errors"
	"reflect"
	"testing"
)

var sentinels = []error{ErrShort, ErrUnknownType, ErrUnsupportedType, ErrWrongDirection, ErrInvalid}

// fuzzVersion picks the negotiated version from the input's length so
// both sides of the send-table quirk get exercised.
func fuzzVersion(b []byte) Version { return Versions[len(b)%len(Versions)] }

func checkRoundTrip(t *testing.T, b []byte, dir Direction) {
	v := fuzzVersion(b)
	m, err := decodeDir(b, v, dir)
	if err != nil {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error without a sentinel: %v", err)
	}
	enc := m.Encode()
	if len(enc) != m.EncodedLen() {
		t.Fatalf("%s: encoded %d bytes, EncodedLen %d", m.Type(), len(enc), m.EncodedLen())
	}
	for _, e := range [][]byte{enc, AppendPadded(nil, m, GuestMessageSize)} {
		m2, err := decodeDir(e, v, dir)
		if err != nil {
			t.Fatalf("%s: re-encoded message refused: %v\n%x", m.Type(), err, e)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s: round trip differs\n %+v\n %+v", m.Type(), m, m2)
		}
	}
}

func seed(f *testing.F, dir Direction) {
	for _, g := range goldens() {
		if g.dir == dir {
			f.Add(g.wire)
			f.Add(AppendPadded(nil, g.want, 40))
		}
	}
	f.Add([]byte{})
	f.Add(lay(40, MsgPDAPI))
	f.Add(sendTable(12, 16))
}

func FuzzDecodeFromHost(f *testing.F) {
	seed(f, HostToGuest)
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, HostToGuest) })
}

func FuzzDecodeFromGuest(f *testing.F) {
	seed(f, GuestToHost)
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, GuestToHost) })
}
