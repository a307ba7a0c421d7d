package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/fleet"
)

// TestFleetSurvivesABrokerRestart: ten gateways — the real daemon, each with its own emulated
// module and a program publishing a QoS 1 message a second through its local endpoint and
// outbox — are connected to one broker when it restarts and stays away 3 s (mosquitto stopped;
// the embedded broker refusing every CONNECT with CONNACK 3). Every gateway connects again,
// every message a gateway acknowledged reaches the broker, and the reconnects are spread: no
// second gets most of the fleet's CONNECTs (before, all ten reconnected in the same second).
// The figures at 500 gateways come from cmd/fleetbench.
func TestFleetSurvivesABrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("the fleet test runs 10 daemons for about 30 s; skipped under -short")
	}
	brokers := map[string]string{"embedded": ""}
	if bin := mosquittoBin(); bin != "" {
		brokers["mosquitto"] = bin
	} else {
		t.Log("mosquitto is not installed (apt-get install mosquitto); the fleet runs against the embedded broker only")
	}
	for name, bin := range brokers {
		t.Run(name, func(t *testing.T) {
			const n = 10
			res, err := fleet.Run(context.Background(), fleet.Config{
				Bin: gatewaydBin, N: n, Dir: t.TempDir(), Mosquitto: bin,
				RefuseFor: 3 * time.Second, StableAfter: 3 * time.Second, PublishEvery: time.Second,
				Timeout: 90 * time.Second, Logf: t.Logf,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", res)
			if res.Published < 5*n {
				t.Fatalf("only %d messages acknowledged by %d gateways", res.Published, n)
			}
			if res.Lost != 0 {
				t.Errorf("%d of %d acknowledged messages never reached the broker", res.Lost, res.Published)
			}
			if bin == "" && res.Refused == 0 {
				t.Errorf("the embedded broker refused no CONNECT while it was refusing them all")
			}
			// What each daemon decided: one first reconnect delay each, within the 5 s window, and
			// spread over it (ten uniform draws fall within one second of each other about 4 times
			// in a million). Main's daemon logs none: it reconnects at once.
			if len(res.Spread) != n {
				t.Fatalf("%d of %d gateways logged a spread reconnect after the broker closed their sessions", len(res.Spread), n)
			}
			lo, hi := slices.Min(res.Spread), slices.Max(res.Spread)
			if hi > 5*time.Second || hi-lo < time.Second {
				t.Errorf("first reconnect delays %v: want them within [0, 5 s] and spread over more than a second", res.Spread)
			}
			// What the broker saw: ten first reconnects drawn uniformly over 5 s, with the refused
			// ones' second attempts, put 9 or more in one second about 7 times in 10,000 (a
			// simulation of the policy); main's daemon sent 19 in the first second. A stall of a
			// loaded machine bunches arrivals too, so this bound is loose.
			if res.PeakAttempts > 8 {
				t.Errorf("%d of %d gateways tried to reconnect in the same second: %v", res.PeakAttempts, n, res.Attempts)
			}
		})
	}
}
