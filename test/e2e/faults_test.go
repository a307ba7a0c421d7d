package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

// recoveryBudget is the longest any fault may keep the daemon from being connected and
// subscribed again. The measured times are logged and written to docs/faults.md.
const recoveryBudget = 60 * time.Second

// faultConfig is seedConfig with quick health checks, so that an unresponsive module is noticed
// within seconds, and sessions that count as lasting after faultStable (the default is a minute),
// so that each fault hits a session that lasted, as faults in the field do.
func faultConfig(port string) string {
	return strings.Replace(seedConfig(port, ""), "[mqtt]",
		"[module]\nhealth_interval = \"1s\"\n\n[retry]\nstable_after = \""+faultStable.String()+"\"\n\n[mqtt]", 1)
}

// faultStable is how long a session must last before its loss resets the back-off, in the fault
// matrix; the matrix lets each session last that long before it injects the next fault.
const faultStable = time.Second

// TestFaultMatrix drives one daemon process through every fault a bench or the field produces
// and checks that after each it is connected and subscribed again, that the next downlink
// toggles the LED, and that LED toggles equal downlinks throughout.
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the fault matrix takes a minute or two; run without -short")
	}
	broker, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { broker.Close() }()
	b := newBenchOn(t, broker.Addr())
	d := b.start(faultConfig(b.mod.Path()))
	_, from := d.wait(t, 0, "mqtt_connected")
	waitSubscribed(t, d, from)

	sent := 0 // downlinks the cloud sent while the daemon was connected
	downlink := func(name string) {
		t.Helper()
		sent++
		payload := fmt.Sprintf("after %s #%d", name, sent)
		from := d.log.Len()
		b.publish(setTopic, []byte(payload))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, i, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool {
			return e.Event() == "downlink" && e.Str("payload") == payload
		})
		if err != nil {
			t.Fatalf("%s: downlink not seen: %v", name, err)
		}
		if _, _, err := d.log.Wait(ctx, i, func(e logwatch.Entry) bool { return e.Event() == "led" && e.Str("why") == "downlink" }); err != nil {
			t.Fatalf("%s: LED not toggled: %v", name, err)
		}
	}
	downlink("start")

	type result struct {
		fault string
		took  time.Duration
	}
	var results []result
	// recover injects a fault, then waits for the events that show the daemon noticed (notice,
	// may be empty) and is connected and subscribed again.
	recover := func(name string, inject func(), notice string, after func()) {
		t.Helper()
		time.Sleep(faultStable + 100*time.Millisecond)
		from := d.log.Len()
		start := time.Now()
		inject()
		if notice != "" {
			ctx, cancel := context.WithTimeout(context.Background(), recoveryBudget)
			_, i, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool {
				return e.Event() == notice || strings.Contains(e.Str("message"), notice)
			})
			cancel()
			if err != nil {
				t.Fatalf("%s: the daemon did not notice (%q): %v", name, notice, err)
			}
			from = i
		}
		if after != nil {
			after()
		}
		// session_up: the supervisor's state machine has the session connected (subscribed and
		// published on connect), not merely a CONNACK of an attempt that it then counts failed.
		ctx, cancel := context.WithTimeout(context.Background(), recoveryBudget)
		_, _, err := d.log.WaitEvent(ctx, from, "session_up")
		cancel()
		if err != nil {
			t.Fatalf("%s: not connected again within %v: %v", name, recoveryBudget, err)
		}
		took := time.Since(start)
		results = append(results, result{name, took})
		downlink(name)
	}

	recover("broker link dropped (+QMTSTAT: 0,1)", func() { must(t, b.mod.DropLink()) }, "mqtt_disconnected", nil)
	recover("keep-alive ping failed (+QMTPING, +QMTSTAT: 0,2)", func() { must(t, b.mod.PingFail()) }, "mqtt_disconnected", nil)
	recover("PDP context deactivated (+QIURC: \"pdpdeact\")", func() { must(t, b.mod.DeactivatePDP()) }, "network_ready", nil)
	recover("module rebooted (RDY)", func() { must(t, b.mod.Reboot()) }, "module", nil)

	// Bad input from the module: noise, an over-long line, a +QMTRECV whose length disagrees
	// with its bytes, a binary payload, a topic never subscribed to. Survived, nothing lost.
	{
		from := d.log.Len()
		must(t, b.mod.Noise([]byte("\x00\xff\r\x1b[\xfe~\x80\r\n+QMTRE\r\n")))
		must(t, b.mod.Noise([]byte("\r\n+QMTSOMETHING: "+strings.Repeat("x", 10000)+"\r\n")))
		must(t, b.mod.Noise([]byte("\r\n+QMTRECV: 0,0,\"other/topic\",5,\"hello\"\r\n")))
		must(t, b.mod.Noise([]byte("\r\n+QMTRECV: 0,0,\""+setTopic+"\",40,\"short\"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n")))
		must(t, b.mod.Noise([]byte("\r\n+QMTRECV: 0,0,\""+setTopic+"\",4,\"\x00\xff\r\n\"\r\n")))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool { return e.Event() == "downlink" && e.Str("payload_hex") == "00ff0d0a" })
		cancel()
		if err != nil {
			t.Fatalf("binary downlink not delivered: %v", err)
		}
		sent++ // the binary payload was a downlink on a subscribed topic
		downlink("bad input")
		for _, e := range d.log.Entries()[from:] {
			if e.Event() == "downlink" && e.Str("topic") == "other/topic" {
				t.Errorf("a message on a topic never subscribed to counted as a downlink: %v", e)
			}
			if e.Event() == "mqtt_disconnected" {
				t.Errorf("bad input cost the MQTT session: %v", e)
			}
		}
	}

	recover("SIM removed, then put back", func() { must(t, b.mod.SetSIM(false)) }, "mqtt_disconnected",
		func() { must(t, b.mod.SetSIM(true)) })
	recover("network registration lost, then back", func() { must(t, b.mod.SetRegistered(false)) }, "mqtt_disconnected",
		func() { must(t, b.mod.SetRegistered(true)) })
	recover("module stops answering", func() { b.mod.SetUnresponsive(true) }, "module unresponsive",
		func() { b.mod.SetUnresponsive(false) })
	recover("USB unplugged and plugged back", func() { must(t, b.mod.Unplug()) }, "module_lost",
		func() { must(t, b.mod.Replug(sim.Identity{})) })

	old := b.mod.Identity().IMEI
	newIMEI := luhnIMEI("86612345678902")
	recover("swapped for another module", func() { must(t, b.mod.Unplug()) }, "module_lost",
		func() { must(t, b.mod.Replug(sim.Identity{IMEI: newIMEI, Revision: "EC600NCNLCR03A10M08"})) })
	rep, _ := d.wait(t, 0, "module_replaced")
	if rep.Str("old_imei") != old || rep.Str("new_imei") != newIMEI {
		t.Errorf("module_replaced %v, want %s → %s", rep, old, newIMEI)
	}

	addr := broker.Addr()
	recover("broker restarted", func() {
		b.cloud.Disconnect(0)
		b.cloud = nil
		broker.Close()
	}, "mqtt_disconnected", func() {
		time.Sleep(2 * time.Second) // the broker stays away a while: connects fail meanwhile
		var err error
		if broker, err = sim.NewBroker(addr); err != nil {
			t.Fatalf("restarting the broker on %s: %v", addr, err)
		}
	})

	recover("credentials refused, then fixed", func() {
		must(t, b.mod.RefuseConnect(4))
		must(t, b.mod.DropLink())
	}, "mqtt_connect_failed", func() { must(t, b.mod.RefuseConnect(0)) })

	// Toggles equal downlinks, throughout.
	downlinks, toggles := 0, 0
	for _, e := range d.log.Entries() {
		switch {
		case e.Event() == "downlink":
			downlinks++
		case e.Event() == "led" && e.Str("why") == "downlink":
			toggles++
		}
	}
	if downlinks != toggles || downlinks < sent {
		t.Errorf("%d downlink events, %d LED toggles, %d downlinks sent", downlinks, toggles, sent)
	}
	if _, err := d.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	t.Logf("recovery times (fault injected → connected and subscribed again):")
	for _, r := range results {
		t.Logf("  %-50s %8.1f ms", r.fault, float64(r.took.Microseconds())/1000)
	}
}

// waitSubscribed waits for the rest of seedConfig's bring-up after index from: both
// subscriptions and the publish on connect, after which the session is connected.
func waitSubscribed(t *testing.T, d *proc, from int) {
	t.Helper()
	_, i := d.wait(t, from, "subscribed")
	_, i = d.wait(t, i+1, "subscribed")
	d.wait(t, i+1, "published")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// luhnIMEI appends the Luhn check digit to 14 digits.
func luhnIMEI(d14 string) string {
	sum := 0
	for i := 0; i < 14; i++ {
		n := int(d14[i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return d14 + fmt.Sprint((10-sum%10)%10)
}
