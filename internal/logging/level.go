package logging

import (
	"io"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Level is a log level that can change while the daemon runs (`systemctl reload`): a logger made
// by NewReloadable writes only the events at or above it. Its zero value is trace.
type Level struct{ v atomic.Int32 }

// Set makes lvl the level (as ParseLevel reads it: trace, debug, info, warn, error).
func (l *Level) Set(lvl string) error {
	z, err := ParseLevel(lvl)
	if err != nil {
		return err
	}
	l.v.Store(int32(z))
	return nil
}

// Get returns the level.
func (l *Level) Get() zerolog.Level { return zerolog.Level(l.v.Load()) }

// Sample implements zerolog.Sampler: an event below the level is never built.
func (l *Level) Sample(lvl zerolog.Level) bool { return lvl >= l.Get() }

// NewReloadable is New with a level that Level.Set changes at once, for every logger derived
// from the one returned. The logger's own level is trace (GetLevel says so); the Level decides.
func NewReloadable(w io.Writer, level, format string) (zerolog.Logger, *Level, error) {
	lv := &Level{}
	if level == "" {
		level = "info"
	}
	if err := lv.Set(level); err != nil {
		return zerolog.Nop(), nil, err
	}
	log, err := New(w, "trace", format)
	if err != nil {
		return zerolog.Nop(), nil, err
	}
	return log.Sample(lv), lv, nil
}
