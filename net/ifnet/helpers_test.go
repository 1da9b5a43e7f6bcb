package ifnet

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/net/packet"
)

// fakeDriver records ioctls and frees transmitted packets.
type fakeDriver struct {
	mu      sync.Mutex
	reqs    []string
	fail    map[string]error
	hook    func(Request) error // runs before fail, if set
	txLimit int                 // most packets taken per Transmit (0: all)
	txPkts  atomic.Int64
	txBytes atomic.Int64
}

// customReq is a driver-specific request (the escape hatch).
type customReq struct{ In, Out int }

func (*customReq) RequestName() string { return "custom" }

// customQuery is a driver-specific request that says whether it only
// reads.
type customQuery struct{ write bool }

func (*customQuery) RequestName() string { return "customQuery" }
func (q *customQuery) ReadOnly() bool    { return !q.write }

type unknownReq struct{}

func (*unknownReq) RequestName() string { return "unknown" }

func (d *fakeDriver) Transmit(b *packet.Batch) (int, error) {
	n := b.Len()
	if d.txLimit > 0 && n > d.txLimit {
		n = d.txLimit
	}
	var bytes int64
	for _, p := range b.Packets()[:n] {
		bytes += int64(p.Len())
	}
	d.txBytes.Add(bytes)
	d.txPkts.Add(int64(n))
	if n == b.Len() {
		b.Free() // the "hardware" is done at once
	} else {
		for _, p := range b.Packets()[:n] {
			p.Free()
		}
		b.Consume(n)
	}
	if b.Len() > 0 {
		return n, fmt.Errorf("fake: ring full: %w", ErrBusy)
	}
	return n, nil
}

func (d *fakeDriver) Ioctl(req Request) error {
	d.mu.Lock()
	d.reqs = append(d.reqs, req.RequestName())
	hook, err := d.hook, d.fail[req.RequestName()]
	d.mu.Unlock()
	if hook != nil {
		if err := hook(req); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	switch r := req.(type) {
	case *customReq:
		r.Out = r.In * 2
	case *unknownReq:
		return fmt.Errorf("fake: %w", ErrNotSupported)
	}
	return nil
}

func (d *fakeDriver) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.reqs...)
}

func (d *fakeDriver) failWith(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail == nil {
		d.fail = map[string]error{}
	}
	d.fail[name] = err
}

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, last} }

func newTestIf(t testing.TB, name string, caps Cap) (*Interface, *fakeDriver) {
	t.Helper()
	d := &fakeDriver{}
	ifp, err := New(Config{Name: name, MAC: mac(1), Flags: FlagBroadcast | FlagMulticast,
		Capabilities: caps, Enabled: caps, TSO: TSOLimits{65535, 32, 4096}}, d)
	if err != nil {
		t.Fatal(err)
	}
	return ifp, d
}

func mustIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkGoroutines fails the test if it leaves goroutines behind.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// fill gets n packets of size bytes each into b.
func fill(t testing.TB, pool *packet.Pool, b *packet.Batch, n, size int, first byte) {
	t.Helper()
	if got := pool.GetBatch(b, n); got != n {
		t.Fatalf("pool gave %d of %d", got, n)
	}
	for i, p := range b.Packets() {
		data, err := p.Append(size)
		if err != nil {
			t.Fatal(err)
		}
		clear(data)
		data[0] = 0x02
		if size > 6 {
			data[6] = first + byte(i)
		}
	}
}
