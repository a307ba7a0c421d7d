package gpio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// ResetConsumer labels a reset line's request (gpioinfo shows it).
const ResetConsumer = "gatewayd-reset"

// Reset is a module's reset (or power-key) input wired to a GPIO output line, for a module that
// no longer reads AT commands: Pulse asserts the line for a while, then releases it. The line is
// requested released, so opening it never resets the module.
type Reset struct {
	line  LED
	pulse time.Duration
	log   zerolog.Logger
}

// OpenReset requests the line cfg names (Initial and Consumer are ignored: the line starts
// released, labelled ResetConsumer). ActiveLow is for a RESET_N wired straight to the line: the
// reset is asserted by driving it low. pulse is how long Pulse holds it, at least 1 ms.
func OpenReset(cfg Config, pulse time.Duration, log zerolog.Logger) (*Reset, error) {
	if cfg.Virtual() {
		return nil, invalid("a reset line needs a chip and a line: a virtual one could not reset anything")
	}
	if pulse < time.Millisecond {
		return nil, invalid("reset pulse %s is shorter than 1ms", pulse)
	}
	cfg.Initial, cfg.Consumer = false, ResetConsumer
	line, err := Open(cfg, log)
	if err != nil {
		return nil, err
	}
	return &Reset{line: line, pulse: pulse, log: log}, nil
}

// Pulse asserts the line for the configured time and releases it. If ctx ends first the line is
// released at once and ctx's error returned. The line is released whatever happens.
func (r *Reset) Pulse(ctx context.Context) error {
	if err := r.line.Set(true); err != nil {
		return fmt.Errorf("gpio: assert reset: %w", err)
	}
	t := time.NewTimer(r.pulse)
	defer t.Stop()
	var waitErr error
	select {
	case <-t.C:
	case <-ctx.Done():
		waitErr = ctx.Err()
	}
	if err := r.line.Set(false); err != nil {
		return errors.Join(waitErr, fmt.Errorf("gpio: release reset: %w", err))
	}
	return waitErr
}

// Close releases the line's request; the line keeps its (released) level.
func (r *Reset) Close() error { return r.line.Close() }

// String says which line this is and the pulse, for the daemon's start-up log.
func (r *Reset) String() string { return fmt.Sprintf("%s, pulse %s", r.line, r.pulse) }
