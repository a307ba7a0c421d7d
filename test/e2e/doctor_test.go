package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/gatewayd/gatewayd/internal/logging"
)

// runDoctorCLI runs `gatewayd doctor` on cfg and returns its output and exit code.
func runDoctorCLI(t *testing.T, dir, cfg string) (string, int) {
	t.Helper()
	path := filepath.Join(dir, "doctor.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := cli(t, "doctor", "-config", path, "-wait", "2s")
	return out + errs, code
}

// wantCheck fails t unless the doctor's output has check at level with text in its line.
func wantCheck(t *testing.T, out, level, check, text string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == level && f[1] == check && strings.Contains(l, text) {
			return
		}
	}
	t.Errorf("no %q line for %s with %q in:\n%s", level, check, text, out)
}

// TestDoctorFindsTheBrokenPart: with the daemon stopped, `gatewayd doctor` opens the port and
// goes through the bring-up; for each part the emulator can break it names that part, says what
// to do, and exits 1. With everything well it exits 0.
func TestDoctorFindsTheBrokenPart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		breakIt     func(t *testing.T, b *bench) (cfg string)
		check, text string
	}{
		{"all well", nil, "MQTT", "with the configured credentials"},
		{"no SIM", func(t *testing.T, b *bench) string { must(t, b.mod.SetSIM(false)); return "" }, "SIM", "not inserted"},
		{"not registered", func(t *testing.T, b *bench) string { must(t, b.mod.SetRegistered(false)); return "" }, "network", "not registered"},
		{"no PDP", func(t *testing.T, b *bench) string {
			// Context 2 is not the network's default bearer, and the module refuses to activate it.
			b.mod.Refuse("AT+QIACT=")
			return strings.Replace(seedConfig(b.mod.Path(), ""), "[mqtt]", "[module]\npdp_context = 2\n\n[mqtt]", 1)
		}, "PDP", "cannot be activated"},
		{"DNS", func(t *testing.T, b *bench) string { b.mod.SetDNS(false); return "" }, "DNS", "565"},
		{"credentials", func(t *testing.T, b *bench) string { must(t, b.mod.RefuseConnect(4)); return "" }, "MQTT", "bad user name or password"},
		{"wrong port", func(t *testing.T, b *bench) string {
			master, tty, err := pty.Open() // a tty nobody answers on
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { master.Close(); tty.Close() })
			return seedConfig(tty.Name(), "")
		}, "module", "does not answer AT"},
		{"port holder", func(t *testing.T, b *bench) string {
			f, err := os.OpenFile(b.mod.Path(), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			holder := exec.Command("sleep", "60") // holds the port as ModemManager would
			holder.ExtraFiles = []*os.File{f}
			must(t, holder.Start())
			t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
			return ""
		}, "port", "(sleep)"},
		{"GPIO line", func(t *testing.T, b *bench) string {
			return strings.Replace(seedConfig(b.mod.Path(), ""), "[log]", "[led]\nchip = \"/dev/gpiochip99\"\nline = 3\n\n[log]", 1)
		}, "LED", "gpiochip99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t, nil)
			cfg := ""
			if tc.breakIt != nil {
				cfg = tc.breakIt(t, b)
			}
			if cfg == "" {
				cfg = seedConfig(b.mod.Path(), "")
			}
			out, code := runDoctorCLI(t, b.dir, cfg)
			if tc.breakIt == nil {
				if code != 0 {
					t.Errorf("exit %d with everything well:\n%s", code, out)
				}
				wantCheck(t, out, "ok", tc.check, tc.text)
				wantCheck(t, out, "ok", "DNS", "through the module")
				return
			}
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			wantCheck(t, out, "FAIL", tc.check, tc.text)
			if !strings.Contains(out, "→ ") {
				t.Errorf("no advice in:\n%s", out)
			}
		})
	}
}

// TestDoctorAsksTheRunningDaemon: with the daemon running, the doctor does not touch the port (the
// daemon owns it): it asks the daemon, and still finds a DNS that fails, through it.
func TestDoctorAsksTheRunningDaemon(t *testing.T) {
	b := newBench(t, nil)
	cfg := seedConfig(b.mod.Path(), "")
	d := b.start(cfg)
	d.wait(t, 0, logging.EventSessionUp)
	out, code := runDoctorCLI(t, b.dir, cfg)
	if code != 0 {
		t.Errorf("exit %d with the daemon connected:\n%s", code, out)
	}
	wantCheck(t, out, "ok", "daemon", "connected")
	wantCheck(t, out, "ok", "port", "only gatewayd")
	wantCheck(t, out, "ok", "MQTT", "connected to")
	b.mod.SetDNS(false)
	out, code = runDoctorCLI(t, b.dir, cfg)
	if code != 1 {
		t.Errorf("exit %d with DNS down", code)
	}
	wantCheck(t, out, "FAIL", "DNS", "565")
}
