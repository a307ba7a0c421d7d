package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// slowWriter records each write(2) the BatchWriter makes, and can hold them.
type slowWriter struct {
	mu     sync.Mutex
	writes []string
	gate   chan struct{}
}

func (s *slowWriter) Write(p []byte) (int, error) {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func TestBatchWriterKeepsEveryLineInOrder(t *testing.T) {
	sw := &slowWriter{}
	b := NewBatchWriter(sw, 64)
	var want strings.Builder
	for i := range 1000 {
		line := fmt.Sprintf("{\"n\":%d}\n", i)
		want.WriteString(line)
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sw.writes, ""); got != want.String() {
		t.Fatalf("lines lost or reordered: got %d bytes, want %d", len(got), want.Len())
	}
}

func TestBatchWriterCoalescesWhileAWriteIsInProgress(t *testing.T) {
	sw := &slowWriter{gate: make(chan struct{})}
	b := NewBatchWriter(sw, 0)
	_, _ = b.Write([]byte("first\n"))
	// The flusher is now blocked writing "first"; these queue up behind it.
	for range 10 {
		_, _ = b.Write([]byte("queued\n"))
	}
	close(sw.gate)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(sw.writes) > 3 {
		t.Fatalf("%d writes for 11 lines written while the first was blocked; want them coalesced", len(sw.writes))
	}
	if got := strings.Join(sw.writes, ""); got != "first\n"+strings.Repeat("queued\n", 10) {
		t.Fatalf("got %q", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("journal gone") }

func TestBatchWriterReportsWriteErrors(t *testing.T) {
	b := NewBatchWriter(failingWriter{}, 0)
	_, _ = b.Write([]byte("x\n"))
	if err := b.Close(); err == nil || !strings.Contains(err.Error(), "journal gone") {
		t.Fatalf("Close = %v, want the write error", err)
	}
	if _, err := b.Write([]byte("y\n")); err == nil {
		t.Fatal("Write after a failed write and Close succeeded")
	}
}

func BenchmarkBatchWriterToPipe(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 200)
	line = append(line, '\n')
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			r, w := io.Pipe()
			go func() { _, _ = io.Copy(io.Discard, r) }()
			var out io.Writer = w
			var bw *BatchWriter
			if batched {
				bw = NewBatchWriter(w, 0)
				out = bw
			}
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_, _ = out.Write(line)
			}
			if bw != nil {
				_ = bw.Close()
			}
			_ = w.Close()
		})
	}
}
