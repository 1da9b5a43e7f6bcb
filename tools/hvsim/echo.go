package main

// The echo device: VMBus alone, guest and host, in one process (demo) or
// two (the echo part of serve and guest).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/kernel"
)

func demo(w io.Writer, log *slog.Logger, packets, size int) error {
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
	fmt.Fprintln(w, "host: simulated Hyper-V host up, offering the echo device", echo.ClassGUID)
	if err := runGuest(w, log, pair.Guest(), ram, packets, size); err != nil {
		return err
	}
	st := dev.Stats()
	fmt.Fprintf(w, "host: echo device saw %d packets, %d bytes, sent %d replies, %d errors\n", st.Packets, st.Bytes, st.Replies, st.Errors)
	return nil
}

type offers chan *vmbus.Offer

func (o offers) Add(x *vmbus.Offer)  { o <- x }
func (o offers) Remove(*vmbus.Offer) {}

// runGuest connects with only the echo driver and runs the echo.
func runGuest(w io.Writer, log *slog.Logger, port synic.GuestPort, mem kernel.Memory, packets, size int) error {
	ctx := context.Background()
	found := make(offers, 1)
	bus, err := vmbus.Connect(ctx, vmbus.Config{Port: port, Memory: mem, Logger: log.With("side", "guest")},
		map[tlfs.GUID]vmbus.Driver{echo.ClassGUID: found})
	if err != nil {
		return err
	}
	defer bus.Close(ctx)
	fmt.Fprintf(w, "guest: connected, VMBus protocol %v\n", bus.Version())
	return runEcho(w, found, packets, size)
}

// runEcho opens the offered echo channel and measures round trips.
func runEcho(w io.Writer, found offers, packets, size int) error {
	ctx := context.Background()
	var o *vmbus.Offer
	select {
	case o = <-found:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("no echo device offered")
	}
	fmt.Fprintf(w, "guest: offer relid %d class %v instance %v\n", o.RelID(), o.ClassID(), o.InstanceID())
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
	fmt.Fprintf(w, "guest: %d packets of %d bytes echoed in %v: %.0f ns/packet, %.0f packets/s (%d signals to host, %d ring-full waits)\n",
		packets, size, el.Round(time.Millisecond), float64(el.Nanoseconds())/float64(packets),
		float64(packets)/el.Seconds(), st.TxSignals, st.TxFullWaits)
	return o.Close(ctx)
}
