package testbed

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hvguest/hvguest/hyperv/host/vswitch"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// remote is the station on the far side of the host's switch: a switch port
// that receives the guest's stream frames (accounted inline, on the
// delivering goroutine) and hands everything else to a gVisor stack through
// an ifnet interface (rem0) whose driver transmits into the switch.
//
// Ownership: the switch owns the port; remote owns its interface, its
// delivery goroutine (stopped by close) and the free batches. free and queue
// are channels, so no lock guards them; closed is set once by close.
type remote struct {
	mac vswitch.MAC
	sp  *vswitch.SwitchPort
	ifp *ifnet.Interface
	rx  *streamRx // the guest's stream, as received here
	now func() int64

	free, queue chan *packet.Batch
	stop, done  chan struct{}
	closeOnce   sync.Once
	queueDrops  atomic.Uint64 // non-stream frames dropped: delivery queue full
}

const remoteQueue = 512

func newRemote(sw *vswitch.Switch, mac vswitch.MAC, rx *streamRx, now func() int64) (*remote, error) {
	r := &remote{mac: mac, rx: rx, now: now,
		free: make(chan *packet.Batch, remoteQueue), queue: make(chan *packet.Batch, remoteQueue),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range remoteQueue {
		r.free <- packet.NewBatch(packet.DefaultBatchSize)
	}
	ifp, err := ifnet.New(ifnet.Config{Name: "rem0", MAC: net.HardwareAddr(mac[:]),
		Flags: ifnet.FlagBroadcast | ifnet.FlagMulticast}, remoteDriver{r})
	if err != nil {
		return nil, fmt.Errorf("testbed: remote interface: %w", err)
	}
	r.ifp = ifp
	if r.sp, err = sw.Attach("remote", r, vswitch.VLANConfig{}); err != nil {
		return nil, fmt.Errorf("testbed: remote port: %w", err)
	}
	go r.run()
	return r, nil
}

// Deliver implements vswitch.Port. It may run concurrently (frames from the
// synthetic NIC's port and from the VF's port) and reentrantly.
func (r *remote) Deliver(b *packet.Batch) {
	var out *packet.Batch
	now := r.now()
	for _, p := range b.Packets() {
		if isStream(p) {
			r.rx.deliver(p.Bytes(), now)
			p.Free()
			continue
		}
		if out != nil && out.Full() {
			r.enqueue(out)
			out = nil
		}
		if out == nil {
			select {
			case out = <-r.free:
			default:
				r.queueDrops.Add(1)
				p.Free()
				continue
			}
		}
		out.Add(p)
	}
	if out != nil {
		r.enqueue(out)
	}
}

func (r *remote) enqueue(b *packet.Batch) {
	if b.Len() == 0 {
		r.free <- b
		return
	}
	select {
	case r.queue <- b:
	case <-r.stop:
		b.Free()
		r.free <- b
	}
}

// run hands queued frames to rem0's input (the gVisor stack) until close.
func (r *remote) run() {
	defer close(r.done)
	for {
		select {
		case b := <-r.queue:
			r.ifp.Input(b)
			b.Free() // Input leaves the batch empty; Free is a no-op then
			r.free <- b
		case <-r.stop:
			for {
				select {
				case b := <-r.queue:
					b.Free()
				default:
					return
				}
			}
		}
	}
}

// send puts frames into the switch from the remote's port.
func (r *remote) send(b *packet.Batch) { r.sp.Input(b) }

func (r *remote) close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		r.sp.Detach()
	})
}

// remoteDriver is rem0's driver: transmit is a switch input.
type remoteDriver struct{ r *remote }

func (d remoteDriver) Transmit(b *packet.Batch) (int, error) {
	n := b.Len()
	d.r.sp.Input(b)
	return n, nil
}

func (d remoteDriver) Ioctl(req ifnet.Request) error {
	switch q := req.(type) {
	case *ifnet.SetFlags:
		d.r.ifp.SetRunning(q.Flags&ifnet.FlagUp != 0)
	case *ifnet.SetMTU, *ifnet.AddMulti, *ifnet.DelMulti, *ifnet.SetCapabilities, *ifnet.GetMedia:
	default:
		return fmt.Errorf("testbed: rem0: %s: %w", req.RequestName(), ifnet.ErrNotSupported)
	}
	return nil
}
