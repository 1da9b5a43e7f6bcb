package host_test

import (
	"testing"
	"time"

	"github.com/hvguest/hvguest/hyperv/gpa"
	"github.com/hvguest/hvguest/hyperv/host"
	"github.com/hvguest/hvguest/hyperv/host/echo"
	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// fuzzFrames packs messages as the fuzzer's input format: per message a
// connection selector byte (odd: 4, even: 1), a length byte, the bytes.
func fuzzFrames(msgs ...vmbusmsg.Message) []byte {
	var b []byte
	for _, m := range msgs {
		raw := m.Encode()
		b = append(b, 0, byte(len(raw)))
		b = append(b, raw...)
	}
	return b
}

// FuzzHandlePost posts arbitrary messages as a hostile guest would: the
// server must neither panic nor hang, and must still answer afterwards.
func FuzzHandlePost(f *testing.F) {
	ram := kernel.NewSimRAM(64)
	pfns := []uint64{ram.BasePFN(), ram.BasePFN() + 1, ram.BasePFN() + 2, ram.BasePFN() + 3}
	h, _, _ := vmbusmsg.SplitGPADL(1, 7, []gpa.Range{vmbusmsg.PageRange(pfns)})
	f.Add(fuzzFrames(
		&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10},
		&vmbusmsg.RequestOffers{},
		h,
		&vmbusmsg.OpenChannel{ChildRelID: 1, RingBufferGPADL: 7, DownstreamRingBufferPageOffset: 2},
		&vmbusmsg.GPADLTeardown{ChildRelID: 1, GPADL: 7},
		&vmbusmsg.CloseChannel{ChildRelID: 1},
		&vmbusmsg.Unload{},
	))
	f.Add(fuzzFrames(&vmbusmsg.InitiateContact{VersionRequested: vmbusmsg.VersionWin10V6_0},
		&vmbusmsg.RelIDReleased{ChildRelID: 1}, &vmbusmsg.GPADLBody{GPADL: 7, Data: make([]byte, 8)}))
	f.Add([]byte{1, 3, 14, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		ram := kernel.NewSimRAM(64) // fresh each run: the host writes rings into it
		srv, err := host.NewServer(host.Config{Memory: ram, MaxGPADLs: 16, QueueLen: 4096})
		if err != nil {
			t.Fatal(err)
		}
		pair := synic.NewPair(srv)
		srv.Attach(pair.Host())
		srv.AddDevice(echo.New(echo.Options{Subchannels: 1}))
		guest := pair.Guest()
		var m synic.Message
		for len(in) >= 2 {
			conn := uint32(1)
			if in[0]&1 != 0 {
				conn = 4
			}
			n := min(int(in[1]), len(in)-2)
			guest.PostMessage(conn, uint32(tlfs.MsgVMBus), in[2:2+n])
			in = in[2+n:]
			for guest.TakeMessage(&m) {
				if _, err := vmbusmsg.DecodeFromHost(m.Bytes()); err != nil {
					t.Fatalf("host sent a bad message % x: %v", m.Bytes(), err)
				}
			}
		}
		// Still alive: the loop runs commands and Close returns.
		done := make(chan struct{})
		go func() {
			srv.AddDevice(echo.New(echo.Options{Instance: tlfs.MustParseGUID("00000005-0000-0000-0000-000000000000")}))
			srv.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("server hung")
		}
	})
}
