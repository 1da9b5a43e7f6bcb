package kernel

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DiscardLogger returns a logger that drops everything; the default for
// drivers whose caller gave none.
func DiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// LoggerOr returns l, or a discarding logger when l is nil.
func LoggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return DiscardLogger()
	}
	return l
}

// RateLimit wraps a slog handler so that at most burst records pass per
// interval; the rest are counted and the count is reported on the next
// record that passes. Drivers log through it whatever a hostile host or
// device can trigger at will, so input cannot flood the log.
func RateLimit(h slog.Handler, burst int, every time.Duration, clock Clock) slog.Handler {
	if clock == nil {
		clock = RealClock{}
	}
	return &limitHandler{next: h, st: &limitState{burst: burst, every: every, clock: clock}}
}

type limitState struct {
	mu         sync.Mutex // guards the fields below
	burst      int
	every      time.Duration
	clock      Clock
	windowFrom time.Time
	passed     int
	dropped    int
}

type limitHandler struct {
	next slog.Handler
	st   *limitState
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.st
	s.mu.Lock()
	now := s.clock.Now()
	if now.Sub(s.windowFrom) >= s.every {
		s.windowFrom, s.passed = now, 0
	}
	if s.passed >= s.burst {
		s.dropped++
		s.mu.Unlock()
		return nil
	}
	s.passed++
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(a), st: h.st}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), st: h.st}
}
