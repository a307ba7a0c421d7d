package gpio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// LED is an on/off indicator. Implementations own their state and are safe for concurrent use.
type LED interface {
	// Set turns the LED on or off. It does not block: a GPIO write is one ioctl.
	Set(on bool) error
	// Toggle inverts the LED and returns its new state.
	Toggle() (on bool, err error)
	// On reports the state last set (or the initial state). It stays valid after Close.
	On() bool
	// Close releases the LED's line; the line keeps the level it had. Later Set and Toggle calls fail
	// with ErrClosed. Close is idempotent.
	Close() error
	// String says which LED this is, e.g. `gpiochip0 line 24 ("GPIO24"), active-low` or
	// `virtual (no GPIO)`, for the daemon's startup log.
	String() string
}

// DefaultConsumer is the consumer label a requested line carries when Config.Consumer is empty;
// gpioinfo shows it as the line's user.
const DefaultConsumer = "gatewayd"

// maxConsumer is the longest consumer label the kernel keeps (GPIO_MAX_NAME_SIZE is 32 with the NUL).
const maxConsumer = 31

// Config says which GPIO line the LED is on.
//
// Chip and Line both empty means no LED is wired: Open returns a virtual LED. Chip empty and Line a
// name means the line is searched for on every chip.
type Config struct {
	// Chip is the GPIO chip: its name ("gpiochip0"), device path ("/dev/gpiochip0"), number ("0") or
	// label ("pinctrl-rp1", as gpiodetect shows it; a label survives chip renumbering across kernels).
	Chip string
	// Line is the line's offset on the chip ("24") or its name ("GPIO24", as gpioinfo shows it). A
	// line given by offset needs Chip.
	Line string
	// ActiveLow is for an LED wired so that it lights when the line is low: the LED's on drives the
	// line low.
	ActiveLow bool
	// Consumer labels the requested line (gpioinfo shows it); empty means DefaultConsumer. At most 31
	// bytes.
	Consumer string
	// Initial is the LED's state as the line is requested (set atomically with the request, so the
	// LED never glitches to the other state).
	Initial bool
}

// Virtual reports whether cfg configures no GPIO line at all, so that Open returns a virtual LED.
func (cfg Config) Virtual() bool { return cfg.Chip == "" && cfg.Line == "" }

// Validate checks cfg without touching any hardware. Its errors wrap ErrInvalidConfig.
func (cfg Config) Validate() error {
	if cfg.Virtual() {
		return nil
	}
	if cfg.Line == "" {
		return invalid("chip %q is set but line is empty: give the LED's line offset or name", cfg.Chip)
	}
	if strings.TrimSpace(cfg.Line) != cfg.Line {
		return invalid("line %q has leading or trailing spaces", cfg.Line)
	}
	if strings.TrimSpace(cfg.Chip) != cfg.Chip {
		return invalid("chip %q has leading or trailing spaces", cfg.Chip)
	}
	if off, isOffset, err := parseOffset(cfg.Line); err != nil {
		return err
	} else if isOffset && cfg.Chip == "" {
		return invalid("line %d is an offset, which needs a chip: set chip (e.g. gpiochip0) or give the line's name", off)
	}
	if len(cfg.Consumer) > maxConsumer {
		return invalid("consumer %q is %d bytes; the kernel keeps at most %d", cfg.Consumer, len(cfg.Consumer), maxConsumer)
	}
	return nil
}

// parseOffset tells a line offset ("24") from a line name ("GPIO24"). A negative or out-of-int
// number is an error rather than a name.
func parseOffset(line string) (offset int, isOffset bool, err error) {
	if line == "" || strings.TrimLeft(line, "+-0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(line)
	if err != nil {
		return 0, false, invalid("line %q is neither a line offset nor a name", line)
	}
	if n < 0 {
		return 0, false, invalid("line offset %d is negative", n)
	}
	return n, true, nil
}

// Open returns the LED cfg describes: a virtual LED when cfg.Virtual(), else the line requested as an
// output at cfg.Initial. log receives debug messages only (see the package comment).
func Open(cfg Config, log zerolog.Logger) (LED, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Virtual() {
		return NewVirtual(cfg.Initial, log), nil
	}
	return openLine(cfg, log)
}

// Kinds of failure; test with errors.Is. The error text says what and where.
var (
	// ErrInvalidConfig: the Config itself is wrong (see Config.Validate).
	ErrInvalidConfig = errors.New("invalid LED config")
	// ErrChipNotFound: no GPIO chip has the configured name, path, number or label, or the path is
	// not a GPIO chip.
	ErrChipNotFound = errors.New("GPIO chip not found")
	// ErrLineNotFound: the chip has no line with that offset or name (or, without a chip, no chip has
	// a line with that name).
	ErrLineNotFound = errors.New("GPIO line not found")
	// ErrLineBusy: another request (this or another process, or a kernel driver) holds the line.
	ErrLineBusy = errors.New("GPIO line busy")
	// ErrPermission: the chip's device node may not be opened by this user.
	ErrPermission = errors.New("GPIO permission denied")
	// ErrClosed: the LED was closed.
	ErrClosed = errors.New("LED closed")
)

// gpioError is an error with a full message that matches a kind (an Err... above) and, where there
// is one, the underlying system error.
type gpioError struct {
	msg  string
	kind error
	err  error
}

func (e *gpioError) Error() string { return e.msg }

func (e *gpioError) Unwrap() []error {
	if e.err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}

func newError(kind, err error, format string, args ...any) error {
	return &gpioError{msg: "gpio: " + fmt.Sprintf(format, args...), kind: kind, err: err}
}

func invalid(format string, args ...any) error {
	return newError(ErrInvalidConfig, nil, "led config: "+format, args...)
}
