package vswitch

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MAC is an Ethernet address.
type MAC [6]byte

// Broadcast is the all-ones address.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

func fdbKey(mac []byte, vid uint16) uint64 {
	_ = mac[5]
	return uint64(vid)<<48 | uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 |
		uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])
}

func keyMAC(k uint64) (MAC, uint16) {
	return MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}, uint16(k >> 48)
}

type fdbEntry struct {
	port   atomic.Pointer[SwitchPort]
	seen   atomic.Int64 // clock reading (UnixNano) of the last frame from the address
	static bool
}

// FDBEntry is one forwarding-table entry, as Table reports it.
type FDBEntry struct {
	MAC    MAC
	VLAN   uint16
	Port   *SwitchPort
	Static bool
	Age    time.Duration // time since the address was last seen (0 for static)
}

// fdb is the forwarding table. Lookups and refreshes of known addresses
// take the read lock only; learning a new address or a move takes the
// write lock.
type fdb struct {
	mu  sync.RWMutex
	m   map[uint64]*fdbEntry
	max int
}

func (t *fdb) lookup(k uint64, now, maxAge int64) *SwitchPort {
	t.mu.RLock()
	e := t.m[k]
	t.mu.RUnlock()
	if e == nil {
		return nil
	}
	if !e.static && now-e.seen.Load() > maxAge {
		return nil
	}
	return e.port.Load()
}

// learn records that k was seen on p at now. It returns what happened.
func (t *fdb) learn(k uint64, p *SwitchPort, now int64) learnResult {
	t.mu.RLock()
	e := t.m[k]
	t.mu.RUnlock()
	if e != nil {
		if e.static {
			return learnNone
		}
		if e.port.Load() == p {
			if e.seen.Load() != now {
				e.seen.Store(now)
			}
			return learnNone
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e = t.m[k]
	switch {
	case e == nil:
		if len(t.m) >= t.max {
			return learnFull
		}
		e = &fdbEntry{}
		e.port.Store(p)
		e.seen.Store(now)
		t.m[k] = e
		return learnNew
	case e.static:
		return learnNone
	default:
		old := e.port.Swap(p)
		e.seen.Store(now)
		if old != p {
			return learnMove
		}
		return learnNone
	}
}

type learnResult int

const (
	learnNone learnResult = iota
	learnNew
	learnMove
	learnFull
)

func (t *fdb) setStatic(k uint64, p *SwitchPort) {
	t.mu.Lock()
	e := &fdbEntry{static: true}
	e.port.Store(p)
	t.m[k] = e
	t.mu.Unlock()
}

func (t *fdb) remove(k uint64) bool {
	t.mu.Lock()
	_, ok := t.m[k]
	delete(t.m, k)
	t.mu.Unlock()
	return ok
}

// flush forgets the dynamic entries of p (all ports if p is nil) and, if
// static is set, the static ones too.
func (t *fdb) flush(p *SwitchPort, static bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.m {
		if (p == nil || e.port.Load() == p) && (static || !e.static) {
			delete(t.m, k)
			n++
		}
	}
	return n
}

// age removes dynamic entries older than maxAge.
func (t *fdb) age(now, maxAge int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.m {
		if !e.static && now-e.seen.Load() > maxAge {
			delete(t.m, k)
			n++
		}
	}
	return n
}

func (t *fdb) table(now int64) []FDBEntry {
	t.mu.RLock()
	out := make([]FDBEntry, 0, len(t.m))
	for k, e := range t.m {
		mac, vid := keyMAC(k)
		fe := FDBEntry{MAC: mac, VLAN: vid, Port: e.port.Load(), Static: e.static}
		if !e.static {
			fe.Age = time.Duration(now - e.seen.Load())
		}
		out = append(out, fe)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].VLAN != out[j].VLAN {
			return out[i].VLAN < out[j].VLAN
		}
		return fdbKey(out[i].MAC[:], 0) < fdbKey(out[j].MAC[:], 0)
	})
	return out
}

func (t *fdb) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}
