package vmtest

// The daemon end to end on a real GPIO chip: the gatewayd binary, started with a configuration file
// whose [led] names the gpio-sim chip, drives the emulated EC600 (a pty) whose MQTT client talks to
// an embedded broker on 127.0.0.1; a paho client plays the cloud. The LED's physical level is read
// from gpio-sim's sysfs, independently of the daemon; the daemon's JSON log says what it meant to do.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/warthog618/go-gpiocdev"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

const (
	buildHint = "CGO_ENABLED=0 go build -o /tmp/gatewayd-vm/gatewayd ./cmd/gatewayd && " +
		"bash scripts/gpio-sim-vm.sh --file /tmp/gatewayd-vm/gatewayd ./test/vmtest/"
	skipNoSim = "no gpio-sim chip (GPIOSIM_CHIP is not set): run: " + buildHint

	// defaultBin is where `gpio-sim-vm.sh --file .../gatewayd` puts the daemon in the VM.
	defaultBin = "/extra/gatewayd"

	// downlinks is how many downlinks each case sends. Odd, so the LED ends on and releasing the
	// line (which returns it to its pull level, the "off" level here) is a visible change too.
	downlinks = 21

	// levelTimeout bounds the wait for a level change. Generous, for software-emulated VMs: this
	// is a correctness test, not a timing one.
	levelTimeout = 5 * time.Second

	ledTopic = "gatewayd/vmtest/led"
)

// vm is what the VM's /init says about the gpio-sim chip (scripts/gpiosim/init.sh).
type vm struct {
	chip      string // gpiochipN
	sysfs     string // /sys/devices/platform/<dev>/<chip>
	ledName   string // the LED line's name
	ledOffset int    // and its offset
	value     string // the LED line's sysfs value file (its physical level)
	bin       string // the gatewayd binary
}

// vmEnv reads the VM's variables: it skips outside the VM and fails on a broken setup inside it
// (there a skip would hide that nothing was tested).
func vmEnv(t *testing.T) vm {
	t.Helper()
	if os.Getenv("GPIOSIM_CHIP") == "" {
		t.Skip(skipNoSim)
	}
	env := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("GPIOSIM_CHIP is set but %s is not", k)
		}
		return v
	}
	v := vm{chip: env("GPIOSIM_CHIP"), sysfs: env("GPIOSIM_SYSFS"), ledName: env("GPIOSIM_LED_NAME"),
		value: env("GPIOSIM_LED_VALUE")}
	var err error
	if v.ledOffset, err = strconv.Atoi(env("GPIOSIM_LED_OFFSET")); err != nil {
		t.Fatalf("GPIOSIM_LED_OFFSET: %v", err)
	}
	if want := fmt.Sprintf("%s/sim_gpio%d/value", v.sysfs, v.ledOffset); v.value != want {
		t.Fatalf("GPIOSIM_LED_VALUE=%s, but line %d's value file is %s", v.value, v.ledOffset, want)
	}
	v.bin = os.Getenv("GATEWAYD_BIN")
	if v.bin == "" {
		v.bin = defaultBin
	}
	fi, err := os.Stat(v.bin)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("no gatewayd binary at %s (%v): build it statically and pass it into the VM: %s", v.bin, err, buildHint)
	}
	return v
}

// wiring is one way the LED can be configured.
type wiring struct {
	name      string
	chip      func(vm) string // [led] chip
	line      func(vm) string // [led] line, as TOML (a quoted name or a number)
	activeLow bool
}

func TestDownlinksToggleTheGPIOLine(t *testing.T) {
	v := vmEnv(t)
	for _, w := range []wiring{
		{name: "by-name", chip: func(v vm) string { return v.chip },
			line: func(v vm) string { return strconv.Quote(v.ledName) }},
		{name: "by-offset-active-low", chip: func(v vm) string { return "/dev/" + v.chip },
			line: func(v vm) string { return strconv.Itoa(v.ledOffset) }, activeLow: true},
	} {
		t.Run(w.name, func(t *testing.T) { downlinkCase(t, v, w) })
	}
}

// downlinkCase: power-up lights the LED, network ready puts it out, each downlink toggles it, and
// SIGTERM releases the line and exits 0; every step is a physical level change seen in sysfs.
func downlinkCase(t *testing.T, v vm, w wiring) {
	phys := func(on bool) int { // the physical level for a logical LED state
		if on != w.activeLow {
			return 1
		}
		return 0
	}

	// The unrequested line floats to its pull, chosen as the "off" level: then taking the line
	// with the LED on is a change, and so is releasing it with the LED on.
	if info := lineInfo(t, v.chip, v.ledOffset); info.Used {
		t.Fatalf("line %d on %s is already used by %q before the daemon starts", v.ledOffset, v.chip, info.Consumer)
	}
	pull := map[int]string{0: "pull-down", 1: "pull-up"}[phys(false)]
	pullFile := filepath.Join(filepath.Dir(v.value), "pull")
	if err := os.WriteFile(pullFile, []byte(pull), 0); err != nil {
		t.Fatalf("set %s to %s: %v", pullFile, pull, err)
	}
	level := readLevel(t, v.value)
	if level != phys(false) {
		t.Fatalf("unrequested line with %s reads %d in %s", pull, level, v.value)
	}

	broker, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatalf("embedded broker on loopback: %v (is lo up in the VM?)", err)
	}
	t.Cleanup(func() { broker.Close() })
	// The cloud side connects first: a broker nobody can reach (loopback down) fails here, clearly.
	cloud := cloudClient(t, broker.Addr())
	dir := t.TempDir()
	mod, err := sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: broker.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatalf("emulator: %v (is devpts mounted in the VM?)", err)
	}
	t.Cleanup(func() { mod.Close() })
	// Hold the module silent until the power-up level has been read: while it does not answer AT,
	// the network cannot become ready, so nothing can have put the LED out yet.
	mod.SetUnresponsive(true)

	cfg := fmt.Sprintf(`
[serial]
port = %q

[mqtt]
host = "broker.example.com"
port = 1883
client_id = "gatewayd-vmtest"
keepalive = "60s"

[[mqtt.subscribe]]
topic = %q
qos = 1

[led]
chip = %q
line = %s
active_low = %t

[log]
level = "info"
format = "json"
`, mod.Path(), ledTopic, w.chip(v), w.line(v), w.activeLow)
	d := startDaemon(t, v.bin, filepath.Join(dir, "gatewayd.toml"), cfg)

	// Power-up: LED on, set as the line is requested.
	e, i := d.wait(t, 0, "led")
	if !e.Bool("on") || e.Str("why") != "power-up" {
		t.Fatalf("first led event %v, want on at power-up", e)
	}
	level = waitChange(t, v.value, level, "power-up")
	if level != phys(true) {
		t.Fatalf("physical level %d at power-up, want %d (on, active-low %v)", level, phys(true), w.activeLow)
	}
	if n := d.log.Count("network_ready"); n != 0 {
		t.Fatalf("network_ready logged while the module was held silent")
	}
	info := lineInfo(t, v.chip, v.ledOffset)
	if !info.Used || info.Consumer != "gatewayd" || info.Config.Direction != gpiocdev.LineDirectionOutput ||
		info.Config.ActiveLow != w.activeLow {
		t.Errorf("kernel line info while the daemon runs: %+v, want used by gatewayd as an output, active-low %v", info, w.activeLow)
	}
	mod.SetUnresponsive(false)

	// Network ready: LED off.
	e, i = d.wait(t, i+1, "led")
	if e.Bool("on") || e.Str("why") != "network ready" {
		t.Fatalf("second led event %v, want off at network ready", e)
	}
	level = waitChange(t, v.value, level, "network ready")
	if level != phys(false) {
		t.Fatalf("physical level %d at network ready, want %d (off, active-low %v)", level, phys(false), w.activeLow)
	}
	s, _ := d.wait(t, 0, "subscribed")
	if s.Str("topic") != ledTopic {
		t.Fatalf("subscribed to %q, want %q", s.Str("topic"), ledTopic)
	}

	// Downlinks: each one a toggle, each toggle a physical level change that matches the log.
	from := i + 1
	on := false
	changes := 0
	for k := 1; k <= downlinks; k++ {
		payload := fmt.Sprintf(`{"method":"thing.service.property.set","id":"%d","params":{"LED":%d},"version":"1.0.0"}`, k, k%2)
		tok := cloud.Publish(ledTopic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("downlink %d: publish: %v", k, tok.Error())
		}
		level = waitChange(t, v.value, level, fmt.Sprintf("downlink %d", k))
		changes++
		dl, j := d.wait(t, from, "downlink")
		if dl.Str("topic") != ledTopic || dl.Str("payload") != payload {
			t.Fatalf("downlink %d logged as %v, want payload %s on %s", k, dl, payload, ledTopic)
		}
		e, j = d.wait(t, j+1, "led")
		from = j + 1
		on = !on
		if e.Bool("on") != on || e.Str("why") != "downlink" {
			t.Fatalf("led event after downlink %d: %v, want on=%v why=downlink", k, e, on)
		}
		if level != phys(on) {
			t.Fatalf("downlink %d: physical level %d, but the daemon logged on=%v (want level %d, active-low %v)",
				k, level, on, phys(on), w.activeLow)
		}
	}
	if got := d.log.Count("led"); got != 2+downlinks {
		t.Errorf("%d led events, want %d (power-up, network ready, one per downlink)", got, 2+downlinks)
	}

	// SIGTERM: exit 0, the line released (back at its pull level, and unused for the kernel).
	if err := d.stop(t); err != nil {
		t.Fatalf("gatewayd exited with %v after SIGTERM, want status 0", err)
	}
	if info := lineInfo(t, v.chip, v.ledOffset); info.Used {
		t.Errorf("after gatewayd exited the kernel still shows line %d used by %q", v.ledOffset, info.Consumer)
	}
	if got := waitChange(t, v.value, level, "release"); got != phys(false) {
		t.Errorf("released line reads %d, want its %s level %d", got, pull, phys(false))
	}
	t.Logf("%s: %d downlinks, %d physical level changes matching the led events; power-up %d->%d, network ready ->%d, release ->%d",
		w.name, downlinks, changes, phys(false), phys(true), phys(false), phys(false))
	for _, e := range d.log.Entries() {
		if lv := e.Str("level"); lv == "error" || lv == "warn" {
			t.Errorf("gatewayd logged a %s: %v", lv, e)
		}
	}
	if bad := d.log.Bad(); len(bad) > 0 {
		t.Errorf("log lines that are not JSON: %q", bad)
	}
}

// readLevel reads a gpio-sim sysfs value file: 0 or 1.
func readLevel(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	switch s := strings.TrimSpace(string(b)); s {
	case "0":
		return 0
	case "1":
		return 1
	default:
		t.Fatalf("%s holds %q, want 0 or 1", path, s)
		return -1
	}
}

// waitChange polls the value file every millisecond until it differs from prev, and returns the new
// level; it fails the test after levelTimeout.
func waitChange(t *testing.T, path string, prev int, what string) int {
	t.Helper()
	deadline := time.Now().Add(levelTimeout)
	for {
		if l := readLevel(t, path); l != prev {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the physical level in %s stayed %d for %v", what, path, prev, levelTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// lineInfo is the kernel's view of a line, through a chip handle of our own.
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

// cloudClient connects a paho client to the broker, as the cloud side.
func cloudClient(t *testing.T, addr string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("cloud-" + t.Name()).SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud client connect to %s: %v (is the loopback interface up?)", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// daemon is a running gatewayd process, observed through its JSON log on stderr.
type daemon struct {
	cmd  *exec.Cmd
	log  *logwatch.Watcher
	done chan error
}

// startDaemon writes cfg to path and runs bin -config path.
func startDaemon(t *testing.T, bin, path, cfg string) *daemon {
	t.Helper()
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v (it must be a static linux/amd64 binary: %s)", bin, err, buildHint)
	}
	d := &daemon{cmd: cmd, log: logwatch.New(stderr), done: make(chan error, 1)}
	go func() {
		<-d.log.Done() // read all output before Wait closes the pipe
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // harmless when it has exited
		<-d.log.Done()
		if t.Failed() {
			t.Logf("gatewayd log:\n%s", strings.Join(d.log.Raw(), "\n"))
		}
	})
	return d
}

// wait waits up to 30 s for the next entry with event ev at index >= from.
func (d *daemon) wait(t *testing.T, from int, ev string) (logwatch.Entry, int) {
	t.Helper()
	return d.waitLong(t, from, ev, 30*time.Second)
}

// waitLong is wait with another bound, for steps that include the daemon's own timeouts.
func (d *daemon) waitLong(t *testing.T, from int, ev string, within time.Duration) (logwatch.Entry, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	e, i, err := d.log.WaitEvent(ctx, from, ev)
	if err != nil {
		t.Fatalf("waiting for gatewayd's %q event: %v", ev, err)
	}
	return e, i
}

// stop sends SIGTERM and returns the process's exit error (nil for status 0).
func (d *daemon) stop(t *testing.T) error {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%w (%s)", err, ee.ProcessState)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("gatewayd did not exit within 15 s of SIGTERM")
		return nil
	}
}
