package vmbus_test

// End to end: the real guest client against the real simulated host
// (hyperv/host) and its echo device, in one process.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

type world struct {
	ram  *kernel.SimRAM
	srv  *host.Server
	pair *synic.Pair
	dev  *echo.Device
}

func newWorld(t testing.TB, versions []vmbusmsg.Version) *world {
	t.Helper()
	w := &world{ram: kernel.NewSimRAM(4096)}
	srv, err := host.NewServer(host.Config{Memory: w.ram, Versions: versions})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	w.pair = synic.NewPair(srv)
	if err := srv.Attach(w.pair.Host()); err != nil {
		t.Fatal(err)
	}
	w.dev = echo.New(echo.Options{})
	if err := srv.AddDevice(w.dev); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return w
}

// driver hands offers to the test.
type driver struct {
	added   chan *vmbus.Offer
	removed chan *vmbus.Offer
}

func newDriver() *driver {
	return &driver{added: make(chan *vmbus.Offer, 8), removed: make(chan *vmbus.Offer, 8)}
}
func (d *driver) Add(o *vmbus.Offer) { d.added <- o }
func (d *driver) Remove(o *vmbus.Offer) {
	o.Close(context.Background())
	d.removed <- o
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// checker verifies echoed packets: each payload is
// [u32 seq][u32 len][u32 crc][len bytes], possibly followed by ring padding.
type checker struct {
	mu     sync.Mutex
	next   uint32
	bad    atomic.Int64
	got    atomic.Int64
	notify chan struct{}
}

func (c *checker) HandlePackets(_ *vmbus.Channel, pkts []ring.Packet) {
	for i := range pkts {
		p := pkts[i].Payload
		if len(p) < 12 {
			c.bad.Add(1)
			continue
		}
		seq, n, sum := binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:]), binary.LittleEndian.Uint32(p[8:])
		c.mu.Lock()
		ok := seq == c.next && int(n) <= len(p)-12 && crc32.ChecksumIEEE(p[12:12+n]) == sum
		c.next++
		c.mu.Unlock()
		if !ok {
			c.bad.Add(1)
		}
		c.got.Add(1)
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func TestEchoHundredThousandPacketsThenRescind(t *testing.T) {
	baseGoroutines := runtime.NumGoroutine()
	w := newWorld(t, nil)
	freeBefore := w.ram.FreePages()
	drv := newDriver()
	ctx := context.Background()
	bus, err := vmbus.Connect(ctx, vmbus.Config{Port: w.pair.Guest(), Memory: w.ram},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: drv})
	if err != nil {
		t.Fatal(err)
	}
	if bus.Version() != vmbusmsg.VersionWin10V6_0 {
		t.Fatalf("negotiated %v, want 6.0 with a host that supports everything", bus.Version())
	}
	offer := recv(t, drv.added, "echo offer")
	if offer.ClassID() != echo.ClassGUID || offer.RelID() == 0 {
		t.Fatalf("offer %v relid %d", offer.ClassID(), offer.RelID())
	}
	chk := &checker{notify: make(chan struct{}, 1)}
	// Small rings (8 pages: 28 KiB of data each) so the traffic wraps them
	// thousands of times.
	ch, err := offer.Open(ctx, vmbus.OpenOptions{SendPages: 8, RecvPages: 8, Handler: chk})
	if err != nil {
		t.Fatal(err)
	}
	if offer.GPADLs() != 1 {
		t.Fatalf("%d gpadls after open, want the ring's", offer.GPADLs())
	}

	const total = 100_000
	exchange(t, ch, chk, total)
	st := ch.Stats()
	if st.TxPackets != total || st.RxPackets != total {
		t.Fatalf("channel stats %+v", st)
	}
	if es := w.dev.Stats(); es.Packets != total || es.Replies != total || es.Errors != 0 {
		t.Fatalf("echo stats %+v", es)
	}
	t.Logf("guest: %d tx signals, %d full waits, %d rx batches, %d rx signals", st.TxSignals, st.TxFullWaits, st.RxBatches, st.RxSignals)

	// GPA-direct: the host gathers the bytes from guest memory.
	region, err := w.ram.Alloc(3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range region.Bytes {
		region.Bytes[i] = byte(i * 7)
	}
	resp, err := ch.Request(ctx, []byte("plain request"))
	if err != nil || !bytes.HasPrefix(resp, []byte("plain request")) {
		t.Fatalf("request: %q %v", resp, err)
	}
	r := gpa.Range{ByteCount: 9000, ByteOffset: 100, PFNs: region.PFNs[:3]}
	resp, err = ch.RequestTx(ctx, func(tx *vmbus.Tx, id uint64) error {
		return tx.GPADirect(id, true, []gpa.Range{r}, []byte("hdr"))
	})
	if err != nil || !bytes.Equal(resp, region.Bytes[100:9100]) {
		t.Fatalf("gpa-direct echo: %d bytes, err %v", len(resp), err)
	}
	if es := w.dev.Stats(); es.GPADirect != 1 {
		t.Fatalf("echo saw %d gpa-direct packets", es.GPADirect)
	}
	w.ram.Free(region)

	// Rescind: the driver closes, the guest releases the relid, and
	// everything the channel held is gone.
	released, err := w.srv.Rescind(w.dev)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, drv.removed, "driver Remove")
	recv(t, released, "relid released")
	if !offer.Rescinded() || offer.GPADLs() != 0 || offer.Channel() != nil {
		t.Fatalf("after rescind: rescinded=%v gpadls=%d channel=%v", offer.Rescinded(), offer.GPADLs(), offer.Channel())
	}
	if err := ch.SendInBand(1, false, []byte("x")); !errors.Is(err, vmbus.ErrRescinded) {
		t.Fatalf("send after rescind: %v", err)
	}
	if len(bus.Offers()) != 0 {
		t.Fatalf("%d offers left", len(bus.Offers()))
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if free := w.ram.FreePages(); free != freeBefore {
		t.Fatalf("guest memory leaked: %d pages free, %d before", free, freeBefore)
	}
	if bs := bus.Stats(); bs.BadMessages != 0 || bs.PendingWaits != 0 {
		t.Fatalf("bus stats %+v", bs)
	}
	w.srv.Close()
	waitGoroutines(t, baseGoroutines)
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left (base %d):\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exchange sends total in-band packets of mixed sizes (0..3000 bytes, a
// quarter of them under 64) in batches of 1..16 and waits until chk has
// seen every echo.
func exchange(t *testing.T, ch *vmbus.Channel, chk *checker, total int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 12+3000)
	sent := 0
	for sent < total {
		// Batches of 1..16 packets of 0..3000 bytes.
		nb := 1 + rng.IntN(16)
		if sent+nb > total {
			nb = total - sent
		}
		err := ch.Send(func(tx *vmbus.Tx) error {
			for i := 0; i < nb; i++ {
				n := rng.IntN(3001)
				if rng.IntN(4) == 0 {
					n = rng.IntN(64)
				}
				p := buf[:12+n]
				for j := 12; j < len(p); j++ {
					p[j] = byte(rng.Uint32())
				}
				binary.LittleEndian.PutUint32(p, uint32(sent+i))
				binary.LittleEndian.PutUint32(p[4:], uint32(n))
				binary.LittleEndian.PutUint32(p[8:], crc32.ChecksumIEEE(p[12:]))
				if err := tx.InBand(uint64(sent+i), false, p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("send at %d: %v", sent, err)
		}
		sent += nb
	}
	deadline := time.Now().Add(60 * time.Second)
	for chk.got.Load() < int64(total) {
		if time.Now().After(deadline) {
			t.Fatalf("echoed %d of %d", chk.got.Load(), total)
		}
		select {
		case <-chk.notify:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if bad := chk.bad.Load(); bad != 0 {
		t.Fatalf("%d echoed packets failed the content check", bad)
	}
	if bad := chk.bad.Load(); bad != 0 {
		t.Fatalf("%d echoed packets failed the content check", bad)
	}
}
