package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	stdlog "log"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$`)

func noEnv(string) string { return "" }

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// decodeLines parses every line of buf as one JSON object.
func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not one JSON object: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str(EventKey, EventDownlink).Str("topic", "a/b").Msg("downlink")
	log.Warn().Str(EventKey, EventModuleLost).Msg("module lost")

	lines := decodeLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2", len(lines))
	}
	for i, want := range []struct{ level, event string }{{"info", "downlink"}, {"warn", "module_lost"}} {
		m := lines[i]
		ts, _ := m["time"].(string)
		if !timeRE.MatchString(ts) {
			t.Errorf("line %d: time %q does not have 6 fractional digits", i, ts)
		}
		if m["level"] != want.level || m["event"] != want.event {
			t.Errorf("line %d: level %v event %v, want %s %s", i, m["level"], m["event"], want.level, want.event)
		}
	}
}

func TestTimeExactMicroseconds(t *testing.T) {
	for _, tt := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), "2026-01-02T03:04:05.123456Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05.000000Z"}, // zeros kept
		{time.Date(2026, 1, 2, 3, 4, 5, 1000, time.FixedZone("CST", 8*3600)), "2026-01-02T03:04:05.000001+08:00"},
	} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, "info", "json", noEnv, fixedClock(tt.at))
		if err != nil {
			t.Fatal(err)
		}
		log.Info().Msg("x")
		if got := decodeLines(t, &buf)[0]["time"]; got != tt.want {
			t.Errorf("time = %v, want %s", got, tt.want)
		}
	}
}

func TestNoGlobalStateChanged(t *testing.T) {
	format, field, level := zerolog.TimeFieldFormat, zerolog.TimestampFieldName, zerolog.GlobalLevel()
	var buf bytes.Buffer
	for _, f := range []string{"json", "console"} {
		log, err := New(&buf, "trace", f)
		if err != nil {
			t.Fatal(err)
		}
		log.Trace().Msg("x")
	}
	if zerolog.TimeFieldFormat != format || zerolog.TimestampFieldName != field || zerolog.GlobalLevel() != level {
		t.Errorf("zerolog globals changed: format %q field %q level %v", zerolog.TimeFieldFormat, zerolog.TimestampFieldName, zerolog.GlobalLevel())
	}
}

func TestLevelFilter(t *testing.T) {
	for _, tt := range []struct {
		level string
		want  []string // messages that get through, of trace..error
	}{
		{"trace", []string{"trace", "debug", "info", "warn", "error"}},
		{"debug", []string{"debug", "info", "warn", "error"}},
		{"", []string{"info", "warn", "error"}},
		{"info", []string{"info", "warn", "error"}},
		{"warn", []string{"warn", "error"}},
		{"error", []string{"error"}},
	} {
		var buf bytes.Buffer
		log, err := New(&buf, tt.level, "")
		if err != nil {
			t.Fatal(err)
		}
		log.Trace().Msg("trace")
		log.Debug().Msg("debug")
		log.Info().Msg("info")
		log.Warn().Msg("warn")
		log.Error().Msg("error")
		var got []string
		for _, m := range decodeLines(t, &buf) {
			got = append(got, m["message"].(string))
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("level %q let through %v, want %v", tt.level, got, tt.want)
		}
	}
}

func TestBadLevelAndFormat(t *testing.T) {
	for _, tt := range []struct{ level, format, want string }{
		{"verbose", "json", `log level "verbose": want trace, debug, info, warn or error`},
		{"INFO", "json", `log level "INFO"`},
		{"fatal", "json", `log level "fatal"`},
		{"info", "text", `log format "text": want json or console`},
	} {
		_, err := New(&bytes.Buffer{}, tt.level, tt.format)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %q) error = %v, want %q", tt.level, tt.format, err, tt.want)
		}
	}
	if _, err := ParseLevel(""); err == nil {
		t.Error("ParseLevel(\"\") succeeded; the empty default is New's business, not ParseLevel's")
	}
}

func TestConsole(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.Local)
	var buf bytes.Buffer
	log, err := newLogger(&buf, "info", "console", noEnv, fixedClock(at))
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str(EventKey, EventLED).Bool("on", true).Msg("LED")
	out := buf.String()
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour escapes written to a non-terminal: %q", out)
	}
	for _, want := range []string{"2026-01-02 03:04:05.678901", "INF", "LED", "event=led", "on=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("console line %q lacks %q", out, want)
		}
	}
}

// Under systemd the journal stamps lines itself; the console format must then leave the time out,
// but only when the output really is the journal stream (JOURNAL_STREAM = its device:inode).
func TestConsoleUnderJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	other := fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	for _, tt := range []struct {
		name, stream, format string
		wantTime             bool
	}{
		{"console to the journal", match, "console", false},
		{"console elsewhere, variable inherited", other, "console", true},
		{"console, no journal", "", "console", true},
		{"json to the journal keeps time", match, "json", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			env := func(k string) string {
				if k == "JOURNAL_STREAM" {
					return tt.stream
				}
				return ""
			}
			log, err := newLogger(f, "info", tt.format, env, fixedClock(at))
			if err != nil {
				t.Fatal(err)
			}
			log.Info().Msg("hello")
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			hasTime := strings.Contains(string(b), "2026-01-02")
			if hasTime != tt.wantTime {
				t.Errorf("output %q: time shown = %v, want %v", b, hasTime, tt.wantTime)
			}
			if !strings.Contains(string(b), "hello") {
				t.Errorf("output %q lacks the message", b)
			}
		})
	}
}

func TestEventNamesStable(t *testing.T) {
	want := map[string]string{
		EventModule: "module", EventNetworkReady: "network_ready", EventMQTTConnected: "mqtt_connected",
		EventMQTTConnectFailed: "mqtt_connect_failed", EventMQTTDisconnected: "mqtt_disconnected",
		EventSubscribed: "subscribed", EventPublished: "published", EventDownlink: "downlink",
		EventLED: "led", EventModuleLost: "module_lost", EventModuleReplaced: "module_replaced",
		EventOutboxStats: "outbox_stats", EventOutboxRefused: "outbox_refused", EventOutboxExpired: "outbox_expired",
		EventOutboxDroppedOldest: "outbox_dropped_oldest", EventOutboxRejected: "outbox_rejected",
		EventOutboxResend: "outbox_resend", EventOutboxSetAside: "outbox_set_aside",
		EventOutboxDamaged: "outbox_damaged_record", EventDrainWindowShrunk: "drain_window_shrunk",
		EventDrainWindowRestored: "drain_window_restored",
		EventLocalRefused:        "local_refused", EventLocalNotForwarded: "local_not_forwarded",
		EventTokenRenewed: "token_renewed", EventClockWrong: "clock_wrong", EventClockNetwork: "clock_network",
	}
	if len(want) != 26 {
		t.Fatalf("event names collide: %d distinct of 26", len(want))
	}
	for got, w := range want {
		if got != w {
			t.Errorf("event %q renamed to %q: the event field is a stable interface", w, got)
		}
	}
}

func BenchmarkJSONLine(b *testing.B) {
	log, err := New(discard{}, "info", "json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		log.Info().Str(EventKey, EventDownlink).Str("topic", "/sys/pk/dn/thing/service/property/set").Int("bytes", 87).Msg("downlink")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestStdlibWriterLogsAWarning(t *testing.T) {
	var buf bytes.Buffer
	std := stdlog.New(StdlibWriter(zerolog.New(&buf)), "", 0)
	std.Printf("ERROR: metrics: cannot open %s: %s", "/proc/self/io", "permission denied")
	want := `{"level":"warn","component":"stdlib","message":"ERROR: metrics: cannot open /proc/self/io: permission denied"}` + "\n"
	if buf.String() != want {
		t.Fatalf("got %s want %s", buf.String(), want)
	}
}
