// Command hvsim runs hvguest's simulated Hyper-V host. It is a tool on the
// host side; its demo also runs the guest VMBus client so a newcomer sees
// the whole path work.
//
//	hvsim demo [-packets N] [-size B]          host + echo device + guest in one process
//	hvsim serve -shm FILE [-pages N]            host in this process, guest elsewhere
//	hvsim guest -shm FILE [-packets N]          guest attaching to a running 'hvsim serve'
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  hvsim demo  [-packets N] [-size B] [-v]   simulated host, echo device and guest in one process
  hvsim serve -shm FILE [-pages N] [-v]     simulated host over a shared file; waits for a guest
  hvsim guest -shm FILE [-packets N] [-v]   guest that attaches to 'hvsim serve'`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	packets := fs.Int("packets", 100000, "packets to echo")
	size := fs.Int("size", 1024, "payload bytes per packet")
	shm := fs.String("shm", "", "shared memory file (e.g. /dev/shm/hvsim)")
	pages := fs.Int("pages", 16384, "guest RAM pages in the shared file")
	verbose := fs.Bool("v", false, "log the protocol")
	fs.Parse(os.Args[2:])
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var err error
	switch os.Args[1] {
	case "demo":
		err = demo(log, *packets, *size)
	case "serve":
		err = serve(log, *shm, *pages)
	case "guest":
		err = guest(log, *shm, *packets, *size)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hvsim:", err)
		os.Exit(1)
	}
}

func demo(log *slog.Logger, packets, size int) error {
	ram := kernel.NewSimRAM(16384)
	srv, err := host.NewServer(host.Config{Memory: ram, Logger: log.With("side", "host")})
	if err != nil {
		return err
	}
	defer srv.Close()
	pair := synic.NewPair(srv)
	if err := srv.Attach(pair.Host()); err != nil {
		return err
	}
	dev := echo.New(echo.Options{})
	if err := srv.AddDevice(dev); err != nil {
		return err
	}
	fmt.Println("host: simulated Hyper-V host up, offering the echo device", echo.ClassGUID)
	if err := runGuest(log, pair.Guest(), ram, packets, size); err != nil {
		return err
	}
	st := dev.Stats()
	fmt.Printf("host: echo device saw %d packets, %d bytes, sent %d replies, %d errors\n", st.Packets, st.Bytes, st.Replies, st.Errors)
	return nil
}

func serve(log *slog.Logger, path string, pages int) error {
	if path == "" {
		return fmt.Errorf("serve needs -shm FILE")
	}
	var late synic.LateHandler
	sh, err := synic.CreateShared(path, pages, &late)
	if err != nil {
		return err
	}
	defer sh.Close()
	srv, err := host.NewServer(host.Config{Memory: sh.RAM(), ConnIDs: host.ConnIDCompact, Logger: log.With("side", "host")})
	if err != nil {
		return err
	}
	defer srv.Close()
	late.Set(srv)
	if err := srv.Attach(sh.Host()); err != nil {
		return err
	}
	dev := echo.New(echo.Options{})
	if err := srv.AddDevice(dev); err != nil {
		return err
	}
	fmt.Printf("host: serving %s (%d pages of guest RAM); run: hvsim guest -shm %s\n", path, pages, path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	select {
	case <-sh.Done():
		fmt.Println("host: guest detached")
	case <-sig:
	}
	st := dev.Stats()
	fmt.Printf("host: echo device saw %d packets, %d bytes, sent %d replies, %d errors\n", st.Packets, st.Bytes, st.Replies, st.Errors)
	return nil
}

func guest(log *slog.Logger, path string, packets, size int) error {
	if path == "" {
		return fmt.Errorf("guest needs -shm FILE")
	}
	sg, err := synic.OpenShared(path)
	if err != nil {
		return err
	}
	defer sg.Close()
	return runGuest(log, sg.Guest(), sg.RAM(), packets, size)
}

type offers chan *vmbus.Offer

func (o offers) Add(x *vmbus.Offer)  { o <- x }
func (o offers) Remove(*vmbus.Offer) {}

// runGuest connects, opens the echo channel and measures round trips.
func runGuest(log *slog.Logger, port synic.GuestPort, mem kernel.Memory, packets, size int) error {
	ctx := context.Background()
	found := make(offers, 1)
	bus, err := vmbus.Connect(ctx, vmbus.Config{Port: port, Memory: mem, Logger: log.With("side", "guest")},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: found})
	if err != nil {
		return err
	}
	defer bus.Close(ctx)
	fmt.Printf("guest: connected, VMBus protocol %v\n", bus.Version())
	var o *vmbus.Offer
	select {
	case o = <-found:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("no echo device offered")
	}
	fmt.Printf("guest: offer relid %d class %v instance %v\n", o.RelID(), o.ClassID(), o.InstanceID())
	got := make(chan int, 1)
	var n int
	ch, err := o.Open(ctx, vmbus.OpenOptions{SendPages: 64, RecvPages: 64,
		Handler: vmbus.HandlerFunc(func(_ *vmbus.Channel, pk []ring.Packet) {
			n += len(pk)
			if n >= packets {
				select {
				case got <- n:
				default:
				}
			}
		})})
	if err != nil {
		return err
	}
	payload := make([]byte, size)
	start := time.Now()
	for sent := 0; sent < packets; {
		batch := min(32, packets-sent)
		if err := ch.Send(func(tx *vmbus.Tx) error {
			for i := 0; i < batch; i++ {
				if err := tx.InBand(uint64(sent+i), false, payload); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		sent += batch
	}
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("echo incomplete")
	}
	el := time.Since(start)
	st := ch.Stats()
	fmt.Printf("guest: %d packets of %d bytes echoed in %v: %.0f ns/packet, %.0f packets/s (%d signals to host, %d ring-full waits)\n",
		packets, size, el.Round(time.Millisecond), float64(el.Nanoseconds())/float64(packets),
		float64(packets)/el.Seconds(), st.TxSignals, st.TxFullWaits)
	return o.Close(ctx)
}
