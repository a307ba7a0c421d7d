package probe_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/probe"
	"github.com/gatewayd/gatewayd/internal/replay"
	"github.com/gatewayd/gatewayd/sim"
)

const (
	testUser     = "probe-user"
	testPassword = "s3cret-probe-password"
)

// variants are the emulator's firmware variants (cmd/ec600sim -variant; keep this table in step
// with that list) and what the probe must say for each: a finding's point and a text its
// observation must hold. The first row is the emulator's default.
var variants = []struct {
	name  string
	apply func(*sim.Config)
	want  map[string]string // point (a prefix of it) -> text the observation must contain
	not   map[string]string // point (a prefix of it) -> text the observation must not contain
}{
	{"default", func(*sim.Config) {}, map[string]string{
		"+QMTSTAT after a refused CONNECT":           "yes, code 1",
		"refused CONNECT (wrong password)":           "+QMTCONN: 0,0,4",
		"AT+QMTCFG=? names":                          "edit/timeout",
		"AT+QMTCFG on an open index":                 "ERROR",
		"AT+QMTCFG on a connected index":             "OK",
		"own publish received back":                  "length field, payload quoted on the same line; CR LF right before it: 2",
		`urcport (AT+QURCCFG="urcport", kept in NV)`: `"usbat": URCs come to this port; not changed`,
		"SIM (AT+CPIN?)":                             "READY after",
	}, nil},
	{"urcport-uart1", func(c *sim.Config) { c.SavedURCPort = "uart1" }, map[string]string{
		`urcport (AT+QURCCFG="urcport", kept in NV)`: `"uart1": URCs would not reach this port; CHANGED in NV to "usbat"`,
		"restored urcport (NV)":                      `AT+QURCCFG="urcport","uart1": OK`,
	}, nil},
	{"qicsgp-auth-0-2", func(c *sim.Config) { c.NoPAPOrCHAP = true }, map[string]string{
		"AT+QICSGP=? (the last range is the authentication offered)": "(0-2)",
	}, nil},
	{"unisoc", func(c *sim.Config) { c.Unisoc = true }, map[string]string{
		"AT+QMTCFG=? names": "version",
	}, map[string]string{
		"AT+QMTCFG=? names": "edit/timeout",
	}},
	// The script reads no file and sends no long line: these variants show in no finding, but
	// the probe must still run through and replay.
	{"ufs-prefix", func(c *sim.Config) { c.ListUFSPrefix = true }, nil, nil},
	{"bare-cert-names", func(c *sim.Config) { c.BareCertNames = true }, nil, nil},
	{"silent-refusal", func(c *sim.Config) { c.SilentRefusal = true }, map[string]string{
		"+QMTSTAT after a refused CONNECT": "no, none within",
	}, nil},
	{"sim-ready", func(c *sim.Config) { c.SIMBusy = -1 }, map[string]string{
		"SIM (AT+CPIN?)": "READY at the first ask",
	}, nil},
	{"short-lines", func(c *sim.Config) { c.MaxLine = 1024 }, nil, nil},
	{"app-rdy", func(c *sim.Config) { c.AppReady = 100 * time.Millisecond }, map[string]string{ // 1 s in ec600sim
		"module-level URCs seen": `"APP RDY"`,
	}, nil},
	// A stray byte before AT shows only after a resynchronisation, which a normal run has not.
	{"stray-error", func(c *sim.Config) { c.StrayError = true }, nil, nil},
	{"refusal-qmtstat-4", func(c *sim.Config) { c.RefusalStat = 4 }, map[string]string{
		"+QMTSTAT after a refused CONNECT": "yes, code 4",
	}, nil},
	{"refusal-qmtstat-only", func(c *sim.Config) { c.RefusalStatOnly = true }, map[string]string{
		"refused CONNECT (wrong password)": "no +QMTCONN: only +QMTSTAT: 0,1",
		"+QMTSTAT after a refused CONNECT": "yes, code 1, without +QMTCONN",
	}, nil},
	{"qmtconn-two-field", func(c *sim.Config) { c.ConnAckTwoFields = true }, map[string]string{
		"+QMTCONN on success": "two fields (no ret_code)",
	}, nil},
	{"first-at-error", func(c *sim.Config) { c.FirstATError = true }, map[string]string{
		"first AT after opening the port": "ERROR",
	}, nil},
	{"qiact-dual-type1", func(c *sim.Config) { c.DualStack = 1 }, map[string]string{
		"AT+QIACT? (context 1)": `the answer: ["+QIACT: 1,1,1,\"10.2.198.114\",\"`, // a second address
	}, nil},
	{"qiact-dual-type3", func(c *sim.Config) { c.DualStack = 3 }, map[string]string{
		"AT+QIACT? (context 1)": `the answer: ["+QIACT: 1,1,3,\"10.2.198.114\",\"`,
	}, nil},
	{"qmtcfg-strict", func(c *sim.Config) { c.StrictQMTCFG = true }, map[string]string{
		"AT+QMTCFG on an open index":     "ERROR",
		"AT+QMTCFG on a connected index": "ERROR",
	}, nil},
	{"recv-next-line", func(c *sim.Config) { c.RecvForm = sim.RecvNextLine }, map[string]string{
		"own publish received back": "length field, payload on the next line",
	}, nil},
	{"recv-unquoted", func(c *sim.Config) { c.RecvForm = sim.RecvUnquoted }, map[string]string{
		"own publish received back": "length field, payload unquoted after it",
	}, nil},
	{"recv-blank-lines", func(c *sim.Config) { c.RecvBlankLines = true }, map[string]string{
		"own publish received back": "CR LF right before it: 3",
	}, nil},
	{"urc-before-prompt", func(c *sim.Config) { c.PromptDelay = 50 * time.Millisecond }, nil, nil},
	{"split-prompt", func(c *sim.Config) { c.SplitPrompt = true }, map[string]string{
		"data prompt": "its space in the first read after the data",
	}, nil},
	{"coalesce", func(c *sim.Config) { c.Coalesce = 20 * time.Millisecond }, map[string]string{
		"AT+QMTDISC": "OK and the URC in one read: yes",
	}, nil},
}

// TestProbeOnEveryVariant runs the whole probe against the emulator, with each firmware variant,
// and a broker that refuses a wrong password: it must finish, say the right thing about each
// variant, mask the password, restore what it changed, and its transcript must replay cleanly
// through the real engine, with the probe's own message coming back byte for byte.
func TestProbeOnEveryVariant(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			b, err := sim.NewBroker("127.0.0.1:0", sim.WithAuth(func(_, user string, pw []byte) byte {
				if user != testUser || string(pw) != testPassword {
					return 4
				}
				return 0
			}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			cfg := sim.Config{Link: filepath.Join(t.TempDir(), "ec600-at"), Broker: b.Addr(), SIMBusy: 300 * time.Millisecond}
			v.apply(&cfg)
			m := startModule(t, cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			rep, err := probe.Run(ctx, probe.Options{Port: m.Path(), Broker: "broker.example.com:1883", User: testUser,
				Password: testPassword, Wait: 10 * time.Second, Settle: time.Second})
			if err != nil {
				if rep != nil {
					t.Log(rep.Summary())
				}
				t.Fatalf("probe: %v", err)
			}
			summary := rep.Summary()
			t.Log("\n" + summary)
			for point, text := range v.want {
				found := false
				for _, f := range rep.Findings {
					if strings.HasPrefix(f.Point, point) && strings.Contains(f.Observed, text) {
						found = true
					}
				}
				if !found {
					t.Errorf("no finding %q containing %q", point, text)
				}
			}
			for point, text := range v.not {
				for _, f := range rep.Findings {
					if strings.HasPrefix(f.Point, point) && strings.Contains(f.Observed, text) {
						t.Errorf("finding %q: %q should not contain %q", point, f.Observed, text)
					}
				}
			}
			for _, must := range []string{"own publish received back (QMTPUBEX, QoS 0): yes, byte-exact",
				"lines the parser did not know or found malformed: none",
				"payload with CR LF and quotes received back (QMTPUBEX, QoS 1): yes, byte-exact"} {
				if !strings.Contains(summary, must) {
					t.Errorf("summary lacks %q", must)
				}
			}

			var out bytes.Buffer
			if _, err := rep.Transcript.WriteTo(&out); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out.Bytes(), []byte(testPassword)) || bytes.Contains(out.Bytes(), []byte("gatewayd-probe-wrong-password")) {
				t.Fatal("a password is in the transcript")
			}
			tr, err := replay.Parse(&out, "probe-"+v.name)
			if err != nil {
				t.Fatal(err)
			}
			events, err := replay.Run(ctx, tr)
			if err != nil {
				t.Fatalf("the probe's transcript does not replay: %v\n%s", err, strings.Join(events, "\n"))
			}
			rendered := strings.Join(events, "\n")
			for _, bad := range []string{"qmt.Malformed", "qmt.Unknown"} {
				if strings.Contains(rendered, bad) {
					t.Errorf("replay renders a %s:\n%s", bad, rendered)
				}
			}
			if !strings.Contains(rendered, `payload="line 1 \"quoted\"\r\nline 2, \"a\",\"b\"\r\n" nolength=false`) {
				t.Errorf("the replay does not show the CR LF and quotes payload byte for byte:\n%s", rendered)
			}
		})
	}
}

// TestProbeRefusesABusyPort: with another process holding the port, the probe does not touch it
// and says who has it.
func TestProbeRefusesABusyPort(t *testing.T) {
	cfg := sim.Config{Link: filepath.Join(t.TempDir(), "ec600-at"), Broker: "127.0.0.1:9", SIMBusy: -1}
	m := startModule(t, cfg)
	f, err := os.OpenFile(m.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	holder := exec.Command("sleep", "30")
	holder.Stdin = f
	if err := holder.Start(); err != nil {
		t.Skipf("cannot start a process to hold the port: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	f.Close()
	before := m.Stats().Commands
	rep, err := probe.Run(context.Background(), probe.Options{Port: m.Path()})
	if !errors.Is(err, probe.ErrBusy) || rep != nil || !strings.Contains(err.Error(), "sleep") {
		t.Fatalf("probe on a held port: %v, %v", rep, err)
	}
	if n := m.Stats().Commands; n != before {
		t.Fatalf("the module got %d commands from a probe that refused", n-before)
	}
}

// TestProbeOnABootingModule: a module still booting gives the first AT no answer; the probe says
// so, waits for it (the engine resynchronises), runs the script, and the transcript — with the
// ESC and the ATs of the resynchronisations — replays cleanly.
func TestProbeOnABootingModule(t *testing.T) {
	cfg := sim.Config{Link: filepath.Join(t.TempDir(), "ec600-at"), Broker: "127.0.0.1:9", SIMBusy: -1, BootDelay: 4 * time.Second}
	m := startModule(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := probe.Run(ctx, probe.Options{Port: m.Path()})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if !strings.Contains(rep.Summary(), "first AT after opening the port: no answer within 3 s") {
		t.Errorf("summary:\n%s", rep.Summary())
	}
	var out bytes.Buffer
	if _, err := rep.Transcript.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte(`host @`)) || !bytes.Contains(out.Bytes(), []byte(`"\x1b"`)) {
		t.Fatalf("no resynchronisation in the transcript:\n%s", out.String())
	}
	text := out.String()
	tr, err := replay.Parse(&out, "booting")
	if err != nil {
		t.Fatal(err)
	}
	if events, err := replay.Run(ctx, tr); err != nil {
		t.Fatalf("the transcript does not replay: %v\n%s\n%s", err, strings.Join(events, "\n"), head(text))
	}
}

// head gives the first records of a transcript, for a failure message.
func head(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "host") || strings.HasPrefix(l, "module") {
			out = append(out, l)
		}
		if len(out) == 30 {
			break
		}
	}
	return strings.Join(out, "\n")
}

// startModule starts an emulated module with cfg for the test.
func startModule(t *testing.T, cfg sim.Config) *sim.Module {
	t.Helper()
	m, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestProbeUnderFaults: with the module's output in 5-byte pieces and index 0 left opening by a
// host restart (AT+QMTOPEN? does not list it), the probe finishes and its transcript — hundreds
// of small reads — replays; when the broker cannot be reached (+QMTOPEN: 0,4), the probe stops
// with an error but keeps the record, restores echo, and that transcript replays too.
func TestProbeUnderFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   func(*sim.Module)
		wantErr string
		want    []string
	}{
		{"chunked and occupied", func(m *sim.Module) { m.SetChunking(5); _ = m.Occupy(0) }, "",
			[]string{"AT+QMTCLOSE on an index that is not open: OK, then +QMTCLOSE: 0,0",
				"payload with CR LF and quotes received back (QMTPUBEX, QoS 1): yes, byte-exact"}},
		{"open refused", func(m *sim.Module) { m.RefuseOpen(4) }, "could not open a link",
			[]string{"AT+QMTOPEN result: +QMTOPEN: 0,4", "restored echo: ATE1: OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := sim.NewBroker("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			m := startModule(t, sim.Config{Link: filepath.Join(t.TempDir(), "ec600-at"), Broker: b.Addr(), SIMBusy: -1})
			tc.fault(m)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			rep, err := probe.Run(ctx, probe.Options{Port: m.Path(), Broker: "broker.example.com:1883", Wait: 10 * time.Second, Settle: time.Second})
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q\n%s", err, tc.wantErr, rep.Summary())
			}
			for _, w := range tc.want {
				if !strings.Contains(rep.Summary(), w) {
					t.Errorf("summary lacks %q:\n%s", w, rep.Summary())
				}
			}
			var out bytes.Buffer
			if _, err := rep.Transcript.WriteTo(&out); err != nil {
				t.Fatal(err)
			}
			text := out.String()
			tr, err := replay.Parse(&out, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			reads := 0
			for _, r := range tr.Records {
				if r.Dir == replay.Module {
					reads++
				}
			}
			t.Logf("%d records, %d of them reads", len(tr.Records), reads)
			if events, err := replay.Run(ctx, tr); err != nil {
				t.Fatalf("the transcript does not replay: %v\n%s\n%s", err, strings.Join(events, "\n"), head(text))
			}
		})
	}
}
