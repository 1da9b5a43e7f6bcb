package vswitch

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/net/packet"
)

// Defaults of Config.
const (
	DefaultAgingTime  = 300 * time.Second
	DefaultMaxEntries = 8192
	// DefaultLargeSize is the buffer size of the pool for flood copies of
	// frames too big for Config.Pool (LSO frames from a synthetic NIC).
	DefaultLargeSize = 65536 + 64
)

// Config configures a Switch.
type Config struct {
	// Clock measures address ages (default kernel.RealClock).
	Clock kernel.Clock
	// AgingTime is how long a learned address lives without traffic
	// (default DefaultAgingTime; negative: forever).
	AgingTime time.Duration
	// MaxEntries bounds the forwarding table; addresses beyond it are not
	// learned (frames to them are flooded). Default DefaultMaxEntries.
	MaxEntries int
	// Pool provides flood copies of ordinary frames (default: a pool of
	// packet.DefaultSize buffers); LargePool those of bigger frames
	// (default: DefaultLargeSize buffers).
	Pool, LargePool *packet.Pool
	// NoAger: do not start the goroutine that sweeps aged entries; they are
	// still ignored once aged, and Age removes them.
	NoAger bool
}

// Stats are the switch's own counters.
type Stats struct {
	Ports     int
	Entries   int    // forwarding-table entries now
	Learned   uint64 // addresses learned
	Moves     uint64 // addresses that moved to another port
	Aged      uint64 // entries removed by aging
	TableFull uint64 // addresses not learned because the table was full
	Flooded   uint64 // frames flooded (broadcast, multicast, unknown unicast)
	Switched  uint64 // frames forwarded to one learned port
}

// Switch is a learning Ethernet switch. Its methods are safe for concurrent
// use.
type Switch struct {
	clock     kernel.Clock
	maxAge    int64
	pool      *packet.Pool
	largePool *packet.Pool
	fdb       fdb

	mu     sync.Mutex // guards port-list and steering-table changes and nextID
	ports  atomic.Pointer[[]*SwitchPort]
	nextID int
	// steer maps fdbKey(mac, 0) to the address's Steering (steer.go);
	// copy-on-write under mu, read without locks.
	steer atomic.Pointer[map[uint64]*Steering]

	workMu sync.Mutex
	free   []*work

	learned, moves, aged, full, flooded, switched atomic.Uint64

	done      chan struct{}
	closeOnce sync.Once
	agerDone  chan struct{}
}

// ErrClosed is returned by Attach on a closed switch.
var ErrClosed = errors.New("vswitch: switch closed")

// New returns a switch with no ports.
func New(cfg Config) *Switch {
	if cfg.Clock == nil {
		cfg.Clock = kernel.RealClock{}
	}
	if cfg.AgingTime == 0 {
		cfg.AgingTime = DefaultAgingTime
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Pool == nil {
		cfg.Pool = packet.MustPool(packet.PoolConfig{})
	}
	if cfg.LargePool == nil {
		cfg.LargePool = packet.MustPool(packet.PoolConfig{Size: DefaultLargeSize})
	}
	s := &Switch{
		clock:     cfg.Clock,
		maxAge:    int64(cfg.AgingTime),
		pool:      cfg.Pool,
		largePool: cfg.LargePool,
		fdb:       fdb{m: make(map[uint64]*fdbEntry), max: cfg.MaxEntries},
		done:      make(chan struct{}),
	}
	if cfg.AgingTime < 0 {
		s.maxAge = 1<<63 - 1
	}
	empty := []*SwitchPort{}
	s.ports.Store(&empty)
	noSteer := map[uint64]*Steering{}
	s.steer.Store(&noSteer)
	if cfg.AgingTime > 0 && !cfg.NoAger {
		s.agerDone = make(chan struct{})
		go s.ager(cfg.AgingTime / 2)
	}
	return s
}

// Close stops the ager. The switch keeps forwarding.
func (s *Switch) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.agerDone != nil {
			<-s.agerDone
		}
	})
}

func (s *Switch) ager(every time.Duration) {
	defer close(s.agerDone)
	for {
		t := s.clock.NewTimer(every)
		select {
		case <-t.C():
			s.Age()
		case <-s.done:
			t.Stop()
			return
		}
	}
}

// Attach connects p to the switch with VLAN mode vc; the port's link is up.
func (s *Switch) Attach(name string, p Port, vc VLANConfig) (*SwitchPort, error) {
	cvc, err := vc.compile()
	if err != nil {
		return nil, err
	}
	select {
	case <-s.done:
		return nil, ErrClosed
	default:
	}
	sp := &SwitchPort{sw: s, name: name, port: p}
	sp.vlan.Store(cvc)
	sp.up.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	sp.id = s.nextID
	s.nextID++
	old := *s.ports.Load()
	ports := make([]*SwitchPort, len(old), len(old)+1)
	copy(ports, old)
	sp.slot.Store(int32(len(ports)))
	ports = append(ports, sp)
	s.ports.Store(&ports)
	return sp, nil
}

func (s *Switch) detach(sp *SwitchPort) {
	s.mu.Lock()
	old := *s.ports.Load()
	ports := make([]*SwitchPort, 0, len(old))
	for _, p := range old {
		if p != sp {
			p.slot.Store(int32(len(ports)))
			ports = append(ports, p)
		}
	}
	sp.slot.Store(-1)
	s.ports.Store(&ports)
	s.mu.Unlock()
	s.fdb.flush(sp, true)
	if m := sp.member.Load(); m != nil {
		if m.vf {
			if m.st.vf.CompareAndSwap(sp, nil) {
				m.st.quiesce()
			}
			sp.member.Store(nil)
		} else {
			m.st.Close()
		}
	}
}

// Ports returns the attached ports in attach order.
func (s *Switch) Ports() []*SwitchPort {
	return append([]*SwitchPort(nil), *s.ports.Load()...)
}

// AddStatic pins mac on vid to port p; a static entry never ages and is
// not moved by learning.
func (s *Switch) AddStatic(mac MAC, vid uint16, p *SwitchPort) {
	s.fdb.setStatic(fdbKey(mac[:], vid), p)
}

// Remove forgets mac on vid; it reports whether there was an entry.
func (s *Switch) Remove(mac MAC, vid uint16) bool { return s.fdb.remove(fdbKey(mac[:], vid)) }

// FlushPort forgets the dynamic addresses learned on p.
func (s *Switch) FlushPort(p *SwitchPort) int { return s.fdb.flush(p, false) }

// Flush forgets every dynamic address.
func (s *Switch) Flush() int { return s.fdb.flush(nil, false) }

// Lookup returns the port unicast to mac on vid would be forwarded to, if
// known and not aged; for a steered address, the member port chosen now
// (ignoring SYNToSynthetic).
func (s *Switch) Lookup(mac MAC, vid uint16) (*SwitchPort, bool) {
	if st := s.steering(mac[:]); st != nil {
		if vf := st.vf.Load(); st.toVF.Load() && usableVF(vf) && vf.vlan.Load().member(vid) {
			return vf, true
		}
		if st.synth.vlan.Load().member(vid) {
			return st.synth, true
		}
	}
	p := s.fdb.lookup(fdbKey(mac[:], vid), s.clock.Now().UnixNano(), s.maxAge)
	return p, p != nil
}

// Table returns the forwarding table sorted by VLAN and address, aged
// entries that have not yet been swept included.
func (s *Switch) Table() []FDBEntry { return s.fdb.table(s.clock.Now().UnixNano()) }

// Age removes the entries older than the aging time and returns how many.
func (s *Switch) Age() int {
	n := s.fdb.age(s.clock.Now().UnixNano(), s.maxAge)
	s.aged.Add(uint64(n))
	return n
}

// Stats returns a snapshot of the switch's counters.
func (s *Switch) Stats() Stats {
	return Stats{
		Ports:     len(*s.ports.Load()),
		Entries:   s.fdb.len(),
		Learned:   s.learned.Load(),
		Moves:     s.moves.Load(),
		Aged:      s.aged.Load(),
		TableFull: s.full.Load(),
		Flooded:   s.flooded.Load(),
		Switched:  s.switched.Load(),
	}
}

// work is the scratch state of one input call: one output batch per port
// of the snapshot, the slots touched in first-touch order, flood targets.
type work struct {
	outs    []*packet.Batch
	marked  []bool // slot is in touched
	touched []int32
	targets []int32
	held    []*Steering // steerings this call decided to send to the VF (steer.go)
}

func (s *Switch) getWork(n int) *work {
	s.workMu.Lock()
	var w *work
	if k := len(s.free); k > 0 {
		w = s.free[k-1]
		s.free = s.free[:k-1]
	}
	s.workMu.Unlock()
	if w == nil {
		w = &work{}
	}
	for len(w.outs) < n {
		w.outs = append(w.outs, packet.NewBatch(packet.DefaultBatchSize))
		w.marked = append(w.marked, false)
	}
	if cap(w.touched) < n {
		w.touched = make([]int32, 0, n)
		w.targets = make([]int32, 0, n)
	}
	return w
}

func (s *Switch) putWork(w *work) {
	s.workMu.Lock()
	s.free = append(s.free, w)
	s.workMu.Unlock()
}

const etherTypeVLAN = 0x8100

func (s *Switch) input(in *SwitchPort, b *packet.Batch) {
	n := b.Len()
	if n == 0 {
		return
	}
	in.stats.rxFrames.Add(uint64(n))
	in.stats.rxBytes.Add(uint64(b.Bytes()))
	if in.slot.Load() < 0 || !in.up.Load() {
		in.drop(DropLinkDown, uint64(n))
		b.Free()
		return
	}
	ports := *s.ports.Load()
	w := s.getWork(len(ports))
	now := s.clock.Now().UnixNano()
	ivc := in.vlan.Load()
	var ing *Steering // the steering in belongs to, if any
	if m := in.member.Load(); m != nil {
		ing = m.st
	}
	for _, p := range b.Packets() {
		data := p.Bytes()
		if len(data) < 14 {
			in.drop(DropRunt, 1)
			p.Free()
			continue
		}
		if !p.Meta.HasVLAN && len(data) >= 18 && binary.BigEndian.Uint16(data[12:]) == etherTypeVLAN {
			tci := binary.BigEndian.Uint16(data[14:])
			copy(data[4:16], data[0:12])
			_ = p.TrimFront(4)
			p.Meta.SetVLAN(tci)
			data = p.Bytes()
		}
		vid, ok := ivc.ingress(p.Meta.HasVLAN, p.Meta.VLANID())
		if !ok {
			in.drop(DropVLAN, 1)
			p.Free()
			continue
		}
		var pcp uint16
		if p.Meta.HasVLAN {
			pcp = p.Meta.VLAN &^ 0x0fff
		}
		p.Meta.SetVLAN(pcp | vid)
		if data[6]&1 != 0 || (data[6]|data[7]|data[8]|data[9]|data[10]|data[11]) == 0 {
			in.drop(DropBadSource, 1)
			p.Free()
			continue
		}
		if ing == nil || fdbKey(data[6:12], 0) != ing.key {
			switch s.fdb.learn(fdbKey(data[6:12], vid), in, now) {
			case learnNew:
				s.learned.Add(1)
			case learnMove:
				s.moves.Add(1)
			case learnFull:
				s.full.Add(1)
			}
		}
		if data[0]&1 == 0 {
			if st := s.steering(data[0:6]); st != nil {
				if st == ing {
					in.drop(DropHairpin, 1)
					p.Free()
					continue
				}
				if op := s.steerTarget(w, st, data, vid); op != nil {
					slot := op.slot.Load()
					if slot >= 0 && int(slot) < len(ports) && ports[slot] == op {
						s.switched.Add(1)
						s.enqueue(w, ports, slot, p, vid, false)
						continue
					}
				}
			}
			if op := s.fdb.lookup(fdbKey(data[0:6], vid), now, s.maxAge); op != nil {
				if op == in {
					in.drop(DropHairpin, 1)
					p.Free()
					continue
				}
				slot := op.slot.Load()
				if slot >= 0 && int(slot) < len(ports) && ports[slot] == op && op.vlan.Load().member(vid) {
					s.switched.Add(1)
					s.enqueue(w, ports, slot, p, vid, false)
					continue
				}
			}
		}
		s.flood(w, ports, in, ing, p, vid)
	}
	b.Clear()
	for _, slot := range w.touched {
		s.deliver(ports[slot], w.outs[slot])
		w.marked[slot] = false
	}
	w.touched = w.touched[:0]
	w.release()
	s.putWork(w)
}

// flood sends p to every other port of vid that is up, except VF ports
// of a steering and the members of the ingress port's steering ing.
func (s *Switch) flood(w *work, ports []*SwitchPort, in *SwitchPort, ing *Steering, p *packet.Packet, vid uint16) {
	w.targets = w.targets[:0]
	for i, op := range ports {
		if m := op.member.Load(); m != nil && (m.vf || m.st == ing) {
			continue
		}
		if op != in && op.up.Load() && op.vlan.Load().member(vid) {
			w.targets = append(w.targets, int32(i))
		}
	}
	if len(w.targets) == 0 {
		in.drop(DropNoRoute, 1)
		p.Free()
		return
	}
	s.flooded.Add(1)
	last := len(w.targets) - 1
	for _, slot := range w.targets[:last] {
		pool := s.pool
		if p.Len() > pool.Size() {
			pool = s.largePool
		}
		var c *packet.Packet
		if p.Len() <= pool.Size() {
			c = pool.Get()
		}
		if c == nil {
			ports[slot].drop(DropNoBuffer, 1)
			continue
		}
		if err := p.CopyTo(c); err != nil {
			c.Free()
			ports[slot].drop(DropNoBuffer, 1)
			continue
		}
		s.enqueue(w, ports, slot, c, vid, true)
	}
	s.enqueue(w, ports, w.targets[last], p, vid, true)
}

// enqueue queues p (whose Meta carries the switch-internal tag for vid) for
// the port at slot, fixing up its egress tag; a full batch goes out at once.
func (s *Switch) enqueue(w *work, ports []*SwitchPort, slot int32, p *packet.Packet, vid uint16, flooded bool) {
	op := ports[slot]
	if !op.up.Load() {
		op.drop(DropLinkDown, 1)
		p.Free()
		return
	}
	if op.vlan.Load().untaggedEgress(vid) {
		p.Meta.ClearVLAN()
	}
	if flooded {
		op.stats.flooded.Add(1)
	}
	out := w.outs[slot]
	if !w.marked[slot] {
		w.marked[slot] = true
		w.touched = append(w.touched, slot)
	}
	out.Add(p)
	if out.Full() {
		s.deliver(op, out)
	}
}

func (s *Switch) deliver(op *SwitchPort, out *packet.Batch) {
	n := out.Len()
	if n == 0 {
		return
	}
	if op.slot.Load() < 0 {
		op.drop(DropLinkDown, uint64(n))
		out.Free()
		return
	}
	op.stats.txFrames.Add(uint64(n))
	op.stats.txBytes.Add(uint64(out.Bytes()))
	if m := op.member.Load(); m != nil {
		if m.vf {
			m.st.vfFrames.Add(uint64(n))
		} else {
			m.st.synthFrames.Add(uint64(n))
		}
	}
	op.port.Deliver(out)
	out.Clear()
}
