package main

import (
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const (
	example   = "../../deploy/gatewayd.example.toml"
	committed = "../../docs/man/gatewayd.toml.5"
)

// The committed gatewayd.toml(5) is what the example configuration gives: an edit to either alone
// fails here.
func TestCommittedPageIsCurrent(t *testing.T) {
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if string(Page(string(src))) != string(have) {
		t.Fatalf("%s is not what %s gives; run go run ./scripts/mangen -o docs/man/gatewayd.toml.5", committed, example)
	}
}

// pageKeys returns the "table.key" of every item of the page, from its .Ss and .It Cm lines.
func pageKeys(page string) []string {
	ss := regexp.MustCompile(`^\.Ss \[\[?([a-z_.]+)\]\]?$`)
	it := regexp.MustCompile(`^\.It Cm ([a-z_]+) `)
	var out []string
	section := ""
	seen := map[string]bool{}
	for _, l := range strings.Split(page, "\n") {
		if m := ss.FindStringSubmatch(l); m != nil {
			section = m[1]
		}
		if m := it.FindStringSubmatch(l); m != nil && !seen[section+"."+m[1]] {
			seen[section+"."+m[1]] = true
			out = append(out, section+"."+m[1])
		}
	}
	return out
}

// Every key of the example is an item of the committed page, under its table, and the page has
// no item the example lacks.
func TestEveryExampleKeyIsOnThePage(t *testing.T) {
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	want := Keys(string(src))
	got := pageKeys(string(have))
	if len(want) < 60 {
		t.Fatalf("only %d keys found in the example: %v", len(want), want)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(want, " ") != strings.Join(got, " ") {
		t.Errorf("the page's keys differ from the example's:\nexample: %v\npage:    %v", want, got)
	}
	for _, k := range []string{"serial.port", "mqtt.password", "mqtt.aliyun.device_secret", "mqtt.tls.cipher_suite",
		"local.forward.qos", "outbox.commit_wait", "metrics.listen", "reset.pulse", "module.health_interval"} {
		if !contains(got, k) {
			t.Errorf("the page has no %s", k)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// The pages render without a warning: gatewayd.toml(5) made here and the hand-written gatewayd(8).
// mandoc (Debian: apt-get install mandoc) checks them; man(1) formats them as `man` would.
func TestPagesRender(t *testing.T) {
	pages := []string{committed, "../../docs/man/gatewayd.8"}
	if _, err := exec.LookPath("mandoc"); err != nil {
		t.Skip("mandoc not installed (Debian: apt-get install mandoc): the pages are not rendered")
	}
	for _, p := range pages {
		out, err := exec.Command("mandoc", "-Tlint", "-W", "warning", p).CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("mandoc -Tlint %s: %v\n%s", p, err, out)
		}
		txt, err := exec.Command("mandoc", "-Tutf8", p).Output()
		if err != nil || len(txt) < 2000 {
			t.Errorf("mandoc -Tutf8 %s: %v, %d bytes", p, err, len(txt))
		}
	}
	if _, err := exec.LookPath("man"); err != nil {
		t.Log("man not installed (Debian: apt-get install man-db groff-base): rendered by mandoc only")
		return
	}
	for _, p := range pages {
		cmd := exec.Command("man", "--warnings=w", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=0", "MANPAGER=cat", "PAGER=cat")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || len(out) < 2000 {
			t.Errorf("man -l %s: %v, %d bytes\n%s", p, err, len(out), stderr.String())
		}
		for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			if l != "" && !strings.Contains(l, "can't break line") {
				t.Errorf("man -l %s: %s", p, l)
			}
		}
	}
}
