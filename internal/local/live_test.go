package local

import (
	"fmt"
	"testing"

	"github.com/gatewayd/gatewayd/internal/outbox"
)

// SetLive changes the forwarding rules at once, for a client connected all along; a bad rule is
// refused and the old rules stay.
func TestSetLiveChangesTheForwardingRules(t *testing.T) {
	s := newStore(t, outbox.Config{})
	e, url := start(t, Config{Forward: []Forward{{Topic: "a/#", QoS: 1}}}, s, nil)
	c := dial(t, url, "pub", nil)
	publish(t, c, "a/1", 1, "1")
	publish(t, c, "b/1", 1, "2")
	if err := e.SetLive(Live{Forward: []Forward{{Topic: "b/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	publish(t, c, "a/2", 1, "3")
	publish(t, c, "b/2", 1, "4")
	if err := e.SetLive(Live{Forward: []Forward{{Topic: "c/#", QoS: 2}}}); err == nil {
		t.Fatal("a rule with QoS 2 was accepted")
	}
	publish(t, c, "b/3", 1, "5")
	var got []string
	for _, m := range stored(t, s) {
		got = append(got, fmt.Sprintf("%s=%s", m.Topic, m.Payload))
	}
	if want := "[a/1=1 b/2=4 b/3=5]"; fmt.Sprint(got) != want {
		t.Fatalf("stored %v, want %s", got, want)
	}
}
