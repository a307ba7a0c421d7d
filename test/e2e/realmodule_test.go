package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// End-to-end tests of what real modules do that the daemon once took for faults (issue 20): a
// publish refused in the moment a link dies, the reset sequence as modules print it, and a
// resynchronisation answered ERROR.

// publishPipelined publishes m<from>..m<to-1> at QoS 1 with every publish in flight at once, as a
// program that does not wait for each PUBACK does, and waits for all the PUBACKs.
func publishPipelined(t *testing.T, c paho.Client, from, to int) {
	t.Helper()
	toks := make([]paho.Token, 0, to-from)
	for i := from; i < to; i++ {
		toks = append(toks, c.Publish(telemetry+"/temp", 1, false, fmt.Sprintf("m%04d", i)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Errorf("local publish %d: %v", from+i, tok.Error())
			return
		}
	}
}

// publishPacedUntil publishes m<from>, m<from+1>, ... at QoS 1, one every interval, each
// acknowledged before the next (so that each reaches the outbox, and the drain, on its own, not
// in a batch), until stop is closed; it returns the number after the last one published.
func publishPacedUntil(t *testing.T, c paho.Client, from int, every time.Duration, stop <-chan struct{}) int {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := from; ; i++ {
		select {
		case <-stop:
			return i
		case <-tick.C:
		}
		tok := c.Publish(telemetry+"/temp", 1, false, fmt.Sprintf("m%04d", i))
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Errorf("local publish %d: %v", i, tok.Error())
			return i
		}
	}
}

// drained publishes m<from>..m<to-1> and returns how long the cloud took to have them all, with
// the rate.
func drained(t *testing.T, c paho.Client, cloud *collector, from, to int) (time.Duration, float64) {
	t.Helper()
	start := time.Now()
	publishPipelined(t, c, from, to)
	cloud.distinctInOrder(t, to)
	d := time.Since(start)
	return d, float64(to-from) / d.Seconds()
}

// TestDrainWindowComesBackAfterALinkDiesMidPublish: the link dies while publishes are in flight,
// and the module refuses the next publish (ERROR) before it reports the loss (+QMTSTAT comes
// 500 ms later). The drain cuts its window to 1 on that refusal — it cannot tell it from a module
// that cannot pipeline — but the session's end right after it puts the refusal down to the link:
// once the session is back the drain has its full window again. Before issue 20 the cut lasted
// "until the module is replaced", and the drain ran stop-and-wait for the rest of its life.
func TestDrainWindowComesBackAfterALinkDiesMidPublish(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	cloud := b.subscribe(telemetry + "/#")
	b.mod.SetBrokerDelay(100 * time.Millisecond) // PUBACKs take a while: several publishes in flight
	listen, dir := testutil.FreeAddr(t), filepath.Join(t.TempDir(), "outbox")
	d := b.start(localConfig(b.mod.Path(), listen, dir))
	_, up := d.wait(t, 0, "session_up")
	c := localClient(t, d, listen, "sensor-1")

	before, rate1 := drained(t, c, cloud, 0, 200)

	// The link dies mid-drain; the module refuses the next publish before it says so. The local
	// program publishes one message every 20 ms, each acknowledged before the next, well below
	// what the drain can send (8 in flight with 100 ms PUBACKs): each is sent at once, with about
	// five earlier ones still waiting for their PUBACK, so that one is sent in the moment between
	// the link's death and the +QMTSTAT. (A backlog, or publishes in flight that the outbox
	// commits together, would not do: with the window full and the results gone, the drain sends
	// nothing more.)
	// Whether a publish is sent in that moment depends on timing (none may be due, or the one
	// being typed is answered OK then failed); so the link dies again, up to 10 times, until one
	// is refused.
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() { sent <- publishPacedUntil(t, c, 200, 20*time.Millisecond, stop) }()
	cloud.wait(t, 240)
	var shrunk logwatch.Entry
	for try := 0; try < 10 && shrunk == nil; try++ {
		from := d.log.Len()
		if err := b.mod.DropLinkLate(500 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		_, next := d.wait(t, from, "session_up") // the session is back: the next drop can come
		for _, e := range d.log.Entries()[from:next] {
			if e.Event() == "drain_window_shrunk" {
				shrunk = e
			}
		}
	}
	close(stop)
	n := <-sent
	if shrunk == nil {
		t.Fatal("in 10 link losses no publish was refused in the moment between the loss and its +QMTSTAT: the premise did not happen")
	}
	if shrunk.Int("was") != 8 {
		t.Fatalf("window cut from %d, want 8: %v", shrunk.Int("was"), shrunk)
	}
	restored, _ := d.wait(t, up, "drain_window_restored")
	if !strings.Contains(restored.Str("why"), "session ended") || restored.Int("window") != 8 {
		t.Fatalf("restored for the wrong reason: %v", restored)
	}
	cloud.distinctInOrder(t, n)

	cuts := d.log.Count("drain_window_shrunk")
	after, rate3 := drained(t, c, cloud, n, n+200)
	if d.log.Count("drain_window_shrunk") != cuts || d.log.Count("drain_window_restored") != cuts {
		t.Fatalf("%d cuts, %d restored: every cut at a link's loss is undone, and none came after", cuts, d.log.Count("drain_window_restored"))
	}
	t.Logf("drain rate with 100 ms PUBACKs: %.0f msg/s before the link died (200 in %v), %.0f msg/s after the session came back (200 in %v)",
		rate1, before.Round(time.Millisecond), rate3, after.Round(time.Millisecond))
}

// TestResetSequenceIsNotANewFault: the module stops answering, the daemon resets it with
// AT+CFUN=1,1, and the module prints what a real one prints (reference 4.1): OK, POWERED DOWN
// without its CR LF, a stale +QIURC: "pdpdeact", seconds of silence, RDY — and, on families
// with a second ready URC, APP RDY after it. Read on the reopened port, none of it is a new
// fault: one bring-up after the reset, none counted as failed, no "powered down", no network
// fault, no second bring-up for APP RDY. Before issue 20 the POWERED DOWN failed the bring-up
// that followed RDY, and the daemon backed off and did it again, on every reset.
func TestResetSequenceIsNotANewFault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		variant func(*sim.Config)
	}{
		{"RDY", func(c *sim.Config) { c.ResetDelay = 2 * time.Second }},
		{"RDY then APP RDY", func(c *sim.Config) { c.ResetDelay = 2 * time.Second; c.AppReady = 1500 * time.Millisecond }},
		// The ATs sent into the silence go unanswered, so the first command after RDY is
		// preceded by a resync whose ESC this firmware takes as part of the line: ERROR. Before
		// issue 20 only OK ended a resync, each resync began with another ESC, and the sync
		// never got through.
		{"stray ESC answered ERROR", func(c *sim.Config) { c.ResetDelay = 2 * time.Second; c.StrayError = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBenchOn(t, startBroker(t).Addr(), tc.variant)
			d := b.start(faultConfig(b.mod.Path()))
			_, from := d.wait(t, 0, "session_up")
			b.mod.SetUnresponsive(true)
			// Answer again as soon as the daemon decides to reset: AT+CFUN=1,1 gets through.
			_, reset := d.wait(t, from, "module_reset")
			b.mod.SetUnresponsive(false)
			_, up := d.wait(t, reset, "session_up")
			time.Sleep(3 * time.Second) // APP RDY, if any, has come and been read
			for _, e := range d.log.Entries()[reset:] {
				msg := e.Str("message")
				switch {
				case e.Event() == "bringup_failed" || e.Event() == "mqtt_connect_failed":
					t.Errorf("a bring-up after the reset counted as failed: %v", e)
				case strings.Contains(msg, "powered down") && e.Str("level") != "info":
					t.Errorf("POWERED DOWN from the reset taken as a fault: %v", e)
				case strings.Contains(msg, "rebooted") || strings.Contains(strings.ToLower(e.Str("why")), "rdy"):
					t.Errorf("the reset's ready URCs taken as another reboot: %v", e)
				case strings.Contains(e.Str("reason"), "pdp") || strings.Contains(msg, "deactivated PDP"):
					t.Errorf("the stale pdpdeact taken as a network fault: %v", e)
				}
			}
			if n := d.log.Count("session_up"); n != 2 {
				t.Errorf("%d sessions, want 2 (before and after the reset)", n)
			}
			for _, e := range d.log.Entries()[up:] {
				if e.Event() == "mqtt_disconnected" {
					t.Errorf("the session after the reset was lost: %v", e)
				}
			}
		})
	}
}
