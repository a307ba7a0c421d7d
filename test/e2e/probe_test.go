package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/replay"
	"github.com/gatewayd/gatewayd/sim"
)

// TestProbeCommand: `gatewayd probe` (the real binary) on the emulator, with a broker that
// checks passwords: it exits 0, prints its findings, writes a transcript without the password
// that replays cleanly through the real stack; without -port it prints its usage and exits 2.
func TestProbeCommand(t *testing.T) {
	t.Parallel()
	if _, errs, code := cli(t, "probe"); code != 2 || !strings.Contains(errs, "usage: gatewayd probe -port") {
		t.Fatalf("probe without -port: exit %d\n%s", code, errs)
	}
	const password = "probe-cli-secret"
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithAuth(func(_, user string, pw []byte) byte {
		if user != "cli" || string(pw) != password {
			return 4
		}
		return 0
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dir := t.TempDir()
	m, err := sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "probe.txt")
	stdout, errs, code := cli(t, "probe", "-port", m.Path(), "-out", out, "-broker", "broker.example.com:1883",
		"-user", "cli", "-password-file", pwFile, "-wait", "10s")
	if code != 0 {
		t.Fatalf("probe: exit %d\n%s\n%s", code, stdout, errs)
	}
	for _, want := range []string{"+QMTSTAT after a refused CONNECT: yes, code 1",
		"payload with CR LF and quotes received back (QMTPUBEX, QoS 1): yes, byte-exact", "transcript written to " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), password) {
		t.Fatal("the password is in the transcript")
	}
	tr, err := replay.Parse(strings.NewReader(string(raw)), out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if events, err := replay.Run(ctx, tr); err != nil {
		t.Fatalf("the transcript does not replay: %v\n%s", err, strings.Join(events, "\n"))
	}
}
