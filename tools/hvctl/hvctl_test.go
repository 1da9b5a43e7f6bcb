package hvctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
)

type fakeNIC struct {
	name    string
	mu      sync.Mutex
	st      netvsc.VFStatus
	stats   netvsc.Stats
	wait    time.Duration
	capture bool
}

func (f *fakeNIC) Name() string { return f.name }
func (f *fakeNIC) VFStatus() netvsc.VFStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.AttachWait, st.CaptureAfter = f.wait, f.capture
	return st
}
func (f *fakeNIC) Stats() netvsc.Stats { return f.stats }
func (f *fakeNIC) SetVFAttachWait(d time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wait = max(d, netvsc.MinVFAttachWait)
	return f.wait
}
func (f *fakeNIC) SetVFCaptureAfter(a bool) { f.mu.Lock(); f.capture = a; f.mu.Unlock() }
func (f *fakeNIC) SetVFMode(m netvsc.VFMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Mode = m
	return nil
}

type fakeTarget []NIC

func (t fakeTarget) NICs() []NIC { return append([]NIC(nil), t...) }

func testTarget() (fakeTarget, *fakeNIC, *fakeNIC) {
	hn0 := &fakeNIC{name: "hn0", wait: 2 * time.Second, st: netvsc.VFStatus{State: netvsc.VFActive, VF: "mce0", Serial: 5, HasSerial: true,
		Enabled: true, Ready: true, TxTarget: "mce0", DataPath: 1,
		Association: netvsc.VFAssociation{Allocated: true, Serial: 5, Generation: 3}}}
	hn0.stats = netvsc.Stats{TxPackets: 10, VFTxPackets: 1000, VFTxBytes: 64000, VFRxPackets: 900, RxSynthWhileVF: 7}
	hn1 := &fakeNIC{name: "hn1", wait: 2 * time.Second, st: netvsc.VFStatus{Mode: netvsc.VFNonTransparent, State: netvsc.VFNone, TxTarget: "synthetic"}}
	return fakeTarget{hn1, hn0}, hn0, hn1
}

func TestRunStatusAndStats(t *testing.T) {
	tg, _, _ := testTarget()
	var out bytes.Buffer
	if err := Run(tg, []string{"vf"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "hn0") || !strings.HasPrefix(lines[2], "hn1") {
		t.Fatalf("vf output:\n%s", out.String())
	}
	for _, want := range []string{"transparent", "active", "mce0", "allocated:5", "vf", "2s", "before"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("hn0 line lacks %q: %s", want, lines[1])
		}
	}
	if f := strings.Fields(lines[2]); f[1] != "non-transparent" || f[2] != "none" || f[6] != "withdrawn" {
		t.Errorf("hn1 line: %s", lines[2])
	}
	out.Reset()
	if err := Run(tg, []string{"-json", "stats", "hn0"}, &out); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("stats JSON %q: %v", out.String(), err)
	}
	if rows[0]["name"] != "hn0" || rows[0]["VFTxPackets"] != float64(1000) || rows[0]["RxSynthWhileVF"] != float64(7) {
		t.Fatalf("stats row %v", rows[0])
	}
	out.Reset()
	if err := Run(tg, []string{"-json", "vf", "hn0"}, &out); err != nil {
		t.Fatal(err)
	}
	var st []statusJSON
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st[0].VF != "mce0" || st[0].Association.Generation != 3 || st[0].AttachWait != "2s" {
		t.Fatalf("vf JSON %q: %v", out.String(), err)
	}
	out.Reset()
	if err := Run(tg, []string{"stats"}, &out); err != nil || !strings.Contains(out.String(), "vf_tx_packets") {
		t.Fatalf("stats table %q: %v", out.String(), err)
	}
}

func TestRunSet(t *testing.T) {
	tg, hn0, _ := testTarget()
	var out bytes.Buffer
	if err := Run(tg, []string{"set", "hn0", "attwait", "100ms"}, &out); err != nil || hn0.wait != 2*time.Second || out.String() != "hn0 attwait 2s\n" {
		t.Fatalf("attwait: %q %v wait %v", out.String(), err, hn0.wait)
	}
	if err := Run(tg, []string{"set", "hn0", "attwait", "5s"}, &out); err != nil || hn0.wait != 5*time.Second {
		t.Fatalf("attwait 5s: %v %v", err, hn0.wait)
	}
	if err := Run(tg, []string{"set", "hn0", "capture", "after"}, &out); err != nil || !hn0.capture {
		t.Fatalf("capture: %v", err)
	}
	out.Reset()
	if err := Run(tg, []string{"set", "hn0", "mode", "non-transparent"}, &out); err != nil || hn0.VFStatus().Mode != netvsc.VFNonTransparent ||
		out.String() != "hn0 mode non-transparent\n" {
		t.Fatalf("mode: %q %v %v", out.String(), err, hn0.VFStatus().Mode)
	}
	for _, bad := range [][]string{{}, {"bogus"}, {"vf", "hn0", "x"}, {"set", "hn0", "attwait", "-1s"}, {"set", "hn0", "capture", "sometimes"},
		{"set", "hn0", "mode", "opaque"},
		{"set", "hn0", "speed", "1"}, {"set", "hn0"}} {
		if err := Run(tg, bad, &out); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want ErrUsage", bad, err)
		}
	}
	if err := Run(tg, []string{"vf", "hn7"}, &out); !errors.Is(err, ErrNoNIC) {
		t.Errorf("unknown NIC: %v", err)
	}
}

func TestServeAndCall(t *testing.T) {
	before := runtime.NumGoroutine()
	tg, hn0, _ := testTarget()
	sock := filepath.Join(t.TempDir(), "hvctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, tg) }()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	out, err := Call(cctx, "unix", sock, []string{"set", "hn0", "capture", "after"})
	if err != nil || out != "hn0 capture after\n" || !hn0.capture {
		t.Fatalf("call: %q %v", out, err)
	}
	if _, err := Call(cctx, "unix", sock, []string{"vf", "hn9"}); err == nil || !strings.Contains(err.Error(), "no such interface") {
		t.Fatalf("error not carried back: %v", err)
	}
	// A malformed request gets an error answer, not a hang.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("{\"argz\":1}\n"))
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil || !strings.Contains(resp.Err, "bad request") {
		t.Fatalf("malformed: %+v %v", resp, err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"args":["vf"]}`))
	f.Add([]byte(`{"args":["set","hn0","attwait","3s"]}`))
	f.Add([]byte(`{"args":[]}`))
	f.Add([]byte(`{"args":["a","b","c","d","e","f","g","h","i"]}`))
	f.Add([]byte(`{"args":"vf"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		args, err := parseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrRequest) || args != nil {
				t.Fatalf("error %v with args %v", err, args)
			}
			return
		}
		if len(args) == 0 || len(args) > 8 || len(b) > MaxRequest {
			t.Fatalf("accepted %d args from %d bytes", len(args), len(b))
		}
		tg, _, _ := testTarget()
		_ = Run(tg, args, &bytes.Buffer{}) // must not panic on any accepted request
	})
}
