package gpio

import (
	"sync"

	"github.com/rs/zerolog"
)

// Virtual is an LED with no hardware behind it: it keeps its state in memory and logs each change at
// debug level, saying it is virtual. Open returns one when no GPIO line is configured; tests of the
// daemon use it to observe what the LED would do. It is safe for concurrent use.
type Virtual struct {
	log zerolog.Logger

	mu     sync.Mutex
	on     bool
	closed bool
}

var _ LED = (*Virtual)(nil)

// NewVirtual returns a virtual LED in state initial. log receives debug messages only.
func NewVirtual(initial bool, log zerolog.Logger) *Virtual {
	v := &Virtual{log: log.With().Str("led", "virtual").Logger(), on: initial}
	v.log.Debug().Bool("on", initial).Msg("no GPIO line configured: using a virtual LED that only keeps its state")
	return v
}

// Set records the new state and logs it at debug level.
func (v *Virtual) Set(on bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.setLocked(on)
}

// Toggle inverts the state and returns the new one.
func (v *Virtual) Toggle() (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	err := v.setLocked(!v.on)
	return v.on, err
}

func (v *Virtual) setLocked(on bool) error {
	if v.closed {
		return ErrClosed
	}
	v.on = on
	v.log.Debug().Bool("on", on).Msg("virtual LED changed (no GPIO line)")
	return nil
}

// On reports the current state.
func (v *Virtual) On() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.on
}

// Close makes later Set and Toggle calls fail with ErrClosed. It is idempotent.
func (v *Virtual) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	return nil
}

// String returns "virtual (no GPIO)".
func (v *Virtual) String() string { return "virtual (no GPIO)" }
