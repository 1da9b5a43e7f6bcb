package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hvguest/hvguest/tools/hvsim/internal/testbed"
)

// upCmd is `hvsim up`: boot, print the interfaces and what was negotiated.
func upCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	mode := fs.String("mode", "transparent", "transparent or failover")
	attachWait := fs.Duration("attach-wait", 2*time.Second, "hn's VF attach wait (at least 2 s)")
	skip := fs.Bool("skip-attach-wait", true, "hn's clock jumps over the attach wait (-skip-attach-wait=false waits for real)")
	verbose := fs.Bool("v", false, "log the protocol")
	ctl := fs.String("ctl", "", "after printing, keep the guest running and serve hvctl on this unix socket until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	tb, err := testbed.New(ctx, testbed.Config{Mode: testbed.Mode(*mode), AttachWait: *attachWait, SkipAttachWait: *skip, Logger: logger(*verbose)})
	if err != nil {
		return err
	}
	defer tb.Close()
	fmt.Fprintf(out, "host and guest up in %v\n", time.Since(start).Round(time.Millisecond))
	tb.Ifconfig(out)
	if *ctl == "" {
		return nil
	}
	stop, err := control(ctx, *ctl, tb.Control())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "hvctl: serving on %s (hvctl -sock %s vf); interrupt to stop\n", *ctl, *ctl)
	<-ctx.Done()
	return stop()
}
