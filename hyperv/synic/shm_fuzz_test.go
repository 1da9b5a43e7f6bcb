package synic

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/hvguest/hvguest/kernel"
	"golang.org/x/sys/unix"
)

// anonMap returns zeroed shared anonymous memory, unmapped at cleanup. Like
// a file mapping (and unlike the Go heap) the race detector does not track
// it, which matches how a peer in another process writes it.
func anonMap(t testing.TB, size int) []byte {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

// FuzzShmArea overwrites part of the header and transport area with
// arbitrary bytes, as a hostile or broken peer could, and then attaches and
// operates a guest end (over a host that never runs) and a host end (under
// a guest that scribbles). Neither may panic or hang.
func FuzzShmArea(f *testing.F) {
	f.Add(uint16(0), []byte("HVGSYNIC"))
	f.Add(uint16(hRAMPages), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint16(shmTransportOff+tSlot), []byte{1, 0, 0, 0, 0xff, 1, 0, 0})
	f.Add(uint16(shmTransportOff+tPostSeq), []byte{1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint16(hGuestState), []byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(shmTransportOff+tEvents), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add(uint16(shmTransportOff+tSignals), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, off uint16, data []byte) {
		fast := WithPeerTimeout(20 * time.Millisecond)
		at := int(off) % shmRAMOff

		// A guest attaching to a corrupted area.
		mem := anonMap(t, SharedSize(2))
		if _, err := initLayout(mem, 2, kernel.DefaultBasePFN); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(mem[hHostState:], stateAlive)
		copy(mem[at:shmRAMOff], data)
		if guest, err := NewSharedGuestOver(mem, fast, WithPolling()); err == nil {
			g := guest.Guest()
			var m Message
			for i := 0; i < 4 && g.TakeMessage(&m); i++ {
				_ = m.Bytes()
			}
			g.ScanEvents(func(uint32) {})
			g.SignalEvent(uint32(len(data)))
			g.PostMessage(1, 1, data[:min(len(data), MaxPayload)])
			if err := guest.Close(); err != nil {
				t.Fatal(err)
			}
		}

		// A host whose guest writes garbage into the shared area.
		mem = anonMap(t, SharedSize(2))
		host, err := NewSharedHostOver(mem, 2, &recorder{}, fast)
		if err != nil {
			t.Fatal(err)
		}
		h := host.Host()
		h.Deliver(1, []byte("before"))
		copy(mem[at:shmRAMOff], data)
		for i := range 3 {
			h.Deliver(1, data[:min(len(data), MaxPayload)])
			h.SignalGuest(uint32(i + 1))
		}
		host.v.hostBell().ring()
		if err := host.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
