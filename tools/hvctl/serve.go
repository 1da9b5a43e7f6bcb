package hvctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The control socket: one request per connection, a JSON line
// {"args":[...]} of at most MaxRequest bytes; the answer is one JSON
// object {"out":"...","err":"..."}.

// MaxRequest bounds a request line.
const MaxRequest = 4096

// ErrRequest: a malformed control request.
var ErrRequest = errors.New("hvctl: bad request")

type request struct {
	Args []string `json:"args"`
}

type response struct {
	Out string `json:"out"`
	Err string `json:"err,omitempty"`
}

// parseRequest decodes one request line (untrusted: whatever connected
// to the socket).
func parseRequest(line []byte) ([]string, error) {
	if len(line) > MaxRequest {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRequest, len(line), MaxRequest)
	}
	var r request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRequest, err)
	}
	if len(r.Args) == 0 || len(r.Args) > 8 {
		return nil, fmt.Errorf("%w: %d arguments", ErrRequest, len(r.Args))
	}
	return r.Args, nil
}

// Serve answers commands on ln until ctx ends or ln fails; it closes ln
// and waits for the connections it started before returning.
func Serve(ctx context.Context, ln net.Listener, t Target) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(c, t)
		}()
	}
}

func serveConn(c net.Conn, t Target) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequest+1), MaxRequest+1).ReadBytes('\n')
	var resp response
	if err != nil && !errors.Is(err, io.EOF) {
		resp.Err = fmt.Sprintf("%v: %v", ErrRequest, err)
	} else if args, perr := parseRequest(line); perr != nil {
		resp.Err = perr.Error()
	} else {
		var out bytes.Buffer
		if rerr := Run(t, args, &out); rerr != nil {
			resp.Err = rerr.Error()
		}
		resp.Out = out.String()
	}
	_ = json.NewEncoder(c).Encode(resp)
}

// Call sends one command to a control socket and returns its output.
func Call(ctx context.Context, network, addr string, args []string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(request{Args: args}); err != nil {
		return "", err
	}
	var resp response
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&resp); err != nil {
		return "", fmt.Errorf("hvctl: reading the answer: %w", err)
	}
	if resp.Err != "" {
		return resp.Out, errors.New(resp.Err)
	}
	return resp.Out, nil
}
