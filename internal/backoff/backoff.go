// Package backoff computes capped exponential retry delays with full jitter, so that no retry
// loop in gatewayd can spin and a fleet of gateways does not retry in lock-step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes a capped exponential back-off. The zero value is not useful; use Default or
// fill every field.
type Policy struct {
	Initial time.Duration // delay before the first retry (before jitter)
	Max     time.Duration // cap on any one delay
	Factor  float64       // growth per attempt, e.g. 2
	// Jitter is the fraction of each delay that is randomised: 0 gives fixed delays, 0.5 gives a
	// delay uniformly spread over [d/2, d], 1 ("full jitter") over [0, d].
	Jitter float64
}

// Default is the policy gatewayd uses for reconnects: 1 s, doubling, capped at 2 minutes, half jitter.
var Default = Policy{Initial: time.Second, Max: 2 * time.Minute, Factor: 2, Jitter: 0.5}

// Reconnect is the policy for reconnecting to a broker that closed a session which had lasted:
// full jitter over a window of 5 s that doubles with every failed attempt, capped at 30 s.
// A broker restart closes every gateway's session in the same second; drawing each delay
// uniformly from [0, window] (rather than [window/2, window]) spreads their CONNECTs evenly over
// the whole window, and a lone gateway still reconnects within 5 s. The cap bounds how long the
// last gateway of a fleet waits once the broker is back (at most 30 s), at the price of the
// broker seeing at least fleet/30 s CONNECTs a second while it refuses them.
var Reconnect = Policy{Initial: 5 * time.Second, Max: 30 * time.Second, Factor: 2, Jitter: 1}

// Backoff tracks the attempts of one retry loop. It is not safe for concurrent use: each loop owns one.
type Backoff struct {
	p       Policy
	attempt int
	rnd     func() float64
}

// New returns a Backoff following p.
func New(p Policy) *Backoff {
	return &Backoff{p: p, rnd: rand.Float64}
}

// NewWithRand returns a Backoff following p whose jitter comes from rnd, which returns numbers
// in [0, 1): a seeded source makes a sequence of delays reproducible in tests.
func NewWithRand(p Policy, rnd func() float64) *Backoff {
	return &Backoff{p: p, rnd: rnd}
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := float64(b.p.Initial)
	for i := 0; i < b.attempt && d < float64(b.p.Max); i++ {
		d *= b.p.Factor
	}
	if d > float64(b.p.Max) {
		d = float64(b.p.Max)
	}
	b.attempt++
	d -= d * b.p.Jitter * b.rnd()
	if d < float64(time.Millisecond) {
		d = float64(time.Millisecond)
	}
	return time.Duration(d)
}

// Attempts reports how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts the sequence again, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for the next delay, or until ctx ends, in which case it returns ctx.Err().
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
