package supervisor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/sim"
)

// recordingOutbox is a test fake of the daemon's drainer: Drain blocks until its context ends
// and records how many ran at once; Reset is counted.
type recordingOutbox struct {
	mu                      sync.Mutex
	starts, active, maxSeen int
	resets                  int
	clientSeen              bool
}

func (o *recordingOutbox) Drain(ctx context.Context, c *qmt.Client) error {
	o.mu.Lock()
	o.starts++
	o.active++
	o.maxSeen = max(o.maxSeen, o.active)
	o.clientSeen = o.clientSeen || c != nil
	o.mu.Unlock()
	<-ctx.Done()
	o.mu.Lock()
	o.active--
	o.mu.Unlock()
	return nil
}

func (o *recordingOutbox) Reset() {
	o.mu.Lock()
	o.resets++
	o.mu.Unlock()
}

func (o *recordingOutbox) snapshot() (starts, active, maxSeen, resets int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.starts, o.active, o.maxSeen, o.resets
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestOutboxDrainsOnlyWhileConnected: the drain starts when the session is connected, is
// cancelled and awaited when the link drops, starts again after the reconnect, never runs twice
// at once, is reset when another module is attached, and has stopped when Run returns.
func TestOutboxDrainsOnlyWhileConnected(t *testing.T) {
	mod, set := emulatedSettings(t, "ob")
	ob := &recordingOutbox{}
	set.Outbox = ob
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(set, zerolog.Nop(), nopLED{}, nil).Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, "the drain starts", func() bool { s, a, _, _ := ob.snapshot(); return s == 1 && a == 1 })
	mod.RefuseOpen(5) // the reconnect fails until allowed, so the stopped drain can be seen
	if err := mod.DropLink(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the drain stops with the link", func() bool { _, a, _, _ := ob.snapshot(); return a == 0 })
	time.Sleep(200 * time.Millisecond)
	if s, a, _, _ := ob.snapshot(); s != 1 || a != 0 {
		t.Fatalf("drain started %d times, %d running, while the link cannot be opened", s, a)
	}
	mod.RefuseOpen(0)
	eventually(t, "the drain starts again", func() bool { s, a, _, _ := ob.snapshot(); return s == 2 && a == 1 })

	if err := mod.Unplug(); err != nil {
		t.Fatal(err)
	}
	id := sim.DefaultIdentity
	id.IMEI = "866123456789029"
	if err := mod.Replug(id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new module is reset and drained", func() bool { s, a, _, r := ob.snapshot(); return r == 1 && s == 3 && a == 1 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the deferred receive
	starts, active, maxSeen, resets := ob.snapshot()
	if active != 0 || maxSeen != 1 || resets != 1 || !ob.clientSeen {
		t.Fatalf("after Run: %d starts, %d running, at most %d at once, %d resets, client given %t",
			starts, active, maxSeen, resets, ob.clientSeen)
	}
}
