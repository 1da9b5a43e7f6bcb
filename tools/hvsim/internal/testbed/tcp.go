package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc/fifo"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/netstack"
)

const nicID = 1

// ipStack is a gVisor stack with one NIC over an ifnet interface.
type ipStack struct {
	s    *stack.Stack
	addr tcpip.Address
}

// newIPStack builds a stack on ifp with address addr/24.
func newIPStack(ifp *ifnet.Interface, addr netip.Addr) (*ipStack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, icmp.NewProtocol4},
	})
	ep, err := netstack.New(ifp, netstack.Options{})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("testbed: link endpoint on %s: %w", ifp.Name(), err)
	}
	if terr := s.CreateNICWithOptions(nicID, ep, stack.NICOptions{Name: ifp.Name(), QDisc: fifo.New(ep, 1, 1000)}); terr != nil {
		s.Close()
		return nil, fmt.Errorf("testbed: NIC on %s: %s", ifp.Name(), terr)
	}
	a := tcpip.AddrFrom4(addr.As4())
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: a, PrefixLen: 24}}
	if terr := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); terr != nil {
		s.Close()
		return nil, fmt.Errorf("testbed: address on %s: %s", ifp.Name(), terr)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}})
	// SACK and a bounded RTO: a frame lost in a surprise removal is
	// recovered in milliseconds, not seconds.
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	maxRTO := tcpip.TCPMaxRTOOption(200 * time.Millisecond)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &maxRTO)
	return &ipStack{s: s, addr: a}, nil
}

func (st *ipStack) close() {
	st.s.Close()
	st.s.Wait()
}

// TCPResult is one TCP transfer's outcome.
type TCPResult struct {
	Direction  string  `json:"direction"`
	Bytes      int64   `json:"bytes"`
	Received   int64   `json:"received"`
	SentSHA256 string  `json:"sent_sha256"`
	RecvSHA256 string  `json:"received_sha256"`
	Match      bool    `json:"checksum_match"`
	ElapsedMS  float64 `json:"elapsed_ms"`
	Error      string  `json:"error,omitempty"`
}

// errTransfer is wrapped by transfer failures.
var errTransfer = errors.New("testbed: TCP transfer failed")

// transfer sends size seeded pseudo-random bytes from src to dst's port
// over TCP, paced to take about pace (0: as fast as it goes), and compares
// the sha256 of what was written with that of what arrived.
func transfer(ctx context.Context, dir Direction, src, dst *ipStack, port uint16, size int64, seed uint64, pace time.Duration) TCPResult {
	res := TCPResult{Direction: dir.String(), Bytes: size}
	start := time.Now()
	fa := tcpip.FullAddress{NIC: nicID, Addr: dst.addr, Port: port}
	ln, err := gonet.ListenTCP(dst.s, fa, ipv4.ProtocolNumber)
	if err != nil {
		res.Error = fmt.Errorf("%w: listen: %v", errTransfer, err).Error()
		return res
	}
	defer ln.Close()
	type got struct {
		n   int64
		sum []byte
		err error
	}
	rc := make(chan got, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rc <- got{err: err}
			return
		}
		defer c.Close()
		done := make(chan struct{})
		defer close(done)
		go func() { // unblock the read when the run is cancelled
			select {
			case <-ctx.Done():
				c.SetReadDeadline(time.Now())
			case <-done:
			}
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		rc <- got{n: n, sum: h.Sum(nil), err: err}
	}()
	c, err := gonet.DialContextTCP(ctx, src.s, fa, ipv4.ProtocolNumber)
	if err != nil {
		ln.Close()
		<-rc
		res.Error = fmt.Errorf("%w: dial: %v", errTransfer, err).Error()
		return res
	}
	rng := rand.New(rand.NewChaCha8(seedBytes(seed)))
	h := sha256.New()
	buf := make([]byte, 32<<10)
	var sent int64
	var werr error
	for sent < size && werr == nil {
		n := int(min(int64(len(buf)), size-sent))
		for i := 0; i < n; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		h.Write(buf[:n])
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, werr = c.Write(buf[:n])
		sent += int64(n)
		if pace > 0 {
			due := start.Add(time.Duration(float64(pace) * float64(sent) / float64(size)))
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
				werr = ctx.Err()
			}
		}
	}
	c.Close()
	res.SentSHA256 = hex.EncodeToString(h.Sum(nil))
	g := <-rc
	res.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
	res.Received = g.n
	res.RecvSHA256 = hex.EncodeToString(g.sum)
	res.Match = werr == nil && g.err == nil && g.n == size && res.RecvSHA256 == res.SentSHA256
	switch {
	case werr != nil:
		res.Error = fmt.Errorf("%w: write: %v", errTransfer, werr).Error()
	case g.err != nil:
		res.Error = fmt.Errorf("%w: read: %v", errTransfer, g.err).Error()
	}
	return res
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 4 {
		v := seed*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9
		for j := range 8 {
			s[i*8+j] = byte(v >> (8 * j))
		}
	}
	return s
}
