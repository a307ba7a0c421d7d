package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// priorityOf is the sd-daemon priority journald files a line of each level at.
var priorityOf = map[string]string{"trace": "7", "debug": "7", "info": "6", "warn": "4", "error": "3"}

// loudConfig is a configuration whose daemon logs at every priority: debug lines, a warning (a
// config key with no effect) and an error (an outbox directory that cannot be made), and
// otherwise comes up as usual.
func loudConfig(t *testing.T, b *bench) string {
	t.Helper()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return localConfig(b.mod.Path(), testutil.FreeAddr(t), filepath.Join(notADir, "outbox")) + "at_trace = true\n"
}

// streamLines are the lines a daemon wrote on its stderr, as written.
type streamLines struct {
	mu    sync.Mutex
	lines []string
}

func (s *streamLines) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

var priorityPrefix = regexp.MustCompile(`^<(\d)>`)

// startOnPipe runs gatewayd on cfg with its stderr on a pipe, and JOURNAL_STREAM set by stream
// from the pipe's "<dev>:<inode>" ("" leaves it out). The lines are kept as written and, without
// any priority prefix, watched as usual.
func startOnPipe(t *testing.T, b *bench, cfg string, stream func(devIno string) string) (*proc, *streamLines) {
	t.Helper()
	path := filepath.Join(b.dir, "gatewayd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := w.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	cmd := exec.Command(gatewaydBin, "-config", path)
	cmd.Stderr = w
	cmd.Env = withoutEnv(os.Environ(), "JOURNAL_STREAM=")
	if js := stream(fmt.Sprintf("%d:%d", st.Dev, st.Ino)); js != "" {
		cmd.Env = append(cmd.Env, "JOURNAL_STREAM="+js)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	raw := &streamLines{}
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			l := sc.Text()
			raw.mu.Lock()
			raw.lines = append(raw.lines, l)
			raw.mu.Unlock()
			fmt.Fprintln(pw, priorityPrefix.ReplaceAllString(l, ""))
		}
		pw.Close()
		r.Close()
	}()
	d := &proc{cmd: cmd, log: logwatch.New(pr), done: make(chan error, 1)}
	go func() {
		<-d.log.Done()
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.log.Done()
		if t.Failed() {
			t.Logf("gatewayd stderr:\n%s", strings.Join(raw.all(), "\n"))
		}
	})
	return d, raw
}

// withoutEnv returns env without the variables that start with prefix.
func withoutEnv(env []string, prefix string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// TestJournalPriorities: with its stderr on the journal's stream (JOURNAL_STREAM names the pipe)
// the real daemon starts every line with the priority of its level, followed by the plain JSON;
// with the variable naming another stream, or unset, the lines are plain JSON.
func TestJournalPriorities(t *testing.T) {
	for _, tt := range []struct {
		name     string
		stream   func(devIno string) string
		prefixed bool
	}{
		{"journal stream", func(s string) string { return s }, true},
		{"another stream", func(s string) string { return s + "0" }, false},
		{"no JOURNAL_STREAM", func(string) string { return "" }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBench(t, nil)
			d, raw := startOnPipe(t, b, loudConfig(t, b), tt.stream)
			d.wait(t, 0, "outbox_unavailable")
			d.wait(t, 0, "session_up")
			if _, err := d.stop(t); err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
			seen := map[string]int{}
			for _, l := range raw.all() {
				body, pri := l, ""
				if m := priorityPrefix.FindStringSubmatch(l); m != nil {
					body, pri = l[len(m[0]):], m[1]
				}
				var e logwatch.Entry
				if err := json.Unmarshal([]byte(body), &e); err != nil {
					t.Fatalf("line %q: not JSON after the prefix: %v", l, err)
				}
				level := e.Str("level")
				seen[level]++
				switch {
				case tt.prefixed && pri != priorityOf[level]:
					t.Fatalf("line %q: priority %q for level %q, want %q", l, pri, level, priorityOf[level])
				case !tt.prefixed && pri != "":
					t.Fatalf("line %q has a priority prefix off the journal stream", l)
				}
			}
			for _, level := range []string{"debug", "info", "warn", "error"} {
				if seen[level] == 0 {
					t.Errorf("no %s line: the check above proves less than it should (%v)", level, seen)
				}
			}
		})
	}
}

// TestJournalFiltersByPriority runs the daemon under a real systemd-journald, in a mount namespace
// of its own (its sockets and files on a private /run and /var/log), with its output on a journal
// stream as systemd gives a service (systemd-cat, and JOURNAL_STREAM as systemd sets it): `journalctl
// -p warning` shows exactly its warnings and errors, and `journalctl -o cat` plain JSON lines.
func TestJournalFiltersByPriority(t *testing.T) {
	journald := "/lib/systemd/systemd-journald"
	if _, err := os.Stat(journald); err != nil {
		t.Skipf("no %s (apt-get install systemd): the stream format is checked by TestJournalPriorities", journald)
	}
	for _, tool := range []string{"unshare", "systemd-cat", "journalctl", "stat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: the stream format is checked by TestJournalPriorities", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: a private journald needs a mount namespace; the stream format is checked by TestJournalPriorities")
	}
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("no mount namespace here (%v: %s): the stream format is checked by TestJournalPriorities", err, strings.TrimSpace(string(out)))
	}
	b := newBench(t, nil)
	posts := b.subscribe(postTopic)
	cfg := filepath.Join(b.dir, "gatewayd.toml")
	if err := os.WriteFile(cfg, []byte(loudConfig(t, b)), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	script := `
mount -t tmpfs tmpfs /run || exit 10
mount -t tmpfs tmpfs /var/log || exit 10
"$JOURNALD" & j=$!
n=0
until [ -S /run/systemd/journal/stdout ]; do
	n=$((n+1)); [ $n -lt 200 ] || exit 11
	sleep 0.05
done
systemd-cat -t gatewayd-test sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" -config "$1"' "$GATEWAYD" "$CONFIG" & g=$!
trap 'kill -TERM $g' TERM
wait $g
wait $g
journalctl --sync
journalctl -t gatewayd-test -o json --no-pager >"$OUT/all.json"
journalctl -t gatewayd-test -p warning -o cat --no-pager >"$OUT/warning.txt"
journalctl -t gatewayd-test -o cat --no-pager >"$OUT/cat.txt"
kill $j
wait $j
exit 0
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(withoutEnv(os.Environ(), "JOURNAL_STREAM="), "JOURNALD="+journald, "GATEWAYD="+gatewaydBin, "CONFIG="+cfg, "OUT="+out)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The daemon is up once the cloud gets its publish on connect.
	select {
	case <-posts.ch:
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 10 {
			t.Skipf("cannot mount in a private namespace here (%s): the stream format is checked by TestJournalPriorities", strings.TrimSpace(stderr.String()))
		}
		t.Fatalf("the journald rig ended before the daemon came up: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon under journald did not come up in 30 s\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the journald rig: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the journald rig did not end 20 s after SIGTERM\n%s", stderr.String())
	}

	read := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	levels := map[string]int{}
	var warnings []string
	for _, l := range read("all.json") {
		var rec struct{ PRIORITY, MESSAGE string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("journal record %q: %v", l, err)
		}
		var e logwatch.Entry
		if err := json.Unmarshal([]byte(rec.MESSAGE), &e); err != nil {
			t.Fatalf("MESSAGE %q is not plain JSON (prefix left in?): %v", rec.MESSAGE, err)
		}
		level := e.Str("level")
		levels[level]++
		if rec.PRIORITY != priorityOf[level] {
			t.Errorf("journal PRIORITY %s for a %s line: %s", rec.PRIORITY, level, rec.MESSAGE)
		}
		if level == "warn" || level == "error" {
			warnings = append(warnings, rec.MESSAGE)
		}
	}
	for _, level := range []string{"debug", "info", "warn", "error"} {
		if levels[level] == 0 {
			t.Errorf("no %s record in the journal (%v)", level, levels)
		}
	}
	if got := read("warning.txt"); strings.Join(got, "\n") != strings.Join(warnings, "\n") {
		t.Errorf("journalctl -p warning shows\n%s\nwant exactly the warnings and errors\n%s", strings.Join(got, "\n"), strings.Join(warnings, "\n"))
	}
	for _, l := range read("cat.txt") {
		if !strings.HasPrefix(l, "{") || !json.Valid([]byte(l)) {
			t.Fatalf("journalctl -o cat line %q is not plain JSON", l)
		}
	}
}
