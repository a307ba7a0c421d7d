// Package supervisor is the one place in gatewayd that decides what happens next: it opens the
// module's AT port, brings the module up, keeps its MQTT client connected, turns downlinks into LED
// toggles and log events, and after every fault starts again from the right step, with back-off.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/qssl"
)

// LED is the light the supervisor drives: on at power-up, off once the network is ready, toggled
// by every downlink.
type LED interface {
	Set(on bool) error
	Toggle() (on bool, err error)
}

// Resetter is the module's reset input wired to the host (gpio.Reset).
type Resetter interface {
	// Pulse asserts the reset and releases it.
	Pulse(ctx context.Context) error
	// String names the line, for the log.
	String() string
}

// Credentials yields the MQTT client id, user name and password for one CONNECT. It is called at
// every connect, so time-stamped signatures (Alibaba Cloud) are fresh.
type Credentials func(now time.Time) (clientID, username, password string, err error)

// Notifier receives the daemon's life signs for the service manager (systemd's sd_notify).
type Notifier interface {
	Ready()
	Status(s string)
	Watchdog()
	Stopping()
}

// Settings is everything the supervisor needs, already validated and resolved by the caller.
type Settings struct {
	// OpenPort opens the AT port. It is called again after every loss of the port.
	OpenPort func(ctx context.Context) (io.ReadWriteCloser, error)
	// PortName names the port in log lines.
	PortName string

	APN, APNUser, APNPassword string
	PDPContext                int

	SIMTimeout      time.Duration // how long to wait for +CPIN: READY
	RegisterTimeout time.Duration // how long to wait for network registration

	ClientIndex int
	MQTT        qmt.Config
	// TLS, when not nil, is the module TLS context set up (certificates uploaded as needed) before
	// every configure; MQTT.SSL must name its context.
	TLS              *qssl.Config
	Host             string
	Port             int
	Credentials      Credentials
	Subscribe        []qmt.Subscription
	PublishOnConnect []qmt.Message

	// Reset, when not nil, is pulsed when the module does not answer even AT+CFUN=1,1.
	Reset Resetter

	// HealthInterval is how often an idle module is asked AT to prove it alive. 0 = 15 s.
	HealthInterval time.Duration
	// WatchdogInterval is how often the service manager wants a watchdog ping; 0 = none.
	WatchdogInterval time.Duration
	// Backoff is the retry policy for reconnects and reopening the port; zero = backoff.Default.
	Backoff backoff.Policy
	// Trace logs every byte on the AT port (secrets masked).
	Trace bool

	// Outbox, when not nil, sends stored messages to the cloud while a session is connected.
	Outbox Outbox
	// Downlinks, when not nil, also receives every downlink (the local MQTT endpoint).
	Downlinks func(topic string, payload []byte)
}

// Outbox is a store of messages waiting for the cloud and the drainer that sends them.
type Outbox interface {
	// Drain sends stored messages through client until ctx ends (the link went down or the
	// daemon stops); what is not acknowledged stays stored.
	Drain(ctx context.Context, client *qmt.Client) error
	// Reset forgets what was learnt about the module, when another one is attached.
	Reset()
}

// Supervisor runs the gateway. Create it with New and call Run once.
type Supervisor struct {
	set    Settings
	log    zerolog.Logger
	led    LED
	notify Notifier

	lastIMEI         string
	ready            bool // READY sent to the service manager
	reachedConnected bool // the current session got as far as a connected MQTT session
	// quietDone is set once the first bring-up of this process has let a publish that an
	// earlier process left half-sent time out on the module (MQTT.EditTimeout).
	quietDone atomic.Bool

	// cfunWait is how long an unresponsive module gets to answer AT+CFUN=1,1 before the reset
	// line (if any) is pulsed.
	cfunWait time.Duration

	beat   time.Duration           // how often the idle loop proves it is alive
	loops  atomic.Uint64           // supervisor loop iterations, for the watchdog
	reader atomic.Pointer[at.Conn] // the AT engine of the current session, nil between sessions
}

// New returns a supervisor. notify may be nil.
func New(set Settings, log zerolog.Logger, led LED, notify Notifier) *Supervisor {
	if set.HealthInterval == 0 {
		set.HealthInterval = 15 * time.Second
	}
	if set.Backoff == (backoff.Policy{}) {
		set.Backoff = backoff.Default
	}
	if set.SIMTimeout == 0 {
		set.SIMTimeout = 30 * time.Second
	}
	if set.RegisterTimeout == 0 {
		set.RegisterTimeout = 3 * time.Minute
	}
	if set.PDPContext == 0 {
		set.PDPContext = 1
	}
	if notify == nil {
		notify = nopNotifier{}
	}
	beat := maxBeat
	if w := set.WatchdogInterval / 4; w > 0 && w < beat {
		beat = w
	}
	return &Supervisor{set: set, log: log, led: led, notify: notify, beat: beat, cfunWait: 15 * time.Second}
}

type nopNotifier struct{}

func (nopNotifier) Ready()        {}
func (nopNotifier) Status(string) {}
func (nopNotifier) Watchdog()     {}
func (nopNotifier) Stopping()     {}

// Run keeps the gateway going until ctx ends, then disconnects cleanly and returns nil. It returns
// an error only for a fault no retry can mend.
func (s *Supervisor) Run(ctx context.Context) error {
	s.setLED(true, "power-up")
	bo := backoff.New(s.set.Backoff)
	if s.set.WatchdogInterval > 0 {
		go s.watchdog(ctx)
	}
	for {
		s.loops.Add(1)
		s.reachedConnected = false
		err := s.session(ctx)
		if s.reachedConnected {
			bo.Reset() // the module worked until this fault: start the back-off afresh
		}
		if ctx.Err() != nil {
			s.notify.Stopping()
			return nil
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			return err
		}
		delay := bo.Next()
		s.log.Warn().Str("event", logging.EventModuleLost).Str("port", s.set.PortName).
			Err(err).Str("retry_in", delay.Round(time.Millisecond).String()).Msg("module lost; waiting for it to come back")
		s.notify.Status("waiting for the module: " + err.Error())
		if !s.waitBeating(ctx, delay) {
			s.notify.Stopping()
			return nil
		}
	}
}

// PermanentError is a fault that no retry mends, such as a configuration the module refuses.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// sleep waits d or until ctx ends, and reports whether it slept the whole time.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitBeating is sleep for the supervisor's own goroutine: it keeps beating the watchdog.
func (s *Supervisor) waitBeating(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	beat := time.NewTicker(s.beat)
	defer beat.Stop()
	for {
		s.loops.Add(1)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-beat.C:
		}
	}
}

// maxBeat is how often, at most, an otherwise idle supervisor loop proves it is alive; with a
// short watchdog interval it beats four times per interval.
const maxBeat = 5 * time.Second

// watchdog pings the service manager while the supervisor loop makes progress and, when a module
// is attached, its AT reader has read something within readerWindow (the health checks make the
// module answer at least every HealthInterval). A daemon that recovers by itself keeps being pinged;
// one that hangs is restarted by systemd.
func (s *Supervisor) watchdog(ctx context.Context) {
	t := time.NewTicker(s.set.WatchdogInterval / 2)
	defer t.Stop()
	readerWindow := 4 * s.set.HealthInterval
	lastLoops := s.loops.Load()
	var lastIn uint64
	var lastConn *at.Conn
	lastRead := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l := s.loops.Load()
			loopOK := l != lastLoops
			lastLoops = l
			readerOK := true
			if c := s.reader.Load(); c != nil {
				in := c.Stats().BytesIn
				if c != lastConn || in != lastIn {
					lastConn, lastIn, lastRead = c, in, now
				}
				readerOK = now.Sub(lastRead) < readerWindow
			}
			switch {
			case loopOK && readerOK:
				s.notify.Watchdog()
			case !loopOK:
				s.log.Error().Msg("supervisor loop made no progress; withholding the watchdog ping")
			default:
				s.log.Error().Str("silent_for", now.Sub(lastRead).Round(time.Millisecond).String()).Msg("AT reader made no progress; withholding the watchdog ping")
			}
		}
	}
}

func (s *Supervisor) setLED(on bool, why string) {
	if s.led == nil {
		return
	}
	if err := s.led.Set(on); err != nil {
		s.log.Error().Err(err).Msg("cannot set the LED")
		return
	}
	s.log.Info().Str("event", logging.EventLED).Bool("on", on).Str("why", why).Msg("LED")
}

func (s *Supervisor) toggleLED(why string) {
	if s.led == nil {
		return
	}
	on, err := s.led.Toggle()
	if err != nil {
		s.log.Error().Err(err).Msg("cannot toggle the LED")
		return
	}
	s.log.Info().Str("event", logging.EventLED).Bool("on", on).Str("why", why).Msg("LED")
}

// stage is a step of the bring-up; a fault sends the session back to the stage that mends it.
type stage int

const (
	stageModule    stage = iota // sync, echo off, identify, SIM
	stageNetwork                // registration and PDP context
	stageMQTT                   // configure, open, connect, subscribe, publish on connect
	stageConnected              // waiting for events
)

func (st stage) String() string {
	return [...]string{"module bring-up", "network", "mqtt", "connected"}[st]
}

// session runs one lifetime of the AT port: it returns when the port is gone (with the reason) or
// ctx ends.
func (s *Supervisor) session(ctx context.Context) error {
	port, err := s.set.OpenPort(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.set.PortName, err)
	}
	conn := at.New(port, at.Options{Logger: s.log, Trace: s.set.Trace, URCs: qmt.URCs()})
	defer conn.Close()
	s.reader.Store(conn)
	defer s.reader.Store(nil)
	client := qmt.NewClient(conn, s.set.ClientIndex)
	defer client.Close()
	sess := &session{
		Supervisor: s,
		conn:       conn,
		client:     client,
		mod:        modem.New(conn),
		mqttBO:     backoff.New(s.set.Backoff),
	}
	return sess.run(ctx)
}
