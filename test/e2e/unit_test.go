package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks the shipped unit with systemd's own tools: it verifies (with ExecStart
// pointing at the binary under test), its sandbox keeps `systemd-analyze security` at 1.3 or
// better, and it bounds the resources a bug could take (memory, tasks, files).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian: apt-get install systemd); CI installs it")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "gatewayd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"MemoryHigh=", "MemoryMax=", "TasksMax=", "LimitNOFILE=", "WatchdogSec=", "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(unit), "\n"+key) {
			t.Errorf("the unit sets no %s", key)
		}
	}
	path := filepath.Join(t.TempDir(), "gatewayd.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/gatewayd", gatewaydBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --threshold takes the exposure ×10: 13 is 1.3.
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=13", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 1.3 (%v):\n%s", err, out)
	}
}
