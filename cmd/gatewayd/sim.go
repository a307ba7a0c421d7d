//go:build !nosim

// The emulator and its broker are left out of a build with -tags nosim (the Debian package's
// binary, scripts/package-deb.sh): sim_off.go answers `gatewayd sim` there.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/sim"
)

// simConfig is the configuration `gatewayd sim` runs the daemon with. It goes through the same
// parser and validation as a real file. %s is the emulator's AT port.
const simConfig = `
[serial]
port = %q

[mqtt]
keepalive = "60s"

# An Alibaba Cloud device: any host works, the emulator routes every AT+QMTOPEN to its broker,
# as a test network would. The secret is a demo value.
[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret = "demo-secret-not-a-real-one"
region = "cn-shanghai"

[[mqtt.publish_on_connect]]
topic = "/a1B2c3D4e5F/pi-led-01/user/update"
payload = "test publish"
qos = 1

# The LED follows the LEDSwitch property of the thing model; the telemetry is reported with it.
[thing]
led_property = "LEDSwitch"
report_interval = "1m"

[thing.telemetry]
signal = "RSSI"
operator = "Operator"
network_type = "NetworkType"
imei = "IMEI"
iccid = "ICCID"
firmware = "FirmwareVersion"
uptime = "Uptime"
reconnects = "Reconnects"

[log]
level = %q
format = %q
at_trace = %t
`

// demoTopic is where `gatewayd sim` sends its demo property sets (the Aliyun preset's
// {property_set}); the console's answers come back on the set_reply and post topics.
const demoTopic = "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set"

// upTopic is the filter `gatewayd sim -local` forwards to the broker.
const upTopic = "gatewayd/demo/up/#"

// simLocal is the part of the configuration `gatewayd sim -local` adds: %s are the listen
// address, the forwarded filter and the outbox directory.
const simLocal = `
[local]
listen = %q

[[local.forward]]
topic = %q
qos = 1

[outbox]
dir = %q
`

func runSim(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", sim.DefaultBrokerAddr, "`address` of the embedded MQTT broker (a free port is taken if it is busy)")
	every := fs.Duration("demo", 3*time.Second, "set LEDSwitch from the emulated console this often, alternating 1 and 0 (0: never)")
	format := fs.String("log-format", "console", "log format: console or json")
	level := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	trace := fs.Bool("trace", false, "log every byte on the AT port (needs -log-level trace)")
	local := fs.String("local", "", "`address` for the local MQTT endpoint, e.g. 127.0.0.1:1884 (\"\": none); what is published on "+upTopic+" goes through the outbox to the broker")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatewayd sim [flags]\n\nRuns the whole daemon against the built-in EC600 emulator and an embedded MQTT broker.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logging.New(stderr, *level, *format)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd sim: %v\n", err)
		return 2
	}
	logging.RouteStdlib(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := simulate(ctx, simOptions{listen: *listen, local: *local, every: *every, level: *level, format: *format, trace: *trace}, log, stdout); err != nil {
		fmt.Fprintf(stderr, "gatewayd sim: %v\n", err)
		return 1
	}
	return 0
}

type simOptions struct {
	listen        string
	local         string // the local endpoint's address; "" = none
	every         time.Duration
	level, format string
	trace         bool
}

// simulate runs broker, emulator and daemon until ctx ends.
func simulate(ctx context.Context, o simOptions, log zerolog.Logger, stdout io.Writer) error {
	broker, err := sim.NewBroker(o.listen)
	if err != nil {
		log.Warn().Err(err).Str("listen", o.listen).Msg("taking a free port for the broker instead")
		if broker, err = sim.NewBroker("127.0.0.1:0"); err != nil {
			return err
		}
	}
	defer broker.Close()

	dir, err := os.MkdirTemp("", "gatewayd-sim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	link := filepath.Join(dir, "ec600-at")
	mod, err := sim.New(sim.Config{Link: link, Broker: broker.Addr(), Logger: log.With().Str("component", "ec600sim").Logger().Level(zerolog.WarnLevel)})
	if err != nil {
		return err
	}
	// The emulator outlives the daemon's context so that the daemon can disconnect cleanly.
	if err := mod.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer mod.Close()

	text := fmt.Sprintf(simConfig, link, o.level, o.format, o.trace)
	if o.local != "" {
		text += fmt.Sprintf(simLocal, o.local, upTopic, filepath.Join(dir, "outbox"))
	}
	cfg, err := config.Parse([]byte(text), "gatewayd-sim.toml")
	if err != nil {
		return fmt.Errorf("built-in configuration: %w", err)
	}
	cfg.Control.Socket = filepath.Join(dir, "control.sock")
	host, port := splitAddr(broker.Addr())
	fmt.Fprintf(stdout, `gatewayd sim: an emulated EC600 on %s (%s), an MQTT broker on %s.
  The LED (virtual: watch the "led" events) follows the property LEDSwitch of an Alibaba Cloud
  thing model; an emulated console sets it and logs the device's replies and reports ("console").
  Set it yourself:          mosquitto_pub -h %s -p %s -q 1 -t '%s' -m '{"id":"42","version":"1.0","params":{"LEDSwitch":1},"method":"thing.service.property.set"}'
  Watch what it answers:    mosquitto_sub -h %s -p %s -t '/sys/#' -v
`, link, mod.TTY(), broker.Addr(), host, port, demoTopic, host, port)
	if o.local != "" {
		lhost, lport := splitAddr(o.local)
		fmt.Fprintf(stdout, `  Local endpoint on %s, for programs on the host:
    publish to the cloud:   mosquitto_pub -h %s -p %s -q 1 -t gatewayd/demo/up/temp -m 21.5
    hear the downlinks:     mosquitto_sub -h %s -p %s -t %s -v
`, o.local, lhost, lport, lhost, lport, demoTopic)
	}
	fmt.Fprintf(stdout, "  Ask the daemon:           go run ./cmd/gatewayd status -socket %s\n", cfg.Control.Socket)
	fmt.Fprintf(stdout, "                            go run ./cmd/gatewayd at -socket %s 'AT+CSQ'\n", cfg.Control.Socket)
	fmt.Fprintln(stdout, "  Stop with Ctrl-C.")

	th := cfg.Thing
	clog := log.With().Str("component", "console").Logger()
	console, err := sim.NewConsole(broker, th.Dialect, th.Topics, func(topic string, a thing.Answer) {
		clog.Info().Str("topic", topic).Msg(a.String())
	})
	if err != nil {
		return err
	}
	if o.every > 0 {
		go demo(ctx, console, th.LEDProperty, o.every, clog)
	}
	err = daemon.Run(ctx, cfg, log, nil, 0, versionString())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// demo sets the LED's property from the console every interval, alternating on and off, with a
// blink and a get_status now and then, as an operator at the platform's console would.
func demo(ctx context.Context, c *sim.Console, prop string, every time.Duration, log zerolog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var id, what string
		var err error
		switch {
		case n%7 == 0:
			what = "call blink {\"times\":3}"
			id, _, err = c.Call(thing.ServiceBlink, json.RawMessage(`{"times":3}`))
		case n%5 == 0:
			what = "call get_status"
			id, _, err = c.Call(thing.ServiceGetStatus, nil)
		default:
			what = fmt.Sprintf("set %s %d", prop, n%2)
			id, _, err = c.Set(prop, json.RawMessage(fmt.Sprint(n%2)))
		}
		if err != nil {
			log.Warn().Err(err).Msg("the console's request was not sent")
			continue
		}
		log.Info().Str("id", id).Msg("console: " + what)
	}
}

func splitAddr(addr string) (host, port string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
