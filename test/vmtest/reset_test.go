package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/sim"
)

// TestWedgedModuleIsResetByItsLine: the gatewayd binary with [reset] on a gpio-sim line wired as
// RESET_N (active-low, pulled up). Starting the daemon never asserts the line; a module that then
// ignores everything, AT+CFUN=1,1 included, gets the line driven low for the configured pulse
// and released; the test plays the wire — the module reboots when it sees the line asserted —
// and the daemon reconnects.
func TestWedgedModuleIsResetByItsLine(t *testing.T) {
	v := vmEnv(t)
	offset, err := strconv.Atoi(os.Getenv("GPIOSIM_LED_LOW_OFFSET"))
	if err != nil {
		t.Fatalf("GPIOSIM_LED_LOW_OFFSET: %v", err)
	}
	value := fmt.Sprintf("%s/sim_gpio%d/value", v.sysfs, offset)
	if err := os.WriteFile(filepath.Join(filepath.Dir(value), "pull"), []byte("pull-up"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readLevel(t, value); got != 1 {
		t.Fatalf("the unrequested, pulled-up line reads %d", got)
	}

	broker, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	dir := t.TempDir()
	mod, err := sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: broker.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })

	// The wire: record every low level; when the line goes low, the module reboots.
	const pulse = 300 * time.Millisecond
	lows := make(chan time.Duration, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if readLevelQuiet(value) != 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			start := time.Now()
			mod.SetUnresponsive(false)
			_ = mod.Reboot()
			for ctx.Err() == nil && readLevelQuiet(value) == 0 {
				time.Sleep(time.Millisecond)
			}
			lows <- time.Since(start)
		}
	}()

	cfg := fmt.Sprintf(`
[serial]
port = %q

[module]
health_interval = "1s"

[mqtt]
host = "broker.example.com"
client_id = "gatewayd-vmtest-reset"

[reset]
chip = %q
line = %d
active_low = true
pulse = "%s"

[log]
level = "info"
`, mod.Path(), v.chip, offset, pulse)
	d := startDaemon(t, v.bin, filepath.Join(dir, "gatewayd.toml"), cfg)
	_, i := d.waitLong(t, 0, "mqtt_connected", 60*time.Second)
	if info := lineInfo(t, v.chip, offset); !info.Used || info.Consumer != "gatewayd-reset" || !info.Config.ActiveLow {
		t.Fatalf("reset line info %+v, want held by gatewayd-reset, active-low", info)
	}
	select {
	case d := <-lows:
		t.Fatalf("the reset line went low for %s while the module was fine", d)
	default:
	}

	mod.SetUnresponsive(true)
	e, j := d.waitLong(t, i, "module_reset", 60*time.Second)
	if e.Str("method") != "AT+CFUN=1,1" {
		t.Fatalf("first module_reset %v, want AT+CFUN=1,1 first", e)
	}
	e, j = d.waitLong(t, j+1, "module_reset", 60*time.Second)
	if e.Str("method") != "gpio" {
		t.Fatalf("second module_reset %v, want the gpio line", e)
	}
	select {
	case low := <-lows:
		if low < pulse-10*time.Millisecond {
			t.Errorf("the line was low for %s, want about the %s pulse", low, pulse)
		}
		t.Logf("reset line low for %s (pulse %s)", low, pulse)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon logged the pulse but the line never went low")
	}
	d.waitLong(t, j+1, "mqtt_connected", 90*time.Second)
	if err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if got := readLevel(t, value); got != 1 {
		t.Errorf("after exit the line reads %d, want released (1)", got)
	}
	if len(lows) != 0 {
		t.Errorf("%d more low pulses than the one", len(lows))
	}
}

// readLevelQuiet reads a sysfs value file; anything but "0" counts as not low.
func readLevelQuiet(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 || b[0] != '0' {
		return 1
	}
	return 0
}
