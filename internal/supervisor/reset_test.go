package supervisor

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// wiredReset is a test fake of the reset wire (the real line is gpio.Reset, tested on gpio-sim):
// Pulse does to the emulator what pulling RESET_N does to a wedged module — it comes back with
// a reboot.
type wiredReset struct {
	mod    *sim.Module
	pulses atomic.Int32
}

func (w *wiredReset) Pulse(context.Context) error {
	w.pulses.Add(1)
	w.mod.SetUnresponsive(false)
	return w.mod.Reboot()
}

func (w *wiredReset) String() string { return "test wire" }

// TestResetLineWhenCFUNGoesUnanswered: a module that ignores everything, AT+CFUN=1,1 included,
// gets its reset line pulsed once, and the session comes back; the log says so with
// module_reset events.
func TestResetLineWhenCFUNGoesUnanswered(t *testing.T) {
	mod, set := emulatedSettings(t, "rst")
	set.Subscribe = []qmt.Subscription{{Topic: "t", QoS: 1}}
	set.HealthInterval = 100 * time.Millisecond
	wire := &wiredReset{mod: mod}
	set.Reset = wire
	var logs testutil.SyncBuffer
	sup := New(set, zerolog.New(&logs), nopLED{}, nil)
	sup.cfunWait = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() { cancel(); <-done }()

	count := func(s string) int { return strings.Count(logs.String(), s) }
	eventually(t, "connected", func() bool { return count(`"event":"subscribed"`) == 1 })
	mod.SetUnresponsive(true)
	eventually(t, "connected again after the reset", func() bool { return count(`"event":"subscribed"`) == 2 })
	if n := wire.pulses.Load(); n != 1 {
		t.Errorf("%d pulses, want 1", n)
	}
	if count(`"event":"module_reset","method":"AT+CFUN=1,1"`) != 1 || count(`"event":"module_reset","method":"gpio","line":"test wire"`) != 1 {
		t.Errorf("module_reset events missing:\n%s", logs.String())
	}
}

// TestNoResetLineNoPulse: without a reset line the escalation stops at AT+CFUN=1,1 and says a
// line could be configured; a module that answers the reset is not pulsed.
func TestNoResetLineNoPulse(t *testing.T) {
	mod, set := emulatedSettings(t, "rst2")
	set.HealthInterval = 100 * time.Millisecond
	var logs testutil.SyncBuffer
	sup := New(set, zerolog.New(&logs), nopLED{}, nil)
	sup.cfunWait = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "connected", func() bool { return strings.Contains(logs.String(), `"event":"mqtt_connected"`) })
	mod.SetUnresponsive(true)
	eventually(t, "the escalation", func() bool { return strings.Contains(logs.String(), "no reset line is configured ([reset])") })
	mod.SetUnresponsive(false)
	eventually(t, "connected again", func() bool { return strings.Count(logs.String(), `"event":"mqtt_connected"`) == 2 })
	if strings.Contains(logs.String(), `"method":"gpio"`) {
		t.Errorf("a pulse without a reset line:\n%s", logs.String())
	}
}
