package vmbus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hvguest/hvguest/hyperv/ring"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus"
)

type countHandler struct {
	n    atomic.Int64
	want atomic.Int64
	done chan struct{}
}

func (c *countHandler) HandlePackets(_ *vmbus.Channel, pk []ring.Packet) {
	if c.n.Add(int64(len(pk))) >= c.want.Load() {
		select {
		case c.done <- struct{}{}:
		default:
		}
	}
}

// BenchmarkChannelEcho measures the guest's batched send plus receive of
// the echoed packet through the simulated host, in one process.
func BenchmarkChannelEcho(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB-batch32", size), func(b *testing.B) {
			w := newWorld(b, nil)
			drv := newDriver()
			ctx := context.Background()
			bus, err := vmbus.Connect(ctx, vmbus.Config{Port: w.pair.Guest(), Memory: w.ram},
				map[tlfs.GUID]vmbus.Driver{w.dev.Offer().Class: drv})
			if err != nil {
				b.Fatal(err)
			}
			defer bus.Close(ctx)
			defer w.srv.Close()
			o := <-drv.added
			h := &countHandler{done: make(chan struct{}, 1)}
			ch, err := o.Open(ctx, vmbus.OpenOptions{Handler: h})
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, size)
			const batch = 32
			var id uint64
			stage := func(tx *vmbus.Tx) error {
				for i := 0; i < batch; i++ {
					id++
					if err := tx.InBand(id, false, payload); err != nil {
						return err
					}
				}
				return nil
			}
			rounds := (b.N + batch - 1) / batch
			h.want.Store(int64(rounds * batch))
			b.ReportAllocs()
			b.ResetTimer()
			for r := 0; r < rounds; r++ {
				if err := ch.Send(stage); err != nil {
					b.Fatal(err)
				}
			}
			<-h.done
			b.StopTimer()
			pk := float64(rounds * batch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pk, "ns/pkt")
		})
	}
}
