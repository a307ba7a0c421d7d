package outbox

import "time"

// clock is the committer's time: how long puts have been coming apart and how long a commit
// waits for company. It is the monotonic clock, apart from Config.Now (a wall clock for stored
// times and expiry, which NTP moves by years and tests by days); tests inject a fake one to
// drive the committer deterministically.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the system's monotonic clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
