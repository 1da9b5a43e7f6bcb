package testbed

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestStreamRoundTrip(t *testing.T) {
	b := make([]byte, 128)
	encodeStream(b, GuestMAC, RemoteMAC, ToGuest, 0x0102030405, 99)
	dir, seq, err := decodeStream(b)
	if err != nil || dir != ToGuest || seq != 0x0102030405 {
		t.Fatalf("decode: %v %v %#x", err, dir, seq)
	}
	if [6]byte(b[0:6]) != GuestMAC || [6]byte(b[6:12]) != RemoteMAC || b[12] != 0x88 || b[13] != 0xb5 {
		t.Fatalf("header % x", b[:14])
	}
	b[100] ^= 1
	if _, _, err := decodeStream(b); !errors.Is(err, errCorrupt) {
		t.Fatalf("flipped payload bit: %v", err)
	}
	if _, _, err := decodeStream(b[:30]); !errors.Is(err, errNotStream) {
		t.Fatalf("short frame: %v", err)
	}
}

func TestStreamRxAccounting(t *testing.T) {
	rx := newStreamRx(ToStation, 10)
	f := func(seq uint64) []byte {
		b := make([]byte, 64)
		encodeStream(b, RemoteMAC, GuestMAC, ToStation, seq, 0)
		return b
	}
	rx.markVF(f(2))
	for _, s := range []uint64{0, 1, 2, 2, 5} {
		rx.deliver(f(s), int64(s)*1000)
	}
	wrong := make([]byte, 64)
	encodeStream(wrong, RemoteMAC, GuestMAC, ToGuest, 3, 0)
	rx.deliver(wrong, 0)
	rx.deliver(f(12), 0) // beyond the run's frames
	bad := f(4)
	bad[63] ^= 0xff
	rx.deliver(bad, 0)
	d, n := rx.deliveries(6)
	if n != 4 || rx.dups.Load() != 1 || rx.foreign.Load() != 2 || rx.corrupt.Load() != 1 {
		t.Fatalf("received %d dups %d foreign %d corrupt %d", n, rx.dups.Load(), rx.foreign.Load(), rx.corrupt.Load())
	}
	want := []delivery{{0, PathSynthetic}, {1000, PathSynthetic}, {2000, PathVF}, {5000, PathSynthetic}}
	for i := range want {
		if d[i] != want[i] {
			t.Fatalf("deliveries %v, want %v", d, want)
		}
	}
}

func TestLongestGap(t *testing.T) {
	ts := []int64{10, 20, 30, 80, 90, 200}
	for _, c := range []struct{ from, to, want int64 }{
		{0, 100, 50},  // 30..80
		{35, 85, 45},  // window start 35 to 80
		{85, 150, 60}, // 90 to window end 150
		{100, 190, 90},
		{50, 50, 0},
	} {
		if got := longestGap(ts, c.from, c.to); got != c.want {
			t.Errorf("longestGap(%d, %d) = %d, want %d", c.from, c.to, got, c.want)
		}
	}
	if p := percentileGap(ts, 50); p != 10 {
		t.Errorf("median gap %d", p)
	}
	if p := percentileGap(ts, 99); p != 110 {
		t.Errorf("p99 gap %d", p)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []Config{
		{Mode: "bond"}, {Rate: -1}, {Duration: time.Millisecond}, {Migrations: -1}, {FrameSize: 20}, {TCPBytes: -1}, {AttachWait: -1},
	} {
		if err := c.defaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// FuzzDecodeStream: any frame off the wire decodes or is refused, without
// panicking, and a decoded one re-encodes to the same bytes.
func FuzzDecodeStream(f *testing.F) {
	b := make([]byte, 64)
	encodeStream(b, GuestMAC, RemoteMAC, ToStation, 42, 7)
	f.Add(b)
	f.Add(b[:20])
	f.Fuzz(func(t *testing.T, in []byte) {
		dir, seq, err := decodeStream(in)
		if err != nil {
			return
		}
		out := make([]byte, len(in))
		encodeStream(out, [6]byte(in[0:6]), [6]byte(in[6:12]), dir, seq, int64(binary.BigEndian.Uint64(in[30:38])))
		copy(out[19:22], in[19:22]) // padding is not checked
		if string(out) != string(in) {
			t.Fatalf("re-encoded % x, was % x", out, in)
		}
	})
}

// A migration's loss window ends lossTail after the guest took the VF back
// (a later loss is steady state), an unfinished one runs to the next
// migration's lead-in or the end, and none overlaps the next.
func TestLossWindows(t *testing.T) {
	const start, end = int64(1_000_000_000), int64(5_000_000_000)
	ms := []MigrationReport{
		{WithdrawMS: 300, TakenMS: 470},   // finished
		{WithdrawMS: 1500},                // the guest never took it back
		{WithdrawMS: 1520, TakenMS: 2900}, // starts inside the one before's lead
		{WithdrawMS: 2950, TakenMS: 3100},
	}
	got := lossWindows(start, end, ms)
	lead, tail := int64(lossLead), int64(lossTail)
	at := func(msec float64) int64 { return start + int64(msec*1e6) }
	want := [][2]int64{
		{at(300) - lead, at(470) + tail},
		{at(1500) - lead, at(1520) - lead - 1},
		{at(1520) - lead, at(2950) - lead - 1}, // taken+tail would reach into the next
		{at(2950) - lead, at(3100) + tail},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("window %d: %v, want %v", i, got[i], want[i])
		}
	}
	if w := lossWindows(start, end, ms[3:]); w[0][1] != at(3100)+tail {
		t.Errorf("last window ends %d, want %d", w[0][1], at(3100)+tail)
	}
	if w := lossWindows(start, end, []MigrationReport{{WithdrawMS: 2950}}); w[0][1] != end {
		t.Errorf("an unfinished last migration ends %d, want the run's end %d", w[0][1], end)
	}
}
