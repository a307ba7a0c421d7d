package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNosimBuildLeavesTheEmulatorOut builds gatewayd as the Debian package does (-tags nosim):
// the emulator's packages are not linked in, and `gatewayd sim` says where to find it instead.
func TestNosimBuildLeavesTheEmulatorOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second gatewayd binary; skipped with -short")
	}
	out, err := exec.Command("go", "list", "-tags", "nosim", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -tags nosim: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/gatewayd/gatewayd/sim" || strings.HasPrefix(pkg, "github.com/creack/pty") {
			t.Errorf("a -tags nosim build still links %s", pkg)
		}
	}

	bin := filepath.Join(t.TempDir(), "gatewayd-nosim")
	if out, err := exec.Command("go", "build", "-tags", "nosim", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nosim: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "sim")
	msg, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("gatewayd sim without the emulator: exit code %d (%v), want 2", code, err)
	}
	for _, want := range []string{"built without the EC600 emulator", "go run ./cmd/gatewayd sim"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("gatewayd sim without the emulator: the message lacks %q:\n%s", want, msg)
		}
	}
	if out, err := exec.Command(bin, "-version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "gatewayd ") {
		t.Errorf("gatewayd -version without the emulator: %v, %q", err, out)
	}
}
