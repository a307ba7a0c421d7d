package drain_test

// The drainer through the real stack: outbox (bbolt on disk) → drain → qmt.Client → at.Conn →
// the EC600 emulator's pty → a real MQTT broker → a cloud-side paho subscriber.

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
)

const upTopic = "gw/up"

// emulated is a connected MQTT client on the emulator, and the cloud's view of what arrives.
type emulated struct {
	mod    *sim.Module
	client *qmt.Client
	mu     sync.Mutex
	got    []string
	arrive chan struct{}
}

func newEmulated(tb testing.TB, brokerDelay time.Duration) *emulated {
	tb.Helper()
	b, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	mod, err := sim.New(sim.Config{Link: filepath.Join(tb.TempDir(), "ec600-at"), Broker: b.Addr()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { mod.Close() })
	mod.SetBrokerDelay(brokerDelay)

	e := &emulated{mod: mod, arrive: make(chan struct{}, 1<<16)}
	cloud := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("cloud").SetAutoReconnect(false))
	if tok := cloud.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("cloud connect: %v", tok.Error())
	}
	tb.Cleanup(func() { cloud.Disconnect(0) })
	tok := cloud.Subscribe(upTopic, 1, func(_ paho.Client, m paho.Message) {
		e.mu.Lock()
		e.got = append(e.got, string(m.Payload()))
		e.mu.Unlock()
		e.arrive <- struct{}{}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("cloud subscribe: %v", tok.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := simtest.Open(tb, mod, at.Options{URCs: qmt.URCs()}) // waits for the SIM too
	e.client = qmt.NewClient(conn, 0)
	tb.Cleanup(e.client.Close)
	if err := e.client.Configure(ctx, qmt.Config{CleanSession: true}); err != nil {
		tb.Fatal(err)
	}
	if err := e.client.Open(ctx, "broker.example.com", 1883); err != nil {
		tb.Fatal(err)
	}
	if err := e.client.Connect(ctx, "drain-test", "", ""); err != nil {
		tb.Fatal(err)
	}
	return e
}

// waitFor waits until the cloud has n messages.
func (e *emulated) waitFor(tb testing.TB, n int) []string {
	tb.Helper()
	deadline := time.After(60 * time.Second)
	for {
		e.mu.Lock()
		if len(e.got) >= n {
			got := append([]string(nil), e.got...)
			e.mu.Unlock()
			return got
		}
		e.mu.Unlock()
		select {
		case <-e.arrive:
		case <-deadline:
			tb.Fatalf("the cloud received %d of %d messages", len(e.got), n)
		}
	}
}

func openStore(tb testing.TB) *outbox.Store {
	tb.Helper()
	s, err := outbox.Open(outbox.Config{Dir: tb.TempDir()}, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// drainAll stores n messages, drains them with the window and returns how long the drain took.
func drainAll(tb testing.TB, e *emulated, window, n, already int) time.Duration {
	tb.Helper()
	store := openStore(tb)
	for i := range n {
		if _, err := store.Put(upTopic, []byte(fmt.Sprintf("m%05d", i)), 1, false); err != nil {
			tb.Fatal(err)
		}
	}
	d := drain.New(store, drain.Options{Window: window}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- d.Run(ctx, e.client) }()
	e.waitFor(tb, already+n)
	took := time.Since(start)
	// Acks are written after the broker's acknowledgement reached the module: wait for the store.
	for deadline := time.Now().Add(10 * time.Second); store.Stats().Messages > 0; {
		if time.Now().After(deadline) {
			tb.Fatalf("%d messages still in the outbox after the cloud received them all", store.Stats().Messages)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return took
}

// TestDrainThroughTheEmulatorKeepsOrder: with a window of 8 and a 20 ms broker round trip, every
// message reaches the cloud once, in the order of the store, and leaves the store.
func TestDrainThroughTheEmulatorKeepsOrder(t *testing.T) {
	e := newEmulated(t, 20*time.Millisecond)
	const n = 60
	drainAll(t, e, 8, n, 0)
	got := e.waitFor(t, n)
	for i, m := range got {
		if want := fmt.Sprintf("m%05d", i); m != want {
			t.Fatalf("message %d is %q, want %q (all: %q)", i, m, want, got)
		}
	}
}

// BenchmarkDrainEmulator compares the window against stop-and-wait with a 50 ms broker round
// trip, through the real qmt client and the emulator (issue: aim for at least 6×).
func BenchmarkDrainEmulator(b *testing.B) {
	for _, window := range []int{1, 8} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			e := newEmulated(b, 50*time.Millisecond)
			const n = 80
			var total time.Duration
			sent := 0
			for b.Loop() {
				total += drainAll(b, e, window, n, sent)
				sent += n
			}
			b.ReportMetric(float64(sent)/total.Seconds(), "msgs/s")
		})
	}
}
