package supervisor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/qmt"
)

// togglingLED counts its toggles.
type togglingLED struct {
	mu      sync.Mutex
	on      bool
	toggles int
}

func (l *togglingLED) Set(on bool) error { l.mu.Lock(); l.on = on; l.mu.Unlock(); return nil }
func (l *togglingLED) Toggle() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = !l.on
	l.toggles++
	return l.on, nil
}

// TestDownlinksHaveTheirOwnConsumer: a burst of downlinks reaches Settings.Downlinks in the
// order the broker sent it, each counted in Status and toggling the LED, while the loop
// reconnects the session (a Reconfigure: a clean DISCONNECT the loop waits for); and none is
// handed on after Run returned.
func TestDownlinksHaveTheirOwnConsumer(t *testing.T) {
	_, broker, set := emulatedWithBroker(t, "downlinks")
	set.Subscribe = []qmt.Subscription{{Topic: "down/#", QoS: 1}}
	var (
		mu       sync.Mutex
		got      []string
		returned atomic.Bool
		late     atomic.Int64
	)
	set.Downlinks = func(topic string, payload []byte) {
		if returned.Load() {
			late.Add(1)
		}
		mu.Lock()
		got = append(got, string(payload))
		mu.Unlock()
	}
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	led := &togglingLED{}
	sup := New(set, zerolog.Nop(), led, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	eventually(t, "connected", func() bool { return sup.Status().Connected })

	const n = 40
	for i := 0; i < n; i++ {
		if err := broker.Publish(fmt.Sprintf("down/%d", i), []byte(fmt.Sprint(i)), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the burst handed on", func() bool { return received() == n })
	if err := sup.Reconfigure(ctx, set, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected again", func() bool { return sup.Status().Connected })
	if err := broker.Publish("down/last", []byte("last"), false, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the downlink after the reconnect", func() bool { return received() == n+1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	returned.Store(true)

	mu.Lock()
	for i := 0; i < n; i++ {
		if got[i] != fmt.Sprint(i) {
			t.Errorf("downlink %d handed on as %q: out of order: %q", i, got[i], got)
			break
		}
	}
	mu.Unlock()
	st := sup.Status()
	if st.Downlinks != n+1 || st.DownlinkBytes == 0 {
		t.Errorf("Status counts %d downlinks (%d bytes), want %d", st.Downlinks, st.DownlinkBytes, n+1)
	}
	led.mu.Lock()
	toggles := led.toggles
	led.mu.Unlock()
	if toggles != n+1 {
		t.Errorf("the LED toggled %d times for %d downlinks", toggles, n+1)
	}
	if on, known := sup.LEDState(); !known || on != led.on {
		t.Errorf("LEDState = %t (known %t), the LED is %t", on, known, led.on)
	}
	if l := late.Load(); l != 0 {
		t.Errorf("%d downlinks handed on after Run returned", l)
	}
}

// registeringPlatform is a platform that registers dynamically with dyn; only Dynamic is used.
type registeringPlatform struct {
	cloud.Platform
	dyn *cloud.AliyunDynamic
}

func (p registeringPlatform) Dynamic() *cloud.AliyunDynamic                  { return p.dyn }
func (p registeringPlatform) SetDevice(string, cloud.AliyunCredential) error { return nil }
func (p registeringPlatform) RegisterHint(int) string                        { return "" }

// TestReloadChangesTheAnswerTopics: a reload that makes the platform register (or changes its
// authType) reaches the running link's downlink consumer, which hands the answer on the new
// topic to the registration instead of ignoring it as a topic nobody subscribed to.
func TestReloadChangesTheAnswerTopics(t *testing.T) {
	s := New(Settings{Subscribe: []qmt.Subscription{{Topic: "down/#"}}}, zerolog.Nop(), nil, nil)
	l := &loop{Supervisor: s, link: &link{}}
	l.setTopics() // the SIM stage's end, with a platform that does not register
	c := consumer{Supervisor: s, k: l.link}
	ch := make(chan qmt.Received, 1)
	s.regWait.Store(&ch)
	c.downlink(cloud.AliyunRegNWLTopic, []byte("before"), 1)
	if len(ch) != 0 {
		t.Fatalf("an answer topic of a platform that does not register went to the registration: %v", <-ch)
	}

	set := s.set
	set.Platform = registeringPlatform{dyn: &cloud.AliyunDynamic{AuthType: cloud.AliyunRegNWL}}
	l.newSet = &set
	l.applySettings()
	c.downlink(cloud.AliyunRegNWLTopic, []byte("after"), 2)
	select {
	case m := <-ch:
		if m.Topic != cloud.AliyunRegNWLTopic || string(m.Payload) != "after" {
			t.Errorf("the registration got %q on %s", m.Payload, m.Topic)
		}
	default:
		t.Fatal("after the reload, the answer on /ext/regnwl did not reach the registration")
	}
	if got := s.Status().Downlinks; got != 0 {
		t.Errorf("%d downlinks counted; the answers are not downlinks and down/# was not matched", got)
	}
}
