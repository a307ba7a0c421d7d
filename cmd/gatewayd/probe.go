package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/probe"
)

// runProbe is `gatewayd probe`: the conformance kit (internal/probe) on a module's AT port.
func runProbe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	portPath := fs.String("port", "", "the module's AT `port`, e.g. /dev/ttyUSB2 (required; stop gatewayd first)")
	out := fs.String("out", "probe.txt", "write the transcript and the findings to `file`")
	broker := fs.String("broker", "", "an MQTT broker `host:port` the module can reach, for the MQTT part (skipped without it)")
	user := fs.String("user", "", "MQTT user `name` for the broker")
	pwFile := fs.String("password-file", "", "read the MQTT password from `file` (masked in the output)")
	urcPort := fs.String("urc-port", "", `the AT+QURCCFG="urcport" value that sends URCs to this port (default: usbat, uart1 for a UART)`)
	baud := fs.Int("baud", 115200, "baud `rate` (UART only)")
	wait := fs.Duration("wait", 30*time.Second, "longest wait for each MQTT result")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: gatewayd probe -port /dev/ttyUSB2 [-out probe.txt] [-broker host:port [-user NAME] [-password-file FILE]]

Runs a fixed, safe script of AT commands on the module (with gatewayd stopped), records every
byte both ways in the replay format and prints what the module did on each point the AT reference
leaves unconfirmed. It changes no setting the module keeps (NV) without saying so, and restores
every setting it changed. Send the -out file with a report of a module gatewayd mishandles.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *portPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	opts := probe.Options{Port: *portPath, Baud: *baud, Broker: *broker, User: *user, URCPort: *urcPort, Wait: *wait,
		Version: versionString(), Progress: stderr}
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			fmt.Fprintf(stderr, "gatewayd probe: -password-file: %v\n", err)
			return 1
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rep, err := probe.Run(ctx, opts)
	if rep == nil {
		fmt.Fprintf(stderr, "gatewayd probe: %v\n", err)
		return 1
	}
	if werr := writeTranscript(*out, rep); werr != nil {
		fmt.Fprintf(stderr, "gatewayd probe: %v\n", werr)
		return 1
	}
	fmt.Fprint(stdout, rep.Summary())
	fmt.Fprintf(stdout, "transcript written to %s\n", *out)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd probe: stopped early: %v\n", err)
		return 1
	}
	return 0
}

func writeTranscript(path string, rep *probe.Report) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	if _, err := rep.Transcript.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("-out: %w", err)
	}
	return f.Close()
}
