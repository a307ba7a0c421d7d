package logging

import (
	"io"
	"sync"
)

// DefaultBatchLimit is how many bytes of log lines a BatchWriter holds before Write waits for
// them to be written.
const DefaultBatchLimit = 64 << 10

// BatchWriter writes log lines to an underlying writer (the journal's stream) from one goroutine,
// coalescing the lines that arrive while a write is in progress into one write(2). An idle daemon
// writes each line at once; a busy one (a burst of downlinks) makes one system call per batch
// instead of one per line. Lines are never dropped: when limit bytes are waiting, Write blocks
// until they are written. Close writes what is left.
type BatchWriter struct {
	w     io.Writer
	limit int

	mu      sync.Mutex
	pending []byte
	spare   []byte
	closed  bool
	err     error      // the first write error; later lines are discarded and Write reports it
	wake    *sync.Cond // the flusher waits on it for lines, writers wait on it for room
	done    chan struct{}
}

// NewBatchWriter starts the flusher for w. limit <= 0 means DefaultBatchLimit.
func NewBatchWriter(w io.Writer, limit int) *BatchWriter {
	if limit <= 0 {
		limit = DefaultBatchLimit
	}
	b := &BatchWriter{w: w, limit: limit, done: make(chan struct{})}
	b.wake = sync.NewCond(&b.mu)
	go b.flush()
	return b
}

// Write queues one log line (zerolog calls it once per line).
func (b *BatchWriter) Write(p []byte) (int, error) { return b.write("", p) }

// write queues prefix and p as one line: nothing of another line comes between them.
func (b *BatchWriter) write(prefix string, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) >= b.limit && !b.closed && b.err == nil {
		b.wake.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.closed {
		return 0, io.ErrClosedPipe
	}
	b.pending = append(append(b.pending, prefix...), p...)
	b.wake.Broadcast()
	return len(p), nil
}

func (b *BatchWriter) flush() {
	defer close(b.done)
	b.mu.Lock()
	for {
		for len(b.pending) == 0 && !b.closed {
			b.wake.Wait()
		}
		if len(b.pending) == 0 && b.closed {
			b.mu.Unlock()
			return
		}
		out := b.pending
		b.pending = b.spare[:0]
		b.mu.Unlock()
		_, err := b.w.Write(out)
		b.mu.Lock()
		if err != nil && b.err == nil {
			b.err = err
		}
		b.spare = out
		b.wake.Broadcast() // room for blocked writers
	}
}

// Close writes the lines still waiting and stops the flusher.
func (b *BatchWriter) Close() error {
	b.mu.Lock()
	b.closed = true
	b.wake.Broadcast()
	b.mu.Unlock()
	<-b.done
	return b.err
}
