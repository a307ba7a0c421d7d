package sim

import (
	"bytes"
	"context"
	"os"
	"sync"
	"time"
)

// queue is an unbounded FIFO with a wake-up channel. The engine pushes to it and never blocks;
// one goroutine takes from it.
type queue[T any] struct {
	mu    sync.Mutex
	items []T
	sig   chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{sig: make(chan struct{}, 1)} }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

// ready is signalled after a push.
func (q *queue[T]) ready() <-chan struct{} { return q.sig }

// take removes and returns everything queued.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	v := q.items
	q.items = nil
	return v
}

// outItem is one block of output for the host.
type outItem struct {
	b      []byte
	answer bool // a command's reply: held back by SetSlow
	joined int  // coalesce: how many blocks b holds
}

// coalesce joins items into one block (Config.Coalesce), an answer if any of them is one.
func coalesce(items []outItem) []outItem {
	if len(items) < 2 {
		return items
	}
	var j outItem
	for _, it := range items {
		j.b = append(j.b, it.b...)
		j.answer = j.answer || it.answer
	}
	j.joined = len(items)
	return []outItem{j}
}

// chunkGap is the pause between chunks when SetChunking is on, long enough that a host blocked in
// read(2) is woken with the chunk alone rather than finding the bytes merged.
const chunkGap = 200 * time.Microsecond

// maxQueued bounds the output waiting for a host that does not read; beyond it output is dropped
// (and logged), as a module's UART buffer would overflow.
const maxQueued = 1 << 20

// writer owns the master side's write direction for one plugged-in period.
type writer struct {
	m      *Module
	f      *os.File
	q      *queue[outItem]
	room   chan struct{} // signalled after each block written
	mu     sync.Mutex
	queued int // bytes waiting
}

func newWriter(m *Module, f *os.File) *writer {
	return &writer{m: m, f: f, q: newQueue[outItem](), room: make(chan struct{}, 1)}
}

// enqueue adds a block; it never blocks. It reports false when the block was dropped.
func (w *writer) enqueue(it outItem) bool {
	w.mu.Lock()
	if w.queued+len(it.b) > maxQueued {
		w.mu.Unlock()
		w.m.log.Warn().Int("bytes", len(it.b)).Msg("host is not reading: output dropped")
		return false
	}
	w.queued += len(it.b)
	w.mu.Unlock()
	w.q.push(it)
	return true
}

// backlog is how many bytes wait to be written.
func (w *writer) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}

// run writes queued blocks until ctx ends or a write fails (the port was closed).
func (w *writer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.q.ready():
		}
		items := w.q.take()
		if d := w.m.cfg.Coalesce; d > 0 {
			if !sleepCtx(ctx, d) {
				return
			}
			items = coalesce(append(items, w.q.take()...))
			if len(items) == 1 && items[0].joined > 1 {
				w.m.coalesced.Add(1)
				if bytes.Contains(items[0].b, []byte("+QMTRECV:")) {
					w.m.coalescedDownlinks.Add(1)
				}
			}
		}
		for _, it := range items {
			if it.answer {
				if d := time.Duration(w.m.slow.Load()); d > 0 && !sleepCtx(ctx, d) {
					return
				}
			}
			if !w.write(ctx, it.b) {
				return
			}
			w.mu.Lock()
			w.queued -= len(it.b)
			w.mu.Unlock()
			select {
			case w.room <- struct{}{}:
			default:
			}
		}
	}
}

// write sends b whole, or in SetChunking-sized pieces with a short pause between them.
func (w *writer) write(ctx context.Context, b []byte) bool {
	for len(b) > 0 {
		n := len(b)
		if c := int(w.m.chunk.Load()); c > 0 && c < n {
			n = c
		}
		w.m.noteWrite(n) // counted before the bytes can reach the host, so Stats never lags a read
		_, err := w.f.Write(b[:n])
		if err != nil {
			w.m.log.Debug().Err(err).Msg("pty write failed; writer stops")
			return false
		}
		b = b[n:]
		if len(b) > 0 && w.m.chunk.Load() > 0 && !sleepCtx(ctx, chunkGap) {
			return false
		}
	}
	return true
}

// sleepCtx sleeps for d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
