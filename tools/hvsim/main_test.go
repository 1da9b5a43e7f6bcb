package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvguest/hvguest/tools/hvctl"
)

// checkGoroutines fails the test if goroutines started during it are still
// running a few seconds after it ends.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// quickArgs is a short migrate run.
func quickArgs(extra ...string) []string {
	return append([]string{"-duration", "1s", "-rate", testRate, "-migrations", "2", "-tcp-bytes", "262144", "-seed", "7", "-skip-attach-wait"}, extra...)
}

// field walks a decoded JSON object along a dotted path.
func field(t *testing.T, m map[string]any, path string) any {
	t.Helper()
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %T is not an object", path, v)
		}
		if v, ok = o[k]; !ok {
			t.Fatalf("JSON has no %s", path)
		}
	}
	return v
}

func number(t *testing.T, m map[string]any, path string) float64 {
	t.Helper()
	f, ok := field(t, m, path).(float64)
	if !ok {
		t.Fatalf("%s is %T, not a number", path, field(t, m, path))
	}
	return f
}

// TestMigrateJSON runs a short migrate in-process and checks the report:
// nothing lost or duplicated, both TCP checksums matched, every field the
// issue names present with its type, and the PNG plot written.
func TestMigrateJSON(t *testing.T) {
	checkGoroutines(t)
	png := filepath.Join(t.TempDir(), "m.png")
	var out bytes.Buffer
	if err := run(context.Background(), "migrate", quickArgs("-json", "-plot", png), &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	sent := number(t, m, "frames_sent")
	if r, _ := strconv.Atoi(testRate); sent < float64(r)*1.5 { // testRate frames/s each way for at least 1 s
		t.Errorf("frames_sent %v", sent)
	}
	if got := number(t, m, "frames_received"); got != sent {
		t.Errorf("frames_received %v of %v", got, sent)
	}
	for _, k := range []string{"lost", "duplicated", "corrupt"} {
		if v := number(t, m, k); v != 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
	if to, from := number(t, m, "to_guest.sent"), number(t, m, "to_station.sent"); to+from != sent {
		t.Errorf("directions %v + %v != %v", to, from, sent)
	}
	var pathSum float64
	for _, p := range []string{"synthetic", "vf"} {
		pathSum += number(t, m, "paths."+p+".tx") + number(t, m, "paths."+p+".rx")
	}
	if pathSum != sent {
		t.Errorf("per-path counts sum to %v, %v frames delivered", pathSum, sent)
	}
	for _, p := range []string{"paths.synthetic.tx", "paths.synthetic.rx", "paths.vf.tx", "paths.vf.rx"} {
		if number(t, m, p) == 0 { // the VF carries the stream between migrations, synthetic during them
			t.Errorf("%s = 0", p)
		}
	}
	if v := number(t, m, "host.netvsp_path_vf"); v == 0 {
		t.Error("the host steered nothing to the VF")
	}
	// hn's own per-path counters agree that the VF carried traffic (they
	// count TCP too, so at least the stream's frames).
	if tx, rx := number(t, m, "guest.hn_vf_tx"), number(t, m, "guest.hn_vf_rx"); tx < number(t, m, "paths.vf.tx") || rx < number(t, m, "paths.vf.rx") {
		t.Errorf("hn counted VF tx %v rx %v, the stream alone took %v and %v", tx, rx, number(t, m, "paths.vf.tx"), number(t, m, "paths.vf.rx"))
	}
	if v, ok := field(t, m, "tcp.checksum_match").(bool); !ok || !v {
		t.Errorf("tcp.checksum_match = %v", field(t, m, "tcp.checksum_match"))
	}
	if b := number(t, m, "tcp.bytes"); b != 2*262144 {
		t.Errorf("tcp.bytes = %v", b)
	}
	if n := number(t, m, "migrations_done"); n != 2 {
		t.Errorf("migrations_done = %v", n)
	}
	migs, ok := field(t, m, "migrations").([]any)
	if !ok || len(migs) != 2 {
		t.Fatalf("migrations = %v", field(t, m, "migrations"))
	}
	for i, x := range migs {
		mg := x.(map[string]any)
		if mg["kind"] != "planned" || mg["taken_ms"].(float64) <= mg["withdraw_ms"].(float64) {
			t.Errorf("migration %d: %v", i, mg)
		}
	}
	sw, ok := field(t, m, "switch_overs").([]any)
	if !ok {
		t.Fatalf("switch_overs is %T", field(t, m, "switch_overs"))
	}
	if len(sw) != 4 {
		t.Fatalf("%d switch-overs for 2 migrations: %v", len(sw), sw)
	}
	for i, x := range sw {
		s := x.(map[string]any)
		if want := []string{"to_synthetic", "to_vf"}[i%2]; s["kind"] != want {
			t.Errorf("switch-over %d kind %v, want %s", i, s["kind"], want)
		}
		if g, ok := s["gap_us"].(float64); !ok || g <= 0 || g > 1e6 {
			t.Errorf("switch-over %d gap_us %v", i, s["gap_us"])
		}
	}
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("plot: %d bytes, starts %q", len(b), b[:min(8, len(b))])
	}
}

// TestMigrateSummarySVG runs the readable summary with an SVG plot.
func TestMigrateSummarySVG(t *testing.T) {
	checkGoroutines(t)
	svg := filepath.Join(t.TempDir(), "m.svg")
	var out bytes.Buffer
	if err := run(context.Background(), "migrate", quickArgs("-plot", svg, "-migrations", "1"), &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	for _, want := range []string{"lost 0  duplicated 0", "checksum matched", "migration 1 (planned)", "plot: " + svg} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<?xml")) || !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("time (s)")) {
		t.Fatalf("plot is not an SVG with a time axis: %.200q", b)
	}
}

// TestUp boots host and guest and prints hn0 and the negotiated versions.
func TestUp(t *testing.T) {
	checkGoroutines(t)
	var out bytes.Buffer
	if err := run(context.Background(), "up", []string{"-skip-attach-wait"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hn0: flags=", "<UP,BROADCAST,MULTICAST,RUNNING>", "ether 00:15:5d:00:00:01",
		"inet 192.0.2.1", "vmbus: protocol 6.0", "NVSP6.1", "NDIS6.30", "vPCI bus", "protocol 1.4", "serial 0x5eed",
		"mlx0: flags=", "kind: ethernet, vPCI serial 0x5eed", "data path vf", "state active"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("up output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestUpControl: `up -ctl` keeps the guest running and serves hvctl on a
// unix socket: the hvctl client reads the real hn0's VF status and tunes
// it; the socket goes away when up is interrupted.
func TestUpControl(t *testing.T) {
	checkGoroutines(t)
	sock := filepath.Join(t.TempDir(), "hvctl.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, "up", []string{"-skip-attach-wait", "-ctl", sock}, io.Discard) }()
	call := func(args ...string) (string, error) {
		c, cc := context.WithTimeout(context.Background(), 10*time.Second)
		defer cc()
		return hvctl.Call(c, "unix", sock, args)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("up ended before serving: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no control socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := call("-json", "vf", "hn0")
	if err != nil {
		t.Fatal(err)
	}
	var st []struct {
		Name, VF, TxTarget, AttachWait string
		Enabled, HasSerial             bool
		Serial                         uint32
		Association                    struct {
			Allocated  bool
			Serial     uint32
			Generation uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("vf -json: %v\n%s", err, out)
	}
	s := st[0]
	if s.Name != "hn0" || s.VF != "mlx0" || s.TxTarget != "mlx0" || !s.Enabled || !s.HasSerial || s.Serial != 0x5eed ||
		!s.Association.Allocated || s.Association.Serial != 0x5eed || s.Association.Generation < 1 || s.AttachWait != "2s" {
		t.Fatalf("hn0 VF status over the socket: %+v", s)
	}
	if out, err := call("set", "hn0", "attwait", "3s"); err != nil || out != "hn0 attwait 3s\n" {
		t.Fatalf("set attwait: %q %v", out, err)
	}
	if out, err := call("vf", "hn0"); err != nil || !strings.Contains(out, "mlx0") || !strings.Contains(out, "3s") {
		t.Fatalf("vf after set: %q %v", out, err)
	}
	if _, err := call("vf", "hn9"); err == nil || !strings.Contains(err.Error(), "no such interface") {
		t.Fatalf("vf hn9: %v", err)
	}
	// The mode switched on the real hn0: its VF is handed back and taken
	// again non-transparently (the VF is up, so it is active at once).
	if out, err := call("set", "hn0", "mode", "non-transparent"); err != nil || out != "hn0 mode non-transparent\n" {
		t.Fatalf("set mode: %q %v", out, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, err := call("vf", "hn0")
		if err == nil && strings.Contains(out, "non-transparent  active  mlx0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the mode switch: %q %v", out, err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up -ctl: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("up -ctl did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestBadFlags: bad options are refused with a clear error, nothing runs.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "bonding"}, {"-rate", "-5"}, {"-duration", "1ms"}, {"-frame-size", "10"}, {"-plot", "x.gif", "-migrations", "0", "-duration", "200ms"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), "migrate", args, &out); err == nil {
			t.Errorf("migrate %v: no error", args)
		}
	}
	if err := run(context.Background(), "nonsense", nil, &bytes.Buffer{}); err == nil {
		t.Error("unknown command accepted")
	}
}

// decode runs migrate with -json and returns the object.
func decode(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), "migrate", quickArgs(append(args, "-json")...), &out); err != nil {
		t.Fatalf("migrate %v: %v\n%s", args, err, out.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	return m
}

// TestMigrateFailover: the same run through the failover aggregate
// (hn non-transparent, VF as primary): nothing lost, the VF used.
func TestMigrateFailover(t *testing.T) {
	checkGoroutines(t)
	m := decode(t, "-mode", "failover")
	if field(t, m, "mode") != "failover" {
		t.Fatalf("mode %v", field(t, m, "mode"))
	}
	for _, k := range []string{"lost", "duplicated", "corrupt"} {
		if v := number(t, m, k); v != 0 {
			t.Errorf("%s = %v (to guest %v, to station %v, guest drops %v, host %v, switch-overs %v)", k, v,
				field(t, m, "to_guest"), field(t, m, "to_station"), field(t, m, "guest_drops"), field(t, m, "host"), field(t, m, "switch_overs"))
		}
	}
	if number(t, m, "paths.vf.rx") == 0 || number(t, m, "paths.vf.tx") == 0 {
		t.Errorf("the VF carried nothing: %v", field(t, m, "paths"))
	}
	if tx := number(t, m, "guest.failover_primary_tx"); tx < number(t, m, "paths.vf.tx") {
		t.Errorf("the aggregate sent %v through its primary, the stream alone %v", tx, number(t, m, "paths.vf.tx"))
	}
	if f := number(t, m, "guest.failovers"); f < 4 { // off the VF and back, twice
		t.Errorf("%v failovers for 2 migrations", f)
	}
	if v, _ := field(t, m, "tcp.checksum_match").(bool); !v {
		t.Errorf("tcp: %v", field(t, m, "tcp"))
	}
	if n := number(t, m, "migrations_done"); n != 2 {
		t.Errorf("migrations_done = %v", n)
	}
}

// TestMigrateSurprise: surprise removals; whatever the stream lost is no
// more than what the VF's rings held, and each removal reports its bound.
func TestMigrateSurprise(t *testing.T) {
	checkGoroutines(t)
	m := decode(t, "-surprise")
	var bound float64
	for i, x := range field(t, m, "migrations").([]any) {
		mg := x.(map[string]any)
		sl, ok := mg["surprise_loss"].(map[string]any)
		if !ok || mg["kind"] != "surprise" {
			t.Fatalf("migration %d: %v", i, mg)
		}
		bound += sl["bound"].(float64)
		if lost := mg["lost"].(float64); lost > sl["bound"].(float64) {
			t.Errorf("migration %d lost %v frames, bound %v", i, lost, sl["bound"])
		}
	}
	if lost := number(t, m, "lost"); lost > bound || number(t, m, "lost_outside_migrations") != 0 {
		t.Errorf("lost %v (outside migrations %v), bound %v", lost, number(t, m, "lost_outside_migrations"), bound)
	}
	if number(t, m, "duplicated") != 0 {
		t.Errorf("duplicated %v", number(t, m, "duplicated"))
	}
	if v, _ := field(t, m, "tcp.checksum_match").(bool); !v {
		t.Errorf("tcp: %v", field(t, m, "tcp"))
	}
}

// guestEnv makes the test binary run `hvsim guest -shm $guestEnv` (see
// TestMain): the second process of TestServeGuest.
const guestEnv = "HVSIM_TEST_GUEST_SHM"

// guestVFEnv adds `-vf $guestVFEnv` to that guest (TestServeGuestVF).
const guestVFEnv = "HVSIM_TEST_GUEST_VF"

func TestMain(m *testing.M) {
	if path := os.Getenv(guestEnv); path != "" {
		args := []string{"-shm", path, "-packets", "2000", "-size", "256"}
		if vf := os.Getenv(guestVFEnv); vf != "" {
			args = append(args, "-vf", vf, "-ping-for", "3s")
		}
		if err := run(context.Background(), "guest", args, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "guest:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServeGuest runs `hvsim serve` here and `hvsim guest` in a second
// process over one shared file: the echo round trips, hn0 comes up over
// the file and the host's station answers its ARP request.
func TestServeGuest(t *testing.T) { serveGuest(t, false) }

// TestServeGuestVF: the same with the VF across the processes (pci/shmio):
// the guest's hn0 takes its transparent VF (after the real 2 s attach
// wait), and while it pings for 3 s the host live-migrates the VF once
// (withdraw, eject, a new VF, which the guest takes after its attach
// wait): every ping answered, both paths used, no protocol violation in
// the host's device models, no malformed request on the channel.
func TestServeGuestVF(t *testing.T) { serveGuest(t, true) }

func serveGuest(t *testing.T, withVF bool) {
	if raceEnabled {
		// The race detector cannot see ordering that goes through another
		// process: the guest's vmbus.Connect writes the message connection
		// id on one goroutine and the offer worker reads it after offers
		// that the host (the other process) sent in answer, which the
		// detector reports (hyperv/vmbus bus.go, negotiate vs post).
		t.Skip("cross-process ordering is invisible to the race detector")
	}
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "shm")
	var hostOut syncBuffer
	var guestOut bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"-shm", path, "-pages", "4096"}
	vfPath := filepath.Join(t.TempDir(), "vf")
	if withVF {
		args = append(args, "-vf", vfPath, "-migrations", "1", "-migrate-every", "300ms")
	}
	go func() { done <- run(ctx, "serve", args, &hostOut) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(hostOut.String(), "run: hvsim guest"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not come up:\n%s", hostOut.String())
		}
	}
	// The guest is another process: this test binary, run as the guest.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), guestEnv+"="+path)
	if withVF {
		cmd.Env = append(cmd.Env, guestVFEnv+"="+vfPath)
	}
	cmd.Stdout, cmd.Stderr = &guestOut, &guestOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("guest process: %v\n%s", err, guestOut.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not notice the guest detaching")
	}
	wants := []string{"2000 packets of 256 bytes echoed", "hn0 up: NVSP NVSP6.1", "ether 00:15:5d:00:00:01", "192.0.2.2 is-at 02:00:5e:00:00:02"}
	if !withVF {
		wants = append(wants, "1000 pings of 512 bytes through hn0: 1000 replies, payloads intact")
	}
	for _, want := range wants {
		if !strings.Contains(guestOut.String(), want) {
			t.Errorf("guest output lacks %q:\n%s", want, guestOut.String())
		}
	}
	if !withVF {
		// One ARP and 1000 echo requests each way through netvsp.
		for _, want := range []string{"echo device saw 2000 packets", "netvsp tx 1001 rx 1001 frames", "station got 1001 frames, sent 1 ARP replies"} {
			if !strings.Contains(hostOut.String(), want) {
				t.Errorf("host output lacks %q:\n%s", want, hostOut.String())
			}
		}
		return
	}
	// Every ping answered, across the migration; some through the VF,
	// some synthetic while it was away; the guest ends on the new VF.
	g := guestOut.String()
	m := regexp.MustCompile(`guest: (\d+) pings of 512 bytes through hn0: (\d+) replies, payloads intact`).FindStringSubmatch(g)
	if m == nil || m[1] != m[2] {
		t.Fatalf("pings: %v\n%s", m, g)
	}
	via := regexp.MustCompile(`through the VF: (\d+) sent, (\d+) received \(synthetic: (\d+) sent, (\d+) received\)`).FindStringSubmatch(g)
	if via == nil || via[1] == "0" || via[2] == "0" || via[3] == "0" || via[4] == "0" {
		t.Fatalf("paths: %v\n%s", via, g)
	}
	for _, want := range []string{"hn0: VF mlx0 active (serial 0x5eed", "hn0: VF mlx0 active, association generation"} {
		if !strings.Contains(g, want) {
			t.Errorf("guest output lacks %q:\n%s", want, g)
		}
	}
	for _, want := range []string{"echo device saw 2000 packets", "host: migration 1: VF withdrawn and ejected", "host: 1 migrations done",
		" 0 violations;", "(0 bad requests)"} {
		if !strings.Contains(hostOut.String(), want) {
			t.Errorf("host output lacks %q:\n%s", want, hostOut.String())
		}
	}
	// The host's count of frames through the VF models is the guest's.
	hm := regexp.MustCompile(`VF models tx (\d+) rx (\d+) frames`).FindStringSubmatch(hostOut.String())
	if hm == nil || hm[1] != via[1] || hm[2] != via[2] {
		t.Errorf("host VF models %v, guest through the VF %v", hm, via)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var long = flag.Bool("long", false, "run the long migration acceptance (make migrate-long)")

// TestMigrateLong is the "must show" at length: 20 planned
// migrations in transparent and in failover mode lose and duplicate
// nothing and the TCP checksums match; 10 surprise removals lose no more
// than the VF's rings held.
func TestMigrateLong(t *testing.T) {
	if !*long {
		t.Skip("-long not set")
	}
	for _, mode := range []string{"transparent", "failover"} {
		t.Run(mode, func(t *testing.T) {
			m := decode(t, "-mode", mode, "-migrations", "20", "-rate", "5000", "-tcp-bytes", "4194304")
			if number(t, m, "migrations_done") != 20 || number(t, m, "lost") != 0 || number(t, m, "duplicated") != 0 {
				t.Errorf("%s: %v migrations, lost %v, duplicated %v", mode, field(t, m, "migrations_done"), field(t, m, "lost"), field(t, m, "duplicated"))
			}
			if v, _ := field(t, m, "tcp.checksum_match").(bool); !v {
				t.Errorf("tcp: %v", field(t, m, "tcp"))
			}
			t.Logf("%s: %v frames, switch-over gaps (µs): %v", mode, field(t, m, "frames_sent"), gaps(m))
		})
	}
	t.Run("surprise", func(t *testing.T) {
		m := decode(t, "-surprise", "-migrations", "10", "-rate", "5000")
		var bound float64
		for _, x := range field(t, m, "migrations").([]any) {
			bound += x.(map[string]any)["surprise_loss"].(map[string]any)["bound"].(float64)
		}
		if lost := number(t, m, "lost"); lost > bound || number(t, m, "duplicated") != 0 {
			t.Errorf("lost %v, bound %v, duplicated %v", lost, bound, field(t, m, "duplicated"))
		}
		t.Logf("surprise: lost %v of %v frames, bound %v", field(t, m, "lost"), field(t, m, "frames_sent"), bound)
	})
}

func gaps(m map[string]any) []int {
	var out []int
	for _, x := range m["switch_overs"].([]any) {
		out = append(out, int(x.(map[string]any)["gap_us"].(float64)))
	}
	return out
}
