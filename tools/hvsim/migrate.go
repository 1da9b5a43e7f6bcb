package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/hvguest/hvguest/tools/hvsim/internal/testbed"
)

// migrateCmd is `hvsim migrate`: the testbed's run with its report.
func migrateCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var cfg testbed.Config
	mode := fs.String("mode", "transparent", "how the guest uses the VF: transparent (hn hides it) or failover (an aggregate over hn0 and the VF)")
	fs.IntVar(&cfg.Rate, "rate", 5000, "stream frames per second, each direction")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "traffic time (at least; it runs until the last migration is done)")
	fs.IntVar(&cfg.Migrations, "migrations", 2, "live migrations during the run")
	fs.BoolVar(&cfg.Surprise, "surprise", false, "surprise-remove the VF instead of a planned eject")
	fs.DurationVar(&cfg.AttachWait, "attach-wait", 2*time.Second, "hn's wait after a VF attaches before it takes the data path (at least 2 s, as FreeBSD)")
	fs.BoolVar(&cfg.SkipAttachWait, "skip-attach-wait", true, "hn's clock jumps over the attach wait: it passes in guest time, not real time (-skip-attach-wait=false waits for real)")
	fs.DurationVar(&cfg.EjectDelay, "eject-delay", 100*time.Millisecond, "host's wait between switching the data path back and ejecting the VF (negative: none)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed for payloads and migration timing")
	fs.IntVar(&cfg.FrameSize, "frame-size", 256, "stream frame size in bytes")
	fs.Int64Var(&cfg.TCPBytes, "tcp-bytes", 2<<20, "bytes of each TCP transfer (guest to station and back; 0: none)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the summary")
	plotFile := fs.String("plot", "", "draw delivered frames per path over time to FILE (.png or .svg)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to FILE (go tool pprof)")
	verbose := fs.Bool("v", false, "log the protocol")
	ctl := fs.String("ctl", "", "serve hvctl on this unix socket during the run (watch hvctl -sock PATH stats from another terminal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: migrate takes no arguments (%q)", errUsage, fs.Args())
	}
	if ext := strings.ToLower(filepath.Ext(*plotFile)); *plotFile != "" && ext != ".png" && ext != ".svg" {
		return fmt.Errorf("%w: -plot %s: the file must end in .png or .svg", errUsage, *plotFile)
	}
	cfg.Mode = testbed.Mode(*mode)
	cfg.Logger = logger(*verbose)
	rep, err := migrate(ctx, cfg, *ctl)
	if err != nil {
		return err
	}
	if *plotFile != "" {
		if err := rep.Plot(*plotFile); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		summary(out, rep)
		if *plotFile != "" {
			fmt.Fprintf(out, "plot: %s\n", *plotFile)
		}
	}
	if rep.Error != "" {
		return fmt.Errorf("migration: %s", rep.Error)
	}
	return nil
}

// migrate boots a testbed, runs it (serving hvctl on ctl, if set) and
// tears it down.
func migrate(ctx context.Context, cfg testbed.Config, ctl string) (*testbed.Report, error) {
	tb, err := testbed.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer tb.Close()
	if ctl != "" {
		stop, err := control(ctx, ctl, tb.Control())
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	return tb.Run(ctx)
}

func summary(w io.Writer, r *testbed.Report) {
	kind := "planned"
	if r.Surprise {
		kind = "surprise"
	}
	fmt.Fprintf(w, "hvsim migrate: %s mode, %d of %d %s migrations in %.2f s of traffic (seed %d)\n",
		r.Mode, r.MigrationsDone, r.MigrationsRequested, kind, r.TrafficMS/1e3, r.Seed)
	skipped := ""
	if r.AttachWaitSkipped {
		skipped = " (skipped in guest time)"
	}
	fmt.Fprintf(w, "  guest VF attach wait %.0f ms%s\n", r.AttachWaitMS, skipped)
	fmt.Fprintf(w, "  stream: %d frames/s each way, %d bytes each\n", r.RateFPS, r.FrameSize)
	for _, d := range []struct {
		name string
		d    testbed.DirReport
	}{{"station -> guest", r.ToGuest}, {"guest -> station", r.ToStation}} {
		fmt.Fprintf(w, "    %-17s sent %7d  received %7d  lost %d  duplicated %d  corrupt %d  (synthetic %d, VF %d)\n",
			d.name, d.d.Sent, d.d.Received, d.d.Lost, d.d.Duplicated, d.d.Corrupt, d.d.Synthetic, d.d.VF)
	}
	fmt.Fprintf(w, "  total: sent %d, received %d, lost %d (%d outside any migration), duplicated %d\n",
		r.FramesSent, r.FramesReceived, r.Lost, r.LostOutsideMigrations, r.Duplicated)
	for _, t := range r.TCP.Transfers {
		ok := "checksum matched"
		if !t.Match {
			ok = "CHECKSUM MISMATCH " + t.Error
		}
		fmt.Fprintf(w, "  tcp %-10s %d of %d bytes in %.0f ms, sha256 %.16s… %s\n", t.Direction, t.Received, t.Bytes, t.ElapsedMS, t.RecvSHA256, ok)
	}
	for _, m := range r.Migrations {
		fmt.Fprintf(w, "  migration %d (%s): withdraw at %.1f ms, VF gone %.1f ms, re-offered %.1f ms, taken back %.1f ms (%.1f ms off the VF), lost %d\n",
			m.Index+1, m.Kind, m.WithdrawMS, m.RemovedMS, m.ReofferMS, m.TakenMS, m.SyntheticMS, m.Lost)
		if l := m.SurpriseLoss; l != nil {
			fmt.Fprintf(w, "    surprise removal could lose %d frames: %d left in the VF's receive ring, %d the VF had taken and dropped as it vanished, %d steered to the removed device\n",
				l.Bound, l.RxInRing, l.VFDropped, l.RxAfterRemove)
		}
	}
	for _, s := range r.SwitchOvers {
		fmt.Fprintf(w, "  switch-over %-12s at %8.1f ms: gap %6.0f µs (to guest %.0f, to station %.0f), lost %d\n",
			s.Kind, s.AtMS, s.GapUS, s.GapToGuestUS, s.GapToStationUS, s.Lost)
	}
	fmt.Fprintf(w, "  baseline: 99th percentile %.0f µs between delivered frames\n", r.BaselineGapUS)
	fmt.Fprintf(w, "  host: netvsp tx %d rx %d (rx dropped %d), steered to synthetic %d, to VF %d, %d path switches; switch drops %d\n",
		r.Host.NetvspTxFrames, r.Host.NetvspRxFrames, r.Host.NetvspRxDropped, r.Host.NetvspPathSynthetic,
		r.Host.NetvspPathVF, r.Host.NetvspPathSwitches, r.Host.SwitchDrops)
	g := r.Guest
	fmt.Fprintf(w, "  guest hn0: synthetic tx %d rx %d, VF tx %d rx %d (fallback %d, busy %d)\n",
		g.HnSyntheticTx, g.HnSyntheticRx, g.HnVFTx, g.HnVFRx, g.HnVFTxFallback, g.HnVFTxBusy)
	if r.Mode == "failover" {
		fmt.Fprintf(w, "  guest failover0: primary tx %d rx %d, standby tx %d rx %d, %d failovers, %d refused (no member)\n",
			g.FailoverPrimaryTx, g.FailoverPrimaryRx, g.FailoverStandbyTx, g.FailoverStandbyRx, g.Failovers, g.FailoverTxNoMember)
	}
	if len(r.Host.VFDrops) > 0 || len(r.GuestDrops) > 0 {
		fmt.Fprintf(w, "  drops: host VF %v, guest %v\n", r.Host.VFDrops, r.GuestDrops)
	}
	if r.SequenceExhausted {
		fmt.Fprintln(w, "  WARNING: a sender ran out of sequence numbers and stopped early")
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  ERROR: %s\n", r.Error)
	}
}
