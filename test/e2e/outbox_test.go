package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// stats stops d with SIGTERM and returns its outbox_stats line, which the daemon logs at exit.
func (d *proc) stats(t *testing.T) logwatch.Entry {
	t.Helper()
	if _, err := d.stop(t); err != nil {
		t.Fatalf("gatewayd exit: %v", err)
	}
	var found logwatch.Entry
	for _, e := range d.log.Entries() {
		if e.Event() == logging.EventOutboxStats {
			found = e
		}
	}
	if found == nil {
		t.Fatal("no outbox_stats line at exit")
	}
	return found
}

// wantCounts checks counters of an outbox_stats line.
func wantCounts(t *testing.T, e logwatch.Entry, want map[string]int) {
	t.Helper()
	for k, v := range want {
		if got := e.Int(k); got != v {
			t.Errorf("outbox_stats %s = %d, want %d (line %v)", k, got, v, e)
		}
	}
}

// TestOutboxExpiry: messages stored during an outage and older than max_age when the link comes
// back are dropped, logged and counted, not sent; messages published after that go through.
func TestOutboxExpiry(t *testing.T) {
	b := newBench(t, nil)
	cloud := b.subscribe(telemetry + "/#")
	b.mod.RefuseOpen(5)
	listen, dir := testutil.FreeAddr(t), filepath.Join(t.TempDir(), "outbox")
	cfg := strings.Replace(localConfig(b.mod.Path(), listen, dir), "window = 8", "window = 8\nmax_age = \"2s\"", 1)

	d1 := b.start(cfg)
	publishRange(t, localClient(t, d1, listen, "sensor-1"), 0, 5)
	stored := time.Now()
	wantCounts(t, d1.stats(t), map[string]int{"stored": 5, "messages": 5, "delivered": 0, "expired": 0})

	time.Sleep(time.Until(stored.Add(2500 * time.Millisecond))) // the five are now older than max_age
	b.mod.RefuseOpen(0)
	d2 := b.start(cfg)
	ex, _ := d2.wait(t, 0, logging.EventOutboxExpired)
	if ex.Int("messages") != 5 || ex.Str("level") != "warn" {
		t.Errorf("expiry line %v; want 5 messages at warn", ex)
	}
	publishRange(t, localClient(t, d2, listen, "sensor-2"), 5, 10)
	cloud.wait(t, 5)
	// The cloud sees a message before the module reports the broker's acknowledgement.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for n, i := 0, 0; n < 5; n, i = n+1, i+1 {
		var err error
		if _, i, err = d2.log.Wait(ctx, i, func(e logwatch.Entry) bool {
			return e.Event() == logging.EventPublished && e.Str("from") == "outbox"
		}); err != nil {
			t.Fatalf("%d published lines with from=outbox, want 5: %v", n, err)
		}
	}
	st := d2.stats(t)
	wantCounts(t, st, map[string]int{"expired": 5, "stored": 5, "delivered": 5, "messages": 0, "local_forwarded": 5})
	if got, want := cloud.wait(t, 5), []string{"m0005", "m0006", "m0007", "m0008", "m0009"}; !slices.Equal(got, want) {
		t.Fatalf("the cloud received %q, want %q: the expired ones must not be sent", got, want)
	}
}

// TestFullOutboxCountsRefusals: every refusal of a full outbox is a warning line and is in the
// counters the daemon logs at exit, and what was accepted is still stored.
func TestFullOutboxCountsRefusals(t *testing.T) {
	b := newBench(t, nil)
	b.mod.RefuseOpen(5)
	listen := testutil.FreeAddr(t)
	cfg := strings.Replace(localConfig(b.mod.Path(), listen, t.TempDir()), "window = 8", "window = 8\nmax_bytes = 65536", 1)
	d := b.start(cfg)
	c := localClient(t, d, listen, "sensor")
	payload := strings.Repeat("x", 1000)
	accepted, refused := 0, 0
	for i := 0; i < 100 && refused < 3; i++ {
		if !c.IsConnected() { // a refusal over MQTT 3.1.1 closes the connection
			c = localClient(t, d, listen, fmt.Sprintf("sensor-%d", i))
		}
		tok := c.Publish(telemetry+"/blob", 1, false, payload)
		if tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
			accepted++
		} else {
			refused++
		}
	}
	if refused < 3 || accepted < 10 {
		t.Fatalf("%d accepted, %d refused by a 64 KiB outbox", accepted, refused)
	}
	st := d.stats(t)
	lines := d.log.Count(logging.EventOutboxRefused)
	if lines < refused || st.Int("refused") != lines || st.Int("local_refused") != lines {
		t.Errorf("%d refusals seen by the client, %d outbox_refused lines; counters refused %d, local_refused %d",
			refused, lines, st.Int("refused"), st.Int("local_refused"))
	}
	wantCounts(t, st, map[string]int{"stored": accepted, "messages": accepted, "delivered": 0})
	t.Logf("%d accepted, %d refused; the daemon counted %d refusals", accepted, refused, lines)
}

// TestSimLocalEndpoint: `gatewayd sim -local` runs the local endpoint; what a local client
// publishes on gatewayd/demo/up/... reaches the sim's broker through the emulated module.
func TestSimLocalEndpoint(t *testing.T) {
	brokerAddr, localAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	d := startProc(t, exec.Command(gatewaydBin, "sim", "-listen", brokerAddr, "-local", localAddr, "-demo", "0", "-log-format", "json"))
	d.wait(t, 0, logging.EventSubscribed)
	b := &bench{t: t, broker: brokerAddr}
	cloud := b.subscribe("gatewayd/demo/up/#")
	publishTo(t, localClient(t, d, localAddr, "sensor"), "gatewayd/demo/up/temp", "21.5")
	if got := cloud.wait(t, 1); got[0] != "21.5" {
		t.Fatalf("the broker received %q", got)
	}
	if _, err := d.stop(t); err != nil {
		t.Fatalf("gatewayd sim exit: %v", err)
	}
}

// publishTo publishes one QoS 1 message and waits for its PUBACK.
func publishTo(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("local publish: %v", tok.Error())
	}
}

// TestUnusableOutboxKeepsTheMainJob: the outbox directory cannot be created (a file stands where
// its parent should be — unusable even for root, as a card gone read-only is). The daemon used to
// exit at start, so no downlink was ever handled and systemd restarted it every 5 s. Now it says
// so loudly, with the path, comes up, handles downlinks, and refuses only what it would have
// stored: a QoS 1 publish on a forwarded topic gets no PUBACK.
func TestUnusableOutboxKeepsTheMainJob(t *testing.T) {
	b := newBench(t, nil)
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	listen := testutil.FreeAddr(t)
	d := b.start(localConfig(b.mod.Path(), listen, filepath.Join(blocker, "outbox")))
	e, _ := d.wait(t, 0, logging.EventOutboxUnavailable)
	if msg := e.Str("error"); !strings.Contains(msg, blocker) || strings.Contains(msg, "outbox: outbox:") {
		t.Errorf("outbox_unavailable error %q: want the path, once prefixed", msg)
	}
	if e.Str("level") != "error" || e.Str("hint") == "" {
		t.Errorf("outbox_unavailable %v: want level error and a hint", e)
	}
	_, from := d.wait(t, 0, logging.EventSessionUp)
	b.publish(setTopic, []byte("on"))
	// The session's own "test publish" comes back as a downlink too, at a time of its own.
	if _, _, err := d.log.Wait(ctxFor(t, time.Minute), from, func(e logwatch.Entry) bool {
		return e.Event() == logging.EventDownlink && e.Str("topic") == setTopic && e.Str("payload") == "on"
	}); err != nil {
		t.Error(err)
	}

	c := localClient(t, d, listen, "sensor")
	tok := c.Publish(telemetry+"/temp", 1, false, "21.5")
	if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Fatal("a forwarded QoS 1 publish was acknowledged with no outbox to hold it")
	}
	if e, _ := d.wait(t, from, logging.EventLocalRefused); !strings.Contains(e.Str("error"), "outbox is unavailable") {
		t.Errorf("local_refused %v: want the reason", e)
	}
	st := d.stats(t)
	if st.Bool("outbox_available") || st.Int("local_refused") != 1 {
		t.Errorf("outbox_stats %v", st)
	}
}

// TestOutboxMovesPastAMessageTheModuleRefuses: a forwarded message the module answers ERROR to
// every time (its AT+QMTPUBEX line longer than the module takes) used to stay at the head of the
// outbox until max_age: retried first in every round, each round ending in a failure and a longer
// back-off (up to 30 s), and with a window of 1 holding back everything behind it. Now it is
// rejected after 5 refusals in a row, logged and counted, and the messages behind it reach the
// cloud in order. (Checked: with the rule off, no outbox_rejected ever comes.)
func TestOutboxMovesPastAMessageTheModuleRefuses(t *testing.T) {
	t.Parallel()
	b := newBenchOn(t, startBroker(t).Addr(), func(c *sim.Config) { c.MaxLine = 1024 })
	cloud := b.subscribe(telemetry + "/#")
	listen := testutil.FreeAddr(t)
	cfg := localConfig(b.mod.Path(), listen, t.TempDir())
	// The endpoint lets topics of up to 4,000 bytes through; this module takes lines of 1,024.
	cfg = strings.Replace(cfg, "[[local.forward]]", "max_topic = 4000\n\n[[local.forward]]", 1)
	d := b.start(cfg)
	d.wait(t, 0, logging.EventSessionUp)
	c := localClient(t, d, listen, "sensor")
	long := telemetry + "/" + strings.Repeat("x", 1100)
	publishTo(t, c, long, "too long for the module")
	d.wait(t, 0, "drain_retry") // refused once: it now heads the queue
	for i := range 3 {
		publishTo(t, c, telemetry+"/temp", fmt.Sprintf("after-%d", i))
	}
	if got, want := cloud.wait(t, 3), []string{"after-0", "after-1", "after-2"}; !slices.Equal(got, want) {
		t.Fatalf("the cloud received %q, want %q", got, want)
	}
	e, _ := d.wait(t, 0, logging.EventOutboxRejected)
	if !strings.Contains(e.Str("error"), "5 times in a row") {
		t.Errorf("outbox_rejected %v: want the refusals named", e)
	}
	st := d.stats(t)
	wantCounts(t, st, map[string]int{"rejected": 1, "publish_refused_rejected": 1, "delivered": 3, "messages": 0})
}
