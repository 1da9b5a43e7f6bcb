package tlfs

import (
	"errors"
	"sync"
	"testing"
	"unsafe"
)

// alignedPage returns a 4096-byte slice that starts on an 8-byte boundary.
func alignedPage() []byte {
	words := make([]uint64, PageSize/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), PageSize)
}

func TestPageChecks(t *testing.T) {
	p := alignedPage()
	if _, err := NewMessagePage(p[:4095]); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	big := make([]uint64, PageSize/8+1)
	mis := unsafe.Slice((*byte)(unsafe.Pointer(&big[0])), PageSize+8)[1 : PageSize+1]
	if _, err := NewEventFlagsPage(mis); !errors.Is(err, ErrAlignment) {
		t.Fatal(err)
	}
	if _, err := NewMessagePage(p); err != nil {
		t.Fatal(err)
	}
}

func TestMessageSlotLayout(t *testing.T) {
	raw := alignedPage()
	page, _ := NewMessagePage(raw)
	slot := page.Slot(VMBusMessageSINT)
	m, _ := NewMessage(MsgVMBus, 1, []byte{15, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3})
	ok, err := slot.Deliver(&m, true)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	// The bytes land at offset 512 in the HV_MESSAGE layout.
	d, err := DecodeMessage(raw[512:768])
	if err != nil || d.Type != MsgVMBus || d.PayloadSize != 11 || !d.Pending() || d.OriginationID != 1 {
		t.Fatalf("%+v %v", d, err)
	}
	for i, b := range raw {
		if (i < 512 || i >= 768) && b != 0 {
			t.Fatalf("byte %d written", i)
		}
	}
	// A second delivery finds the slot busy.
	if ok, _ := slot.Deliver(&m, false); ok {
		t.Fatal("delivered into a full slot")
	}
	var got Message
	ok, pending, err := slot.Receive(&got)
	if !ok || !pending || err != nil || got.Type != MsgVMBus || string(got.Data()) != string(m.Data()) {
		t.Fatalf("%v %v %v %+v", ok, pending, err, got)
	}
	if slot.Type() != MsgNone {
		t.Fatal("slot not freed")
	}
	if ok, _, _ := slot.Receive(&got); ok {
		t.Fatal("received from an empty slot")
	}
	if _, err := slot.Deliver(&Message{}, false); !errors.Is(err, ErrMessageType) {
		t.Fatal(err)
	}
	if _, err := slot.Deliver(&Message{Type: 1, PayloadSize: 241}, false); !errors.Is(err, ErrPayloadSize) {
		t.Fatal(err)
	}
}

func TestMessageSlotBadSize(t *testing.T) {
	raw := alignedPage()
	page, _ := NewMessagePage(raw)
	raw[512] = 1
	raw[516] = 250
	var m Message
	ok, _, err := page.Slot(2).Receive(&m)
	if !ok || !errors.Is(err, ErrPayloadSize) || page.Slot(2).Type() != MsgNone {
		t.Fatal(ok, err)
	}
}

func TestMessageSlotPending(t *testing.T) {
	page, _ := NewMessagePage(alignedPage())
	s := page.Slot(0)
	if s.Pending() {
		t.Fatal("pending on a zero page")
	}
	s.SetPending()
	if !s.Pending() {
		t.Fatal("not pending")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for SINT 16")
		}
	}()
	page.Slot(16)
}

// One producer and one consumer pass 10000 messages through one slot; run
// with -race to check the atomics order the plain copies.
func TestMessageSlotConcurrent(t *testing.T) {
	page, _ := NewMessagePage(alignedPage())
	slot := page.Slot(VMBusMessageSINT)
	const n = 10000
	eom := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; {
			m, _ := NewMessage(MsgVMBus, uint64(i), []byte{byte(i), byte(i >> 8)})
			ok, err := slot.Deliver(&m, i+1 < n)
			if err != nil {
				panic(err)
			}
			if ok {
				i++
				continue
			}
			<-eom
		}
	}()
	var m Message
	for i := 0; i < n; {
		ok, pending, err := slot.Receive(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if m.OriginationID != uint64(i) || m.Payload[0] != byte(i) || m.Payload[1] != byte(i>>8) {
			t.Fatalf("message %d: %+v", i, m.OriginationID)
		}
		i++
		if pending {
			select {
			case eom <- struct{}{}:
			default:
			}
		}
	}
	wg.Wait()
}

func TestEventFlags(t *testing.T) {
	raw := alignedPage()
	p, _ := NewEventFlagsPage(raw)
	if p.Set(VMBusMessageSINT, 5) || !p.Set(VMBusMessageSINT, 5) {
		t.Fatal("set")
	}
	p.Set(VMBusMessageSINT, 2047)
	p.Set(VMBusMessageSINT, 64)
	// Bit n is bit n%8 of byte n/8 of the SINT 2 area (offset 512).
	if raw[512] != 1<<5 || raw[512+8] != 1 || raw[512+255] != 0x80 {
		t.Fatalf("%x %x %x", raw[512], raw[520], raw[767])
	}
	if !p.Test(2, 64) || p.Test(2, 63) || p.Test(3, 64) {
		t.Fatal("test")
	}
	if !p.TestAndClear(2, 64) || p.TestAndClear(2, 64) {
		t.Fatal("test and clear")
	}
	var seen []int
	if p.Scan(2, func(b int) { seen = append(seen, b) }) != 2 || seen[0] != 5 || seen[1] != 2047 {
		t.Fatal(seen)
	}
	seen = nil
	if p.ScanAndClear(2, func(b int) { seen = append(seen, b) }) != 2 || seen[0] != 5 || seen[1] != 2047 {
		t.Fatal(seen)
	}
	if p.ScanAndClear(2, func(int) { t.Fatal("bit left") }) != 0 {
		t.Fatal("not cleared")
	}
	for i, b := range raw {
		if b != 0 {
			t.Fatalf("byte %d left %x", i, b)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for bit 2048")
		}
	}()
	p.Set(2, 2048)
}

// Setters and a scanner race; every set bit is seen exactly once.
func TestEventFlagsConcurrent(t *testing.T) {
	p, _ := NewEventFlagsPage(alignedPage())
	const rounds = 2000
	var wg sync.WaitGroup
	counts := make([]int, EventFlagsPerSINT)
	var sent [4]int
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				bit := (w*rounds + i) % EventFlagsPerSINT
				if !p.Set(2, bit) {
					sent[w]++
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	total := 0
	for {
		select {
		case <-done:
			total += p.ScanAndClear(2, func(b int) { counts[b]++ })
			want := sent[0] + sent[1] + sent[2] + sent[3]
			if total != want {
				t.Fatalf("saw %d, sent %d", total, want)
			}
			return
		default:
			total += p.ScanAndClear(2, func(b int) { counts[b]++ })
		}
	}
}
