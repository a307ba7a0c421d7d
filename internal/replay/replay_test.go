package replay

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "write each transcript's .want file from what the code does now (review the diff!)")

// corpus lists the transcripts under testdata.
func corpus(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in testdata: %v", err)
	}
	return files
}

// TestReplay replays every transcript in testdata through the real engine and parsers and
// compares the rendering with the .want file next to it: every command's lines and result and
// every URC as a typed event, downlink payloads byte for byte.
func TestReplay(t *testing.T) {
	for _, file := range corpus(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			tr := load(t, file)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			got, err := Run(ctx, tr)
			wantFile := strings.TrimSuffix(file, ".txt") + ".want"
			if *update && err == nil && tr.Pending == "" {
				if err := os.WriteFile(wantFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantB, rerr := os.ReadFile(wantFile)
			if rerr != nil {
				t.Fatalf("every transcript needs its expected events: %v", rerr)
			}
			want := strings.Split(strings.TrimSuffix(string(wantB), "\n"), "\n")
			diff := compare(got, want)
			if err == nil && diff == "" {
				if tr.Pending != "" {
					t.Errorf("replays cleanly although marked pending (%s): remove its pending: line", tr.Pending)
				}
				return
			}
			if tr.Pending != "" {
				t.Skipf("%s (today: %v%s)", tr.Pending, err, diff)
			}
			if err != nil {
				t.Errorf("replay: %v", err)
			}
			if diff != "" {
				t.Errorf("events differ from %s:%s", wantFile, diff)
			}
		})
	}
}

func load(t *testing.T, file string) *Transcript {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := Parse(f, filepath.Base(file))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// compare gives the first differences between got and want, line by line, or "".
func compare(got, want []string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(got), len(want)) && n < 8; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			n++
			b.WriteString("\n  event " + itoa(i+1) + ":\n    got:  " + g + "\n    want: " + w)
		}
	}
	if len(got) != len(want) {
		b.WriteString("\n  got " + itoa(len(got)) + " events, want " + itoa(len(want)))
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
