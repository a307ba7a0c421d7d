package supervisor

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/sim"
)

// TestATStatsOutliveThePort: the AT counters ATStats returns keep what the engine of an unplugged
// port counted and add the next port's, so they never go down while the daemon runs.
func TestATStatsOutliveThePort(t *testing.T) {
	mod, set := emulatedSettings(t, "ats")
	sup := New(set, zerolog.Nop(), nopLED{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, "connected", func() bool { return sup.Status().Connected })
	before := sup.ATStats()
	if before.Commands == 0 || before.BytesOut == 0 || before.CommandTime <= 0 {
		t.Fatalf("ATStats after a bring-up = %+v", before)
	}
	if err := mod.Unplug(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the port closed", func() bool { return !sup.Status().PortOpen })
	if gone := sup.ATStats(); gone.Commands < before.Commands || gone.BytesOut < before.BytesOut {
		t.Fatalf("ATStats with no port = %+v, below %+v", gone, before)
	}
	if err := mod.Replug(sim.DefaultIdentity); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected again", func() bool { return sup.Status().Connected })
	// The second bring-up was counted on top of the first (it sends about as many commands).
	if after := sup.ATStats(); after.Commands < before.Commands+before.Commands/2 {
		t.Fatalf("ATStats after a second bring-up: %d commands, the first took %d", after.Commands, before.Commands)
	}
}
