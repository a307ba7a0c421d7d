//go:build !nosim

// The emulator and its broker are left out of a build with -tags nosim (the Debian package's
// binary, scripts/package-deb.sh): sim_off.go answers `gatewayd sim` there.

package main

import (
	"context"
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
	"github.com/gatewayd/gatewayd/sim"
)

// simConfig is the configuration `gatewayd sim` runs the daemon with. It goes through the same
// parser and validation as a real file. %s is the emulator's AT port.
const simConfig = `
[serial]
port = %q

[mqtt]
# Any host works: the emulator routes every AT+QMTOPEN to its broker, as a test network would.
host = "broker.example.com"
port = 1883
client_id = "gatewayd-sim"
username = "gatewayd"
keepalive = "60s"

[[mqtt.subscribe]]
topic = %q
qos = 1

[[mqtt.publish_on_connect]]
topic = "gatewayd/demo/status"
payload = "test publish"
qos = 1

[log]
level = %q
format = %q
at_trace = %t
`

// demoTopic is where `gatewayd sim` sends its demo downlinks.
const demoTopic = "gatewayd/demo/led"

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
	every := fs.Duration("demo", 3*time.Second, "send a demo downlink this often (0: never)")
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

	text := fmt.Sprintf(simConfig, link, demoTopic, o.level, o.format, o.trace)
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
  The daemon subscribes to %q; the LED is virtual, watch the "led" events.
  Send your own downlink:   mosquitto_pub -h %s -p %s -q 1 -t %s -m 'hello'
  Watch what it publishes:  mosquitto_sub -h %s -p %s -t 'gatewayd/#' -v
`, link, mod.TTY(), broker.Addr(), demoTopic, host, port, demoTopic, host, port)
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

	if o.every > 0 {
		go demo(ctx, broker, o.every, log)
	}
	err = daemon.Run(ctx, cfg, log, nil, 0, versionString())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// demo publishes a downlink on the broker every interval, as the cloud would.
func demo(ctx context.Context, b *sim.Broker, every time.Duration, log zerolog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		payload := fmt.Sprintf(`{"method":"thing.service.property.set","id":"%d","params":{"LED":%d},"version":"1.0.0"}`, n, n%2)
		if err := b.Publish(demoTopic, []byte(payload), false, 1); err != nil {
			log.Warn().Err(err).Msg("demo downlink not sent")
		}
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
