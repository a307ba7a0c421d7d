package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

// iccidConfig is seedConfig with a subscription templated on the SIM's ICCID.
func iccidConfig(port string) string {
	return strings.Replace(seedConfig(port, ""), "[[mqtt.publish_on_connect]]",
		"[[mqtt.subscribe]]\ntopic = \"devices/{iccid}/led\"\nqos = 1\n\n[[mqtt.publish_on_connect]]", 1)
}

// TestICCIDReadOnlyOnceTheSIMIsReady: the module prints RDY and answers AT before its SIM is
// ready (AT+QCCID answers +CME ERROR: 14 for a while, the emulator's default of 1 s). The daemon
// reads the ICCID only after +CPIN: READY, so {iccid} topics carry it — at start and after a
// reboot — and downlinks on them arrive; never devices//led.
func TestICCIDReadOnlyOnceTheSIMIsReady(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	d := b.start(iccidConfig(b.mod.Path()))
	want := "devices/" + sim.DefaultIdentity.ICCID + "/led"
	check := func(from int) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		e, i, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool {
			return e.Event() == "subscribed" && strings.HasPrefix(e.Str("topic"), "devices/")
		})
		if err != nil {
			t.Fatalf("no subscription to the {iccid} topic: %v", err)
		}
		if e.Str("topic") != want {
			t.Fatalf("subscribed to %q, want %q", e.Str("topic"), want)
		}
		_, i = d.wait(t, i, "published")
		b.publish(want, []byte("on"))
		if _, _, err := d.log.Wait(ctx, i, func(e logwatch.Entry) bool {
			return e.Event() == "downlink" && e.Str("topic") == want
		}); err != nil {
			t.Fatalf("downlink on %s not seen: %v", want, err)
		}
		return i
	}
	i := check(0)
	if err := b.mod.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(i)
	for _, e := range d.log.Entries() {
		if strings.Contains(e.Str("topic"), "//") {
			t.Errorf("a topic with an empty identity: %v", e)
		}
	}
}

// TestURCPortSetElsewhereIsFixed: a module whose NV sends URCs to the UART answers every command
// on USB but reports nothing; the daemon finds that out at bring-up, sets it to this port, logs
// it, and connects.
func TestURCPortSetElsewhereIsFixed(t *testing.T) {
	t.Parallel()
	broker := startBroker(t)
	b := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.SavedURCPort = "uart1" })
	d := b.start(seedConfig(b.mod.Path(), ""))
	e, i := d.wait(t, 0, "urc_port_set")
	if e.Str("was") != "uart1" || e.Str("now") != "usbat" {
		t.Errorf("urc_port_set %v, want uart1 → usbat", e)
	}
	_, i = d.wait(t, i, "mqtt_connected")
	waitSubscribed(t, d, i)
	// Told to keep the module's setting, the daemon leaves it alone.
	b2 := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.SavedURCPort = "all" })
	d2 := b2.start(strings.Replace(seedConfig(b2.mod.Path(), ""), "[serial]\n", "[serial]\nurc_port = \"keep\"\n", 1))
	d2.wait(t, 0, "mqtt_connected")
	if d2.log.Count("urc_port_set") != 0 {
		t.Error("urc_port = keep changed the module's setting")
	}
}

// TestOccupiedClientIndexIsFreed: after a host restart the module may still be opening a link on
// gatewayd's client index (not listed by AT+QMTOPEN?), so AT+QMTOPEN answers +QMTOPEN: 0,2. The
// daemon closes the index and opens again, and connects at once.
func TestOccupiedClientIndexIsFreed(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	if err := b.mod.Occupy(0); err != nil {
		t.Fatal(err)
	}
	d := b.start(seedConfig(b.mod.Path(), ""))
	_, i := d.wait(t, 0, "mqtt_connected")
	waitSubscribed(t, d, i)
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d failed connects: the occupied index was not freed at once", n)
	}
}

// TestFirmwareVariantsConnect: firmware that offers AT+QICSGP auth (0-2) only, and Unisoc
// firmware without the ASR-only AT+QMTCFG settings, still come up; a configured method the
// module does not offer is said in words, with what to set.
func TestFirmwareVariantsConnect(t *testing.T) {
	t.Parallel()
	broker := startBroker(t)
	apn := func(auth string) string {
		return "[module]\napn = \"internet\"\napn_user = \"u\"\napn_password = \"p\"\napn_auth = \"" + auth + "\"\n\n[mqtt]"
	}

	b := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.NoPAPOrCHAP = true })
	d := b.start(strings.Replace(seedConfig(b.mod.Path(), ""), "[mqtt]", apn("auto"), 1))
	e, _ := d.wait(t, 0, "bringup_failed")
	if e.Str("step") != "apn" || !strings.Contains(e.Str("hint"), "apn_auth") {
		t.Errorf("auth 3 not offered: %v, want the apn step with a hint to set module.apn_auth", e)
	}

	b2 := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.NoPAPOrCHAP = true })
	d2 := b2.start(strings.Replace(seedConfig(b2.mod.Path(), ""), "[mqtt]", apn("chap"), 1))
	d2.wait(t, 0, "session_up")

	b3 := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.Unisoc = true })
	d3 := b3.start(seedConfig(b3.mod.Path(), ""))
	d3.wait(t, 0, "session_up")
	skipped := false
	for _, l := range d3.log.Raw() {
		if strings.Contains(l, "edit/timeout") && strings.Contains(l, "optional AT+QMTCFG setting") {
			skipped = true
		}
	}
	if !skipped {
		t.Error("the Unisoc module's missing edit/timeout was not logged as skipped")
	}
}
