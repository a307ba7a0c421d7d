package supervisor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// TestSigningClock: the clock a CONNECT is signed with. A synchronised, plausible system clock
// is used as it is (no AT command); an unsynchronised one is replaced by the module's network
// clock (here an hour ahead), unless the two agree within trustSkew; a system clock before the
// build is reported as wrong (clock_wrong); a module without network time leaves the system
// clock, with a warning.
func TestSigningClock(t *testing.T) {
	m, conn := simtest.Start(t, sim.Config{}, at.Options{})
	k := &link{conn: conn, mod: modem.New(conn)}
	var log testutil.SyncBuffer
	synced := true
	s := New(Settings{ClockSynced: func() (bool, error) { return synced, nil }}, zerolog.New(&log), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var note string // what was last said about the clock
	near := func(got, want time.Duration) bool { return got > want-2*time.Second && got < want+2*time.Second }

	if err := m.SetNetworkClock(time.Hour, 32, true); err != nil {
		t.Fatal(err)
	}
	before := conn.Stats().BytesOut
	if skew := s.signingClock(ctx, k, &note); skew != 0 || conn.Stats().BytesOut != before {
		t.Fatalf("synchronised clock: skew %s, %d bytes sent to the module; want 0 and none", skew, conn.Stats().BytesOut-before)
	}
	synced = false
	if skew := s.signingClock(ctx, k, &note); !near(skew, time.Hour) {
		t.Fatalf("unsynchronised clock, network an hour ahead: skew %s", skew)
	}
	if !strings.Contains(log.String(), `"event":"clock_network"`) || !strings.Contains(log.String(), `"level":"warn"`) {
		t.Errorf("no clock_network warning:\n%s", log.String())
	}
	if err := m.SetNetworkClock(300*time.Millisecond, 32, true); err != nil {
		t.Fatal(err)
	}
	if skew := s.signingClock(ctx, k, &note); skew != 0 {
		t.Errorf("unsynchronised clock that agrees with the network: skew %s, want 0", skew)
	}
	// A system clock before the build: wrong even if "synchronised"; the network's time is used.
	synced = true
	s.set.ClockFloor = time.Now().Add(24 * time.Hour)
	if err := m.SetNetworkClock(48*time.Hour, 32, true); err != nil {
		t.Fatal(err)
	}
	if skew := s.signingClock(ctx, k, &note); !near(skew, 48*time.Hour) {
		t.Errorf("clock before the build: skew %s, want the network's 48h", skew)
	}
	if !strings.Contains(log.String(), `"event":"clock_wrong"`) {
		t.Errorf("no clock_wrong report:\n%s", log.String())
	}
	// No network time at all: the system clock after all, with a warning.
	if err := m.SetNetworkClock(0, 32, false); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(log.String(), "\n")
	if skew := s.signingClock(ctx, k, &note); skew != 0 {
		t.Errorf("no network time: skew %s, want 0", skew)
	}
	last := strings.Split(strings.TrimSpace(log.String()), "\n")[n]
	if !strings.Contains(last, "knows no network time") || !strings.Contains(last, `"level":"warn"`) {
		t.Errorf("no warning that the module has no network time either: %s", last)
	}
}
