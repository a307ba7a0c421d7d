package local

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log throttling: what local clients can make happen as often as they like (a refused
// connection, a dropped copy, a refused retain) is counted every time but logged as a burst of
// lines and then at most one line per interval, each saying how many were not logged since the
// line before. The counters in Stats stay exact.
const (
	logBurst = 5
	logEvery = 10 * time.Second
)

// throttle is a token bucket for log lines of one kind: logBurst lines at once, then one per
// logEvery.
type throttle struct {
	mu      sync.Mutex
	tokens  int
	last    time.Time // when tokens was last refilled
	skipped uint64    // occurrences not logged since the last line
}

func newThrottle() *throttle { return &throttle{tokens: logBurst} }

// allow reports whether an occurrence at now may be logged and, if so, how many were not logged
// before it.
func (t *throttle) allow(now time.Time) (ok bool, skipped uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refill(now)
	if t.tokens == 0 {
		t.skipped++
		return false, 0
	}
	t.tokens--
	skipped, t.skipped = t.skipped, 0
	return true, skipped
}

// pending returns, and forgets, the occurrences not logged so far when a line may be logged at
// now to report them; 0 when there are none or no line may be logged yet.
func (t *throttle) pending(now time.Time) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refill(now)
	if t.skipped == 0 || t.tokens == 0 {
		return 0
	}
	t.tokens--
	n := t.skipped
	t.skipped = 0
	return n
}

// waiting reports whether occurrences have not been logged yet.
func (t *throttle) waiting() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped > 0
}

func (t *throttle) refill(now time.Time) {
	if t.last.IsZero() {
		t.last = now
		return
	}
	if n := int(now.Sub(t.last) / logEvery); n > 0 {
		t.tokens = min(logBurst, t.tokens+n)
		t.last = t.last.Add(time.Duration(n) * logEvery)
	}
}

// throttledHandler passes mochi's own log records on, throttled per message text: mochi logs
// some warnings once per packet or per message (a subscriber's full in-flight store, a packet it
// could not process), which a local client can repeat at will.
type throttledHandler struct {
	slog.Handler
	mu   *sync.Mutex
	keys map[string]*throttle // by message text, shared by the handlers WithAttrs makes
}

func newThrottledHandler(h slog.Handler) *throttledHandler {
	return &throttledHandler{Handler: h, mu: &sync.Mutex{}, keys: map[string]*throttle{}}
}

// maxThrottleKeys bounds the throttles kept; mochi's messages are constant texts, a few dozen.
const maxThrottleKeys = 256

func (h *throttledHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	t := h.keys[r.Message]
	if t == nil {
		if len(h.keys) >= maxThrottleKeys {
			clear(h.keys)
		}
		t = newThrottle()
		h.keys[r.Message] = t
	}
	h.mu.Unlock()
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	ok, skipped := t.allow(now)
	if !ok {
		return nil
	}
	if skipped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Uint64("suppressed", skipped))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *throttledHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &throttledHandler{Handler: h.Handler.WithAttrs(as), mu: h.mu, keys: h.keys}
}

func (h *throttledHandler) WithGroup(name string) slog.Handler {
	return &throttledHandler{Handler: h.Handler.WithGroup(name), mu: h.mu, keys: h.keys}
}
