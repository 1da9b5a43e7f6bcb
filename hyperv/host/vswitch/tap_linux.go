package vswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hvguest/hvguest/net/packet"
	"github.com/hvguest/hvguest/net/tapdev"
)

// TAPConfig configures a TAPPort.
type TAPConfig struct {
	// Name of the TAP device (at most 15 bytes); empty lets the kernel pick
	// one (tap0, tap1, ...). An existing persistent TAP of that name is
	// attached to. It is also the switch port's name.
	Name string
	// NetNS, if set, is the path of the network namespace to create the TAP
	// in (e.g. /var/run/netns/NAME or /proc/PID/ns/net). The port itself
	// keeps running in the caller's namespace.
	NetNS string
	// VLAN is the port's mode (zero value: access on DefaultVLAN). On a
	// trunk, frames of non-native VLANs are written to the TAP with their
	// 802.1Q tag in the bytes.
	VLAN VLANConfig
	// Pool supplies buffers for frames read from the TAP (default: a new
	// pool of packet.DefaultSize buffers, enough for a 1500-byte MTU; a
	// bigger TAP MTU needs bigger buffers, or frames are truncated).
	Pool *packet.Pool
	// BatchSize is the most frames read from the TAP per SwitchPort.Input
	// (default packet.DefaultBatchSize).
	BatchSize int
}

// TAPStats are a TAP port's counters.
type TAPStats struct {
	FromTAP  uint64 // frames read from the TAP and put into the switch
	ToTAP    uint64 // frames the switch delivered that were written to the TAP
	TxDrops  uint64 // delivered frames not written (TAP queue full or down, port closed)
	NoBuffer uint64 // frames read from the TAP and discarded: the pool was empty
	ReadErrs uint64 // failed reads or polls of the TAP
}

// TAPPort is a switch port whose other end is a Linux TAP device: the
// uplink that lets the real kernel (and ping, tcpdump, iperf in its network
// namespace) talk to the simulated network. One reader goroutine moves
// frames from the TAP into the switch in batches; frames the switch delivers
// are written to the TAP by the delivering goroutine. The TAP is opened
// non-blocking: a frame the kernel's queue has no room for is dropped
// (TxDrops), never waited for.
type TAPPort struct {
	fd    int // the TAP, non-blocking
	wake  int // eventfd that stops the reader
	name  string
	pool  *packet.Pool
	batch int
	port  *SwitchPort

	done chan struct{} // closed when the reader exits
	// fdMu keeps Close from closing fd under a Deliver still writing: a
	// closed descriptor number could be reused by an unrelated file.
	fdMu      sync.RWMutex
	fdClosed  bool // guarded by fdMu
	closeOnce sync.Once
	closeErr  error

	fromTAP, toTAP, txDrops, noBuf, readErrs atomic.Uint64
}

// NewTAPPort creates (or attaches to) the TAP device, attaches it to sw and
// starts its reader goroutine. Close undoes all three.
func NewTAPPort(sw *Switch, cfg TAPConfig) (*TAPPort, error) {
	if sw == nil {
		return nil, errors.New("vswitch: TAP port on a nil switch")
	}
	if len(cfg.Name) > tapdev.MaxNameLen {
		return nil, fmt.Errorf("vswitch: TAP name %q longer than %d bytes", cfg.Name, tapdev.MaxNameLen)
	}
	if cfg.Pool == nil {
		cfg.Pool = packet.MustPool(packet.PoolConfig{})
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = packet.DefaultBatchSize
	}
	fd, name, err := tapdev.Open(cfg.Name, cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("vswitch: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vswitch: eventfd: %w", err)
	}
	t := &TAPPort{fd: fd, wake: wake, name: name, pool: cfg.Pool, batch: cfg.BatchSize,
		done: make(chan struct{})}
	sp, err := sw.Attach(name, t, cfg.VLAN)
	if err != nil {
		unix.Close(wake)
		unix.Close(fd)
		return nil, err
	}
	t.port = sp
	go t.reader()
	return t, nil
}

// Name returns the TAP device's name.
func (t *TAPPort) Name() string { return t.name }

// SwitchPort returns the port's handle on the switch.
func (t *TAPPort) SwitchPort() *SwitchPort { return t.port }

// Stats returns the port's TAP-side counters (the switch side's are in
// SwitchPort().Stats()).
func (t *TAPPort) Stats() TAPStats {
	return TAPStats{FromTAP: t.fromTAP.Load(), ToTAP: t.toTAP.Load(), TxDrops: t.txDrops.Load(),
		NoBuffer: t.noBuf.Load(), ReadErrs: t.readErrs.Load()}
}

// Deliver implements Port: it writes every frame of b to the TAP (with its
// VLAN tag, if Meta carries one, put back into the bytes) and frees it.
// After Close it frees the frames unwritten.
func (t *TAPPort) Deliver(b *packet.Batch) {
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdClosed {
		t.txDrops.Add(uint64(b.Len()))
		b.Free()
		return
	}
	for _, p := range b.Packets() {
		if p.Meta.HasVLAN && !insertTag(p) {
			t.txDrops.Add(1)
			continue
		}
		if _, err := unix.Write(t.fd, p.Bytes()); err != nil {
			t.txDrops.Add(1)
			continue
		}
		t.toTAP.Add(1)
	}
	b.Free()
}

// insertTag moves p's 802.1Q tag from Meta into its bytes, after the two
// addresses; it reports false if p is too short or has no headroom.
func insertTag(p *packet.Packet) bool {
	if p.Len() < 14 {
		return false
	}
	if _, err := p.Prepend(4); err != nil {
		return false
	}
	data := p.Bytes()
	copy(data[0:12], data[4:16])
	binary.BigEndian.PutUint16(data[12:], etherTypeVLAN)
	binary.BigEndian.PutUint16(data[14:], p.Meta.VLAN)
	p.Meta.ClearVLAN()
	return true
}

// reader moves frames from the TAP into the switch until Close.
func (t *TAPPort) reader() {
	defer close(t.done)
	bt := packet.NewBatch(t.batch)
	fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}, {Fd: int32(t.wake), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			t.readErrs.Add(1)
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			t.readErrs.Add(1)
			return
		}
		t.readBatch(bt)
		if n := bt.Len(); n > 0 {
			t.fromTAP.Add(uint64(n))
			t.port.Input(bt) // takes every packet and empties bt
		}
	}
}

// readBatch reads frames until the TAP is empty or the batch is full.
func (t *TAPPort) readBatch(bt *packet.Batch) {
	noBuf, err := tapdev.ReadBatch(t.fd, t.pool, bt)
	t.noBuf.Add(uint64(noBuf))
	if err != nil {
		t.readErrs.Add(1)
	}
}

// Close stops the reader goroutine and waits for it, detaches the port
// from the switch and closes the TAP (a non-persistent TAP device
// disappears). Frames delivered after Close are dropped, never written.
// Close is idempotent.
func (t *TAPPort) Close() error {
	t.closeOnce.Do(func() {
		var one = [8]byte{1}
		if _, err := unix.Write(t.wake, one[:]); err != nil {
			t.closeErr = fmt.Errorf("vswitch: wake TAP reader: %w", err)
		}
		<-t.done
		t.port.Detach()
		t.fdMu.Lock()
		t.fdClosed = true
		if err := unix.Close(t.fd); err != nil && t.closeErr == nil {
			t.closeErr = err
		}
		t.fdMu.Unlock()
		unix.Close(t.wake)
	})
	return t.closeErr
}
