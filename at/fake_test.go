package at

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"testing/iotest"
	"time"
)

// fakeModule is a test fake of the module's AT port: a scripted goroutine
// at the far end of two io.Pipes. It reads what the Conn writes and answers
// with scripted bytes. It knows nothing of AT; each test says what arrives
// and what goes back.
type fakeModule struct {
	t        testing.TB
	fromHost *io.PipeReader // what the Conn writes
	toHost   *io.PipeWriter // what the Conn reads
}

// fakePort is the Conn's side of the pipes, with its reads passed through
// a reader wrapper (iotest.OneByteReader ...).
type fakePort struct {
	io.Reader
	io.Writer
	closeFn func() error
}

func (p *fakePort) Close() error { return p.closeFn() }

func newFakeModule(t testing.TB, wrap func(io.Reader) io.Reader) (*fakeModule, *fakePort) {
	hostR, modW := io.Pipe()
	modR, hostW := io.Pipe()
	port := &fakePort{
		Reader: wrap(hostR),
		Writer: hostW,
		closeFn: func() error {
			hostR.Close()
			return hostW.Close()
		},
	}
	return &fakeModule{t: t, fromHost: modR, toHost: modW}, port
}

// expect reads exactly len(want) bytes from the host and reports a test
// error if they differ.
func (m *fakeModule) expect(want string) bool {
	m.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(m.fromHost, got); err != nil {
		m.t.Errorf("fake module: reading %q: %v", want, err)
		return false
	}
	if string(got) != want {
		m.t.Errorf("fake module got %q, want %q", got, want)
		return false
	}
	return true
}

// send writes s to the host; errors (the Conn closed) are ignored.
func (m *fakeModule) send(s string) { _, _ = m.toHost.Write([]byte(s)) }

// step is one exchange of a script: read expect from the host (if any),
// then send.
type step struct{ expect, send string }

// run plays the steps in a goroutine; the returned channel closes when they
// are done.
func (m *fakeModule) run(steps ...step) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range steps {
			if s.expect != "" && !m.expect(s.expect) {
				return
			}
			if s.send != "" {
				m.send(s.send)
			}
		}
	}()
	return done
}

// readers are the ways the tests chop the module's output, as bufio's tests
// do.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"OneByteReader", iotest.OneByteReader},
	{"HalfReader", iotest.HalfReader},
	{"halves", func(r io.Reader) io.Reader { return &halvesReader{r: r} }},
}

// halvesReader returns every chunk the underlying reader gives in two
// reads: iotest.HalfReader halves the request, not the data, so it rarely
// splits a short write on a pipe.
type halvesReader struct {
	r    io.Reader
	buf  []byte
	rest []byte
}

func (h *halvesReader) Read(p []byte) (int, error) {
	if len(h.rest) == 0 {
		if h.buf == nil {
			h.buf = make([]byte, 4096)
		}
		n, err := h.r.Read(h.buf)
		if n == 0 {
			return 0, err
		}
		h.rest = h.buf[:n]
	}
	n := copy(p, h.rest[:max(1, (len(h.rest)+1)/2)])
	h.rest = h.rest[n:]
	return n, nil
}

// testURCs registers the MQTT URC prefixes the way the layer above does,
// with a test PayloadFunc for +QMTRECV.
func testURCs() []URCSpec {
	specs := []URCSpec{{Prefix: "+QMTRECV:", Payload: recvPayload}}
	for _, p := range []string{"+QMTSTAT:", "+QMTPING:", "+QMTOPEN:", "+QMTCLOSE:", "+QMTCONN:",
		"+QMTDISC:", "+QMTSUB:", "+QMTUNS:", "+QMTPUB:", "+QMTPUBEX:"} {
		specs = append(specs, URCSpec{Prefix: p})
	}
	return specs
}

// recvPayload is a test PayloadFunc for the +QMTRECV direct form with a
// length: `+QMTRECV: <idx>,<msgid>,"<topic>",<len>` followed by `,"` (the
// payload in quotes) or by the end of the line (payload on the next line).
func recvPayload(head []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(head, []byte("+QMTRECV:"))
	if !ok {
		return 0, false
	}
	rest = bytes.TrimSuffix(rest, []byte(`,"`))
	i := bytes.LastIndexByte(rest, ',')
	if i < 1 || rest[i-1] != '"' || bytes.Count(rest[:i], []byte(`"`)) != 2 {
		return 0, false
	}
	n := 0
	digits := rest[i+1:]
	if len(digits) == 0 || len(digits) > 9 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// newTestConn makes a Conn on a fake module.
func newTestConn(t testing.TB, wrap func(io.Reader) io.Reader, opts Options) (*Conn, *fakeModule) {
	t.Helper()
	m, port := newFakeModule(t, wrap)
	if opts.URCs == nil {
		opts.URCs = testURCs()
	}
	c := New(port, opts)
	t.Cleanup(func() { c.Close() })
	return c, m
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitDone waits for a script to finish.
func waitDone(t testing.TB, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("fake module script did not finish")
	}
}

// endMark is a URC each test sends last, so that everything before it has
// been routed when it is read.
const endMark = "+QIND: end"

// collectURCs reads URCs from s up to endMark.
func collectURCs(t testing.TB, s *Subscription) []Line {
	t.Helper()
	var got []Line
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-s.C():
			if !ok {
				t.Fatalf("subscription closed before %q; got %v", endMark, fmtLines(got))
			}
			if l.Text == endMark {
				return got
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("no %q URC; got %v", endMark, fmtLines(got))
		}
	}
}

// fmtLine renders a Line for comparison in tests.
func fmtLine(l Line) string {
	s := l.Text
	if l.Payload != nil {
		s += " |" + strconv.Quote(string(l.Payload))
	}
	if l.Err != nil {
		s += " !" + l.Err.Error()
	}
	return s
}

func fmtLines(ls []Line) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, fmtLine(l))
	}
	return out
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// errUnplugged stands for the error a serial port returns when the USB
// device goes away.
var errUnplugged = errors.New("fake: device unplugged")

func recvURC(topic string, payload string) string {
	return fmt.Sprintf("\r\n+QMTRECV: 0,0,%q,%d,\"%s\"\r\n", topic, len(payload), payload)
}
