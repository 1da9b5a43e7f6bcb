package vmbus_test

// Cross-process: the simulated host runs in a child process (this test
// binary re-executed), the guest here; they share one file holding the
// SynIC transport and the guest's RAM.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
)

const shmEnv = "HVGUEST_TEST_SHM_HOST"

// TestShmHostProcess is the host half; it does nothing unless the parent
// test started it.
func TestShmHostProcess(t *testing.T) {
	path := os.Getenv(shmEnv)
	if path == "" {
		t.Skip("host half of TestCrossProcessEcho; runs only in its child process")
	}
	var late synic.LateHandler
	sh, err := synic.CreateShared(path, 4096, &late)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	srv, err := host.NewServer(host.Config{Memory: sh.RAM(), ConnIDs: host.ConnIDCompact})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	late.Set(srv)
	srv.Attach(sh.Host())
	dev := echo.New(echo.Options{})
	srv.AddDevice(dev)
	fmt.Println("ready")
	select {
	case <-sh.Done(): // the guest detached
	case <-time.After(120 * time.Second):
		fmt.Println("error: guest never finished")
	}
	st := dev.Stats()
	fmt.Printf("echo packets=%d replies=%d errors=%d\n", st.Packets, st.Replies, st.Errors)
	srv.Close()
	sh.Close()
	os.Exit(0)
}

func TestCrossProcessEcho(t *testing.T) {
	if os.Getenv(shmEnv) != "" {
		t.Skip("child process")
	}
	path := filepath.Join(t.TempDir(), "vmbus.shm")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^TestShmHostProcess$", "-test.v")
	child.Env = append(os.Environ(), shmEnv+"="+path)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- child.Wait()
	}()
	t.Cleanup(func() { child.Process.Kill() })
	waitLine := func(prefix string) string {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("host process ended before printing %q", prefix)
				}
				if strings.HasPrefix(l, "error:") {
					t.Fatalf("host process: %s", l)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q from the host process", prefix)
			}
		}
	}
	waitLine("ready")

	sg, err := synic.OpenShared(path)
	if err != nil {
		t.Fatal(err)
	}
	drv := newDriver()
	ctx := context.Background()
	bus, err := vmbus.Connect(ctx, vmbus.Config{Port: sg.Guest(), Memory: sg.RAM()},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: drv})
	if err != nil {
		t.Fatal(err)
	}
	o := recv(t, drv.added, "echo offer")
	chk := &checker{notify: make(chan struct{}, 1)}
	ch, err := o.Open(ctx, vmbus.OpenOptions{SendPages: 8, RecvPages: 8, Handler: chk})
	if err != nil {
		t.Fatal(err)
	}
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	start := time.Now()
	exchange(t, ch, chk, total)
	t.Logf("%d packets echoed across processes in %v", total, time.Since(start))
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sg.Close()
	stats := waitLine("echo packets=")
	if want := fmt.Sprintf("echo packets=%d replies=%d errors=0", total, total); stats != want {
		t.Fatalf("host reports %q, want %q", stats, want)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("host process did not exit after the guest detached")
	}
}
