package host

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/hyperv/synic"
	"github.com/hvguest/hvguest/hyperv/tlfs"
	"github.com/hvguest/hvguest/hyperv/vmbus/vmbusmsg"
	"github.com/hvguest/hvguest/kernel"
)

// Errors returned to callers of the server API.
var (
	// ErrClosed: the server, or the channel, is closed.
	ErrClosed = errors.New("host: closed")
	// ErrDevice: a device that is not registered, or registered twice.
	ErrDevice = errors.New("host: bad device")
	// ErrGPADL: a GPADL that does not exist for this channel or cannot be
	// used now.
	ErrGPADL = errors.New("host: bad GPADL")
)

// retryDelay is how long the server waits before retrying a message the
// transport refused for lack of buffers. It is transport back-pressure,
// not protocol timing, so it runs on real time whatever Config.Clock is.
const retryDelay = 200 * time.Microsecond

// inMsg is one posted message waiting for the loop.
type inMsg struct {
	conn uint32
	n    uint8
	buf  [synic.MaxPayload]byte
}

// outMsg is one message waiting to be delivered to the guest.
type outMsg struct {
	typ vmbusmsg.MessageType
	b   []byte
	at  time.Time // not before (zero: now)
}

// Server is the simulated host's VMBus server. Create it with NewServer,
// give it a transport with Attach, add devices with AddDevice, stop it with
// Close.
type Server struct {
	cfg    Config
	log    *slog.Logger
	faults Faults

	inbox chan inMsg  // HandlePost -> loop
	cmds  chan func() // API and sessions -> loop
	quit  chan struct{}
	done  chan struct{} // closed when the loop has exited

	closeOnce sync.Once
	sessions  sync.WaitGroup // live session goroutines

	// ports maps relid to the open session that receives the guest's
	// signals for it. Written only by the loop; read lock-free by
	// HandleSignal on the guest's hypercall path.
	ports [synic.MaxRelID + 1]atomic.Pointer[Channel]
	// sigPort is the transport sessions signal the guest through; set
	// once by Attach.
	sigPort atomic.Pointer[synic.HostPort]

	// Everything below is owned by the loop goroutine; no lock.
	port       synic.HostPort
	outq       []outMsg
	delayTimer kernel.Timer
	retryTimer *time.Timer
	bus        bus
}

// NewServer returns a running server with no devices and no transport.
// Messages to the guest wait until Attach.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Memory == nil {
		return nil, errors.New("host: Config.Memory is required")
	}
	c := cfg.withDefaults()
	if c.MaxGPADLPages > 0xFFFF/8-1 {
		return nil, fmt.Errorf("host: MaxGPADLPages %d exceeds what range_buflen can describe", c.MaxGPADLPages)
	}
	logger := kernel.LoggerOr(c.Logger)
	s := &Server{
		cfg:   c,
		log:   slog.New(kernel.RateLimit(logger.Handler(), 20, time.Second, nil)),
		inbox: make(chan inMsg, c.QueueLen),
		cmds:  make(chan func(), 64),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	s.bus.init(s)
	go s.loop()
	return s, nil
}

// Faults returns the server's fault injector.
func (s *Server) Faults() *Faults { return &s.faults }

// Config returns the effective configuration (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Attach connects the server to the transport it sends messages and
// signals through. The server does not close the port.
func (s *Server) Attach(port synic.HostPort) error {
	if port == nil {
		return errors.New("host: nil port")
	}
	return s.call(func() {
		s.port = port
		s.sigPort.Store(&port)
	})
}

// Close stops the server: every open channel is closed (its device's
// Handler.Close runs) and every goroutine of the server has returned when
// Close returns. The guest is not told; to the guest the host is gone.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.done
	s.sessions.Wait()
	return nil
}

// HandlePost implements synic.HostHandler: the guest's HvCallPostMessage.
// It runs on the guest's hypercall path: it checks what the hypervisor
// checks, queues the message for the loop and returns at once.
func (s *Server) HandlePost(connID, msgType uint32, payload []byte) synic.Status {
	if !tlfs.MessageType(msgType).Postable() || len(payload) > synic.MaxPayload {
		return synic.StatusInvalidParameter
	}
	if !s.acceptsConn(connID) {
		return synic.StatusInvalidConnectionID
	}
	select {
	case <-s.quit:
		return synic.StatusInvalidConnectionID
	default:
	}
	m := inMsg{conn: connID, n: uint8(len(payload))}
	if msgType != uint32(tlfs.MsgVMBus) {
		m.n = 0 // accepted by the port, meaningless to VMBus; the loop drops it
	}
	copy(m.buf[:m.n], payload)
	select {
	case s.inbox <- m:
		return synic.StatusSuccess
	default:
		return synic.StatusInsufficientBuffers
	}
}

// acceptsConn reports whether connID is one of the server's message
// ports: 1 always, the configured msg_conn_id, and 4 only on a host that
// speaks 5.0 or later.
func (s *Server) acceptsConn(connID uint32) bool {
	return connID == tlfs.VMBusMessageConnectionID || connID == s.cfg.MessageConnID ||
		(connID == tlfs.VMBusMessageConnectionID4 && s.cfg.hasConn4())
}

// HandleSignal implements synic.HostHandler: the guest's HvCallSignalEvent
// on a channel's connection id. The port exists while the channel is open.
func (s *Server) HandleSignal(connID uint32) synic.Status {
	relid, ok := s.cfg.ConnIDs.relid(connID)
	if !ok {
		return synic.StatusInvalidConnectionID
	}
	ses := s.ports[relid].Load()
	if ses == nil {
		return synic.StatusInvalidConnectionID
	}
	ses.wake()
	return synic.StatusSuccess
}

// call runs fn on the loop and waits for it. It returns ErrClosed if the
// server stopped first (fn may then not have run).
func (s *Server) call(fn func()) error {
	finished := make(chan struct{})
	select {
	case s.cmds <- func() { fn(); close(finished) }:
	case <-s.done:
		return ErrClosed
	}
	select {
	case <-finished:
		return nil
	case <-s.done:
		select {
		case <-finished:
			return nil
		default:
			return ErrClosed
		}
	}
}

// post runs fn on the loop without waiting; dropped once the loop is gone.
func (s *Server) post(fn func()) {
	select {
	case s.cmds <- fn:
	case <-s.done:
	}
}

// loop is the control goroutine.
func (s *Server) loop() {
	defer close(s.done)
	for {
		var inbox <-chan inMsg
		if !s.bus.resetting() {
			inbox = s.inbox // posts wait while a reset waits for sessions
		}
		var delayC <-chan time.Time
		if s.delayTimer != nil {
			delayC = s.delayTimer.C()
		}
		var retryC <-chan time.Time
		if s.retryTimer != nil {
			retryC = s.retryTimer.C
		}
		select {
		case <-s.quit:
			s.shutdown()
			return
		case m := <-inbox:
			s.bus.handlePost(m.conn, m.buf[:m.n])
		case fn := <-s.cmds:
			fn()
		case <-delayC:
			s.delayTimer = nil
		case <-retryC:
			s.retryTimer = nil
		}
		s.flush()
	}
}

// shutdown stops every session; Close waits for them.
func (s *Server) shutdown() {
	s.bus.stopAll()
	if s.delayTimer != nil {
		s.delayTimer.Stop()
	}
	if s.retryTimer != nil {
		s.retryTimer.Stop()
	}
}

// send queues m for the guest, applying faults.
func (s *Server) send(m vmbusmsg.Message) {
	t := m.Type()
	if s.faults.dropped(ToGuest, t) {
		s.log.Info("vmbus host: fault: dropped message to guest", "type", t)
		return
	}
	var at time.Time
	if d := s.faults.delayFor(t); d > 0 {
		at = s.cfg.Clock.Now().Add(d)
	}
	s.outq = append(s.outq, outMsg{typ: t, b: m.Encode(), at: at})
}

// flush delivers queued messages in order until one must wait.
func (s *Server) flush() {
	if s.port == nil {
		return
	}
	n := 0
	defer func() {
		if n > 0 {
			clear(s.outq[:n])
			s.outq = s.outq[n:]
		}
	}()
	for ; n < len(s.outq); n++ {
		m := &s.outq[n]
		if !m.at.IsZero() {
			if wait := m.at.Sub(s.cfg.Clock.Now()); wait > 0 {
				if s.delayTimer == nil {
					s.delayTimer = s.cfg.Clock.NewTimer(wait)
				}
				return
			}
		}
		err := s.port.Deliver(uint32(tlfs.MsgVMBus), m.b)
		if err == nil {
			continue
		}
		var st tlfs.Status
		if errors.As(err, &st) && st == tlfs.StatusInsufficientBuffers {
			if s.retryTimer == nil {
				s.retryTimer = time.NewTimer(retryDelay)
			}
			return
		}
		s.log.Warn("vmbus host: deliver failed, message lost", "type", m.typ, "err", err)
	}
}
