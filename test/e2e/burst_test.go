package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

// burstConfig is seedConfig logging at info, as a daemon in the field does.
func burstConfig(port string) string {
	return strings.Replace(seedConfig(port, ""), `level = "debug"`, `level = "info"`, 1)
}

// startBurstBench starts the daemon on the emulator for a burst (not with -short) and returns
// once its session is up, with the log index of session_up and a context bounding the test.
func startBurstBench(t *testing.T) (*bench, *proc, int, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("a burst of thousands of downlinks; skipped with -short")
	}
	b := newBench(t, nil)
	d := b.start(burstConfig(b.mod.Path()))
	_, from := d.wait(t, 0, logging.EventSessionUp)
	return b, d, from, ctxFor(t, 3*time.Minute)
}

// waitDownlinks waits for n downlink log entries on topic after index from, checking that each
// carries the burst's payload in order, and returns the index after the last.
func waitDownlinks(ctx context.Context, t *testing.T, d *proc, topic string, from, n int) int {
	t.Helper()
	for i := range n {
		e, idx, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool {
			return e.Event() == logging.EventDownlink && e.Str("topic") == topic
		})
		if err != nil {
			t.Fatalf("downlink %d of %d: %v", i+1, n, err)
		}
		if want := fmt.Sprintf("burst-%d", i); e.Str("payload") != want {
			t.Fatalf("downlink %d has payload %q, want %q: lost or out of order", i+1, e.Str("payload"), want)
		}
		from = idx + 1
	}
	return from
}

// TestDownlinkBurstLosesNothing: 20,000 +QMTRECV written back to back into the pty, as a
// persistent session's backlog arrives after a reconnect. The module has acknowledged every one
// of them to the broker, so one the daemon drops is gone for good: each must be logged, in order,
// and toggle the LED. (The daemon before backpressure failed this at the 258th and the 2,200th
// downlink in two runs.)
func TestDownlinkBurstLosesNothing(t *testing.T) {
	b, d, from, ctx := startBurstBench(t)
	const n = 20000
	start := time.Now()
	if err := b.mod.Burst(ctx, setTopic, n, nil); err != nil {
		t.Fatal(err)
	}
	end := waitDownlinks(ctx, t, d, setTopic, from, n)
	took := time.Since(start)
	toggles := 0
	for _, e := range d.log.Entries()[from:end] {
		if e.Event() == logging.EventLED && e.Str("why") == "downlink" {
			toggles++
		}
	}
	if toggles < n-1 { // the last toggle may follow the last downlink line; "test publish" may add one
		t.Errorf("%d LED toggles for %d downlinks", toggles, n)
	}
	held := 0
	for _, e := range d.log.Entries() {
		if e.Event() == logging.EventHeldBack {
			held += e.Int("times")
		}
	}
	t.Logf("%d downlinks in %v; the AT reader was held back %d times (reported so far)", n, took.Round(time.Millisecond), held)
}

// TestShutdownDuringBurst: SIGTERM while a burst is still coming. The disconnect's result is
// behind the downlinks the module already sent, so a daemon that stopped reading them to wait for
// it would wait in vain; this one goes on handling them, disconnects cleanly and exits in time.
func TestShutdownDuringBurst(t *testing.T) {
	b, d, from, ctx := startBurstBench(t)
	burst := make(chan error, 1)
	go func() { burst <- b.mod.Burst(ctx, setTopic, 200000, nil) }()
	waitDownlinks(ctx, t, d, setTopic, from, 2000)
	took, err := d.stop(t)
	if err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("took %v to exit on SIGTERM during a burst", took)
	}
	clean := false
	for _, e := range d.log.Entries() {
		if e.Event() == logging.EventMQTTDisconnected && e.Str("reason") == "shutting down" {
			clean = true
		}
		if e.Str("message") == "MQTT disconnect on shutdown failed" {
			t.Errorf("disconnect failed: %v", e)
		}
	}
	if !clean {
		t.Error("no clean MQTT disconnect logged")
	}
	<-burst // stopped by the daemon gone or ctx; either is fine
	t.Logf("exited %v after SIGTERM, %d downlinks logged", took.Round(time.Millisecond), d.log.Count(logging.EventDownlink))
}
