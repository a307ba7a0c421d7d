// Package logwatch reads gatewayd's JSON log lines as they are written and lets tests and the
// benchmark wait for events by name: it is how they observe the daemon from outside, the way an
// operator does with journalctl and jq.
package logwatch

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Entry is one decoded log line.
type Entry map[string]any

// Event is the line's stable "event" field, or "".
func (e Entry) Event() string { s, _ := e["event"].(string); return s }

// Str returns a string field, or "".
func (e Entry) Str(k string) string { s, _ := e[k].(string); return s }

// Int returns a numeric field, or -1.
func (e Entry) Int(k string) int {
	if f, ok := e[k].(float64); ok {
		return int(f)
	}
	return -1
}

// Bool returns a boolean field.
func (e Entry) Bool(k string) bool { b, _ := e[k].(bool); return b }

// Watcher collects log entries from a reader.
type Watcher struct {
	mu      sync.Mutex
	entries []Entry
	raw     []string
	bad     []string
	changed chan struct{} // closed and replaced on every new entry
	done    chan struct{}
}

// New starts reading r line by line until EOF. Lines that are not JSON objects are kept in Bad.
func New(r io.Reader) *Watcher {
	w := &Watcher{changed: make(chan struct{}), done: make(chan struct{})}
	go w.read(r)
	return w
}

func (w *Watcher) read(r io.Reader) {
	defer close(w.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var e Entry
		w.mu.Lock()
		w.raw = append(w.raw, line)
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			w.bad = append(w.bad, line)
		} else {
			w.entries = append(w.entries, e)
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// Done is closed when the reader hit EOF (the process closed its output).
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Entries returns a copy of every entry so far.
func (w *Watcher) Entries() []Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Entry(nil), w.entries...)
}

// Raw returns every line so far, as written.
func (w *Watcher) Raw() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.raw...)
}

// Bad returns the lines that were not JSON objects.
func (w *Watcher) Bad() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bad...)
}

// Count counts the entries with event name ev.
func (w *Watcher) Count(ev string) int {
	n := 0
	for _, e := range w.Entries() {
		if e.Event() == ev {
			n++
		}
	}
	return n
}

// Wait blocks until match holds for some entry at index >= from, and returns it and its index.
func (w *Watcher) Wait(ctx context.Context, from int, match func(Entry) bool) (Entry, int, error) {
	for ended := false; ; {
		w.mu.Lock()
		for i := from; i < len(w.entries); i++ {
			if match(w.entries[i]) {
				e := w.entries[i]
				w.mu.Unlock()
				return e, i, nil
			}
		}
		ch := w.changed
		w.mu.Unlock()
		if ended {
			return nil, 0, fmt.Errorf("log ended before the entry appeared; last lines:\n%s", w.tail(15))
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("waiting for a log entry: %w; last lines:\n%s", ctx.Err(), w.tail(15))
		case <-ch:
		case <-w.done:
			ended = true // every line is in: look once more, then give up
		}
	}
}

// WaitEvent waits for the next entry named ev at index >= from.
func (w *Watcher) WaitEvent(ctx context.Context, from int, ev string) (Entry, int, error) {
	return w.Wait(ctx, from, func(e Entry) bool { return e.Event() == ev })
}

// Len is the number of entries so far.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}

func (w *Watcher) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.raw
	if len(r) > n {
		r = r[len(r)-n:]
	}
	return strings.Join(r, "\n")
}
