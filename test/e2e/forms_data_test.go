package e2e

// End-to-end tests of the data-path forms real modules print (issue 20; reference 0, 2.6, 2.7,
// 9.1): the real gatewayd binary against the emulator in each firmware variant. Every downlink
// must be logged with its exact bytes and toggle the LED, and the port must stay in step: the
// next command is answered at once, no command is abandoned, no health check fails, no line is
// taken for something it is not.

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// dataPayloads try the framing: raw quotes, commas and a length-like field, raw CR LF and an
// "OK" line, leading and trailing whitespace with multi-byte UTF-8 (the bytes of the NB-IoT
// capture, reference 2.7), a payload that looks like a +QMTRECV header, a lone CR LF, binary.
var dataPayloads = []string{
	`{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`,
	"\xe3\x80\x80this  that ",
	" \r\n{\"a\":\"b\"},\"x\",5,\"y\"\r\nOK\r\n\t",
	"+QMTRECV: 0,1,\"" + setTopic + "\",2,\"ok\"\r\n",
	"\r\n",
	"\x00\xff\x1a\x1b\"",
}

// formsConfig is seedConfig with a health check every second (so a port out of step shows as a
// failed one), the metrics endpoint on metrics and, when listen is set, the local endpoint and
// outbox for uplinks.
func formsConfig(t *testing.T, b *bench, listen, metrics string) string {
	cfg := seedConfig(b.mod.Path(), "")
	if listen != "" {
		cfg = localConfig(b.mod.Path(), listen, filepath.Join(t.TempDir(), "outbox"))
	}
	cfg += fmt.Sprintf("\n[metrics]\nlisten = %q\n", metrics)
	return strings.Replace(cfg, "[mqtt]\n", "[module]\nhealth_interval = \"1s\"\n\n[mqtt]\n", 1)
}

// formsRun is a daemon on the emulator in a variant.
type formsRun struct {
	b       *bench
	d       *proc
	from    int    // log index of session_up
	metrics string // the daemon's metrics endpoint
}

// startForms starts a broker, the emulator with variant and the daemon, and returns once the
// session is up.
func startForms(t *testing.T, variant func(*sim.Config), listen string) *formsRun {
	t.Helper()
	if variant == nil {
		variant = func(*sim.Config) {}
	}
	broker := startBroker(t)
	b := newBenchOn(t, broker.Addr(), variant)
	metrics := testutil.FreeAddr(t)
	d := b.start(formsConfig(t, b, listen, metrics))
	_, from := d.wait(t, 0, logging.EventSessionUp)
	return &formsRun{b: b, d: d, from: from, metrics: metrics}
}

// payloadOf is the exact bytes a downlink entry logged: text, or hex when not UTF-8.
func payloadOf(e logwatch.Entry) string {
	if h := e.Str("payload_hex"); h != "" {
		b, _ := hex.DecodeString(h)
		return string(b)
	}
	return e.Str("payload")
}

// waitDownlinksExact waits for one downlink on topic per payload, in order, after index from,
// checks each byte for byte, and returns the index after the last.
func waitDownlinksExact(t *testing.T, d *proc, topic string, from int, payloads []string) int {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	for k, p := range payloads {
		e, i, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool {
			return e.Event() == logging.EventDownlink && e.Str("topic") == topic
		})
		if err != nil {
			t.Fatalf("downlink %d of %d (%q) never logged: %v", k+1, len(payloads), p, err)
		}
		if got := payloadOf(e); got != p || e.Int("bytes") != len(p) {
			t.Fatalf("downlink %d: payload %q (%d bytes), want %q (%d bytes)", k+1, got, e.Int("bytes"), p, len(p))
		}
		if utf8.ValidString(p) == (e.Str("payload_hex") != "") {
			t.Errorf("downlink %d logged as %v", k+1, e)
		}
		from = i + 1
	}
	return from
}

// checkLEDPerDownlink waits for the LED toggle after the downlink logged last before end, and
// checks that every downlink between from and end toggled the LED before the next one came.
func checkLEDPerDownlink(t *testing.T, d *proc, from, end int) {
	t.Helper()
	if _, _, err := d.log.Wait(ctxFor(t, 10*time.Second), end-1, func(e logwatch.Entry) bool {
		return e.Event() == logging.EventLED && e.Str("why") == "downlink"
	}); err != nil {
		t.Fatalf("no LED toggle after the last downlink: %v", err)
	}
	// Each downlink is handed on by the link's downlink consumer, which logs it and then toggles
	// the LED before it takes the next one. The consumer runs beside the supervisor's loop, so a
	// downlink that came right after the subscription (the on-connect publish's echo) may be
	// logged before session_up and toggle after it: what is checked is the pairing, not counts
	// in a window.
	downlinks, waiting := 0, false
	for _, e := range d.log.Entries()[from:end] {
		switch {
		case e.Event() == logging.EventDownlink:
			if waiting {
				t.Errorf("downlink %v came before the LED toggle of the one before it", e)
			}
			downlinks++
			waiting = true
		case e.Event() == logging.EventLED && e.Str("why") == "downlink":
			waiting = false
		}
	}
	if downlinks == 0 {
		t.Errorf("no downlink logged between entries %d and %d", from, end)
	}
}

// checkInStep asks the module a command through the daemon (it must be answered at once), then
// checks the whole log — no command abandoned and no resynchronisation, no failed health check,
// no module lost or reset, no line from the module malformed or not understood — and the AT
// engine's counters: no timeout, no resync, no line dropped.
func checkInStep(t *testing.T, r *formsRun) {
	t.Helper()
	b, d := r.b, r.d
	start := time.Now()
	out, errs, code := cli(t, "at", "-socket", controlSocket(b.mod.Path()), "AT+CSQ")
	if code != 0 || !strings.HasPrefix(out, "+CSQ: ") || !strings.HasSuffix(out, "OK\n") {
		t.Errorf("AT+CSQ through the daemon after the downlinks (exit %d, %v): %q %q", code, time.Since(start), out, errs)
	}
	for _, e := range d.log.Entries() {
		msg := e.Str("message")
		switch {
		case strings.Contains(msg, "command abandoned"), strings.Contains(msg, "resync"),
			strings.Contains(msg, "did not answer the health check"), strings.Contains(msg, "does not answer AT"),
			strings.Contains(msg, "malformed line"), strings.Contains(msg, "not understood"),
			e.Event() == logging.EventModuleLost, e.Event() == logging.EventModuleReset,
			e.Event() == logging.EventMQTTDisconnected:
			t.Errorf("port out of step: %v", e)
		}
	}
	m := scrape(t, r.metrics)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"gatewayd_at_timeouts_total", nil},
		{"gatewayd_at_resyncs_total", nil},
		{"gatewayd_at_dropped_lines_total", []string{"reason=bad_frame"}},
		{"gatewayd_at_dropped_lines_total", []string{"reason=too_long"}},
		{"gatewayd_at_dropped_lines_total", []string{"reason=payload_too_long"}},
		{"gatewayd_at_dropped_lines_total", []string{"reason=stale"}},
	} {
		if v := series(t, m, c.name, c.labels...); v != 0 {
			t.Errorf("%s%v = %v, want 0", c.name, c.labels, v)
		}
	}
}

// downlinkForms: a burst of dataPayloads from the cloud, each logged exactly with its LED toggle,
// then a command answered at once, then one more downlink (none lost), and nothing out of step.
func downlinkForms(t *testing.T, variant func(*sim.Config)) *bench {
	r := startForms(t, variant, "")
	b, d, from := r.b, r.d, r.from
	for _, p := range dataPayloads {
		b.publish(setTopic, []byte(p))
	}
	end := waitDownlinksExact(t, d, setTopic, from, dataPayloads)
	checkLEDPerDownlink(t, d, from, end)
	checkInStep(t, r)
	last := `{"after":"the command"}`
	b.publish(setTopic, []byte(last))
	waitDownlinksExact(t, d, setTopic, end, []string{last})
	checkInStep(t, r)
	return b
}

// TestDownlinkPayloadOnTheNextLine: `+QMTRECV: 0,0,"<topic>",<len>` CR LF `<payload>` (an
// EC200U note; -variant recv-next-line).
func TestDownlinkPayloadOnTheNextLine(t *testing.T) {
	t.Parallel()
	downlinkForms(t, func(c *sim.Config) { c.RecvForm = sim.RecvNextLine })
}

// TestDownlinkPayloadUnquoted: `+QMTRECV: 0,0,"<topic>",<len>,<payload>` (a BC25 capture;
// -variant recv-unquoted).
func TestDownlinkPayloadUnquoted(t *testing.T) {
	t.Parallel()
	downlinkForms(t, func(c *sim.Config) { c.RecvForm = sim.RecvUnquoted })
}

// TestDownlinkRawBytes: the default quoted form with raw CR LF, quotes, whitespace and UTF-8
// inside the payload, byte-exact.
func TestDownlinkRawBytes(t *testing.T) {
	t.Parallel()
	downlinkForms(t, nil)
}

// TestDownlinkBlankLines: `\r\n\r\n+QMTRECV: …\r\n\r\n` (a BG96 byte trace; -variant
// recv-blank-lines).
func TestDownlinkBlankLines(t *testing.T) {
	t.Parallel()
	downlinkForms(t, func(c *sim.Config) { c.RecvBlankLines = true })
}

// TestDownlinksCoalesced: what the module sends within 20 ms reaches the daemon in one read —
// the on-connect publish's result with its own message coming back (BC26), the OK with its
// result, downlinks back to back (-variant coalesce).
func TestDownlinksCoalesced(t *testing.T) {
	t.Parallel()
	b := downlinkForms(t, func(c *sim.Config) { c.Coalesce = 20 * time.Millisecond })
	if n := b.mod.Stats().CoalescedDownlinks; n == 0 {
		t.Error("the emulator joined no downlink with other output: the test did not test coalesced reads")
	}
}

// TestResultsAndDownlinksCoalesced: uplinks and downlinks at once with -variant coalesce, so that
// publish results, OKs and downlinks share reads (BC26: +QMTPUB and +QMTRECV in one burst).
func TestResultsAndDownlinksCoalesced(t *testing.T) {
	t.Parallel()
	b := uplinksWithDownlinks(t, func(c *sim.Config) { c.Coalesce = 20 * time.Millisecond }, 12)
	if n := b.mod.Stats().CoalescedDownlinks; n == 0 {
		t.Error("the emulator joined no downlink with other output: the test did not test coalesced reads")
	}
}

// uplinksWithDownlinks publishes n QoS 1 uplinks through the local endpoint while the cloud
// sends QoS 0 downlinks as fast as it can, until the cloud has every uplink; then it checks
// that every downlink sent was logged exactly, in order, with its LED toggle, and that the port
// stayed in step.
func uplinksWithDownlinks(t *testing.T, variant func(*sim.Config), n int) *bench {
	listen := testutil.FreeAddr(t)
	r := startForms(t, variant, listen)
	b, d, from := r.b, r.d, r.from
	cloud := b.subscribe(telemetry + "/#")
	c := localClient(t, d, listen, "app")

	ctx, cancel := context.WithCancel(context.Background())
	var sent []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ctx.Err() == nil && k < 2000; k++ {
			p := fmt.Sprintf("dl-%d \"x\",3,\r\n", k)
			tok := b.cloudClient().Publish(setTopic, 0, false, p)
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				return
			}
			sent = append(sent, p)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	publishRange(t, c, 0, n)
	got := cloud.wait(t, n)
	cancel()
	wg.Wait()
	for k := range n {
		if want := fmt.Sprintf("m%04d", k); got[k] != want {
			t.Fatalf("cloud got %q as uplink %d, want %q", got[k], k, want)
		}
	}
	end := waitDownlinksExact(t, d, setTopic, from, sent)
	checkLEDPerDownlink(t, d, from, end)
	checkInStep(t, r)
	t.Logf("%d uplinks, %d downlinks; emulator %+v", n, len(sent), b.mod.Stats())
	return b
}

// TestURCsBeforeThePrompt: the module holds each "> " back 50 ms and writes the downlinks that
// come meanwhile first, as in a BG96 trace (-variant urc-before-prompt).
func TestURCsBeforeThePrompt(t *testing.T) {
	t.Parallel()
	b := uplinksWithDownlinks(t, func(c *sim.Config) { c.PromptDelay = 50 * time.Millisecond }, 12)
	if b.mod.Stats().URCsBeforePrompt == 0 {
		t.Error("no URC came between a command and its prompt: the test did not test that")
	}
}

// TestSplitPrompt: ">" alone, its space in front of the OK that follows the data (an EC200U
// trace; -variant split-prompt).
func TestSplitPrompt(t *testing.T) {
	t.Parallel()
	uplinksWithDownlinks(t, func(c *sim.Config) { c.SplitPrompt = true }, 12)
}
