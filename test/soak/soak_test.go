package soak

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/sim"
)

const topic = "soak/led"

func TestSoak(t *testing.T) {
	if os.Getenv("GATEWAYD_SOAK") == "" {
		t.Skip("opt-in: GATEWAYD_SOAK=1 go test -v -run Soak -timeout 30m ./test/soak/")
	}
	total := 20000
	if v := os.Getenv("GATEWAYD_SOAK_DOWNLINKS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("GATEWAYD_SOAK_DOWNLINKS=%q is not a positive number", v)
		}
		total = n
	}
	broker, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	dir := t.TempDir()
	mod, err := sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: broker.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[serial]
port = %q
[module]
health_interval = "1s"
[mqtt]
host = "broker.example.com"
client_id = "soak"
[[mqtt.subscribe]]
topic = %q
qos = 1
[control]
socket = ""
`, mod.Path(), topic)), "soak.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The log goes to a counter that keeps nothing, so that the heap measured is the daemon's.
	logs := newCounter()
	log := zerolog.New(logs).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, log, nil, 0, "soak") }()

	waitConnected := func(from int) {
		t.Helper()
		if !logs.waitFor(`"event":"subscribed"`, from, 2*time.Minute) {
			t.Fatal("not connected again within 2 minutes")
		}
	}
	waitConnected(1)
	time.Sleep(500 * time.Millisecond)
	goroutines0, heap0 := measure()

	faults := []struct {
		name string
		do   func() error
	}{
		{"drop", mod.DropLink},
		{"pingfail", mod.PingFail},
		{"pdpdeact", mod.DeactivatePDP},
		{"reboot", mod.Reboot},
		{"noise", func() error { return mod.Noise(nil) }},
		{"unplug", func() error {
			if err := mod.Unplug(); err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond)
			return mod.Replug(sim.Identity{})
		}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	injected := map[string]int{}
	start := time.Now()
	for i := 1; i <= total; i++ {
		_ = broker.Publish(topic, []byte("soak downlink "+strconv.Itoa(i)), false, 1)
		if rng.IntN(1000) == 0 {
			f := faults[rng.IntN(len(faults))]
			if err := f.do(); err == nil {
				injected[f.name]++
			}
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // spread the downlinks, and so the faults, over time
		}
	}
	elapsed := time.Since(start)
	// Settle: one last fault-free connected period.
	from := logs.count(`"event":"subscribed"`) + 1
	_ = mod.DropLink()
	waitConnected(from)
	time.Sleep(2 * time.Second)
	goroutines1, heap1 := measure()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon.Run: %v", err)
	}
	downlinks, toggles := logs.count(`"event":"downlink"`), logs.count(`"why":"downlink"`)
	if n := logs.count(`"level":"panic"`); n > 0 {
		t.Errorf("%d panic lines", n)
	}
	t.Logf("%d downlinks sent in %v, %d delivered (the rest arrived while the link was down), faults %v",
		total, elapsed.Round(time.Millisecond), downlinks, injected)
	t.Logf("goroutines %d → %d, heap in use %.1f → %.1f MiB", goroutines0, goroutines1, mib(heap0), mib(heap1))
	if downlinks != toggles {
		t.Errorf("%d downlinks but %d LED toggles", downlinks, toggles)
	}
	if downlinks == 0 {
		t.Error("no downlink delivered")
	}
	if goroutines1 > goroutines0+5 {
		t.Errorf("goroutines grew from %d to %d", goroutines0, goroutines1)
	}
	if heap1 > heap0+8<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB", mib(heap0), mib(heap1))
	}
}

func measure() (goroutines int, heap uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// counter is a log sink that counts lines holding given substrings and keeps nothing else.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
	change chan struct{}
}

var counted = []string{`"event":"subscribed"`, `"event":"downlink"`, `"why":"downlink"`, `"level":"panic"`}

func newCounter() *counter {
	return &counter{counts: map[string]int{}, change: make(chan struct{})}
}

// Write takes one log line (zerolog writes a line per call).
func (c *counter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range counted {
		if bytes.Contains(p, []byte(k)) {
			c.counts[k]++
		}
	}
	close(c.change)
	c.change = make(chan struct{})
	return len(p), nil
}

func (c *counter) count(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}

// waitFor waits until k has been counted at least n times.
func (c *counter) waitFor(k string, n int, d time.Duration) bool {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		got, ch := c.counts[k], c.change
		c.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}
