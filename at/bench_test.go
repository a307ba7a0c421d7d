package at

import (
	"bytes"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
)

// recordedReader plays a recorded module stream: n messages cut from a
// repeating block, in reads as large as the caller's buffer. It keeps at
// most window messages ahead of the consumer, so that the bounded URC queue
// measures throughput instead of dropping.
type recordedReader struct {
	block    []byte // whole messages, msgLen bytes each
	msgLen   int
	left     int // bytes still to give
	pos      int // position in block
	given    int // bytes given
	consumed *atomic.Int64
	window   int64
	start    <-chan struct{}
}

func (r *recordedReader) Read(p []byte) (int, error) {
	if r.start != nil {
		<-r.start
		r.start = nil
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	for int64(r.given/r.msgLen)-r.consumed.Load() > r.window {
		runtime.Gosched()
	}
	n := 0
	for n < len(p) && r.left > 0 {
		k := copy(p[n:min(len(p), n+r.left)], r.block[r.pos:])
		n += k
		r.left -= k
		r.pos = (r.pos + k) % len(r.block)
	}
	r.given += n
	return n, nil
}

func (r *recordedReader) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkFrameRecv measures the reader's hot path: framing +QMTRECV URCs
// with a 100-byte counted payload (holding quotes, CR LF and "OK") and
// handing each to a subscriber. One op is one message; allocs/op is allocs
// per message.
func BenchmarkFrameRecv(b *testing.B) {
	payload := bytes.Repeat([]byte(`{"a":"\r\nOK\r\n"}`), 7)[:100]
	msg := append([]byte("\r\n+QMTRECV: 0,0,\"t/x\",100,\""), payload...)
	msg = append(msg, "\"\r\n"...)
	block := bytes.Repeat(msg, 64)

	consumed := new(atomic.Int64)
	start := make(chan struct{})
	rd := &recordedReader{block: block, msgLen: len(msg), left: b.N * len(msg),
		consumed: consumed, window: DefaultURCQueue / 2, start: start}
	c := New(rd, Options{URCs: []URCSpec{{Prefix: "+QMTRECV:", Payload: recvPayload}}})
	sub := c.Subscribe()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	n := 0
	for l := range sub.C() {
		if n == 0 && (l.Text != `+QMTRECV: 0,0,"t/x",100` || !bytes.Equal(l.Payload, payload)) {
			b.Fatalf("first URC = %q %q", l.Text, l.Payload)
		}
		n++
		consumed.Store(int64(n))
	}
	b.StopTimer()
	if n != b.N {
		b.Fatalf("received %d of %d messages", n, b.N)
	}
}
