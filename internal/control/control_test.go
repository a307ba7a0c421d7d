package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeHandler is a test fake of the daemon: a fixed status, and AT answers it records.
type fakeHandler struct {
	sent atomic.Value // string: the last line AT was given
	wait chan struct{}
}

func (h *fakeHandler) Status() Status {
	return Status{Version: "test", Stage: "connected", MQTT: MQTT{Connected: true, Host: "broker"}}
}

func (h *fakeHandler) AT(ctx context.Context, line string) (ATResult, error) {
	h.sent.Store(line)
	if h.wait != nil {
		select {
		case <-h.wait:
		case <-ctx.Done():
			return ATResult{}, ctx.Err()
		}
	}
	return ATResult{Lines: []string{"+CSQ: 24,99"}, Result: "OK", OK: true}, nil
}

func (h *fakeHandler) Resolve(_ context.Context, host string) ([]string, error) {
	if host == "nowhere.example" {
		return nil, errors.New("DNS error 565")
	}
	return []string{"203.0.113.10"}, nil
}

func serve(t *testing.T, h Handler) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, "", 0, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s.ioTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file left behind: %v", err)
		}
	})
	return s
}

func ask(t *testing.T, s *Server, req Request) Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := Ask(ctx, s.Path(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestStatusAndAT(t *testing.T) {
	h := &fakeHandler{}
	s := serve(t, h)
	fi, err := os.Stat(s.Path())
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v; want 0660", fi.Mode(), err)
	}
	if r := ask(t, s, Request{Command: CmdStatus}); !r.OK || r.Status == nil || !r.Status.MQTT.Connected || r.Status.Version != "test" {
		t.Fatalf("status answer %+v", r)
	}
	r := ask(t, s, Request{Command: CmdAT, Line: "AT+CSQ"})
	if !r.OK || r.AT == nil || r.AT.Lines[0] != "+CSQ: 24,99" || h.sent.Load() != "AT+CSQ" {
		t.Fatalf("at answer %+v, sent %v", r, h.sent.Load())
	}
	r = ask(t, s, Request{Command: CmdAT, Line: "AT+CFUN=0"})
	if r.OK || !strings.Contains(r.Error, "--force") || h.sent.Load() != "AT+CSQ" {
		t.Fatalf("a breaking command: %+v, sent %v", r, h.sent.Load())
	}
	if r := ask(t, s, Request{Command: CmdAT, Line: "AT+CFUN=0", Force: true}); !r.OK || h.sent.Load() != "AT+CFUN=0" {
		t.Fatalf("forced: %+v", r)
	}
	if r := ask(t, s, Request{Command: CmdResolve, Host: "broker.example.com"}); !r.OK || len(r.Addresses) != 1 {
		t.Fatalf("resolve: %+v", r)
	}
	if r := ask(t, s, Request{Command: CmdResolve, Host: "nowhere.example"}); r.OK || !strings.Contains(r.Error, "565") {
		t.Fatalf("resolve a name that fails: %+v", r)
	}
	if r := ask(t, s, Request{Command: CmdResolve, Host: `a"b`}); r.OK {
		t.Fatalf("resolve a name with a quote: %+v", r)
	}
	if r := ask(t, s, Request{Command: "reboot"}); r.OK || !strings.Contains(r.Error, "unknown command") {
		t.Fatalf("unknown command: %+v", r)
	}
}

// TestBadClients: a client of another protocol version, one that sends junk, one that sends too
// much, and one that sends nothing each get an answer (or are cut off) without holding the
// server, which goes on answering.
func TestBadClients(t *testing.T) {
	s := serve(t, &fakeHandler{})
	raw := func(send string) string {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if send != "" {
			if _, err := c.Write([]byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4096)
		n, _ := c.Read(b)
		return string(b[:n])
	}
	for _, tc := range []struct{ name, send, want string }{
		{"version 2", `{"version":2,"command":"status"}` + "\n", "speaks 1"},
		{"junk", "hello\n", "not JSON"},
		{"too long", strings.Repeat("x", MaxRequest+10), "longer than"},
		{"silent", "", "reading the request"},
	} {
		if got := raw(tc.send); !strings.Contains(got, tc.want) {
			t.Errorf("%s: answer %q, want %q", tc.name, got, tc.want)
		}
	}
	if r := ask(t, s, Request{Command: CmdStatus}); !r.OK {
		t.Fatalf("status after the bad clients: %+v", r)
	}
}

// TestTooManyAtOnce: requests beyond MaxConns are refused at once rather than queued.
func TestTooManyAtOnce(t *testing.T) {
	h := &fakeHandler{wait: make(chan struct{})}
	s := serve(t, h)
	results := make(chan Response, MaxConns)
	for range MaxConns {
		go func() {
			resp, _ := Ask(context.Background(), s.Path(), Request{Command: CmdAT, Line: "AT", TimeoutMS: 5000})
			results <- resp
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.slots) < MaxConns {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests in progress", len(s.slots))
		}
		time.Sleep(time.Millisecond)
	}
	if r := ask(t, s, Request{Command: CmdStatus}); r.OK || !strings.Contains(r.Error, "busy") {
		t.Fatalf("request %d: %+v, want busy", MaxConns+1, r)
	}
	close(h.wait)
	for range MaxConns {
		if r := <-results; !r.OK {
			t.Errorf("a request in progress: %+v", r)
		}
	}
}

func TestListenRefusesWhatIsInTheWay(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, "", 0, &fakeHandler{}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a regular file in the way: %v", err)
	}
	s := serve(t, &fakeHandler{})
	if _, err := Listen(s.Path(), "", 0, &fakeHandler{}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a live socket in the way: %v", err)
	}
	if _, err := Listen(filepath.Join(dir, "g.sock"), "no-such-group-gatewayd", 0, &fakeHandler{}, zerolog.Nop()); err == nil {
		t.Error("an unknown group accepted")
	}
}

func TestCheckAT(t *testing.T) {
	for _, tc := range []struct {
		line  string
		force bool
		ok    bool
	}{
		{"AT+CSQ", false, true},
		{"at+cops?", false, true},
		{"AT+QMTCONN?", false, true},
		{"AT+QENG=\"servingcell\"", false, true},
		{"AT+QMTOPEN=1,\"other\",1883", false, true}, // another client index
		{"AT+QMTDISC=0", false, false},               // gatewayd's own index
		{"AT+QMTCFG=\"keepalive\",0,30", false, false},
		{"AT+QMTDISC=0", true, true},
		{"ATE1", false, false},
		{"AT+IPR=9600", false, false},
		{"AT+CFUN=1,1", false, false},
		{"AT+QURCCFG=\"urcport\",\"uart1\"", false, false},
		{"AT+CSQ;+CFUN=0", false, false}, // the second command counts too
		{"AT+QMTPUBEX=1,1,0,0,\"t\",5", true, false},
		{"AT+QFUPL=\"UFS:x\",10", true, false},
		{"AT +QMTPUBEX=1,1,0,0,\"t\",5", true, false},
		{"AT+ CFUN=0", false, false},
		{"AT+CSQ\r\nAT+CFUN=0", true, false},
		{"AT+CSQ\x1a", true, false},
		{"CSQ", true, false},
		{"", true, false},
		{"AT+" + strings.Repeat("X", MaxATLine), true, false},
		{"AT+QICSGP=1,1,\"a;b\",\"\",\"\",1", false, true}, // ';' inside quotes
	} {
		err := CheckAT(tc.line, 0, tc.force)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrRefused)) {
			t.Errorf("CheckAT(%q, force %v) = %v, want ok %v", tc.line, tc.force, err, tc.ok)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := Redact(`AT+QICSGP=1,1,"cmnet","user","secret",1`); strings.Contains(got, "secret") || strings.Contains(got, "user") {
		t.Errorf("Redact = %q", got)
	}
	if got := Redact("AT+CSQ"); got != "AT+CSQ" {
		t.Errorf("Redact(AT+CSQ) = %q", got)
	}
}
