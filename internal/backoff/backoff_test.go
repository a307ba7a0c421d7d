package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextGrowsAndIsCapped(t *testing.T) {
	b := New(Policy{Initial: time.Second, Max: 10 * time.Second, Factor: 2})
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i, w := range want {
		if got := b.Next(); got != w*time.Second {
			t.Fatalf("attempt %d: got %v, want %v", i, got, w*time.Second)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Fatalf("after Reset: got %v, want 1s", got)
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	b := New(Policy{Initial: 8 * time.Second, Max: 8 * time.Second, Factor: 2, Jitter: 0.5})
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.Next()
		if d < 4*time.Second || d > 8*time.Second {
			t.Fatalf("delay %v outside [4s, 8s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("jitter produced only %d distinct delays out of 200", len(seen))
	}
}

func TestNeverBelowOneMillisecond(t *testing.T) {
	b := New(Policy{Initial: 0, Max: 0, Factor: 2, Jitter: 1})
	for range 10 {
		if d := b.Next(); d < time.Millisecond {
			t.Fatalf("delay %v would let a loop spin", d)
		}
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	b := New(Policy{Initial: time.Hour, Max: time.Hour, Factor: 2})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait on a cancelled context: got %v, want context.Canceled", err)
	}
}
