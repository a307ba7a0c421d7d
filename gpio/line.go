package gpio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/warthog618/go-gpiocdev"
)

// lineLED is an LED on a GPIO output line held through a gpiocdev line request.
type lineLED struct {
	desc string

	mu     sync.Mutex
	line   *gpiocdev.Line // the request; gpiocdev applies active-low, so values here are logical
	on     bool
	closed bool
}

var _ LED = (*lineLED)(nil)

func (l *lineLED) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.setLocked(on)
}

func (l *lineLED) Toggle() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.setLocked(!l.on)
	return l.on, err
}

func (l *lineLED) setLocked(on bool) error {
	if l.closed {
		return ErrClosed
	}
	if err := l.line.SetValue(boolToInt(on)); err != nil {
		return fmt.Errorf("gpio: set LED on %s to %s: %w", l.desc, onOff(on), err)
	}
	l.on = on
	return nil
}

func (l *lineLED) On() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on
}

func (l *lineLED) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.line.Close(); err != nil {
		return fmt.Errorf("gpio: release %s: %w", l.desc, err)
	}
	return nil
}

func (l *lineLED) String() string { return l.desc }

// openLine finds the chip and offset cfg names and requests the line as an output.
func openLine(cfg Config, log zerolog.Logger) (LED, error) {
	consumer := cfg.Consumer
	if consumer == "" {
		consumer = DefaultConsumer
	}
	offset, isOffset, err := parseOffset(cfg.Line)
	if err != nil {
		return nil, err
	}
	var chip *gpiocdev.Chip
	if cfg.Chip == "" {
		chip, offset, err = findLineOnAnyChip(cfg.Line)
		if err != nil {
			return nil, err
		}
	} else {
		chip, err = openChip(cfg.Chip)
		if err != nil {
			return nil, err
		}
		if isOffset {
			if offset >= chip.Lines() {
				chip.Close()
				return nil, newError(ErrLineNotFound, nil, "line %d is out of range: %s [%s] has %d lines (0-%d)",
					offset, chip.Name, chip.Label, chip.Lines(), chip.Lines()-1)
			}
		} else if offset, err = chip.FindLine(cfg.Line); err != nil {
			chip.Close()
			return nil, newError(ErrLineNotFound, err, "no line named %q on %s [%s] (%d lines; `gpioinfo %s` lists their names)",
				cfg.Line, chip.Name, chip.Label, chip.Lines(), chip.Name)
		}
	}
	defer chip.Close() // the request lives on without the chip's file

	where := "line " + strconv.Itoa(offset)
	if info, err := chip.LineInfo(offset); err == nil && info.Name != "" {
		where += fmt.Sprintf(" (%q)", info.Name)
	}
	where += " on " + chip.Name

	opts := []gpiocdev.LineReqOption{gpiocdev.AsOutput(boolToInt(cfg.Initial)), gpiocdev.WithConsumer(consumer)}
	if cfg.ActiveLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	line, err := chip.RequestLine(offset, opts...)
	if err != nil {
		return nil, requestError(chip, offset, where, err)
	}
	desc := where
	if cfg.ActiveLow {
		desc += ", active-low"
	}
	log.Debug().Str("chip", chip.Name).Str("chip_label", chip.Label).Int("offset", offset).
		Bool("active_low", cfg.ActiveLow).Str("consumer", consumer).Bool("on", cfg.Initial).
		Msg("requested the LED's GPIO line as an output")
	return &lineLED{desc: desc, line: line, on: cfg.Initial}, nil
}

// requestError explains why the kernel refused the line request.
func requestError(chip *gpiocdev.Chip, offset int, where string, err error) error {
	switch {
	case errors.Is(err, syscall.EBUSY):
		holder := "another process or a kernel driver"
		if info, ierr := chip.LineInfo(offset); ierr == nil && info.Consumer != "" {
			holder = strconv.Quote(info.Consumer)
		}
		return newError(ErrLineBusy, err, "%s is busy (held by %s): %v", where, holder, err)
	case errors.Is(err, fs.ErrPermission):
		return permissionError("/dev/"+chip.Name, err, "request "+where)
	default:
		return fmt.Errorf("gpio: request %s as an output: %w", where, err)
	}
}

// chipPath maps a chip spec that is a path, a number or a name to its device path.
func chipPath(spec string) string {
	switch {
	case strings.HasPrefix(spec, "/"):
		return spec
	case strings.Trim(spec, "0123456789") == "":
		return "/dev/gpiochip" + spec
	default:
		return "/dev/" + spec
	}
}

// openChip opens the chip spec names: a path, a number, a name under /dev or, failing those, a label.
func openChip(spec string) (*gpiocdev.Chip, error) {
	path := chipPath(spec)
	c, err := gpiocdev.NewChip(path)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(spec, "/") {
		if c, lerr := chipByLabel(spec); c != nil || lerr != nil {
			return c, lerr
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, newError(ErrChipNotFound, err, "chip %q not found: %s does not exist and no chip has that label (%s)",
			spec, path, describeChips())
	case errors.Is(err, gpiocdev.ErrNotCharacterDevice):
		return nil, newError(ErrChipNotFound, err, "%s is not a GPIO chip (%s)", path, describeChips())
	case errors.Is(err, fs.ErrPermission):
		return nil, permissionError(path, err, "open chip")
	default:
		return nil, newError(ErrChipNotFound, err, "open chip %s: %v", path, err)
	}
}

// chipByLabel returns the chip whose label is label; nil and nil when none has it. It reports a
// permission error when some chip could not be opened and none matched.
func chipByLabel(label string) (*gpiocdev.Chip, error) {
	var denied error
	for _, name := range gpiocdev.Chips() {
		c, err := gpiocdev.NewChip(name)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) && denied == nil {
				denied = permissionError("/dev/"+name, err, fmt.Sprintf("look for a chip labelled %q", label))
			}
			continue
		}
		if c.Label == label {
			return c, nil
		}
		c.Close()
	}
	return nil, denied
}

// findLineOnAnyChip searches every chip for the named line; the first match (lowest chip, lowest
// offset) wins, as with gpiocdev.FindLine, but a chip that cannot be opened is reported, not skipped.
func findLineOnAnyChip(name string) (*gpiocdev.Chip, int, error) {
	chips := gpiocdev.Chips()
	if len(chips) == 0 {
		return nil, 0, newError(ErrLineNotFound, gpiocdev.ErrNotFound,
			"no line named %q: this machine has no GPIO chips (/dev/gpiochip*)", name)
	}
	var denied error
	for _, chipName := range chips {
		c, err := gpiocdev.NewChip(chipName)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) && denied == nil {
				denied = permissionError("/dev/"+chipName, err, fmt.Sprintf("search for line %q", name))
			}
			continue
		}
		if offset, err := c.FindLine(name); err == nil {
			return c, offset, nil
		}
		c.Close()
	}
	if denied != nil {
		return nil, 0, denied
	}
	return nil, 0, newError(ErrLineNotFound, gpiocdev.ErrNotFound, "no line named %q on any GPIO chip (searched %s)",
		name, strings.Join(chips, ", "))
}

// describeChips lists the chips with their labels, e.g. "chips: gpiochip0 [pinctrl-rp1]".
func describeChips() string {
	chips := gpiocdev.Chips()
	if len(chips) == 0 {
		return "this machine has no GPIO chips: /dev/gpiochip* is empty"
	}
	parts := make([]string, 0, len(chips))
	for _, name := range chips {
		if c, err := gpiocdev.NewChip(name); err == nil {
			parts = append(parts, fmt.Sprintf("%s [%s]", name, c.Label))
			c.Close()
		} else {
			parts = append(parts, name)
		}
	}
	return "chips: " + strings.Join(parts, ", ")
}

// permissionError explains a refused open of a chip's device node and what grants access.
func permissionError(path string, err error, doing string) error {
	owner, group, mode := "?", "", "?"
	groupRW := false
	if fi, serr := os.Stat(path); serr == nil {
		mode = fmt.Sprintf("%04o", uint32(fi.Mode().Perm()))
		groupRW = fi.Mode().Perm()&0o060 == 0o060
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = lookupUser(st.Uid)
			group = lookupGroup(st.Gid)
		}
	}
	var hint string
	if groupRW && group != "" && group != "root" {
		hint = fmt.Sprintf("run gatewayd as a member of group %q (systemd: SupplementaryGroups=%s; a login user: usermod -aG %s USER)",
			group, group, group)
	} else {
		hint = `give the chips to a group with a udev rule such as SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660" ` +
			`and run gatewayd as a member of that group (systemd: SupplementaryGroups=gpio)`
	}
	if group == "" {
		group = "?"
	}
	return newError(ErrPermission, err, "%s: permission denied opening %s (owner %s, group %s, mode %s): %s",
		doing, path, owner, group, mode, hint)
}

func lookupUser(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func lookupGroup(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
