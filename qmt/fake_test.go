package qmt

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/testutil"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
)

// fakeModule is a scripted test fake standing in for an EC600 (not an emulator): it sits on the
// far end of a net.Pipe from a real at.Conn, reads each command line the engine writes, records
// it, and answers as the test's handler says (echo off, as after ATE0). Unscripted commands get
// ERROR; plain "AT" (the engine's resync) gets OK.
type fakeModule struct {
	t      testing.TB
	port   net.Conn
	br     *bufio.Reader
	handle func(f *fakeModule, cmd string) bool // true: handled
	done   chan struct{}

	mu   sync.Mutex
	cmds []string
	data map[string][]byte // payload written after the prompt, by command line
	seen chan string       // every command, as it arrives
}

// newFake starts an at.Conn (with the qmt URCs and a trace log into trace) over a pipe to a fake
// module, and a Client for idx 0 with opts. Everything is closed when the test ends.
func newFake(t testing.TB, opts Options, handle func(f *fakeModule, cmd string) bool) (*fakeModule, *Client, *testutil.SyncBuffer) {
	t.Helper()
	return newFakeMode(t, RecvDirectLength, opts, handle)
}

// newFakeMode is newFake with the URC framing of receive mode mode (URCsFor): the tests that
// mix the +QMTRECV forms of several modes use a mode without a length field, where a CR or LF
// always ends a line.
func newFakeMode(t testing.TB, mode RecvMode, opts Options, handle func(f *fakeModule, cmd string) bool) (*fakeModule, *Client, *testutil.SyncBuffer) {
	t.Helper()
	host, mod := net.Pipe()
	trace := &testutil.SyncBuffer{}
	log := zerolog.New(trace).Level(zerolog.TraceLevel)
	conn := at.New(host, at.Options{Logger: log, Trace: true, URCs: URCsFor(mode)})
	f := &fakeModule{
		t: t, port: mod, br: bufio.NewReader(mod), handle: handle,
		done: make(chan struct{}), data: make(map[string][]byte), seen: make(chan string, 1024),
	}
	go f.loop()
	c := NewClientWithOptions(conn, 0, opts)
	t.Cleanup(func() {
		c.Close()
		conn.Close()
		mod.Close()
		<-f.done
	})
	return f, c, trace
}

func (f *fakeModule) loop() {
	defer close(f.done)
	for {
		line, err := f.br.ReadString('\r')
		if err != nil {
			return
		}
		cmd := strings.TrimLeft(strings.TrimSuffix(line, "\r"), "\x1b\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		f.mu.Unlock()
		select {
		case f.seen <- cmd:
		default:
		}
		switch {
		case f.handle != nil && f.handle(f, cmd):
		case cmd == "AT":
			f.send("\r\nOK\r\n")
		default:
			f.send("\r\nERROR\r\n")
		}
	}
}

// send writes raw bytes to the engine. A closed pipe at the end of a test is not an error.
func (f *fakeModule) send(s string) {
	_, _ = f.port.Write([]byte(s))
}

// urc sends one URC line.
func (f *fakeModule) urc(line string) { f.send("\r\n" + line + "\r\n") }

// prompt sends "> " and reads exactly n payload bytes (the length form), recording them.
func (f *fakeModule) prompt(cmd string, n int) []byte {
	f.send("\r\n> ")
	b := make([]byte, n)
	if _, err := io.ReadFull(f.br, b); err != nil {
		return nil
	}
	f.mu.Lock()
	f.data[cmd] = b
	f.mu.Unlock()
	return b
}

// promptCtrlZ sends "> " and reads the payload up to Ctrl-Z.
func (f *fakeModule) promptCtrlZ(cmd string) []byte {
	f.send("\r\n> ")
	b, err := f.br.ReadBytes(0x1A)
	if err != nil {
		return nil
	}
	b = b[:len(b)-1]
	f.mu.Lock()
	f.data[cmd] = b
	f.mu.Unlock()
	return b
}

func (f *fakeModule) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *fakeModule) payload(cmd string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data[cmd]
}

// waitCmd waits for the next command that starts with prefix.
func (f *fakeModule) waitCmd(prefix string) string {
	f.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-f.seen:
			if strings.HasPrefix(c, prefix) {
				return c
			}
		case <-timeout:
			f.t.Fatalf("the module never got a command starting with %q; got %q", prefix, f.commands())
			return ""
		}
	}
}

// barrier makes sure the client has handled everything sent before: it sends a module-level URC
// with a unique text and reads Events until that URC comes out. Events before it are returned.
func barrier(t testing.TB, f *fakeModule, c *Client, mark string) []Event {
	t.Helper()
	f.urc("+QIND: " + mark)
	var got []Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed before the barrier %q", mark)
			}
			if ev == (Indication{Text: mark}) {
				return got
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("barrier %q never came out of Events", mark)
		}
	}
}

// result runs fn in a goroutine and gives its error on a channel.
func result(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// wait gets the result or fails the test after 10 s.
func wait(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return within 10 s")
		return nil
	}
}

// notYet asserts the call has not returned.
func notYet(t testing.TB, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: call returned early with %v", what, err)
	default:
	}
}
