package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/hvguest/hvguest/tools/hvctl"
)

// control serves hvctl on a unix socket at path while the guest runs, so
// `hvctl -sock PATH vf` (tools/hvctl/cmd/hvctl) reads and tunes its hn NICs
// from another terminal. A stale socket file at path is replaced; anything
// else there is an error. stop ends the server, waits for it and removes
// the socket.
func control(ctx context.Context, path string, t hvctl.Target) (stop func() error, err error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%w: -ctl %s exists and is not a socket", errUsage, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("hvsim: control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- hvctl.Serve(ctx, ln, t) }()
	return func() error {
		cancel()
		err := <-done
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
		return err
	}, nil
}
