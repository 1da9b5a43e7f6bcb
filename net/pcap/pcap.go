// Package pcap captures an ifnet interface's traffic, both directions, to a
// pcap (or pcapng) file written with gopacket's pcapgo.
//
// It is a stack-side debugging tool (guest side; the simulated host never
// imports it): Start installs the interface's observer tap (ifnet
// Interface.Observe), which sees every batch handed to Transmit (before the
// driver takes it) and to Input (before the input chain, so before any
// input override). Frames are written synchronously, under the capture's
// lock, into a buffered writer; Flush pushes buffered frames out and Stop
// removes the tap and flushes. Classic pcap records no direction; with
// Options.NG the pcapng file marks each frame inbound or outbound.
package pcap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// DefaultSnapLen is the snap length used when Options.SnapLen is zero: the
// largest frame an ifnet interface can carry (a 64 KiB TSO frame).
const DefaultSnapLen = 65535 + 14

// ErrStopped is returned by Flush after Stop.
var ErrStopped = errors.New("pcap: capture stopped")

// Options configure a capture.
type Options struct {
	// SnapLen is the most bytes kept of each frame (0: DefaultSnapLen).
	// The file records each frame's full length.
	SnapLen int
	// NG writes pcapng instead of pcap: one interface block named after the
	// interface, and a direction (inbound/outbound) on every frame.
	NG bool
	// Now returns capture timestamps (default time.Now).
	Now func() time.Time
	// BufferSize is the write buffer size (default 64 KiB).
	BufferSize int
}

// Stats counts what a capture wrote.
type Stats struct {
	In, Out   uint64 // frames captured per direction
	Bytes     uint64 // frame bytes written (after the snap length)
	Truncated uint64 // frames cut to the snap length
	Errors    uint64 // frames lost to write errors
}

// Capture is one running capture of one interface.
//
// Concurrency: the observer runs on whatever goroutines transmit and
// receive on the interface; mu serializes them and guards every field below
// it.
type Capture struct {
	ifp     *ifnet.Interface
	obs     *ifnet.Observer
	snap    int
	now     func() time.Time
	outFlag pcapgo.NgPacketOptions
	inFlag  pcapgo.NgPacketOptions

	mu      sync.Mutex
	bw      *bufio.Writer
	pw      *pcapgo.Writer   // classic pcap, or
	ng      *pcapgo.NgWriter // pcapng
	stopped bool
	err     error // first write error
	stats   Stats
}

// Start begins capturing ifp's traffic into w. It writes the file header
// at once. It fails with an error wrapping ifnet.ErrBusy if the interface
// already has an observer (another capture).
func Start(ifp *ifnet.Interface, w io.Writer, opts Options) (*Capture, error) {
	if opts.SnapLen <= 0 {
		opts.SnapLen = DefaultSnapLen
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 64 << 10
	}
	c := &Capture{ifp: ifp, snap: opts.SnapLen, now: opts.Now, bw: bufio.NewWriterSize(w, opts.BufferSize)}
	if opts.NG {
		ng, err := pcapgo.NewNgWriterInterface(c.bw, pcapgo.NgInterface{
			Name:       ifp.Name(),
			LinkType:   layers.LinkTypeEthernet,
			SnapLength: uint32(opts.SnapLen),
		}, pcapgo.DefaultNgWriterOptions)
		if err != nil {
			return nil, fmt.Errorf("pcap: %s: pcapng header: %w", ifp.Name(), err)
		}
		c.ng = ng
		c.outFlag.Flags = &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionOutbound}
		c.inFlag.Flags = &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
	} else {
		c.pw = pcapgo.NewWriterNanos(c.bw)
		if err := c.pw.WriteFileHeader(uint32(opts.SnapLen), layers.LinkTypeEthernet); err != nil {
			return nil, fmt.Errorf("pcap: %s: file header: %w", ifp.Name(), err)
		}
	}
	obs, err := ifp.Observe(c.observe)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	c.obs = obs
	return c, nil
}

// observe writes one batch (the ifnet observer).
func (c *Capture) observe(_ *ifnet.Interface, dir ifnet.Direction, b *packet.Batch) {
	ts := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	for _, p := range b.Packets() {
		data := p.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: ts, Length: len(data)}
		if len(data) > c.snap {
			data = data[:c.snap]
			c.stats.Truncated++
		}
		ci.CaptureLength = len(data)
		var err error
		switch {
		case c.ng == nil:
			err = c.pw.WritePacket(ci, data)
		case dir == ifnet.DirOut:
			err = c.ng.WritePacketWithOptions(ci, data, c.outFlag)
		default:
			err = c.ng.WritePacketWithOptions(ci, data, c.inFlag)
		}
		if err != nil {
			c.stats.Errors++
			if c.err == nil {
				c.err = err
			}
			continue
		}
		c.stats.Bytes += uint64(len(data))
		if dir == ifnet.DirOut {
			c.stats.Out++
		} else {
			c.stats.In++
		}
	}
}

// Flush writes buffered frames to the underlying writer.
func (c *Capture) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	return c.flushLocked()
}

func (c *Capture) flushLocked() error {
	var err error
	if c.ng != nil {
		err = c.ng.Flush() // flushes c.bw too
	} else {
		err = c.bw.Flush()
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	return c.err
}

// Stop removes the tap, flushes and returns the first error the capture
// met. Frames of a batch being observed while Stop runs are either written
// completely before it returns or not at all. The underlying writer is not
// closed. A second Stop returns ErrStopped.
func (c *Capture) Stop() error {
	_ = c.obs.Stop() // only this capture stops its own observer
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	c.stopped = true
	if err := c.flushLocked(); err != nil {
		return fmt.Errorf("pcap: %s: %w", c.ifp.Name(), err)
	}
	return nil
}

// Stats returns the capture's counters.
func (c *Capture) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
