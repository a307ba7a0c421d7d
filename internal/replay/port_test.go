package replay

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustParse(t *testing.T, s string) *Transcript {
	t.Helper()
	tr, err := Parse(strings.NewReader(s), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestPortChecksWhatTheHostWrites: bytes the transcript does not have at that point — a reworded
// command, a write while the module's answer is still unread, a write after the end — fail.
func TestPortChecksWhatTheHostWrites(t *testing.T) {
	tr := mustParse(t, "source: s\nhost \"AT\\r\"\nmodule \"OK\"\nhost-unseen 3\nhost \"B\"\n")
	p := NewPort(tr)
	p.Start()
	if _, err := p.Write([]byte("AU\r")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("reworded: %v", err)
	}
	p = NewPort(tr)
	p.Start()
	if _, err := p.Write([]byte("AT\rxyz")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("written before the module's answer was read: %v", err)
	}
	p = NewPort(tr)
	p.Start()
	if n, err := p.Write([]byte("AT\r")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	b := make([]byte, 10)
	if n, err := p.Read(b); string(b[:n]) != "OK" || err != nil {
		t.Fatalf("read %q %v", b[:n], err)
	}
	if _, err := p.Write([]byte("any")); err != nil { // host-unseen takes any bytes
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("BC")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("past the end: %v", err)
	}
}

// TestPortReadsOneRecordAtATime: each module record is one read (or several, for a short buffer),
// and none is readable before the host wrote what comes before it.
func TestPortReadsOneRecordAtATime(t *testing.T) {
	tr := mustParse(t, "source: s\nmodule \"ab\"\nmodule \"cde\"\nhost \"x\"\nmodule \"f\"\n")
	p := NewPort(tr)
	p.Start()
	var got []string
	b := make([]byte, 2)
	for range 3 {
		n, err := p.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b[:n]))
	}
	if strings.Join(got, "|") != "ab|cd|e" {
		t.Fatalf("reads %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan string)
	go func() {
		n, _ := p.Read(b)
		done <- string(b[:n])
	}()
	if err := p.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		t.Fatalf("read %q before the host wrote", s)
	default:
	}
	if _, err := p.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if s := <-done; s != "f" {
		t.Fatalf("read %q", s)
	}
	p.Close()
	if _, err := p.Read(b); err != io.EOF {
		t.Fatalf("after Close: %v", err)
	}
}

// TestRunFailsOnALostAnswer: a transcript whose module never finishes its answer cannot replay
// cleanly (the command times out), and one whose host bytes are no command is refused.
func TestRunFailsOnALostAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a command timeout")
	}
	ctx := context.Background()
	if _, err := Run(ctx, mustParse(t, "source: s\nhost \"AT+GMR\\r\"\nmodule \"\\r\\nX\\r\\n\"\n")); err == nil {
		t.Fatal("a command without a final result replayed cleanly")
	}
	if _, err := Run(ctx, mustParse(t, "source: s\nhost \"AT+GMR\"\nmodule \"\\r\\nOK\\r\\n\"\n")); err == nil {
		t.Fatal("host bytes without CR replayed as a command")
	}
}

// TestRunReplaysAResync: a command the module never answered, then the engine's ESC and ATs (the
// last answered OK or ERROR: any answer ends it), then the next commands — an AT among them, as
// the probe sends one — replays: the engine gives up, resynchronises and goes on, writing exactly
// the recorded bytes.
func TestRunReplaysAResync(t *testing.T) {
	for _, answer := range []string{"OK", "ERROR"} { // any answer ends the resynchronisation
		tr := mustParse(t, `source: s
host "AT\r"
host "\x1b"
host "AT\r"
host "AT\r"
module "\x1bAT\r\r\n`+answer+`\r\n"
host "AT\r"
module "AT\r\r\nOK\r\n"
host "AT+CSQ\r"
module "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
`)
		got, err := Run(context.Background(), tr)
		if err != nil {
			t.Fatalf("%s: %v\n%s", answer, err, strings.Join(got, "\n"))
		}
		want := `cmd "AT"
  no answer: the engine resynchronises (ESC, AT) before the next command
cmd "AT"
  OK
cmd "AT+CSQ" modem.SignalDBm dbm=-73 known=true`
		if strings.Join(got, "\n") != want {
			t.Fatalf("%s: got\n%s\nwant\n%s", answer, strings.Join(got, "\n"), want)
		}
	}
}

// TestWaitIdleWaitsForTheReader: WaitIdle returns only once the reader has come back for more
// after taking the last readable record — that is, once it has framed and routed it — not as
// soon as the record was read.
func TestWaitIdleWaitsForTheReader(t *testing.T) {
	p := NewPort(mustParse(t, "source: s\nmodule \"\\r\\nRDY\\r\\n\"\nhost \"AT\\r\"\n"))
	p.Start()
	var routed atomic.Bool
	go func() {
		b := make([]byte, 64)
		_, _ = p.Read(b)
		time.Sleep(100 * time.Millisecond) // the engine framing and routing what it read
		routed.Store(true)
		_, _ = p.Read(b) // back for more: blocks
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if !routed.Load() {
		t.Fatal("WaitIdle returned while the reader was still busy with the last read")
	}
	p.Close()
}
