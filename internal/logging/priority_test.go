package logging

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// streamFile is a file standing in for the journal's stream, with the JOURNAL_STREAM value that
// names it and one that names another file.
func streamFile(t *testing.T) (f *os.File, match, other string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return f, fmt.Sprintf("%d:%d", st.Dev, st.Ino), fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)
}

func journalEnv(stream string) func(string) string {
	return func(k string) string {
		if k == "JOURNAL_STREAM" {
			return stream
		}
		return ""
	}
}

func TestPriorityOfEachLevel(t *testing.T) {
	for l, want := range map[zerolog.Level]string{
		zerolog.TraceLevel: "<7>", zerolog.DebugLevel: "<7>", zerolog.InfoLevel: "<6>", zerolog.NoLevel: "<6>",
		zerolog.WarnLevel: "<4>", zerolog.ErrorLevel: "<3>", zerolog.FatalLevel: "<2>", zerolog.PanicLevel: "<2>",
	} {
		if got := Priority(l); got != want {
			t.Errorf("Priority(%v) = %q, want %q", l, got, want)
		}
	}
}

var prefixRE = regexp.MustCompile(`^<([0-7])>(.*)$`)

// logEveryLevel writes one line at each level, from trace to error, and one without a level.
func logEveryLevel(log zerolog.Logger) {
	log.Trace().Msg("t")
	log.Debug().Msg("d")
	log.Info().Msg("i")
	log.Warn().Msg("w")
	log.Error().Msg("e")
	log.Log().Msg("n")
}

// TestJSONPrioritiesOnTheJournalStream: on the journal's stream every JSON line starts with the
// priority of its level and is plain JSON after it; written elsewhere (the variable inherited by
// a process whose stderr is another file, or no variable) the lines are plain JSON.
func TestJSONPrioritiesOnTheJournalStream(t *testing.T) {
	f, match, other := streamFile(t)
	want := map[string]string{"t": "7", "d": "7", "i": "6", "w": "4", "e": "3", "n": "6"}
	for _, tt := range []struct {
		name, stream string
		batch        bool
		prefixed     bool
	}{
		{"journal", match, false, true},
		{"journal through a BatchWriter", match, true, true},
		{"another stream", other, false, false},
		{"no journal", "", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			var w interface{ Write([]byte) (int, error) } = f
			var bw *BatchWriter
			if tt.batch {
				bw = NewBatchWriter(f, 0)
				w = bw
			}
			log, err := newLogger(w, "trace", FormatJSON, journalEnv(tt.stream), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			logEveryLevel(log)
			if bw != nil {
				if err := bw.Close(); err != nil {
					t.Fatal(err)
				}
			}
			out, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(lines) != 6 {
				t.Fatalf("%d lines, want 6:\n%s", len(lines), out)
			}
			for _, l := range lines {
				body := l
				m := prefixRE.FindStringSubmatch(l)
				if tt.prefixed {
					if m == nil {
						t.Fatalf("line %q has no priority prefix", l)
					}
					body = m[2]
				} else if m != nil || !strings.HasPrefix(l, "{") {
					t.Fatalf("line %q is not plain JSON", l)
				}
				var e map[string]any
				if err := json.Unmarshal([]byte(body), &e); err != nil {
					t.Fatalf("line %q: not JSON after the prefix: %v", l, err)
				}
				if msg, _ := e["message"].(string); tt.prefixed && m[1] != want[msg] {
					t.Errorf("line %q: priority %s, want %s", l, m[1], want[msg])
				}
			}
		})
	}
}

// TestBatchedLinesKeepTheirPrefix: lines written at once from many goroutines through a
// BatchWriter whose output is held (so that they pile up into one batch) each start with their
// own prefix.
func TestBatchedLinesKeepTheirPrefix(t *testing.T) {
	gate := make(chan struct{})
	sw := &slowWriter{gate: gate}
	bw := NewBatchWriter(sw, 0)
	log := zerolog.New(priorityWriter{bw})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if i%2 == 0 {
					log.Warn().Int("g", g).Int("i", i).Msg("w")
				} else {
					log.Info().Int("g", g).Int("i", i).Msg("i")
				}
			}
		}()
	}
	wg.Wait()
	close(gate)
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	if len(sw.writes) > 2 {
		t.Errorf("%d writes for 800 lines held back: no batch was made", len(sw.writes))
	}
	lines := strings.Split(strings.TrimSuffix(strings.Join(sw.writes, ""), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `<4>{"level":"warn"`) && !strings.HasPrefix(l, `<6>{"level":"info"`) {
			t.Fatalf("line %q does not start with its priority", l)
		}
	}
}

// TestConsolePriorityOnTheJournalStream: the console format on the journal's stream has the
// prefix too, and no time.
func TestConsolePriorityOnTheJournalStream(t *testing.T) {
	f, match, _ := streamFile(t)
	log, err := newLogger(f, "debug", FormatConsole, journalEnv(match), fixedClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("dbg")
	log.Warn().Str("k", "v").Msg("careful")
	log.Error().Msg("bad")
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "<7>") || !strings.Contains(lines[0], "dbg") ||
		!strings.HasPrefix(lines[1], "<4>") || !strings.Contains(lines[1], "careful") || !strings.Contains(lines[1], "k=v") ||
		!strings.HasPrefix(lines[2], "<3>") || strings.Contains(string(out), "2026") {
		t.Fatalf("console on the journal:\n%s", out)
	}
}
