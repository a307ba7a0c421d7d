package benchd

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MeasuringLED is a fake LED for the benchmark: it drives no hardware, keeps its state, counts
// toggles and stamps the time of the latest one. It implements supervisor.LED. Any number of
// goroutines may change it; one goroutine at a time may wait on it (WaitToggles).
type MeasuringLED struct {
	mu      sync.Mutex
	on      bool
	toggles uint64
	sets    uint64
	last    time.Time // time of the latest toggle
	want    uint64    // the toggle count the waiter waits for; 0: none waits
	wake    chan struct{}
}

// NewMeasuringLED returns an LED that is off and has seen no change.
func NewMeasuringLED() *MeasuringLED { return &MeasuringLED{wake: make(chan struct{}, 1)} }

// Set sets the state; it is counted apart from toggles.
func (l *MeasuringLED) Set(on bool) error {
	l.mu.Lock()
	l.on = on
	l.sets++
	l.mu.Unlock()
	return nil
}

// Toggle inverts the state, stamps the time and wakes the waiter.
func (l *MeasuringLED) Toggle() (bool, error) {
	now := time.Now()
	l.mu.Lock()
	l.on = !l.on
	l.toggles++
	l.last = now
	on := l.on
	// Wake the waiter only when its count is reached, so that waiting costs the daemon nothing.
	wake := l.want != 0 && l.toggles >= l.want
	if wake {
		l.want = 0
	}
	l.mu.Unlock()
	if wake {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return on, nil
}

// Toggles returns the number of toggles so far and the time of the latest.
func (l *MeasuringLED) Toggles() (n uint64, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.toggles, l.last
}

// Sets returns how many times Set was called.
func (l *MeasuringLED) Sets() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sets
}

// ErrWaitEnded is returned by WaitToggles when ctx ends first.
var ErrWaitEnded = errors.New("benchd: gave up waiting for LED toggles")

// WaitToggles blocks until at least n toggles have happened and returns the count and the time of
// the latest toggle. Only one goroutine may wait at a time.
func (l *MeasuringLED) WaitToggles(ctx context.Context, n uint64) (uint64, time.Time, error) {
	for {
		l.mu.Lock()
		got, last := l.toggles, l.last
		if got >= n {
			l.mu.Unlock()
			return got, last, nil
		}
		l.want = n
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-ctx.Done():
			return got, last, errors.Join(ErrWaitEnded, ctx.Err())
		}
	}
}
