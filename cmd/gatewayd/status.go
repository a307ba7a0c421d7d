package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/control"
	"github.com/gatewayd/gatewayd/internal/doctor"
)

// Exit codes of status and at.
const (
	exitNotConnected = 1 // status: the daemon runs but MQTT is not connected; at: the module said no
	exitUnreachable  = 3 // the daemon could not be asked (not running, no permission, old protocol)
)

// socketFlags are the flags that say where the control socket is.
type socketFlags struct {
	socket, config *string
}

func addSocketFlags(fs *flag.FlagSet) socketFlags {
	return socketFlags{
		socket: fs.String("socket", "", "the daemon's control `socket` (default: [control] socket of -config, else "+control.DefaultSocket+")"),
		config: fs.String("config", "", "read the control socket's path from this configuration `file`"),
	}
}

// path is the socket to use: -socket, else the one -config names, else the default.
func (f socketFlags) path() (string, error) {
	if *f.socket != "" {
		return *f.socket, nil
	}
	if *f.config != "" {
		cfg, err := config.Load(*f.config)
		if err != nil {
			return "", err
		}
		if cfg.Control.Socket == "" {
			return "", fmt.Errorf("%s turns the control socket off ([control] socket = \"\")", *f.config)
		}
		return cfg.Control.Socket, nil
	}
	return control.DefaultSocket, nil
}

// ask sends req to the daemon, bounded by timeout.
func (f socketFlags) ask(req control.Request, timeout time.Duration) (control.Response, error) {
	path, err := f.path()
	if err != nil {
		return control.Response{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return control.Ask(ctx, path, req)
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := addSocketFlags(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	quiet := fs.Bool("q", false, "print nothing; the exit code says whether MQTT is connected")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatewayd status [-json] [-q] [-socket PATH | -config FILE]\n\nexit code: 0 connected, 1 not connected, 3 the daemon cannot be reached")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	resp, err := sf.ask(control.Request{Command: control.CmdStatus}, 5*time.Second)
	if err == nil && !resp.OK {
		err = fmt.Errorf("the daemon says: %s", resp.Error)
	}
	if err != nil {
		if !*quiet {
			fmt.Fprintf(stderr, "gatewayd status: %v\n", err)
		}
		return exitUnreachable
	}
	st := resp.Status
	switch {
	case *quiet:
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			fmt.Fprintf(stderr, "gatewayd status: %v\n", err)
			return 1
		}
	default:
		printStatus(stdout, st)
	}
	if !st.MQTT.Connected {
		return exitNotConnected
	}
	return 0
}

// printStatus shows st the way `mmcli -m 0` shows a modem: one screen, one line per part.
func printStatus(w io.Writer, st *control.Status) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	fmt.Fprintf(tw, "gatewayd %s, up %s\n", st.Version, ago(st.UptimeSec))
	state := "not connected: " + orDash(st.Doing)
	if st.MQTT.Connected {
		state = fmt.Sprintf("connected to %s:%d for %s", st.MQTT.Host, st.MQTT.Port, ago(st.MQTT.ConnectedSec))
	}
	line("state", "%s", state)
	port := st.Port + " (closed)"
	if st.PortOpen {
		port = st.Port + " (open)"
	}
	line("port", "%s", port)
	m := st.Module
	if m.IMEI != "" {
		line("module", "%s  revision %s  IMEI %s", m.Model, m.Revision, m.IMEI)
	} else {
		line("module", "not identified yet")
	}
	sim := orDash(st.SIM)
	if m.ICCID != "" {
		sim += "  ICCID " + m.ICCID
	}
	line("SIM", "%s", sim)
	n := st.Net
	net := orDash(n.Registration)
	if n.Operator != "" {
		net += "  operator " + n.Operator
	}
	line("network", "%s", net)
	if n.RSSIdBm != nil {
		sig := fmt.Sprintf("%d dBm (RSSI)", *n.RSSIdBm)
		if n.SignalAt != nil {
			sig += fmt.Sprintf(", read %s ago", ago(st.Now.Sub(*n.SignalAt).Seconds()))
		}
		line("signal", "%s", sig)
	} else {
		line("signal", "not known")
	}
	pdp := n.PDPAddress
	if len(n.PDPAddresses) > 1 {
		pdp = strings.Join(n.PDPAddresses, ", ")
	}
	line("PDP", "%s", orDash(pdp))
	q := st.MQTT
	mqtt := "not connected"
	if q.Connected {
		mqtt = "connected"
		if q.ClientID != "" {
			mqtt += " as " + q.ClientID
		}
	}
	if q.NextAttemptSec != nil {
		mqtt += fmt.Sprintf("; next attempt in %s (attempt %d)", ago(*q.NextAttemptSec), q.Attempt+1)
	}
	line("MQTT", "%s", mqtt)
	if q.LastError != "" && q.LastErrorAt != nil {
		line("last error", "%s ago: %s", ago(st.Now.Sub(*q.LastErrorAt).Seconds()), q.LastError)
	}
	if len(q.Reconnects) > 0 {
		var parts []string
		total := uint64(0)
		for _, k := range slices.Sorted(maps.Keys(q.Reconnects)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, q.Reconnects[k]))
			total += q.Reconnects[k]
		}
		line("reconnects", "%d (%s)", total, strings.Join(parts, ", "))
	} else {
		line("reconnects", "0")
	}
	switch {
	case len(q.Subscribed) > 0:
		parts := make([]string, len(q.Subscribed))
		for i, sub := range q.Subscribed {
			switch {
			case sub.GrantedQoS == nil:
				parts[i] = fmt.Sprintf("%s (QoS %d)", sub.Topic, sub.QoS)
			case *sub.GrantedQoS != sub.QoS:
				parts[i] = fmt.Sprintf("%s (QoS %d, granted %d)", sub.Topic, sub.QoS, *sub.GrantedQoS)
			default:
				parts[i] = fmt.Sprintf("%s (QoS %d)", sub.Topic, sub.QoS)
			}
		}
		line("subscribed", "%s", strings.Join(parts, ", "))
	case len(q.Subscriptions) > 0:
		line("subscribed", "%s", strings.Join(q.Subscriptions, ", "))
	}
	line("traffic", "%d downlinks (%d bytes), %d published on connect", q.Downlinks, q.DownlinkBytes, q.Published)
	switch {
	case st.LED == nil:
		line("LED", "not known")
	case *st.LED:
		line("LED", "on")
	default:
		line("LED", "off")
	}
	if o := st.Outbox; o != nil {
		if !o.Available {
			line("outbox", "UNAVAILABLE (see the log: outbox_unavailable)")
		} else {
			s := fmt.Sprintf("%d messages, %d bytes", o.Messages, o.Bytes)
			if o.Messages > 0 {
				s += fmt.Sprintf(", oldest %s", ago(o.OldestSec))
			}
			s += fmt.Sprintf("; %d delivered, %d refused, %d expired, %d dropped, %d rejected", o.Delivered, o.Refused, o.Expired, o.Dropped, o.Rejected)
			line("outbox", "%s", s)
		}
	}
	if l := st.Local; l != nil {
		line("local", "%d clients; %d forwarded, %d downlinks delivered", l.Clients, l.Forwarded, l.Delivered)
	}
	tw.Flush()
}

// ago words a number of seconds the way an operator reads it: 45s, 3m05s, 2h03m, 4d02h.
func ago(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runAT(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd at", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := addSocketFlags(fs)
	force := fs.Bool("force", false, "send a command that would break gatewayd's session (echo, baud rate, CFUN, its own AT+QMT… client, URC port)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the module's answer (at most 1m)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatewayd at [-force] [-timeout 10s] [-socket PATH | -config FILE] 'AT+CSQ'\n\nOne AT command through the running daemon, which owns the port; every use is logged.\nexit code: 0 OK, 1 the module answered an error, 2 usage, 3 the daemon cannot be reached or refused it")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	line := fs.Arg(0)
	resp, err := sf.ask(control.Request{Command: control.CmdAT, Line: line, Force: *force, TimeoutMS: int(timeout.Milliseconds())}, *timeout+5*time.Second)
	if err == nil && !resp.OK {
		err = fmt.Errorf("%s", resp.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd at: %v\n", err)
		return exitUnreachable
	}
	for _, l := range resp.AT.Lines {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout, resp.AT.Result)
	if !resp.AT.OK {
		return exitNotConnected
	}
	return 0
}

func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration `file`")
	socket := fs.String("socket", "", "the daemon's control `socket` (default: the configuration's [control] socket)")
	wait := fs.Duration("wait", 20*time.Second, "how long the SIM and the network registration may take to get ready")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatewayd doctor [-config FILE] [-socket PATH] [-wait 20s]\n\nChecks every part the gateway needs, through the running daemon or, when it is stopped, by\nopening the port itself. exit code: 0 every check passed (warnings allowed), 1 one failed")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stdout, "  FAIL  config       %v\n", err)
		fmt.Fprintf(stdout, "                     → fix the configuration; `gatewayd check -config %s` says the same\n", *path)
		return 1
	}
	fmt.Fprintf(stdout, "gatewayd doctor %s\n", versionString())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rs := doctor.Run(ctx, doctor.Options{Config: cfg, Socket: *socket, Wait: *wait})
	doctor.Print(stdout, rs)
	if doctor.Failed(rs) {
		return 1
	}
	return 0
}
