package netvsc

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// maxChannels bounds the channels of one device (Linux VRSS_CHANNEL_MAX).
const maxChannels = 64

// rssState is the multi-queue (vRSS) part of a synth (Linux
// rndis_set_subchannel, netvsc_vf/netvsc_select_queue): the subchannels,
// the RSS parameters set on the host and the host's send table.
//
// Ownership: subs and params are set during attach and immutable until
// detach; sendTab is written by the primary's receive goroutine (the
// host's SEND_INDIRECTION_TABLE) and read by Transmit.
type rssState struct {
	subs    []*subQueue
	params  atomic.Pointer[rndis.RSSParameters] // nil: RSS not set (one channel); replaced by the VF RSS fixup
	sendTab [nvsp.SendTableSize]atomic.Uint32
	granted atomic.Uint32 // channels the host granted (bounds send-table entries)
}

// subQueue is one open subchannel with its own receive state and
// completer; its transmit bookkeeping is the synth's.
type subQueue struct {
	s     *synth
	offer *vmbus.Offer
	open  bool
	rx    rxState
}

// HandlePackets implements vmbus.Handler for a subchannel.
func (q *subQueue) HandlePackets(_ *vmbus.Channel, pkts []ring.Packet) {
	q.s.handlePackets(&q.rx, pkts)
}

// channels returns the number of open channels (1 + subchannels).
func (s *synth) channels() int { return 1 + len(s.rss.subs) }

// wantChannels is how many channels to ask for: min(host queues, 64,
// Config.MaxQueues), or CPUs in place of MaxQueues when it is 0 (Linux).
func (s *synth) wantChannels(hostQueues uint32) int {
	n := int(min(hostQueues, maxChannels))
	if s.cfg.MaxQueues > 0 {
		return min(n, s.cfg.MaxQueues)
	}
	return min(n, runtime.NumCPU())
}

// attachQueues sets up vRSS after RNDIS is up: query the RSS
// capabilities, ask for subchannels, open those the host offers, and set
// RSS parameters over all channels. Any failure leaves the device on the
// channels it has (at least the primary); it is logged, never fatal.
func (s *synth) attachQueues(ctx context.Context) {
	for i := range s.rss.sendTab {
		s.rss.sendTab[i].Store(0)
	}
	if s.ver < nvsp.Version5 || s.cfg.MaxQueues == 1 {
		return
	}
	b, err := s.query(ctx, rndis.OIDGenReceiveScaleCapabilities, rndis.RSSCapabilitiesHeader.AppendTo(make([]byte, 0, rndis.RSSCapabilitiesSizeRev2)))
	if err != nil {
		s.log.Debug("netvsc: no RSS capabilities", "err", err)
		return
	}
	caps, err := rndis.DecodeRSSCapabilities(b)
	if err != nil {
		s.dev.hostLog("netvsc: bad RSS capabilities", "err", err)
		return
	}
	want := s.wantChannels(caps.NumReceiveQueues)
	if want < 2 {
		return
	}
	reply, err := s.request(ctx, &nvsp.SubchannelRequest{Op: nvsp.SubchannelAllocate, Count: uint32(want - 1)})
	if err != nil {
		s.log.Debug("netvsc: SUBCHANNEL", "err", err)
		return
	}
	sc, ok := reply.(*nvsp.SubchannelComplete)
	if !ok || sc.Status != nvsp.StatusSuccess || sc.Count > uint32(want-1) {
		s.dev.hostLog("netvsc: SUBCHANNEL refused", "reply", reply.Type())
		return
	}
	n := int(sc.Count)
	s.rss.granted.Store(uint32(n + 1))
	for i := range s.rss.sendTab { // Linux's default until the host's table arrives
		s.rss.sendTab[i].Store(uint32(i % (n + 1)))
	}
	subs := make([]*subQueue, n)
	timer := s.cfg.Clock.NewTimer(s.cfg.Timeout)
	defer timer.Stop()
	// The offers arrive on the bus dispatcher while this attach runs on
	// the bus worker (so Offer.OnSubchannel callbacks would wait for it):
	// poll the primary's list instead.
	for got := 0; got < n; {
		for _, o := range s.dev.offer.Subchannels() {
			i := int(o.SubChannelIndex()) - 1
			if o.Rescinded() || i < 0 || i >= n || subs[i] != nil {
				continue
			}
			q := &subQueue{s: s, offer: o}
			q.rx.init(s)
			q.rx.queue = uint16(i + 1)
			ch, err := o.Open(ctx, vmbus.OpenOptions{SendPages: s.cfg.RingPages, RecvPages: s.cfg.RingPages, Handler: q})
			if err != nil {
				s.log.Warn("netvsc: open subchannel", "index", i+1, "err", err)
				q.rx.release()
				continue
			}
			q.open, q.rx.ch = true, ch
			subs[i] = q
			s.workers.Add(1)
			go s.completer(&q.rx)
			got++
		}
		if got == n {
			break
		}
		select {
		case <-time.After(time.Millisecond):
		case <-timer.C():
			s.log.Warn("netvsc: subchannel offers missing", "want", n)
			n = 0
		case <-ctx.Done():
			n = 0
		}
	}
	// Keep the opened prefix: queue indices must be dense.
	for i, q := range subs {
		if q == nil {
			s.closeSubs(ctx, subs[i:])
			subs = subs[:i]
			break
		}
	}
	s.rss.subs = subs
	nch := uint32(s.channels())
	if nch < 2 {
		return
	}
	p := rndis.NewRSSParameters(nch)
	if caps.Flags&rndis.RSSCapHashUDPIPv4 != 0 {
		p.HashInfo |= rndis.HashUDPIPv4
	}
	if caps.Flags&rndis.RSSCapHashUDPIPv6 != 0 {
		p.HashInfo |= rndis.HashUDPIPv6
	}
	if err := s.set(ctx, rndis.OIDGenReceiveScaleParameters, p.Encode()); err != nil {
		s.log.Warn("netvsc: RSS parameters", "err", err)
		return
	}
	s.rss.params.Store(p)
}

// closeQueues closes the subchannels (detach, before the primary).
func (s *synth) closeQueues(ctx context.Context) {
	s.closeSubs(ctx, s.rss.subs)
}

func (s *synth) closeSubs(ctx context.Context, subs []*subQueue) {
	for _, q := range subs {
		if q == nil {
			continue
		}
		if q.open && !q.offer.Rescinded() {
			if err := q.offer.Close(ctx); err != nil {
				s.log.Debug("netvsc: close subchannel", "err", err)
			}
		}
		q.open = false
		q.rx.release()
	}
}

// setSendTable records the host's send indirection table; entries naming
// a channel the host did not grant are ignored (primary receive
// goroutine; it may run while attachQueues still opens subchannels).
func (s *synth) setSendTable(tab []uint32) {
	if len(tab) != nvsp.SendTableSize {
		s.dev.hostLog("netvsc: send table of wrong size", "entries", len(tab))
		return
	}
	n := max(s.rss.granted.Load(), 1)
	for i, e := range tab {
		if e < n {
			s.rss.sendTab[i].Store(e)
		}
	}
}

// txChannel picks the channel for p (Linux netvsc_select_queue): an
// explicit Meta.Queue, else the send table at the packet's hash (its
// receive hash, or the Toeplitz hash of its flow under the RSS key).
func (s *synth) txChannel(p *packet.Packet) *vmbus.Channel {
	if len(s.rss.subs) == 0 {
		return s.ch
	}
	n := s.channels()
	var q int
	switch {
	case p.Meta.Queue != 0:
		q = int(p.Meta.Queue) % n
	default:
		h := p.Meta.Hash
		if rp := s.rss.params.Load(); p.Meta.HashType == packet.HashNone && rp != nil {
			h, _, _ = rndis.HashFrame(rp.HashKey, rp.HashInfo, p.Bytes())
		}
		q = int(s.rss.sendTab[h%nvsp.SendTableSize].Load())
	}
	if q == 0 || q > len(s.rss.subs) {
		return s.ch
	}
	return s.rss.subs[q-1].rx.ch
}

// rssConfig is what the interface publishes (ifnet SetRSS).
func (s *synth) rssConfig() ifnet.RSSConfig {
	p := s.rss.params.Load()
	if p == nil {
		return ifnet.RSSConfig{}
	}
	return ifnet.RSSConfig{Func: ifnet.RSSFuncToeplitz, Key: append([]byte(nil), p.HashKey...), Types: rssTypes(p.HashInfo)}
}
