package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/internal/replay"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
)

// Options say where the module and the broker are.
type Options struct {
	Port string // the AT port, e.g. /dev/ttyUSB2
	Baud int    // 0 = 115200

	// Broker is the host:port of an MQTT broker the module can reach; "" skips the MQTT part.
	// It must let the probe subscribe to its own topic and receive its own messages.
	Broker   string
	User     string // user name for CONNECT ("" = none unless Password is set)
	Password string // masked in the output
	// WrongPassword is sent in the CONNECT that the broker is expected to refuse; "" = a fixed
	// wrong one. It is masked in the output too.
	WrongPassword string

	// URCPort is the AT+QURCCFG="urcport" value that sends URCs to Port; "" = "uart1" for a
	// UART's device name, "usbat" otherwise (as the daemon's serial.urc_port).
	URCPort string
	// Topic is the topic the probe subscribes to and publishes on; "" = gatewayd/probe/<random>.
	Topic string
	// ClientID for CONNECT; "" = gatewayd-probe-<random>.
	ClientID string
	// Wait bounds each wait for a result URC of the MQTT part; 0 = 30 s (AT+QMTOPEN: 120 s).
	Wait time.Duration
	// Settle is how long the probe waits for a URC that may or may not follow (+QMTSTAT after a
	// refused CONNECT, +QMTCLOSE after AT+QMTCLOSE on an unopened index); 0 = 3 s.
	Settle time.Duration
	// Version names the program in the output's source: line.
	Version string
	// Progress, when not nil, gets one line per step as the script runs.
	Progress io.Writer
}

// Finding is what the probe saw for one point of the reference.
type Finding struct {
	Point    string // the point, as the reference words it
	Observed string // what this module did
}

// Report is the probe's result.
type Report struct {
	Findings   []Finding
	Transcript *replay.Transcript // every byte both ways, secrets masked
}

// Summary renders the findings, one "point: observation" line each.
func (r *Report) Summary() string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.Point + ": " + f.Observed + "\n")
	}
	return b.String()
}

// ErrBusy means another process has the port open: the daemon, ModemManager, a terminal.
var ErrBusy = errors.New("probe: the port is in use by another process (stop gatewayd, ModemManager or any terminal on it first)")

// Run runs the script on opts.Port. It returns the report — with the transcript of everything
// that crossed the wire — also when the script stops early, together with the error that
// stopped it. It refuses (ErrBusy) a port another process has open.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Baud == 0 {
		opts.Baud = 115200
	}
	if opts.Wait == 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.Settle == 0 {
		opts.Settle = 3 * time.Second
	}
	if opts.URCPort == "" {
		opts.URCPort = config.DefaultURCPort(opts.Port)
	}
	if opts.WrongPassword == "" {
		opts.WrongPassword = "gatewayd-probe-wrong-password"
	}
	suffix := randomHex()
	if opts.Topic == "" {
		opts.Topic = "gatewayd/probe/" + suffix
	}
	if opts.ClientID == "" {
		opts.ClientID = "gatewayd-probe-" + suffix
	}
	for name, v := range map[string]string{"user": opts.User, "password": opts.Password, "wrong password": opts.WrongPassword,
		"topic": opts.Topic, "client id": opts.ClientID, "urc port": opts.URCPort} {
		if strings.ContainsAny(v, "\"\r\n\x00\x1a\x1b") {
			return nil, fmt.Errorf("probe: the %s %q holds a character an AT command cannot carry (\" CR LF NUL ^Z ESC)", name, v)
		}
	}
	var host string
	var mqttPort int
	if opts.Broker != "" {
		h, ps, err := net.SplitHostPort(opts.Broker)
		p, perr := strconv.Atoi(ps)
		if err != nil || perr != nil || h == "" || p < 1 || p > 65535 {
			return nil, fmt.Errorf("probe: -broker %q: want host:port", opts.Broker)
		}
		host, mqttPort = h, p
	}

	who, err := holders(opts.Port)
	if err != nil {
		return nil, err
	}
	if len(who) > 0 {
		return nil, fmt.Errorf("%w: %s is open in %s", ErrBusy, opts.Port, strings.Join(who, ", "))
	}
	raw, err := port.Open(ctx, opts.Port, opts.Baud)
	if err != nil {
		if strings.Contains(err.Error(), "busy") {
			return nil, fmt.Errorf("%w: %w", ErrBusy, err)
		}
		return nil, fmt.Errorf("probe: %w", err)
	}
	rec := NewRecorder(raw)
	p := &prober{opts: opts, rec: rec, host: host, mqttPort: mqttPort, started: time.Now()}
	p.conn = at.New(rec, at.Options{URCs: qmt.URCs()})
	p.sub = p.conn.Subscribe()
	p.urcs = newURCLog()
	go p.urcs.collect(p.sub)
	p.mod = modem.New(p.conn)

	runErr := p.script(ctx)
	restoreErr := p.restore()
	p.conn.Close()
	<-p.urcs.done
	p.urcSummary()

	secrets := []string{opts.Password, opts.WrongPassword}
	notes := []string{"recorded by gatewayd probe under the at engine: every read and write on the port, timestamps since the port was opened; secrets masked as ***"}
	for _, f := range p.findings {
		notes = append(notes, "probe: "+f.Point+": "+f.Observed)
	}
	src := fmt.Sprintf("gatewayd probe %s on %s, %s", orUnknown(opts.Version), opts.Port, p.started.UTC().Format(time.RFC3339))
	if p.ident != "" {
		src += ", " + p.ident
	}
	rep := &Report{Findings: p.findings, Transcript: rec.Transcript([]string{src}, notes, secrets)}
	return rep, errors.Join(runErr, restoreErr)
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// prober is one run of the script.
type prober struct {
	opts     Options
	rec      *Recorder
	conn     *at.Conn
	sub      *at.Subscription
	urcs     *urcLog
	mod      *modem.Module
	host     string
	mqttPort int
	started  time.Time
	ident    string
	cmdMark  int // the Recorder's mark before the last MQTT command

	findings []Finding
	restores []func(context.Context) error // run in reverse order at the end
}

func (p *prober) find(point, format string, args ...any) {
	f := Finding{Point: point, Observed: fmt.Sprintf(format, args...)}
	p.findings = append(p.findings, f)
	p.progress("%s: %s", f.Point, f.Observed)
}

func (p *prober) progress(format string, args ...any) {
	if p.opts.Progress != nil {
		fmt.Fprintf(p.opts.Progress, format+"\n", args...)
	}
}

// do runs one raw command within d.
func (p *prober) do(ctx context.Context, cmd at.Command, d time.Duration) (at.Response, error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.conn.Do(cctx, cmd)
}

// claims makes a query claim the lines of its own prefix (+X: for AT+X?), as the daemon's
// queries do.
func claims(prefix string) func(at.Line) bool {
	return func(l at.Line) bool { return strings.HasPrefix(l.Text, prefix) }
}

// outcome words a command's final result.
func outcome(err error) string {
	var cme *at.CMEError
	switch {
	case err == nil:
		return "OK"
	case errors.As(err, &cme):
		return cme.Error()
	case errors.Is(err, at.ErrError):
		return "ERROR"
	case errors.Is(err, at.ErrTimeout):
		return "no answer"
	}
	return err.Error()
}

func lineTexts(r at.Response) []string {
	var out []string
	for _, l := range r.Lines {
		out = append(out, l.Text)
	}
	return out
}

// ms renders a delay measured on the host between two reads (0 when both came in one read).
func ms(d time.Duration) string { return strconv.FormatInt(max(d, 0).Milliseconds(), 10) + " ms" }

// restore undoes what the script changed, newest first, each bounded by its own timeout.
func (p *prober) restore() error {
	var errs []error
	for i := len(p.restores) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.restores[i](ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	return errors.Join(errs...)
}

// urcSummary reports the module-level URCs seen, in the order they first came, and every line
// the parser did not know or found malformed: those are what the daemon would mishandle.
func (p *prober) urcSummary() {
	var seen []string
	var bad []string
	known := map[string]bool{}
	for _, e := range p.urcs.events {
		switch ev := e.ev.(type) {
		case qmt.Unknown:
			bad = append(bad, fmt.Sprintf("unknown %q", ev.Line))
		case qmt.Malformed:
			bad = append(bad, fmt.Sprintf("malformed %q (%v)", ev.Line, ev.Err))
		default:
			if _, mqtt := mqttEvent(ev); mqtt {
				continue
			}
			if s := ev.String(); !known[s] {
				known[s] = true
				seen = append(seen, s)
			}
		}
	}
	if len(seen) == 0 {
		p.find("module-level URCs seen", "none")
	} else {
		p.find("module-level URCs seen", "%q", seen)
	}
	if len(bad) == 0 {
		p.find("lines the parser did not know or found malformed", "none")
	} else {
		p.find("lines the parser did not know or found malformed", "%s", strings.Join(bad, "; "))
	}
}

// mqttEvent reports whether ev is one of an MQTT client's events (which carry a client index).
func mqttEvent(ev qmt.Event) (int, bool) {
	switch e := ev.(type) {
	case qmt.Received:
		return e.Client, true
	case qmt.Stored:
		return e.Client, true
	case qmt.LinkStatus:
		return e.Client, true
	case qmt.PingFailed:
		return e.Client, true
	case qmt.PingOK:
		return e.Client, true
	case qmt.Opened:
		return e.Client, true
	case qmt.LinkClosed:
		return e.Client, true
	case qmt.Connected:
		return e.Client, true
	case qmt.Disconnected:
		return e.Client, true
	case qmt.Subscribed:
		return e.Client, true
	case qmt.Unsubscribed:
		return e.Client, true
	case qmt.Published:
		return e.Client, true
	}
	return 0, false
}

// urcLog keeps every URC with the time it was read, for waits that look back.
type urcLog struct {
	mu     sync.Mutex
	events []urcEvent
	more   chan struct{} // closed and replaced when an event is added
	done   chan struct{}
}

type urcEvent struct {
	at time.Time
	ev qmt.Event
}

func newURCLog() *urcLog {
	return &urcLog{more: make(chan struct{}), done: make(chan struct{})}
}

func (u *urcLog) collect(sub *at.Subscription) {
	defer close(u.done)
	for l := range sub.C() {
		u.mu.Lock()
		u.events = append(u.events, urcEvent{at: time.Now(), ev: qmt.ParseURC(l)})
		close(u.more)
		u.more = make(chan struct{})
		u.mu.Unlock()
	}
}

// mark is the number of URCs seen so far.
func (u *urcLog) mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.events)
}

// wait returns the first URC from index from on that match accepts, waiting up to d.
func (u *urcLog) wait(ctx context.Context, from int, d time.Duration, match func(qmt.Event) bool) (urcEvent, int, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		u.mu.Lock()
		for i := from; i < len(u.events); i++ {
			if match(u.events[i].ev) {
				e := u.events[i]
				u.mu.Unlock()
				return e, i + 1, true
			}
		}
		from = len(u.events)
		more := u.more
		u.mu.Unlock()
		select {
		case <-more:
		case <-t.C:
			return urcEvent{}, from, false
		case <-ctx.Done():
			return urcEvent{}, from, false
		case <-u.done:
			return urcEvent{}, from, false
		}
	}
}
