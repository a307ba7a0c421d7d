package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// TestCommandLineSession runs the command as a person would: flags, then fault lines on stdin,
// while a host talks AT over the link.
func TestCommandLineSession(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ec600-at")
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	var stderr testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"-link", link, "-listen", "127.0.0.1:0", "-imei", "861234567890128"}, stdinR, stdoutW, &stderr)
		stdoutW.Close()
	}()
	out := bufio.NewScanner(stdoutR)
	next := func() string {
		t.Helper()
		if !out.Scan() {
			t.Fatalf("stdout ended; stderr:\n%s", stderr.String())
		}
		return out.Text()
	}
	var broker string
	for {
		l := next()
		if strings.HasPrefix(l, "broker ") {
			broker = l
		}
		if strings.HasPrefix(l, "ready") {
			break
		}
	}
	if !strings.Contains(broker, "127.0.0.1:") || !strings.HasSuffix(broker, "(embedded)") {
		t.Fatalf("broker line %q", broker)
	}

	f, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	read := func(want string) {
		t.Helper()
		f.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 0, len(want))
		buf := make([]byte, 512)
		for len(got) < len(want) {
			n, err := f.Read(buf[:min(len(buf), len(want)-len(got))])
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("read: %v after %q (want %q)", err, got, want)
			}
		}
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	const boot = "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n"
	read(boot)
	f.Write([]byte("AT+GSN\r"))
	read("AT+GSN\r\r\n861234567890128\r\n\r\nOK\r\n")

	send := func(line, want string) {
		t.Helper()
		io.WriteString(stdinW, line+"\n")
		if got := next(); got != want {
			t.Fatalf("%q answered %q, want %q", line, got, want)
		}
	}
	send("drop", "error: sim: no MQTT client has a broker link")
	send("qmtstat 8", "error: sim: no MQTT client has a broker link")
	send("qmtstat 0", "error: sim: +QMTSTAT code 0 out of range 1-255")
	send("bogus", `error: unknown command "bogus" (type help)`)
	send("slow soon", `error: slow needs a duration such as 500ms: "soon"`)
	send("noise 00ff41", "ok")
	send("clock -2h 32", "ok")
	send("clock 1h 99", "error: sim: time zone 99 quarter hours out of range (-48 to 56)")
	send("clock none", "ok")
	read("\x00\xffA")
	send("reboot", "ok")
	read(boot)
	send("chunk 2", "ok")
	f.Write([]byte("AT\r"))
	read("AT\r\r\nOK\r\n")
	send("quit", "stopping")
	stdinW.Close()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after quit")
	}
	if _, err := os.Lstat(link); err == nil {
		t.Fatal("link left behind after quit")
	}
}

// TestEOFOnStdinKeepsRunning: with stdin at EOF (/dev/null) the emulator serves until cancelled.
func TestEOFOnStdinKeepsRunning(t *testing.T) {
	link := filepath.Join(t.TempDir(), "at")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-link", link, "-listen", "127.0.0.1:0"}, strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stdout.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("not ready; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case c := <-code:
		t.Fatalf("run returned %d at EOF on stdin", c)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("link gone while running: %v", err)
	}
	cancel() // what SIGINT/SIGTERM do
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-imei", "12"}, "IMEI"},
		{[]string{"-broker", "ssl://x:1"}, "scheme"},
		{[]string{"-listen", "256.0.0.1:1"}, "embedded broker"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"-platform", "azur", "-listen", "127.0.0.1:0"}, "no platform \"azur\""},
		{[]string{"-platform", "aliyun", "-broker", "tcp://127.0.0.1:1"}, "does not go with -broker"},
		{[]string{"-tls-cert", "x.pem"}, "go together"},
	} {
		var out, errOut testutil.SyncBuffer
		args := append([]string{"-link", filepath.Join(t.TempDir(), "at")}, c.args...)
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("run %v = %d, stderr %q; want failure mentioning %q", c.args, code, errOut.String(), c.want)
		}
	}
	var out, errOut testutil.SyncBuffer
	if code := run(context.Background(), []string{"-h"}, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "refuse-connect CODE") {
		t.Errorf("-h = %d, %q", code, errOut.String())
	}
}

// TestSessionVariants: the session-form variants of issue 20 set their Config fields.
func TestSessionVariants(t *testing.T) {
	var cfg sim.Config
	if err := applyVariants(&cfg, "refusal-qmtstat-4,refusal-qmtstat-only,qmtconn-two-field,first-at-error,qiact-dual-type3,qmtcfg-strict"); err != nil {
		t.Fatal(err)
	}
	if cfg.RefusalStat != 4 || !cfg.RefusalStatOnly || !cfg.ConnAckTwoFields || !cfg.FirstATError || cfg.DualStack != 3 || !cfg.StrictQMTCFG {
		t.Errorf("config %+v", cfg)
	}
	if err := applyVariants(&cfg, "qiact-dual-type1"); err != nil || cfg.DualStack != 1 {
		t.Errorf("qiact-dual-type1: %v, DualStack %d", err, cfg.DualStack)
	}
}

// TestDataPathVariants: each data-path variant name sets its Config field, and -help lists it.
func TestDataPathVariants(t *testing.T) {
	var cfg sim.Config
	if err := applyVariants(&cfg, "recv-blank-lines, urc-before-prompt,split-prompt,coalesce,recv-next-line"); err != nil {
		t.Fatal(err)
	}
	if !cfg.RecvBlankLines || cfg.PromptDelay <= 0 || !cfg.SplitPrompt || cfg.Coalesce <= 0 || cfg.RecvForm != sim.RecvNextLine {
		t.Errorf("config %+v", cfg)
	}
	if err := applyVariants(&cfg, "recv-unquoted"); err != nil || cfg.RecvForm != sim.RecvUnquoted {
		t.Errorf("recv-unquoted: %v, form %v", err, cfg.RecvForm)
	}
	if err := applyVariants(&cfg, "recv-sideways"); err == nil {
		t.Error("an unknown variant was accepted")
	}
	for _, name := range []string{"recv-next-line", "recv-unquoted", "recv-blank-lines", "urc-before-prompt", "split-prompt", "coalesce"} {
		if !strings.Contains(variantHelp, "  "+name+" ") {
			t.Errorf("-help does not list %s", name)
		}
	}
}

// TestPlatformFlag: ec600sim -platform thingsboard -device TOKEN plays ThingsBoard: the token as
// user name gets in, another token is refused with CONNACK 5.
func TestPlatformFlag(t *testing.T) {
	link := filepath.Join(t.TempDir(), "at")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-link", link, "-listen", "127.0.0.1:0", "-platform", "thingsboard", "-device", "TOKEN1"},
			strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stdout.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("not ready; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var addr string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if a, ok := strings.CutPrefix(l, "broker "); ok {
			addr, _, _ = strings.Cut(a, " ")
		}
	}
	if !strings.Contains(stdout.String(), "checking as thingsboard") {
		t.Errorf("status does not say the broker checks as thingsboard:\n%s", stdout.String())
	}
	for token, want := range map[string]byte{"TOKEN1": 0, "TOKEN2": 5} {
		o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("c").SetUsername(token).SetAutoReconnect(false)
		c := paho.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if rc := tok.(*paho.ConnectToken).ReturnCode(); rc != want {
			t.Errorf("token %s: CONNACK %d, want %d", token, rc, want)
		}
		if tok.Error() == nil {
			c.Disconnect(100)
		}
	}
	cancel()
	<-code
}
