package modem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
)

func TestParseModuleTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: `"26/12/07,20:30:05+32"`, want: time.Date(2026, 12, 7, 12, 30, 5, 0, time.UTC)},
		{in: ` "26/12/07,02:30:05-20"`, want: time.Date(2026, 12, 7, 7, 30, 5, 0, time.UTC)},
		{in: `"2026/12/07,20:30:05+32,0"`, want: time.Date(2026, 12, 7, 12, 30, 5, 0, time.UTC)},
		{in: `"26/12/07,12:30:05"`, want: time.Date(2026, 12, 7, 12, 30, 5, 0, time.UTC)},
		{in: `"80/01/06,00:01:00+00"`, want: time.Date(1980, 1, 6, 0, 1, 0, 0, time.UTC)},
		{in: `""`, bad: true},
		{in: `26/12/07,20:30:05+32`, bad: true},
		{in: `"26/13/07,20:30:05+32"`, bad: true},
		{in: `"26/12/07,20:30:05+x2"`, bad: true},
	} {
		got, err := modem.ParseModuleTime(c.in)
		switch {
		case c.bad && err == nil:
			t.Errorf("%s: %v, want an error", c.in, got)
		case !c.bad && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case !c.bad && !got.Equal(c.want):
			t.Errorf("%s: %v, want %v", c.in, got, c.want)
		}
	}
}

// TestNetworkTime: against the emulator, the module's network time (an hour ahead of the host
// here, in UTC+8) comes back as UTC; without network time the 1980 default is refused with
// ErrNoNetworkTime.
func TestNetworkTime(t *testing.T) {
	m, conn := simtest.Start(t, sim.Config{}, at.Options{})
	mod := modem.New(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	floor := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := m.SetNetworkClock(time.Hour, 32, true); err != nil {
		t.Fatal(err)
	}
	got, err := mod.NetworkTime(ctx, floor)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Sub(time.Now().Add(time.Hour)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("network time %v is %s off the emulator's (host + 1h)", got, d)
	}
	if err := m.SetNetworkClock(0, 0, false); err != nil {
		t.Fatal(err)
	}
	if got, err := mod.NetworkTime(ctx, floor); !errors.Is(err, modem.ErrNoNetworkTime) {
		t.Errorf("without network time: %v, %v; want ErrNoNetworkTime", got, err)
	}
}
