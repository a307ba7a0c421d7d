package benchd

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
)

// EventSink is a log destination that counts gatewayd's JSON log lines by their "event" field and
// keeps the latest lines for error messages. zerolog hands it one whole line per Write, having
// encoded it in full, so the daemon's logging cost is paid as it would be for the journal.
// It is safe for concurrent use.
type EventSink struct {
	mu      sync.Mutex
	lines   uint64
	bytes   uint64
	counts  map[string]*uint64
	tail    [32][]byte // reused buffers: the sink allocates nothing per line once warm
	next    int
	waiters []sinkWaiter

	stampEv string    // the event whose time field is kept (Stamp)
	stamp   time.Time // the time field of the latest stampEv line
	badTime uint64    // stampEv lines whose time field did not parse
}

// sinkWaiter is a WaitCount call: it is woken once event ev has been counted n times.
type sinkWaiter struct {
	ev   string
	n    uint64
	wake chan struct{}
}

// NewEventSink returns an empty sink.
func NewEventSink() *EventSink {
	return &EventSink{counts: map[string]*uint64{}}
}

var (
	eventKey = []byte(`"event":"`)
	timeKey  = []byte(`"time":"`)
)

// Stamp makes the sink keep the "time" field (logging.TimeLayout, microseconds) of the latest line
// with event ev; LastStamp returns it. It costs a time parse per such line, so the in-process rig
// leaves it off.
func (s *EventSink) Stamp(ev string) {
	s.mu.Lock()
	s.stampEv = ev
	s.mu.Unlock()
}

// LastStamp is the time field of the latest line with the Stamp event, and how many such lines had
// a time field that did not parse.
func (s *EventSink) LastStamp() (time.Time, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stamp, s.badTime
}

// Write counts one log line (or several, if p holds several).
func (s *EventSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		s.add(line)
	}
	return n, nil
}

func (s *EventSink) add(line []byte) {
	if len(line) == 0 {
		return
	}
	var ev []byte
	if i := bytes.Index(line, eventKey); i >= 0 {
		rest := line[i+len(eventKey):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			ev = rest[:j]
		}
	}
	s.mu.Lock()
	s.lines++
	s.bytes += uint64(len(line)) + 1
	if ev != nil {
		c := s.counts[string(ev)] // no allocation: the conversion only serves the lookup
		if c == nil {
			c = new(uint64)
			s.counts[string(ev)] = c
		}
		*c++
		if s.stampEv != "" && string(ev) == s.stampEv {
			s.keepStamp(line)
		}
		// Wake only the waiters whose count is reached, so that waiting costs the writer nothing.
		for i := 0; i < len(s.waiters); {
			if w := s.waiters[i]; w.ev == string(ev) && *c >= w.n {
				close(w.wake)
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				continue
			}
			i++
		}
	}
	s.tail[s.next] = append(s.tail[s.next][:0], line...)
	s.next = (s.next + 1) % len(s.tail)
	s.mu.Unlock()
}

func (s *EventSink) keepStamp(line []byte) {
	if i := bytes.Index(line, timeKey); i >= 0 {
		rest := line[i+len(timeKey):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			if t, err := time.Parse(logging.TimeLayout, string(rest[:j])); err == nil {
				s.stamp = t
				return
			}
		}
	}
	s.badTime++
}

// Count is the number of lines with event ev so far.
func (s *EventSink) Count(ev string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count(ev)
}

func (s *EventSink) count(ev string) uint64 {
	if c := s.counts[ev]; c != nil {
		return *c
	}
	return 0
}

// Totals are the lines and bytes written so far.
func (s *EventSink) Totals() (lines, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines, s.bytes
}

// Tail returns the latest lines (up to 32), oldest first.
func (s *EventSink) Tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for i := range len(s.tail) {
		if l := s.tail[(s.next+i)%len(s.tail)]; len(l) > 0 {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// WaitCount blocks until at least n lines with event ev were written, or ctx ends.
func (s *EventSink) WaitCount(ctx context.Context, ev string, n uint64) error {
	s.mu.Lock()
	if s.count(ev) >= n {
		s.mu.Unlock()
		return nil
	}
	w := sinkWaiter{ev: ev, n: n, wake: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.wake:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for i := range s.waiters {
			if s.waiters[i].wake == w.wake {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				break
			}
		}
		got := s.count(ev)
		s.mu.Unlock()
		return fmt.Errorf("waiting for %d %q log events (have %d): %w; last lines:\n%s", n, ev, got, ctx.Err(), s.Tail())
	}
}
