package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCheckShowsWhereEachValueCameFrom: a fleet image's base file and a device's drop-in merge;
// `gatewayd check` shows the merged values, the files in the order read, and the file and line of
// each setting; a conflict between the two is refused with both files and lines.
func TestCheckShowsWhereEachValueCameFrom(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "gatewayd.toml")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base, "[serial]\nport = \"/dev/ec600-at\"\n[mqtt]\nhost = \"fleet.example.com\"\nclient_id = \"unset\"\n[[mqtt.subscribe]]\ntopic = \"fleet/cmd\"\n")
	if err := os.Mkdir(base+".d", 0o755); err != nil {
		t.Fatal(err)
	}
	device := filepath.Join(base+".d", "50-device.toml")
	write(device, "# this device\n[mqtt]\nclient_id = \"gw-0042\"\n")

	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", base}, &out, &errb); code != 0 {
		t.Fatalf("check: code %d, stderr %q", code, errb.String())
	}
	got := out.String()
	for _, re := range []string{
		`mqtt\.client_id\s+gw-0042`,
		regexp.QuoteMeta(base) + `\n\s+` + regexp.QuoteMeta(device) + `\n`,
		`mqtt\.client_id\s+` + regexp.QuoteMeta(device) + `:3\n`,
		`mqtt\.host\s+` + regexp.QuoteMeta(base) + `:4\n`,
		`mqtt\.subscribe\s+` + regexp.QuoteMeta(base) + `:6\n`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("check output does not match %q:\n%s", re, got)
		}
	}

	write(filepath.Join(base+".d", "60-more.toml"), "[[mqtt.subscribe]]\ntopic = \"device/cmd\"\n")
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "-config", base}, &out, &errb); code != 1 {
		t.Fatalf("check with a conflict: code %d, stdout %q", code, out.String())
	}
	if msg := errb.String(); !strings.Contains(msg, "60-more.toml:1: mqtt.subscribe") || !strings.Contains(msg, base+":6") {
		t.Fatalf("the conflict does not name both files and lines: %s", msg)
	}
}
