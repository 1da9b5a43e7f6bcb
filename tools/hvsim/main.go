// Command hvsim runs hvguest's simulated Hyper-V host. It is a tool on the
// host side that also runs the guest stack where a scenario needs both
// (up, migrate, demo), so a newcomer sees the whole path work.
//
//	hvsim migrate [flags]             live migrations under traffic (the main job)
//	hvsim up                          boot host and guest, print the interfaces
//	hvsim demo [-packets N] [-size B] VMBus echo device, host and guest in one process
//	hvsim serve -shm FILE [-pages N]  host in this process, guest elsewhere
//	hvsim guest -shm FILE             guest attaching to a running 'hvsim serve'
//	hvsim guest -pci auto             the same inside a QEMU VM, over ivshmem (images/)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/hvguest/hvguest/hyperv/synic"
)

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: hvsim COMMAND [flags]   (hvsim COMMAND -h lists a command's flags)
  migrate   a remote station streams numbered frames and TCP to and from the guest while the
            host live-migrates it: switch back, withdraw the VF, eject it, run synthetic,
            re-offer it, the guest takes it back (-json, -plot FILE, -migrations N, -surprise)
  up        boot the simulated host and the guest stack, bring hn0 (and its VF) up, print them
  demo      the VMBus echo device: host and guest in one process, ns/packet
  serve     the simulated host over a shared-memory file (echo device, netvsp + switch)
            (-ivshmem: a power-of-two file that QEMU's ivshmem-plain can carry into a VM)
  guest     a guest in another process: echo round trips, then hn0 up over the shared file
            (-pci auto: inside a QEMU VM, over the ivshmem device's BAR 2)`)
}

// errUsage makes main exit with status 2.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1], os.Args[2:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "hvsim:", err)
		os.Exit(1)
	}
}

// run dispatches one command; out receives its normal output and ctx
// ends on an interrupt.
func run(ctx context.Context, cmd string, args []string, out io.Writer) error {
	switch cmd {
	case "migrate":
		return migrateCmd(ctx, args, out)
	case "up":
		return upCmd(ctx, args, out)
	case "demo", "serve", "guest":
		return echoFamily(ctx, cmd, args, out)
	case "help", "-h", "--help":
		usage(out)
		return nil
	}
	usage(os.Stderr)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// logger returns a text logger on stderr: debug with verbose, else warnings.
func logger(verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// echoFamily runs demo, serve and guest, which share their flags.
func echoFamily(ctx context.Context, cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	packets := fs.Int("packets", 100000, "packets to echo (0: skip the echo)")
	size := fs.Int("size", 1024, "payload bytes per packet")
	shm := fs.String("shm", "", "shared memory file (e.g. /dev/shm/hvsim)")
	pages := fs.Int("pages", 16384, "guest RAM pages in the shared file")
	tap := fs.String("tap", "", "serve: uplink the switch to this TAP device (needs CAP_NET_ADMIN)")
	ivshmem := fs.Bool("ivshmem", false, "serve: round the file up to a power of two (QEMU ivshmem-plain's BAR size)")
	pciAddr := fs.String("pci", "", "guest: attach over this ivshmem PCI function's BAR 2 (DDDD:BB:DD.F, or auto) instead of -shm, polling (inside a VM)")
	vfPath := fs.String("vf", "", "serve: offer a vPCI bus with an mlx-lite VF whose registers travel through this second shared file; guest: use it (transparent mode)")
	nmig := fs.Int("migrations", 0, "serve -vf: live-migrate the VF this many times once the guest took it (withdraw, eject, a new VF)")
	every := fs.Duration("migrate-every", time.Second, "serve -vf -migrations: time between migrations")
	pingFor := fs.Duration("ping-for", 0, "guest: keep pinging in rounds of -pings until this long has passed")
	pings := fs.Int("pings", 1000, "guest: ICMP echo requests to the host's station through hn0 (0: none)")
	peerTimeout := fs.Duration("peer-timeout", synic.DefaultPeerTimeout, "how long the other side's heartbeat may stall before it counts as gone")
	verbose := fs.Bool("v", false, "log the protocol")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger(*verbose)
	switch cmd {
	case "demo":
		return demo(out, log, *packets, *size)
	case "serve":
		if *ivshmem {
			*pages = ivshmemPages(*pages)
		}
		return serve(ctx, out, log, *shm, *pages, *tap, *vfPath, migrations{*nmig, *every}, synic.WithPeerTimeout(*peerTimeout))
	default:
		sg, done, err := openGuest(*shm, *pciAddr, *peerTimeout)
		if err != nil {
			return err
		}
		defer done()
		return guest(out, log, sg, *packets, *size, *pings, *pingFor, *vfPath)
	}
}
