//go:build linux

package synic

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hvguest/hvguest/kernel"
)

// The cross-process test re-executes the test binary as the simulated host
// (TestShmHelperProcess with shmHelperEnv naming the file); the test
// process is the guest. The helper speaks a small protocol over posts:
//
//	conn 1  echo: deliver the payload back (type 1)
//	conn 2  RAM: 'R' pfn → deliver fnv64 of the page (type 2);
//	        'W' pfn seed → fill the page with seed+i
//	conn 3  exit at once, without closing (a crash)
//	conn 4  StatusInvalidConnectionID
//	conn 5  stream: deliver N numbered messages (type 3)
//
// and answers each signal on connection c by signalling relid c.
const shmHelperEnv = "HVGUEST_SYNIC_SHM_HELPER"

const (
	procCount   = 10000
	procRAM     = 8
	procTimeout = 60 * time.Second
)

type helperHost struct {
	port HostPort
	ram  *kernel.SimRAM
	out  chan []byte // messages to deliver, type in byte 0
}

func (h *helperHost) HandlePost(connID, msgType uint32, p []byte) Status {
	switch connID {
	case 1:
		return h.queue(1, p)
	case 2:
		if len(p) < 9 {
			return StatusInvalidParameter
		}
		page, err := h.ram.Page(binary.LittleEndian.Uint64(p[1:]))
		if err != nil {
			return StatusInvalidParameter
		}
		switch {
		case p[0] == 'R':
			f := fnv.New64a()
			f.Write(page)
			return h.queue(2, f.Sum(nil))
		case p[0] == 'W' && len(p) >= 10:
			for i := range page {
				page[i] = p[9] + byte(i)
			}
			return StatusSuccess
		}
		return StatusInvalidParameter
	case 3:
		os.Exit(3)
	case 5:
		if len(p) < 4 {
			return StatusInvalidParameter
		}
		go h.stream(int(binary.LittleEndian.Uint32(p)))
		return StatusSuccess
	}
	return StatusInvalidConnectionID
}

func (h *helperHost) HandleSignal(connID uint32) Status {
	if connID != 0 {
		h.port.SignalGuest(connID)
	}
	return StatusSuccess
}

// queue hands a message to the deliverer; a full queue is the guest's cue
// to retry, as with a real host.
func (h *helperHost) queue(typ byte, p []byte) Status {
	select {
	case h.out <- append([]byte{typ}, p...):
		return StatusSuccess
	default:
		return StatusInsufficientBuffers
	}
}

func (h *helperHost) stream(n int) {
	for i := range n {
		h.out <- append([]byte{3}, streamPayload(i)...)
	}
}

func streamPayload(i int) []byte {
	p := binary.LittleEndian.AppendUint32(nil, uint32(i))
	for j := range i % (MaxPayload - 4) {
		p = append(p, byte(i*31+j))
	}
	return p
}

// deliver sends queued messages, retrying while the guest's queue is full.
func (h *helperHost) deliver(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case m := <-h.out:
			for {
				err := h.port.Deliver(uint32(m[0]), m[1:])
				if !errors.Is(err, StatusInsufficientBuffers) {
					break
				}
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
}

// TestShmHelperProcess is the host process of TestShmCrossProcess.
func TestShmHelperProcess(t *testing.T) {
	path := os.Getenv(shmHelperEnv)
	if path == "" {
		t.Skip("helper process for TestShmCrossProcess")
	}
	h := &helperHost{out: make(chan []byte, 1024)}
	host, err := CreateShared(path, procRAM, h, WithPeerTimeout(2*time.Second))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	h.port, h.ram = host.Host(), host.RAM()
	stdinClosed := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	go h.deliver(host.Done())
	fmt.Println("READY")
	select {
	case <-host.Done(): // the guest closed or died
	case <-stdinClosed: // the parent is gone
	case <-time.After(procTimeout):
	}
	st := host.Stats()
	host.Close()
	fmt.Printf("STATS posts=%d signals=%d delivered=%d\n", st.Posts, st.Signals, st.Delivered)
	os.Exit(0)
}

// startHelper runs the host process and waits for it to set up the file.
func startHelper(t *testing.T, path string) (*exec.Cmd, *bufio.Scanner, io.Closer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestShmHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), shmHelperEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	ready := make(chan bool, 1)
	go func() { ready <- lines.Scan() && lines.Text() == "READY" }()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("helper did not start: %q", lines.Text())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("helper did not start in time")
	}
	return cmd, lines, stdin
}

// waitExit waits for the helper to exit and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not exit")
	}
	return -1
}

// guestPump is the guest's SINT service goroutine: it turns interrupts
// into scanned events and taken messages.
func guestPump(g GuestPort, stop <-chan struct{}) (<-chan uint32, <-chan Message) {
	events := make(chan uint32, 4*procCount)
	msgs := make(chan Message, 4*procCount)
	go func() {
		var m Message
		for {
			select {
			case <-stop:
				return
			case <-g.Interrupt():
			}
			g.ScanEvents(func(r uint32) { events <- r })
			for g.TakeMessage(&m) {
				msgs <- m
			}
		}
	}()
	return events, msgs
}

func next[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// post retries while the host is out of buffers.
func post(t *testing.T, g GuestPort, conn uint32, p []byte) {
	t.Helper()
	for {
		err := g.PostMessage(conn, 1, p)
		if err == nil {
			return
		}
		if !errors.Is(err, StatusInsufficientBuffers) {
			t.Fatalf("post on %d: %v", conn, err)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func TestShmCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	noLeaks(t)
	path := filepath.Join(t.TempDir(), "xproc.shm")
	cmd, lines, _ := startHelper(t, path)
	guest, err := OpenShared(path, WithPeerTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	g := guest.Guest()
	stop := make(chan struct{})
	defer close(stop)
	events, msgs := guestPump(g, stop)

	// Posts out, echoes back in order with the same bytes.
	for i := range procCount {
		post(t, g, 1, streamPayload(i))
		m := next(t, msgs, "echo")
		if m.Type != 1 || string(m.Bytes()) != string(streamPayload(i)) {
			t.Fatalf("echo %d: type %d, % x", i, m.Type, m.Bytes()[:min(8, m.Size)])
		}
	}
	if err := g.PostMessage(4, 1, nil); !errors.Is(err, StatusInvalidConnectionID) {
		t.Fatalf("post on conn 4: %v", err)
	}
	// Signals out, each answered by the same relid.
	for i := range procCount {
		c := uint32(1 + i%MaxRelID)
		if err := g.SignalEvent(c); err != nil {
			t.Fatal(err)
		}
		if r := next(t, events, "signal echo"); r != c {
			t.Fatalf("signal %d: relid %d, want %d", i, r, c)
		}
	}
	// A stream of host messages, in order, through the 256-deep queue.
	post(t, g, 5, binary.LittleEndian.AppendUint32(nil, procCount))
	for i := range procCount {
		m := next(t, msgs, "stream")
		if m.Type != 3 || string(m.Bytes()) != string(streamPayload(i)) {
			t.Fatalf("stream %d: type %d, % x", i, m.Type, m.Bytes()[:min(8, m.Size)])
		}
	}
	// Guest RAM: the host reads what the guest wrote, and vice versa.
	r, err := guest.RAM().Alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Bytes {
		r.Bytes[i] = byte(i * 13)
	}
	for p, pfn := range r.PFNs {
		f := fnv.New64a()
		f.Write(r.Bytes[p*kernel.PageSize : (p+1)*kernel.PageSize])
		post(t, g, 2, binary.LittleEndian.AppendUint64([]byte{'R'}, pfn))
		if m := next(t, msgs, "page hash"); m.Type != 2 || string(m.Bytes()) != string(f.Sum(nil)) {
			t.Fatalf("page %#x: host hash % x, want % x", pfn, m.Bytes(), f.Sum(nil))
		}
		post(t, g, 2, append(binary.LittleEndian.AppendUint64([]byte{'W'}, pfn), byte(p)))
		for i, b := range r.Bytes[p*kernel.PageSize : (p+1)*kernel.PageSize] {
			if b != byte(p)+byte(i) {
				t.Fatalf("page %#x byte %d: %#x written by the host", pfn, i, b)
			}
		}
	}

	// Closing the guest ends the host process.
	if err := guest.Close(); err != nil {
		t.Fatal(err)
	}
	statsc := make(chan string, 1)
	go func() { // read to EOF before Wait, which closes the pipe
		var s string
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "STATS ") {
				s = lines.Text()
			}
		}
		statsc <- s
	}()
	stats := next(t, statsc, "helper output")
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("helper exit code %d", code)
	}
	// Posts refused for lack of buffers were retried, so they count extra.
	var posts, signals, delivered int
	fmt.Sscanf(stats, "STATS posts=%d signals=%d delivered=%d", &posts, &signals, &delivered)
	if posts < procCount+10 || signals != procCount || delivered != 2*procCount+4 {
		t.Fatalf("helper %q: want posts >= %d, signals %d, delivered %d", stats, procCount+10, procCount, 2*procCount+4)
	}
	t.Logf("helper %s", stats)
	t.Logf("guest %+v", guest.Stats())
}

// TestShmCrossProcessHostDies: the host process exits without closing, in
// the middle of a post; the guest gets ErrClosed and notices, in time.
func TestShmCrossProcessHostDies(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	noLeaks(t)
	path := filepath.Join(t.TempDir(), "crash.shm")
	cmd, _, _ := startHelper(t, path)
	guest, err := OpenShared(path, WithPeerTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	g := guest.Guest()
	if err := g.PostMessage(1, 1, []byte("alive?")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := g.PostMessage(3, 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("post that kills the host: %v", err)
	}
	if code := waitExit(t, cmd); code != 3 {
		t.Fatalf("helper exit code %d", code)
	}
	recv(t, guest.Done(), "guest to notice the dead host")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to notice", d)
	}
	if err := g.SignalEvent(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("signal to a dead host: %v", err)
	}
}

// TestShmCrossProcessParentGone: the helper exits when its parent's end of
// the stdin pipe closes, even if the guest never attached or closed.
func TestShmCrossProcessParentGone(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "orphan.shm")
	cmd, _, stdin := startHelper(t, path)
	stdin.Close()
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("helper exit code %d", code)
	}
}
