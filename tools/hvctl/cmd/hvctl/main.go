// Command hvctl queries and tunes the hn NICs of a running hvguest guest
// through its control socket (see package hvctl for the commands).
//
//	hvctl -sock /run/hvsim/hvctl.sock vf
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hvguest/hvguest/tools/hvctl"
)

func main() {
	sock := flag.String("sock", "/run/hvguest/hvctl.sock", "control socket of the guest process")
	timeout := flag.Duration("timeout", 10*time.Second, "give up after this long")
	asJSON := flag.Bool("json", false, "JSON output")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: hvctl [-sock path] [-json] vf [hnX] | stats [hnX] | set hnX attwait <duration> | set hnX capture before|after | set hnX mode transparent|non-transparent")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	args := flag.Args()
	if *asJSON {
		args = append([]string{"-json"}, args...)
	}
	out, err := hvctl.Call(ctx, "unix", *sock, args)
	fmt.Print(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
