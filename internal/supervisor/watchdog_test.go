package supervisor

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/sim"
)

// countingNotifier is a test fake of systemd's notify socket: it records the watchdog pings.
type countingNotifier struct {
	mu    sync.Mutex
	pings []time.Time
}

func (n *countingNotifier) Ready()        {}
func (n *countingNotifier) Status(string) {}
func (n *countingNotifier) Stopping()     {}
func (n *countingNotifier) Watchdog() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pings = append(n.pings, time.Now())
}

func (n *countingNotifier) since(t time.Time) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, p := range n.pings {
		if p.After(t) {
			c++
		}
	}
	return c
}

type nopLED struct{}

func (nopLED) Set(bool) error        { return nil }
func (nopLED) Toggle() (bool, error) { return true, nil }

// TestWatchdogWhileWaitingForAModule: no module at all is not a hang; the loop keeps beating.
func TestWatchdogWhileWaitingForAModule(t *testing.T) {
	n := &countingNotifier{}
	set := Settings{
		OpenPort:         func(context.Context) (io.ReadWriteCloser, error) { return nil, errors.New("no such device") },
		PortName:         "/dev/nothing",
		WatchdogInterval: 400 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := New(set, zerolog.Nop(), nopLED{}, n).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.since(start); got < 5 {
		t.Fatalf("%d watchdog pings in 2 s with a 400 ms watchdog interval, want at least 5", got)
	}
}

// TestWatchdogWithheldWhileTheReaderIsSilent: an attached module whose AT reader has read nothing
// for four health intervals stops the pings; when it answers again they resume.
func TestWatchdogWithheldWhileTheReaderIsSilent(t *testing.T) {
	mod, set := emulatedSettings(t, "wd")
	n := &countingNotifier{}
	set.Subscribe = []qmt.Subscription{{Topic: "t", QoS: 1}}
	set.HealthInterval = 100 * time.Millisecond
	set.WatchdogInterval = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(set, zerolog.Nop(), nopLED{}, n).Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(time.Second)
	if got := n.since(time.Now().Add(-500 * time.Millisecond)); got == 0 {
		t.Fatal("no watchdog pings while the module answers")
	}
	mod.SetUnresponsive(true)
	// The reader window is 4 health intervals (400 ms); give it that plus two watchdog ticks.
	time.Sleep(700 * time.Millisecond)
	silentFrom := time.Now()
	time.Sleep(time.Second)
	if got := n.since(silentFrom); got != 0 {
		t.Fatalf("%d watchdog pings while the module had been silent for over 4 health intervals", got)
	}
	mod.SetUnresponsive(false)
	deadline := time.Now().Add(30 * time.Second)
	resumed := time.Now()
	for n.since(resumed) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("watchdog pings did not resume once the module answered again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// emulatedSettings starts the EC600 emulator with an embedded broker and returns it with
// settings that reach it over go.bug.st/serial, as the daemon would; tests add what they need.
func emulatedSettings(t *testing.T, clientID string) (*sim.Module, Settings) {
	t.Helper()
	mod, _, set := emulatedWithBroker(t, clientID)
	return mod, set
}

// emulatedWithBroker is emulatedSettings, with the embedded broker.
func emulatedWithBroker(t *testing.T, clientID string) (*sim.Module, *sim.Broker, Settings) {
	t.Helper()
	b, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	mod, err := sim.New(sim.Config{Link: filepath.Join(t.TempDir(), "ec600-at"), Broker: b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })
	return mod, b, Settings{
		OpenPort: func(ctx context.Context) (io.ReadWriteCloser, error) { return port.Open(ctx, mod.Path(), 115200) },
		PortName: mod.Path(),
		Host:     "broker.example.com",
		Port:     1883,
		Platform: cloud.Plain(cloud.Endpoint{Host: "127.0.0.1", Port: 1883}, cloud.Identity{ClientID: clientID}),
	}
}
