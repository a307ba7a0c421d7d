package gpio

// Tests against a real kernel GPIO chip: the gpio-sim driver. They skip when no gpio-sim chip is
// present; scripts/gpio-sim-vm.sh runs them in a qemu VM whose /init creates one and describes it in
// GPIOSIM_* environment variables (see scripts/gpiosim/init.sh). Without those variables the tests
// look for a live gpio-sim device under /sys/kernel/config/gpio-sim themselves.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/warthog618/go-gpiocdev"
)

const skipNoSim = "no gpio-sim chip: run these tests in a VM with `bash scripts/gpio-sim-vm.sh` " +
	"(or load gpio-sim and create a live chip with a named line under /sys/kernel/config/gpio-sim)"

// simChip is a gpio-sim bank: one gpiochip.
type simChip struct {
	chip  string         // gpiochipN
	sysfs string         // /sys/devices/platform/<dev_name>/<chip>
	label string         // the chip label
	lines int            // number of lines
	names map[string]int // line name -> offset
}

// simSetup is the gpio-sim device the tests use: main holds a named line (the LED), other, when
// there is one, is a second chip with a named line that main lacks.
type simSetup struct {
	main      simChip
	led       string // name of a line on main
	other     *simChip
	onlyOther string // name of a line on other only
}

func findSim(t *testing.T) simSetup {
	t.Helper()
	if os.Getenv("GPIOSIM_CHIP") != "" {
		return simFromEnv(t)
	}
	s, ok := simFromConfigfs(t)
	if !ok {
		t.Skip(skipNoSim)
	}
	return s
}

// simFromEnv reads the variables scripts/gpiosim/init.sh exports. A variable that is set but wrong
// fails the test: inside the VM a broken setup must never look like a skip.
func simFromEnv(t *testing.T) simSetup {
	t.Helper()
	env := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("GPIOSIM_CHIP is set but %s is not", k)
		}
		return v
	}
	atoi := func(k string) int {
		n, err := strconv.Atoi(env(k))
		if err != nil {
			t.Fatalf("%s=%q: %v", k, os.Getenv(k), err)
		}
		return n
	}
	s := simSetup{
		main: simChip{
			chip: env("GPIOSIM_CHIP"), sysfs: env("GPIOSIM_SYSFS"), label: env("GPIOSIM_LABEL"),
			lines: atoi("GPIOSIM_NUM_LINES"),
			names: map[string]int{
				env("GPIOSIM_LED_NAME"):     atoi("GPIOSIM_LED_OFFSET"),
				env("GPIOSIM_LED_LOW_NAME"): atoi("GPIOSIM_LED_LOW_OFFSET"),
			},
		},
		led: env("GPIOSIM_LED_NAME"),
	}
	if os.Getenv("GPIOSIM_CHIP2") != "" {
		s.other = &simChip{
			chip: env("GPIOSIM_CHIP2"), sysfs: env("GPIOSIM_SYSFS2"), label: env("GPIOSIM_LABEL2"),
			lines: atoi("GPIOSIM_NUM_LINES2"),
			names: map[string]int{env("GPIOSIM_STATUS_NAME"): atoi("GPIOSIM_STATUS_OFFSET")},
		}
		s.onlyOther = env("GPIOSIM_STATUS_NAME")
	}
	for _, c := range []*simChip{&s.main, s.other} {
		if c == nil {
			continue
		}
		if fi, err := os.Stat("/dev/" + c.chip); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
			t.Fatalf("GPIOSIM says chip %s, but /dev/%s is not a character device (%v)", c.chip, c.chip, err)
		}
		if _, err := os.Stat(c.sysfs); err != nil {
			t.Fatalf("GPIOSIM says sysfs %s: %v", c.sysfs, err)
		}
	}
	return s
}

// simFromConfigfs finds a live gpio-sim device with a named line.
func simFromConfigfs(t *testing.T) (simSetup, bool) {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	devs, _ := filepath.Glob("/sys/kernel/config/gpio-sim/*")
	for _, dev := range devs {
		if read(filepath.Join(dev, "live")) != "1" {
			continue
		}
		devName := read(filepath.Join(dev, "dev_name"))
		banks, _ := filepath.Glob(filepath.Join(dev, "bank*"))
		sort.Strings(banks)
		var chips []simChip
		for _, bank := range banks {
			c := simChip{chip: read(filepath.Join(bank, "chip_name")), label: read(filepath.Join(bank, "label")),
				names: map[string]int{}}
			c.sysfs = filepath.Join("/sys/devices/platform", devName, c.chip)
			c.lines, _ = strconv.Atoi(read(filepath.Join(bank, "num_lines")))
			lines, _ := filepath.Glob(filepath.Join(bank, "line*"))
			for _, l := range lines {
				off, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "line"))
				if name := read(filepath.Join(l, "name")); err == nil && name != "" {
					c.names[name] = off
				}
			}
			if c.chip != "" && c.lines >= 2 {
				chips = append(chips, c)
			}
		}
		for i, c := range chips {
			if len(c.names) == 0 {
				continue
			}
			s := simSetup{main: c}
			for n := range c.names {
				s.led = n
				break
			}
			for j := range chips {
				if j == i {
					continue
				}
				for n := range chips[j].names {
					if _, onMain := c.names[n]; !onMain {
						other := chips[j]
						s.other, s.onlyOther = &other, n
					}
				}
			}
			return s, true
		}
	}
	return simSetup{}, false
}

// TestSimConfigfsScanFindsWhatTheEnvSays checks the discovery used without the VM's variables
// against the variables themselves.
func TestSimConfigfsScanFindsWhatTheEnvSays(t *testing.T) {
	if os.Getenv("GPIOSIM_CHIP") == "" {
		t.Skip("needs the GPIOSIM_* variables: " + skipNoSim)
	}
	want := simFromEnv(t)
	got, ok := simFromConfigfs(t)
	if !ok {
		t.Fatal("no live gpio-sim device with a named line found under /sys/kernel/config/gpio-sim")
	}
	if got.main.chip != want.main.chip || got.main.sysfs != want.main.sysfs || got.main.label != want.main.label ||
		got.main.lines != want.main.lines || fmt.Sprint(got.main.names) != fmt.Sprint(want.main.names) {
		t.Errorf("scan found main chip %+v, the env says %+v", got.main, want.main)
	}
	if _, ok := got.main.names[got.led]; !ok {
		t.Errorf("scan chose LED line %q, which is not on %s", got.led, got.main.chip)
	}
	if got.other == nil || want.other == nil || got.other.chip != want.other.chip || got.onlyOther != want.onlyOther {
		t.Errorf("scan found other chip %+v (line %q), the env says %+v (line %q)", got.other, got.onlyOther, want.other, want.onlyOther)
	}
}

// sysfsValue reads the physical level gpio-sim shows for a line.
func sysfsValue(t *testing.T, c simChip, offset int) int {
	t.Helper()
	p := fmt.Sprintf("%s/sim_gpio%d/value", c.sysfs, offset)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s holds %q: %v", p, b, err)
	}
	return v
}

// lineInfo reads the kernel's view of a line through a fresh chip handle (possible while the line is
// held: it is the line request, not the chip, that is exclusive).
func lineInfo(t *testing.T, chip string, offset int) gpiocdev.LineInfo {
	t.Helper()
	c, err := gpiocdev.NewChip(chip)
	if err != nil {
		t.Fatalf("open %s: %v", chip, err)
	}
	defer c.Close()
	info, err := c.LineInfo(offset)
	if err != nil {
		t.Fatalf("line info %s/%d: %v", chip, offset, err)
	}
	return info
}

// checkLevel asserts the LED state through all three views: the LED's own state, the value read
// through the held request (logical, after active-low), and gpio-sim's physical level in sysfs.
func checkLevel(t *testing.T, led LED, c simChip, offset int, activeLow, wantOn bool) {
	t.Helper()
	if led.On() != wantOn {
		t.Errorf("On() = %v, want %v", led.On(), wantOn)
	}
	l := led.(*lineLED)
	v, err := l.line.Value()
	if err != nil {
		t.Fatalf("value through the held request: %v", err)
	}
	if v != boolToInt(wantOn) {
		t.Errorf("value through the held request = %d, want %d (logical)", v, boolToInt(wantOn))
	}
	wantPhys := boolToInt(wantOn != activeLow)
	if got := sysfsValue(t, c, offset); got != wantPhys {
		t.Errorf("gpio-sim physical level of line %d = %d, want %d (on=%v active-low=%v)", offset, got, wantPhys, wantOn, activeLow)
	}
}

func openT(t *testing.T, cfg Config) LED {
	t.Helper()
	led, err := Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { led.Close() })
	return led
}

func TestSimLineByOffsetSetToggleActiveLow(t *testing.T) {
	s := findSim(t)
	offset := s.main.names[s.led]
	for _, activeLow := range []bool{false, true} {
		for _, initial := range []bool{false, true} {
			t.Run(fmt.Sprintf("active-low=%v/initial=%v", activeLow, initial), func(t *testing.T) {
				led := openT(t, Config{Chip: s.main.chip, Line: strconv.Itoa(offset), ActiveLow: activeLow,
					Initial: initial, Consumer: "gatewayd-test"})
				checkLevel(t, led, s.main, offset, activeLow, initial)

				info := lineInfo(t, s.main.chip, offset)
				if !info.Used || info.Consumer != "gatewayd-test" || info.Config.Direction != gpiocdev.LineDirectionOutput ||
					info.Config.ActiveLow != activeLow {
					t.Errorf("kernel line info = %+v, want used by gatewayd-test as an output, active-low %v", info, activeLow)
				}
				if want := fmt.Sprintf("line %d (%q) on %s", offset, s.led, s.main.chip); !strings.HasPrefix(led.String(), want) {
					t.Errorf("String() = %q, want prefix %q", led.String(), want)
				}
				if activeLow != strings.HasSuffix(led.String(), ", active-low") {
					t.Errorf("String() = %q does not say active-low=%v", led.String(), activeLow)
				}

				for _, on := range []bool{true, false, false, true} {
					if err := led.Set(on); err != nil {
						t.Fatalf("Set(%v): %v", on, err)
					}
					checkLevel(t, led, s.main, offset, activeLow, on)
				}
				want := true
				for range 3 {
					want = !want
					got, err := led.Toggle()
					if err != nil {
						t.Fatalf("Toggle: %v", err)
					}
					if got != want {
						t.Errorf("Toggle() = %v, want %v", got, want)
					}
					checkLevel(t, led, s.main, offset, activeLow, want)
				}
			})
		}
	}
}

func TestSimLineByName(t *testing.T) {
	s := findSim(t)
	for name, offset := range s.main.names {
		t.Run(name, func(t *testing.T) {
			led := openT(t, Config{Chip: s.main.chip, Line: name})
			if got := led.(*lineLED).line.Offset(); got != offset {
				t.Fatalf("line %q resolved to offset %d, want %d", name, got, offset)
			}
			if info := lineInfo(t, s.main.chip, offset); info.Consumer != DefaultConsumer {
				t.Errorf("consumer = %q, want the default %q", info.Consumer, DefaultConsumer)
			}
			checkLevel(t, led, s.main, offset, false, false)
			if _, err := led.Toggle(); err != nil {
				t.Fatal(err)
			}
			checkLevel(t, led, s.main, offset, false, true)
		})
	}
}

func TestSimChipByPathNumberAndLabel(t *testing.T) {
	s := findSim(t)
	offset := s.main.names[s.led]
	specs := []string{s.main.chip, "/dev/" + s.main.chip, strings.TrimPrefix(s.main.chip, "gpiochip"), s.main.label}
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			led := openT(t, Config{Chip: spec, Line: s.led, Initial: true})
			if got := led.(*lineLED).line.Chip(); got != s.main.chip {
				t.Errorf("chip %q resolved to %s, want %s", spec, got, s.main.chip)
			}
			checkLevel(t, led, s.main, offset, false, true)
		})
	}
}

func TestSimLineNameSearchesEveryChip(t *testing.T) {
	s := findSim(t)
	if s.other == nil {
		t.Skip("needs a second gpio-sim chip with a named line the first lacks: " + skipNoSim)
	}
	offset := s.other.names[s.onlyOther]
	led := openT(t, Config{Line: s.onlyOther, ActiveLow: true})
	if l := led.(*lineLED).line; l.Chip() != s.other.chip || l.Offset() != offset {
		t.Fatalf("line %q found at %s/%d, want %s/%d", s.onlyOther, l.Chip(), l.Offset(), s.other.chip, offset)
	}
	checkLevel(t, led, *s.other, offset, true, false)
	if err := led.Set(true); err != nil {
		t.Fatal(err)
	}
	checkLevel(t, led, *s.other, offset, true, true)

	// Only on the other chip: asking the main chip for it fails, naming the chip.
	_, err := Open(Config{Chip: s.main.chip, Line: s.onlyOther}, zerolog.Nop())
	if !errors.Is(err, ErrLineNotFound) {
		t.Fatalf("Open on %s = %v, want ErrLineNotFound", s.main.chip, err)
	}
	want := fmt.Sprintf("no line named %q on %s [%s]", s.onlyOther, s.main.chip, s.main.label)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestSimSecondRequestIsBusyAndCloseReleases(t *testing.T) {
	s := findSim(t)
	offset := s.main.names[s.led]
	cfg := Config{Chip: s.main.chip, Line: strconv.Itoa(offset), Consumer: "gatewayd-first"}
	first, err := Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	for _, line := range []string{strconv.Itoa(offset), s.led} {
		second, err := Open(Config{Chip: s.main.chip, Line: line, Consumer: "gatewayd-second"}, zerolog.Nop())
		if err == nil {
			second.Close()
			t.Fatalf("second request of held line %s succeeded", line)
		}
		if !errors.Is(err, ErrLineBusy) || !errors.Is(err, syscall.EBUSY) {
			t.Errorf("second request: errors.Is ErrLineBusy=%v EBUSY=%v, want both: %v",
				errors.Is(err, ErrLineBusy), errors.Is(err, syscall.EBUSY), err)
		}
		want := fmt.Sprintf("line %d (%q) on %s is busy (held by \"gatewayd-first\")", offset, s.led, s.main.chip)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// The failed requests left the held line alone.
	if err := first.Set(true); err != nil {
		t.Fatal(err)
	}
	checkLevel(t, first, s.main, offset, false, true)

	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	if err := first.Set(false); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if info := lineInfo(t, s.main.chip, offset); info.Used {
		t.Errorf("after Close the kernel still shows the line used by %q", info.Consumer)
	}
	again := openT(t, Config{Chip: s.main.chip, Line: s.led, Consumer: "gatewayd-again"})
	if info := lineInfo(t, s.main.chip, offset); !info.Used || info.Consumer != "gatewayd-again" {
		t.Errorf("after re-request line info = %+v, want used by gatewayd-again", info)
	}
	checkLevel(t, again, s.main, offset, false, false)
}

func TestSimOpenErrors(t *testing.T) {
	s := findSim(t)
	tests := []struct {
		name string
		cfg  Config
		kind error
		want string
	}{
		{"offset out of range", Config{Chip: s.main.chip, Line: strconv.Itoa(s.main.lines)}, ErrLineNotFound,
			fmt.Sprintf("line %d is out of range: %s [%s] has %d lines (0-%d)", s.main.lines, s.main.chip, s.main.label, s.main.lines, s.main.lines-1)},
		{"name not on chip", Config{Chip: s.main.chip, Line: "GATEWAYD_NO_SUCH_LINE"}, ErrLineNotFound,
			fmt.Sprintf(`no line named "GATEWAYD_NO_SUCH_LINE" on %s [%s]`, s.main.chip, s.main.label)},
		{"name on no chip", Config{Line: "GATEWAYD_NO_SUCH_LINE"}, ErrLineNotFound,
			`no line named "GATEWAYD_NO_SUCH_LINE" on any GPIO chip (searched ` + s.main.chip},
		{"chip not found lists the chips", Config{Chip: "gpiochip999", Line: "0"}, ErrChipNotFound,
			fmt.Sprintf("%s [%s]", s.main.chip, s.main.label)},
		{"label not found", Config{Chip: "no-such-label", Line: "0"}, ErrChipNotFound,
			`chip "no-such-label" not found: /dev/no-such-label does not exist and no chip has that label`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			led, err := Open(tt.cfg, zerolog.Nop())
			if err == nil {
				led.Close()
				t.Fatalf("Open(%+v) succeeded", tt.cfg)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%q, %v) = false", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestSimConcurrentTogglesLoseNothing(t *testing.T) {
	s := findSim(t)
	offset := s.main.names[s.led]
	led := openT(t, Config{Chip: s.main.chip, Line: s.led, ActiveLow: true})
	toggleConcurrently(t, led, 5, 21) // 105 toggles: odd, so the LED ends on
	checkLevel(t, led, s.main, offset, true, true)
}

// Permission denied is tested for real: the test binary re-runs itself as user nobody, which may not
// open the root-only chip device that devtmpfs creates.
const permChildEnv = "GATEWAYD_GPIO_TEST_PERMISSION_CHILD"

func TestMain(m *testing.M) {
	if chip := os.Getenv(permChildEnv); chip != "" {
		os.Exit(permissionChild(chip))
	}
	os.Exit(m.Run())
}

// permissionChild opens the chip as the (unprivileged) child and reports what happened: exit 0 only
// for a permission error with the expected kinds.
func permissionChild(chip string) int {
	led, err := Open(Config{Chip: chip, Line: "0"}, zerolog.Nop())
	if err == nil {
		led.Close()
		fmt.Println("child: Open succeeded as uid", os.Getuid())
		return 2
	}
	fmt.Println("child error:", err)
	if !errors.Is(err, ErrPermission) || !errors.Is(err, fs.ErrPermission) {
		return 1
	}
	return 0
}

func TestSimPermissionDeniedSaysWhatToDo(t *testing.T) {
	s := findSim(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as user nobody (the VM runs tests as root)")
	}
	fi, err := os.Stat("/dev/" + s.main.chip)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o006 != 0 {
		t.Skipf("/dev/%s is accessible to everyone (mode %v): no permission error to provoke", s.main.chip, fi.Mode())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), permChildEnv+"="+s.main.chip)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
	out, err := cmd.CombinedOutput()
	t.Logf("child (uid 65534): %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("child did not get a permission error with ErrPermission and fs.ErrPermission: %v", err)
	}
	for _, want := range []string{
		"permission denied opening /dev/" + s.main.chip,
		"mode 0600",
		`udev rule such as SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"`,
		"SupplementaryGroups=gpio",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child's error does not contain %q", want)
		}
	}
}

// TestSimResetPulse: a reset line opens released (opening never resets the module), Pulse drives
// it asserted for about the pulse and releases it, with active-low inverting the physical level;
// a cancelled Pulse still releases the line.
func TestSimResetPulse(t *testing.T) {
	s := findSim(t)
	offset := s.main.names[s.led]
	for _, activeLow := range []bool{false, true} {
		t.Run(fmt.Sprintf("active-low=%v", activeLow), func(t *testing.T) {
			r, err := OpenReset(Config{Chip: s.main.chip, Line: strconv.Itoa(offset), ActiveLow: activeLow}, 300*time.Millisecond, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			released, asserted := 0, 1
			if activeLow {
				released, asserted = 1, 0
			}
			if got := sysfsValue(t, s.main, offset); got != released {
				t.Fatalf("after OpenReset the line is %d, want released (%d)", got, released)
			}
			if info := lineInfo(t, s.main.chip, offset); info.Consumer != ResetConsumer {
				t.Errorf("consumer %q, want %q", info.Consumer, ResetConsumer)
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- r.Pulse(context.Background()) }()
			var sawAsserted bool
			for {
				v := sysfsValue(t, s.main, offset)
				if v == asserted {
					sawAsserted = true
				}
				if sawAsserted && v == released {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("the line never went asserted (%d) and back", asserted)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if took := time.Since(start); took < 300*time.Millisecond {
				t.Errorf("the line was asserted for %s, less than the 300ms pulse", took)
			}
			if err := <-done; err != nil {
				t.Errorf("Pulse: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := r.Pulse(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled Pulse = %v", err)
			}
			if got := sysfsValue(t, s.main, offset); got != released {
				t.Errorf("after a cancelled Pulse the line is %d, want released", got)
			}
		})
	}
}
