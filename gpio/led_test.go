package gpio

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{"empty is a virtual LED", Config{}, ""},
		{"virtual with initial on", Config{Initial: true}, ""},
		{"chip and offset", Config{Chip: "gpiochip0", Line: "24"}, ""},
		{"chip and name", Config{Chip: "gpiochip0", Line: "GPIO24"}, ""},
		{"name on any chip", Config{Line: "GPIO24"}, ""},
		{"chip by number", Config{Chip: "0", Line: "0"}, ""},
		{"chip by path", Config{Chip: "/dev/gpiochip4", Line: "7", ActiveLow: true}, ""},
		{"consumer of 31 bytes", Config{Chip: "gpiochip0", Line: "1", Consumer: strings.Repeat("c", 31)}, ""},
		{"chip without line", Config{Chip: "gpiochip0"}, `chip "gpiochip0" is set but line is empty`},
		{"offset without chip", Config{Line: "24"}, "line 24 is an offset, which needs a chip"},
		{"negative offset", Config{Chip: "gpiochip0", Line: "-1"}, "line offset -1 is negative"},
		{"overflowing offset", Config{Chip: "gpiochip0", Line: "99999999999999999999"}, "neither a line offset nor a name"},
		{"sign soup", Config{Chip: "gpiochip0", Line: "+-3"}, "neither a line offset nor a name"},
		{"spaces around line", Config{Chip: "gpiochip0", Line: " 24"}, "leading or trailing spaces"},
		{"spaces around chip", Config{Chip: "gpiochip0 ", Line: "24"}, "leading or trailing spaces"},
		{"consumer too long", Config{Chip: "gpiochip0", Line: "1", Consumer: strings.Repeat("c", 32)}, "is 32 bytes; the kernel keeps at most 31"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
			// Open must refuse it the same way, before touching hardware.
			if _, oerr := Open(tt.cfg, zerolog.Nop()); oerr == nil || oerr.Error() != err.Error() {
				t.Errorf("Open() error = %v, want %v", oerr, err)
			}
		})
	}
}

func TestOpenWithoutChipOrLineIsVirtual(t *testing.T) {
	for _, initial := range []bool{false, true} {
		led, err := Open(Config{Initial: initial}, zerolog.Nop())
		if err != nil {
			t.Fatalf("Open(virtual) = %v", err)
		}
		if _, ok := led.(*Virtual); !ok {
			t.Fatalf("Open(Config{}) returned %T, want *Virtual", led)
		}
		if led.On() != initial {
			t.Errorf("initial %v: On() = %v", initial, led.On())
		}
		if !strings.Contains(led.String(), "virtual") {
			t.Errorf("String() = %q, want it to say virtual", led.String())
		}
	}
}

// logLines decodes zerolog JSON lines.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestVirtualSetToggleCloseAndLogs(t *testing.T) {
	var buf bytes.Buffer
	v := NewVirtual(false, zerolog.New(&buf).Level(zerolog.DebugLevel))

	steps := []struct {
		op   string
		want bool
	}{{"set on", true}, {"set on", true}, {"toggle", false}, {"toggle", true}, {"set off", false}}
	for _, s := range steps {
		var err error
		switch s.op {
		case "set on":
			err = v.Set(true)
		case "set off":
			err = v.Set(false)
		case "toggle":
			var on bool
			on, err = v.Toggle()
			if err == nil && on != s.want {
				t.Errorf("%s: Toggle() returned %v, want %v", s.op, on, s.want)
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", s.op, err)
		}
		if v.On() != s.want {
			t.Fatalf("after %s: On() = %v, want %v", s.op, v.On(), s.want)
		}
	}

	lines := logLines(t, &buf)
	// One line at construction, then one per change request.
	if len(lines) != 1+len(steps) {
		t.Fatalf("got %d log lines, want %d:\n%s", len(lines), 1+len(steps), buf.String())
	}
	wantOn := []bool{false, true, true, false, true, false}
	for i, l := range lines {
		if l["level"] != "debug" {
			t.Errorf("line %d level = %v, want debug (the daemon logs the led event at info)", i, l["level"])
		}
		if l["led"] != "virtual" {
			t.Errorf("line %d led = %v, want virtual", i, l["led"])
		}
		if l["on"] != wantOn[i] {
			t.Errorf("line %d on = %v, want %v", i, l["on"], wantOn[i])
		}
		if _, ok := l["event"]; ok {
			t.Errorf("line %d has an event field; only the daemon logs the led event: %v", i, l)
		}
		if msg, _ := l["message"].(string); !strings.Contains(msg, "virtual") {
			t.Errorf("line %d message %q does not say virtual", i, msg)
		}
	}

	if err := v.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	if err := v.Set(true); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if _, err := v.Toggle(); !errors.Is(err, ErrClosed) {
		t.Errorf("Toggle after Close = %v, want ErrClosed", err)
	}
	if v.On() != false {
		t.Errorf("On() after Close = %v, want the last state false", v.On())
	}
}

func TestVirtualIsQuietAboveDebug(t *testing.T) {
	var buf bytes.Buffer
	v := NewVirtual(true, zerolog.New(&buf).Level(zerolog.InfoLevel))
	if _, err := v.Toggle(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("virtual LED logged at info level or above: %s", buf.String())
	}
}

// toggleConcurrently toggles led n times from each of g goroutines.
func toggleConcurrently(t *testing.T, led LED, g, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := led.Toggle(); err != nil {
					errs <- err
					return
				}
				_ = led.On()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Toggle: %v", err)
	}
}

func TestVirtualConcurrentToggleLosesNothing(t *testing.T) {
	v := NewVirtual(false, zerolog.Nop())
	toggleConcurrently(t, v, 5, 201) // 1005 toggles: odd, so the LED ends on
	if !v.On() {
		t.Errorf("after an odd number of toggles On() = false: a toggle was lost")
	}
}

func TestOpenErrorsWithoutHardware(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		kind      error
		sysErr    error // also matched with errors.Is, when not nil
		wantInMsg []string
	}{
		{
			name:      "chip that does not exist",
			cfg:       Config{Chip: "gpiochip-gatewayd-none", Line: "3"},
			kind:      ErrChipNotFound,
			sysErr:    fs.ErrNotExist,
			wantInMsg: []string{`chip "gpiochip-gatewayd-none" not found`, "/dev/gpiochip-gatewayd-none does not exist"},
		},
		{
			name:      "chip number that does not exist",
			cfg:       Config{Chip: "4242", Line: "3"},
			kind:      ErrChipNotFound,
			wantInMsg: []string{"/dev/gpiochip4242 does not exist"},
		},
		{
			name:      "path that is not a GPIO chip",
			cfg:       Config{Chip: "/dev/null", Line: "3"},
			kind:      ErrChipNotFound,
			wantInMsg: []string{"/dev/null is not a GPIO chip"},
		},
		{
			name:      "line name no chip has",
			cfg:       Config{Line: "GATEWAYD_NO_SUCH_LINE"},
			kind:      ErrLineNotFound,
			wantInMsg: []string{`no line named "GATEWAYD_NO_SUCH_LINE"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			led, err := Open(tt.cfg, zerolog.Nop())
			if err == nil {
				led.Close()
				t.Fatalf("Open(%+v) succeeded, want %v", tt.cfg, tt.kind)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%q, %v) = false", err, tt.kind)
			}
			if tt.sysErr != nil && !errors.Is(err, tt.sysErr) {
				t.Errorf("errors.Is(%q, %v) = false", err, tt.sysErr)
			}
			for _, want := range tt.wantInMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !strings.HasPrefix(err.Error(), "gpio: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
		})
	}
}

func TestOpenResetRefusesWhatCannotWork(t *testing.T) {
	if _, err := OpenReset(Config{}, time.Second, zerolog.Nop()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("OpenReset without a line = %v, want ErrInvalidConfig", err)
	}
	if _, err := OpenReset(Config{Chip: "gpiochip0", Line: "3"}, 0, zerolog.Nop()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("OpenReset with no pulse = %v, want ErrInvalidConfig", err)
	}
}
