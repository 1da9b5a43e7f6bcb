package synic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/hvguest/hvguest/kernel"
)

// The shared-memory transport keeps everything both sides share in one
// file (or one mapped PCI BAR): no pointers, no Go state, fixed offsets.
// All multi-byte fields are little-endian; every word the two sides race
// on is accessed with sync/atomic (so the transport runs only on
// little-endian machines, which is every machine Hyper-V runs on).
//
// File layout, version 1 (offsets in bytes from the start of the file):
//
//	Area        Offset             Size              Contents
//	header      0                  4096              shmHeader fields below
//	transport   4096               19 pages          control page, message page,
//	                                                 event page, message queue
//	guest RAM   4096 + 19*4096     ramPages*4096     kernel.SimRAM, PFN = base + index
//
// Header page (written once by the host at creation unless noted):
//
//	Off  Size  Field                        Owner
//	0    8     magic "HVGSYNIC"             host
//	8    4     layout version (1)           host
//	12   4     header size (4096)           host
//	16   8     total size                   host
//	24   8     transport offset             host
//	32   8     transport size               host
//	40   8     guest RAM offset             host
//	48   8     guest RAM size               host
//	56   8     guest RAM base PFN           host
//	64   8     guest RAM pages              host
//	72   4     queue capacity (records)     host
//	76   4     record size (256)            host
//	128  4     host state 0 init/1 alive/2 closed      host
//	132  4     host flags (bit0: can futex-wake peer)  host
//	192  4     guest state 0 none/1 attached/2 closed  guest
//	196  4     guest flags (bit0: can futex-wake peer) guest
//	256  4     host heartbeat counter       host
//	320  4     guest heartbeat counter      guest
//
// Transport area (offsets from its start; T = transport offset):
//
//	Off        Size   Field                                      Writer
//	0          4      host doorbell sequence                     guest (Add), host reads
//	4          4      host doorbell waiters                      host
//	64         4      guest doorbell sequence                    host (Add), guest reads
//	68         4      guest doorbell waiters                     guest
//	128        4      post completion sequence (futex word)      host
//	132        4      post completion waiters                    guest
//	136        4      post completion status (HV_STATUS)         host
//	192        4      post request sequence                      guest
//	196        4      post connection id                         guest
//	200        4      post message type                          guest
//	204        4      post payload size                          guest
//	208        240    post payload                               guest
//	512        4      queue head (mirror, host's copy rules)     host
//	516        4      queue tail (mirror)                        host
//	1024       256    signal bitmap, bit = connection id < 2048  guest sets, host clears
//	4096       4096   message page (SIMP): SINT2 slot at +512    host fills, guest empties
//	8192       4096   event page (SIEFP): SINT2 flags at +512    host sets, guest clears
//	12288      64 KiB message queue: 256 records of 256 bytes    host only
//
// A message slot or queue record is HV_MESSAGE-shaped: type u32, payload
// size u8, flags u8 (bit0 MessagePending), reserved u16, origination id
// u64, payload 240 bytes. Its first 8 bytes are one atomic word, so the
// host can set MessagePending and the guest can free the slot without
// either losing the other's update.
//
// Trust: each side validates what it reads once (the guest checks the
// header when it attaches) and then uses its own copy of the layout; no
// offset, size or index is ever re-read from the file. Sizes the peer
// writes are bounds-checked before use.
const (
	shmMagic      = "HVGSYNIC"
	shmVersion    = 1
	shmHeaderSize = kernel.PageSize
	shmRecordSize = 256

	// ShmQueue is how many messages wait behind the slot in the shared
	// transport, the same as DefaultQueue for Pair.
	ShmQueue = DefaultQueue

	shmTransportPages = 3 + ShmQueue*shmRecordSize/kernel.PageSize
	shmTransportSize  = shmTransportPages * kernel.PageSize
	shmTransportOff   = shmHeaderSize
	shmRAMOff         = shmTransportOff + shmTransportSize

	// header fields
	hMagic, hVersion, hHeaderSize, hTotal    = 0, 8, 12, 16
	hTransOff, hTransSize, hRAMOff, hRAMSize = 24, 32, 40, 48
	hRAMBase, hRAMPages, hQueueCap, hRecSize = 56, 64, 72, 76
	hHostState, hHostFlags                   = 128, 132
	hGuestState, hGuestFlags                 = 192, 196
	hHostBeat, hGuestBeat                    = 256, 320

	// transport fields, relative to the transport offset
	tHostBell, tHostWaiters       = 0, 4
	tGuestBell, tGuestWaiters     = 64, 68
	tPostDone, tPostWaiters       = 128, 132
	tPostStatus                   = 136
	tPostSeq, tPostConn, tPostTyp = 192, 196, 200
	tPostSize, tPostPayload       = 204, 208
	tQueueHead, tQueueTail        = 512, 516
	tSignals                      = 1024
	tSlot                         = 1*kernel.PageSize + 2*256 // SIMP, SINT2
	tEvents                       = 2*kernel.PageSize + 2*256 // SIEFP, SINT2
	tQueue                        = 3 * kernel.PageSize

	// message word 0: type (bits 0-31), size (32-39), flags (40-47)
	msgPendingBit = 1 << 40

	stateInit, stateAlive, stateClosed = 0, 1, 2
	flagFutexWake                      = 1

	// MaxSignalConnID is the largest connection id a guest can signal over
	// the shared transport: the simulated host hands out connection ids
	// below 2048 (one bit each in the signal bitmap) when it serves a
	// guest through this transport. SignalEvent on a larger id returns
	// StatusInvalidConnectionID without involving the host.
	MaxSignalConnID = 2047
)

// SharedSize returns the size of a shared file holding ramPages pages of
// guest RAM.
func SharedSize(ramPages int) int { return shmRAMOff + ramPages*kernel.PageSize }

// ErrBadLayout is wrapped by every error about a shared area whose header
// does not describe a usable layout.
var ErrBadLayout = errors.New("synic: bad shared memory layout")

// shmView is one side's view of a validated shared area. Only the fields
// set at construction are used afterwards, never offsets read back from the
// file.
type shmView struct {
	mem      []byte
	ramBase  uint64
	ramPages int
	polled   bool // this side's WithPolling: its rings make no futex calls
}

func (v *shmView) u32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&v.mem[off]))
}

func (v *shmView) u64(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&v.mem[off]))
}

func (v *shmView) t32(off int) *atomic.Uint32 { return v.u32(shmTransportOff + off) }
func (v *shmView) t64(off int) *atomic.Uint64 { return v.u64(shmTransportOff + off) }

// tbytes returns n transport bytes at off.
func (v *shmView) tbytes(off, n int) []byte {
	o := shmTransportOff + off
	return v.mem[o : o+n : o+n]
}

func (v *shmView) ram() []byte {
	return v.mem[shmRAMOff : shmRAMOff+v.ramPages*kernel.PageSize]
}

func (v *shmView) hostBell() bell        { return bell{v.t32(tHostBell), v.t32(tHostWaiters), v.polled} }
func (v *shmView) guestBell() bell       { return bell{v.t32(tGuestBell), v.t32(tGuestWaiters), v.polled} }
func (v *shmView) postBell() bell        { return bell{v.t32(tPostDone), v.t32(tPostWaiters), v.polled} }
func (v *shmView) slot0() *atomic.Uint64 { return v.t64(tSlot) }

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

func checkMem(mem []byte, need int) error {
	if !littleEndian() {
		return fmt.Errorf("%w: the shared transport needs a little-endian machine", ErrBadLayout)
	}
	if len(mem) < need {
		return fmt.Errorf("%w: %d bytes mapped, need at least %d", ErrBadLayout, len(mem), need)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return fmt.Errorf("%w: mapping is not 8-byte aligned", ErrBadLayout)
	}
	return nil
}

// initLayout zeroes the header and transport of mem and writes a version 1
// header for ramPages pages at basePFN. The host state is left at init.
func initLayout(mem []byte, ramPages int, basePFN uint64) (*shmView, error) {
	if ramPages <= 0 {
		return nil, fmt.Errorf("%w: %d pages of guest RAM", ErrBadLayout, ramPages)
	}
	if err := checkMem(mem, SharedSize(ramPages)); err != nil {
		return nil, err
	}
	clear(mem[:shmRAMOff])
	le := binary.LittleEndian
	copy(mem[hMagic:], shmMagic)
	le.PutUint32(mem[hVersion:], shmVersion)
	le.PutUint32(mem[hHeaderSize:], shmHeaderSize)
	le.PutUint64(mem[hTotal:], uint64(SharedSize(ramPages)))
	le.PutUint64(mem[hTransOff:], shmTransportOff)
	le.PutUint64(mem[hTransSize:], shmTransportSize)
	le.PutUint64(mem[hRAMOff:], shmRAMOff)
	le.PutUint64(mem[hRAMSize:], uint64(ramPages)*kernel.PageSize)
	le.PutUint64(mem[hRAMBase:], basePFN)
	le.PutUint64(mem[hRAMPages:], uint64(ramPages))
	le.PutUint32(mem[hQueueCap:], ShmQueue)
	le.PutUint32(mem[hRecSize:], shmRecordSize)
	return &shmView{mem: mem, ramBase: basePFN, ramPages: ramPages}, nil
}

// parseLayout validates the header at the start of mem and returns a view.
// It trusts nothing in the header: every field must have the one value
// version 1 allows or fit inside mem.
func parseLayout(mem []byte) (*shmView, error) {
	if err := checkMem(mem, shmRAMOff); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if string(mem[hMagic:hMagic+8]) != shmMagic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrBadLayout, mem[hMagic:hMagic+8], shmMagic)
	}
	if v := le.Uint32(mem[hVersion:]); v != shmVersion {
		return nil, fmt.Errorf("%w: layout version %d, this code speaks %d", ErrBadLayout, v, shmVersion)
	}
	fixed := []struct {
		name      string
		got, want uint64
	}{
		{"header size", uint64(le.Uint32(mem[hHeaderSize:])), shmHeaderSize},
		{"transport offset", le.Uint64(mem[hTransOff:]), shmTransportOff},
		{"transport size", le.Uint64(mem[hTransSize:]), shmTransportSize},
		{"RAM offset", le.Uint64(mem[hRAMOff:]), shmRAMOff},
		{"queue capacity", uint64(le.Uint32(mem[hQueueCap:])), ShmQueue},
		{"record size", uint64(le.Uint32(mem[hRecSize:])), shmRecordSize},
	}
	for _, f := range fixed {
		if f.got != f.want {
			return nil, fmt.Errorf("%w: %s is %d, version %d needs %d", ErrBadLayout, f.name, f.got, shmVersion, f.want)
		}
	}
	pages := le.Uint64(mem[hRAMPages:])
	avail := uint64(len(mem)-shmRAMOff) / kernel.PageSize
	if pages == 0 || pages > avail {
		return nil, fmt.Errorf("%w: %d pages of guest RAM, the mapping holds %d", ErrBadLayout, pages, avail)
	}
	if sz := le.Uint64(mem[hRAMSize:]); sz != pages*kernel.PageSize {
		return nil, fmt.Errorf("%w: RAM size %d is not %d pages", ErrBadLayout, sz, pages)
	}
	if tot := le.Uint64(mem[hTotal:]); tot != shmRAMOff+pages*kernel.PageSize || tot > uint64(len(mem)) {
		return nil, fmt.Errorf("%w: total size %d, mapping %d bytes", ErrBadLayout, tot, len(mem))
	}
	base := le.Uint64(mem[hRAMBase:])
	const maxPFN = 1 << 40 // 52-bit guest physical addresses
	if base == 0 || base >= maxPFN || base+pages > maxPFN {
		return nil, fmt.Errorf("%w: guest RAM base PFN %#x (+%d pages)", ErrBadLayout, base, pages)
	}
	return &shmView{mem: mem, ramBase: base, ramPages: int(pages)}, nil
}
