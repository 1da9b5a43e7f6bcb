package tap

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/net/tapdev"
)

// Config configures a bridge.
type Config struct {
	// Name of the TAP device (at most 15 bytes); empty lets the kernel pick
	// one (tap0, tap1, ...). An existing persistent TAP of that name is
	// attached to.
	Name string
	// NetNS, if set, is the path of the network namespace to create the TAP
	// in (e.g. /var/run/netns/NAME or /proc/PID/ns/net). The bridge itself
	// keeps running in the caller's namespace.
	NetNS string
	// Pool supplies buffers for frames read from the TAP (default: a new
	// pool of packet.DefaultSize buffers, enough for a 1500-byte MTU).
	Pool *packet.Pool
	// BatchSize is the most frames read per Transmit (default
	// packet.DefaultBatchSize).
	BatchSize int
}

// Stats counts the bridge's traffic.
type Stats struct {
	FromTAP, ToTAP uint64 // frames moved in each direction
	RxDrops        uint64 // frames from the TAP the interface did not take
	TxDrops        uint64 // frames for the TAP that could not be written
	ReadErrors     uint64 // failed reads from the TAP
}

// Bridge joins one ifnet interface to one TAP device.
type Bridge struct {
	ifp   *ifnet.Interface
	fd    int // the TAP, non-blocking
	wake  int // eventfd that stops the reader
	name  string
	pool  *packet.Pool
	batch int

	done chan struct{} // closed when the reader exits
	// fdMu keeps Close from closing fd under an input call still running
	// (ifnet lets an input finish after SetInput replaced it): a closed
	// descriptor number could be reused by an unrelated file.
	fdMu      sync.RWMutex
	fdClosed  bool // guarded by fdMu
	closeOnce sync.Once
	closeErr  error

	fromTAP, toTAP, rxDrops, txDrops, readErrs atomic.Uint64
}

// Open creates (or attaches to) the TAP device and starts bridging it to
// ifp: it installs the bridge as ifp's input and starts the reader
// goroutine. Close undoes both.
func Open(ifp *ifnet.Interface, cfg Config) (*Bridge, error) {
	if ifp == nil {
		return nil, errors.New("tap: nil interface")
	}
	if len(cfg.Name) > tapdev.MaxNameLen {
		return nil, fmt.Errorf("tap: name %q longer than %d bytes", cfg.Name, tapdev.MaxNameLen)
	}
	if cfg.Pool == nil {
		cfg.Pool = packet.MustPool(packet.PoolConfig{})
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = packet.DefaultBatchSize
	}
	fd, name, err := tapdev.Open(cfg.Name, cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: eventfd: %w", err)
	}
	b := &Bridge{ifp: ifp, fd: fd, wake: wake, name: name, pool: cfg.Pool, batch: cfg.BatchSize,
		done: make(chan struct{})}
	ifp.SetInput(b.input)
	go b.reader()
	return b, nil
}

// Name returns the TAP device's name.
func (b *Bridge) Name() string { return b.name }

// Stats returns the bridge's counters.
func (b *Bridge) Stats() Stats {
	return Stats{FromTAP: b.fromTAP.Load(), ToTAP: b.toTAP.Load(), RxDrops: b.rxDrops.Load(),
		TxDrops: b.txDrops.Load(), ReadErrors: b.readErrs.Load()}
}

// input is the interface's input: every received frame goes to the TAP.
// A full TAP queue (EAGAIN) or a TAP that is down drops the frame.
func (b *Bridge) input(_ *ifnet.Interface, bt *packet.Batch) {
	b.fdMu.RLock()
	defer b.fdMu.RUnlock()
	if b.fdClosed {
		b.txDrops.Add(uint64(bt.Len()))
		bt.Free()
		return
	}
	for _, p := range bt.Packets() {
		if _, err := unix.Write(b.fd, p.Bytes()); err != nil {
			b.txDrops.Add(1)
			continue
		}
		b.toTAP.Add(1)
	}
	bt.Free()
}

// reader moves frames from the TAP to the interface until Close.
func (b *Bridge) reader() {
	defer close(b.done)
	bt := packet.NewBatch(b.batch)
	fds := []unix.PollFd{{Fd: int32(b.fd), Events: unix.POLLIN}, {Fd: int32(b.wake), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			b.readErrs.Add(1)
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			b.readErrs.Add(1)
			return
		}
		b.readBatch(bt)
		if bt.Len() == 0 {
			continue
		}
		sent, _ := b.ifp.Transmit(bt)
		b.fromTAP.Add(uint64(sent))
		if left := bt.Len(); left > 0 {
			b.rxDrops.Add(uint64(left))
			bt.Free()
		}
	}
}

// readBatch reads frames until the TAP is empty or the batch is full.
func (b *Bridge) readBatch(bt *packet.Batch) {
	noBuf, err := tapdev.ReadBatch(b.fd, b.pool, bt)
	if noBuf > 0 {
		b.ifp.CountDrops(ifnet.DropNoBuffer, noBuf)
	}
	if err != nil {
		b.readErrs.Add(1)
	}
}

// Close stops the reader goroutine (and waits for it), uninstalls the
// bridge's input from the interface and closes the TAP (a non-persistent
// TAP device disappears). It is idempotent.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		var one = [8]byte{1}
		if _, err := unix.Write(b.wake, one[:]); err != nil {
			b.closeErr = fmt.Errorf("tap: wake reader: %w", err)
		}
		<-b.done
		b.ifp.SetInput(nil)
		b.fdMu.Lock()
		b.fdClosed = true
		if err := unix.Close(b.fd); err != nil && b.closeErr == nil {
			b.closeErr = err
		}
		b.fdMu.Unlock()
		unix.Close(b.wake)
	})
	return b.closeErr
}
