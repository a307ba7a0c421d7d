// Package supervisor is the one place in gatewayd that decides what happens next: it opens the
// module's AT port, brings the module up, keeps its MQTT client connected, turns downlinks into LED
// toggles and log events, and after every fault starts again from the right step, with back-off.
//
// The decisions are a pure state machine (machine.go) fed by one loop (Run) that performs its
// effects and owns every timer; the bring-up stages (stages.go) never sleep, and one classifier
// (classify.go) says what each of their errors means. Downlinks do not pass through the loop:
// each link has a downlink consumer (downlinks.go) that hands them on in order.
//
// # Who owns what
//
// The loop goroutine (Run) owns everything the machine decides about, and is the only
// goroutine that writes it: the machine, the open link (its identity, device name, topic
// filters, the module stage's "prepared"), the Status book (through loop.setStatus, the one
// way to change it), the session and AT engine pointers that Publish, Command and ATStats
// read, the timers, and what it remembers between links (the last IMEI, the signing clock's
// last note, the last signal poll).
//
// The goroutines it starts write none of that. They get what they need when started and hand
// back what they learned as an input to the loop:
//   - a stage gets the link and a stageIn, and returns a stageOut whose findings (identity,
//     ICCID, SIM state, registration, PDP addresses, signal, operator, client id, the
//     subscriptions granted, publishes done) the loop puts in the status and on the link; the
//     module stage's one progress note (ATE0 took effect) comes on a channel of its own;
//   - a health check returns its error, then the signal, registration and operator it read;
//   - a link's downlink consumer forwards the session events (sessionEvent: +QMTSTAT, a failed
//     ping, pdpdeact, RDY, POWERED DOWN, +CPIN) in order; everything else it handles itself;
//   - a reset and the outbox's drain only report that they are done.
//
// What the downlink consumer writes is its own: the downlink counts (downlinkCount) and the LED,
// which SetLED (the thing model) drives too, under the LED's lock (ledState). The registration
// answer's hand-off (regWait) is a channel the MQTT stage offers and the consumer fills. Session
// losses carry a typed reason (loss) from the event that ended the session to the count in
// Status.Reconnects. go test -race checks the rules where tests drive the goroutines together:
// the link's loop-owned fields are plain fields, with no lock to hide behind.
//
// Nothing the module sends is dropped: the AT reader, the MQTT client's event loop, the
// downlink consumer and this loop are joined by bounded queues that push back (a full one
// stops the reader reading the port). That cannot deadlock because of two rules: the consumer
// never waits for anything but the log, the LED and the loop's session queue; and the loop
// never waits for an AT command with that queue unread. Stages, health checks, resets and
// stored-message reads run in goroutines of their own; where the loop itself must wait for a
// call (the disconnect at shutdown, the drain's last publish, a stage stopping), it does so in
// while, which keeps the session events that come meanwhile for afterwards.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/cloud"
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
	// URCPort is the AT+QURCCFG="urcport" value that sends URCs to this port ("usbat",
	// "uart1", ...), set at every bring-up when the module names another; "" leaves it alone.
	URCPort string

	APN, APNUser, APNPassword string
	APNAuth                   modem.Auth // with APNUser; modem.AuthAuto picks what the module offers (the zero value is AuthNone)
	PDPContext                int

	SIMTimeout      time.Duration // how long to wait for +CPIN: READY
	RegisterTimeout time.Duration // how long to wait for network registration

	ClientIndex int
	MQTT        qmt.Config
	// TLS, when not nil, is the module TLS context set up (certificates uploaded as needed) before
	// every configure; MQTT.SSL must name its context.
	TLS  *qssl.Config
	Host string
	Port int
	// Platform is the cloud (or plain broker) the session connects to: the MQTT stage asks its
	// Identity at every CONNECT, and its Hint explains a refused or lost session. Host and Port
	// are its Endpoint's, after the configuration's overrides.
	Platform         cloud.Platform
	Subscribe        []qmt.Subscription
	PublishOnConnect []qmt.Message

	// ClockFloor is a time the system clock cannot really be before (the build's date): a clock
	// before it is reported as wrong, and the module's network clock is used for signing.
	ClockFloor time.Time
	// ClockSynced reports whether the system clock is synchronised (NTP; adjtimex's STA_UNSYNC
	// clear). When it is not, the time to sign a CONNECT with comes from the module's network
	// clock (AT+CCLK?, AT+QLTS). nil: taken as synchronised.
	ClockSynced func() (bool, error)

	// Reset, when not nil, is pulsed when the module does not answer even AT+CFUN=1,1.
	Reset Resetter

	// HealthInterval is how often an idle module is asked AT to prove it alive. 0 = 15 s.
	HealthInterval time.Duration
	// WatchdogInterval is how often the service manager wants a watchdog ping; 0 = none.
	WatchdogInterval time.Duration
	// Backoff is the retry policy for every kind of failure (the port, the module, MQTT), each
	// with a counter of its own; zero = backoff.Default.
	Backoff backoff.Policy
	// Reconnect is the MQTT back-off after the broker closed a session that had lasted, until a
	// session lasts again: full jitter over a window that starts at Initial and grows, so that a
	// fleet whose broker restarted does not reconnect in the same second; zero = backoff.Reconnect.
	Reconnect backoff.Policy
	// StableAfter is how long a session must stay connected before its loss resets the
	// back-off; a session that dies sooner counts as a failed attempt. 0 = 60 s.
	StableAfter time.Duration
	// Quiet is how long the first bring-up of the process keeps the newly opened port quiet, so
	// that a publish an earlier process left half-sent times out on the module; 0 = none.
	Quiet time.Duration
	// Trace logs every byte on the AT port (secrets masked).
	Trace bool

	// Outbox, when not nil, sends stored messages to the cloud while a session is connected.
	Outbox Outbox
	// Downlinks, when not nil, also receives every downlink (the local MQTT endpoint, the
	// thing model). It must not wait.
	Downlinks func(topic string, payload []byte)
	// LEDBound, when not nil, says the LED follows a property of the platform's thing model:
	// downlinks no longer toggle it, and once the network is ready it shows what LEDBound
	// returns (the property's last value) instead of going off.
	LEDBound func() bool
	// OnConnect, when not nil, is called by the loop each time a session is up. It must not wait.
	OnConnect func()
	// OnDeviceName, when not nil, is called with a registering device's name (dynamic
	// registration: it depends on the module) at every bring-up, once the SIM is read and
	// before anything is subscribed. It must not wait.
	OnDeviceName func(name string)
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

	// cfunWait is how long an unresponsive module gets to answer AT+CFUN=1,1 before the reset
	// line (if any) is pulsed.
	cfunWait time.Duration

	// probe is the watchdog's question to the loop: the loop taking it proves it runs. (An idle
	// loop is not woken otherwise: a daemon with nothing to do sleeps.)
	probe  chan struct{}
	reader atomic.Pointer[at.Conn] // the AT engine of the open port, nil while there is none

	// session is the client of the connected session, nil while there is none (Publish).
	session atomic.Pointer[qmt.Client]
	// regWait receives the answer of a registration in progress (register.go); nil otherwise.
	regWait atomic.Pointer[chan qmt.Received]
	// reconf carries new session settings from Reconfigure to the loop.
	reconf chan reconfig

	book     statusBook // what Status returns; written by the loop only
	ledState ledState   // the LED as last set (Status.LEDOn)
	// downlinks counts what the downlink consumers handed on (Status.Downlinks).
	downlinks downlinkCount
	atTotals  atTotals // what ATStats returns
}

// New returns a supervisor. notify may be nil.
func New(set Settings, log zerolog.Logger, led LED, notify Notifier) *Supervisor {
	if set.HealthInterval == 0 {
		set.HealthInterval = 15 * time.Second
	}
	if set.Backoff == (backoff.Policy{}) {
		set.Backoff = backoff.Default
	}
	if set.Reconnect == (backoff.Policy{}) {
		set.Reconnect = backoff.Reconnect
	}
	if set.StableAfter == 0 {
		set.StableAfter = time.Minute
	}
	if set.Quiet == 0 && set.MQTT.EditTimeout > 0 {
		set.Quiet = set.MQTT.EditTimeout + 500*time.Millisecond
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
	return &Supervisor{set: set, log: log, led: led, notify: notify, probe: make(chan struct{}), cfunWait: 15 * time.Second,
		reconf: make(chan reconfig)}
}

// reconfig is a Reconfigure call for the loop.
type reconfig struct {
	set  Settings
	why  string
	done chan struct{}
}

// Reconfigure gives a running supervisor new MQTT session settings — the broker (Host, Port),
// Platform (credentials), Subscribe, PublishOnConnect, MQTT (keep-alive, clean session, timeouts, the will)
// and TLS — taken from set; its other fields are ignored. A connected session is disconnected
// cleanly and connected again at once with them (nothing is lost: the outbox's drain stops and
// resumes, unacknowledged messages stay stored); a session being brought up uses them at its
// next MQTT attempt. why says why, for the log. It returns once the loop has taken them, or
// with ctx's error.
func (s *Supervisor) Reconfigure(ctx context.Context, set Settings, why string) error {
	r := reconfig{set: set, why: why, done: make(chan struct{})}
	select {
	case s.reconf <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type nopNotifier struct{}

func (nopNotifier) Ready()        {}
func (nopNotifier) Status(string) {}
func (nopNotifier) Watchdog()     {}
func (nopNotifier) Stopping()     {}

// machineConfig is the state machine's share of the settings.
func (s *Supervisor) machineConfig() machineConfig {
	return machineConfig{
		backoff:     s.set.Backoff,
		reconnect:   s.set.Reconnect,
		stableAfter: s.set.StableAfter,
		quiet:       s.set.Quiet,
		pollLimit:   map[stage]time.Duration{stageSIM: s.set.SIMTimeout, stageRegister: s.set.RegisterTimeout},
	}
}

// Run keeps the gateway going until ctx ends, then disconnects cleanly and returns nil. It returns
// an error only for a fault no retry can mend.
func (s *Supervisor) Run(ctx context.Context) error {
	l := &loop{
		Supervisor:   s,
		m:            newMachine(s.machineConfig()),
		stageDone:    make(chan stageResult, 1),
		healthDone:   make(chan healthResult, 2),
		resetDone:    make(chan struct{}, 1),
		drainDone:    make(chan error, 1),
		preparedNote: make(chan preparedNote, 1),
		timer:        time.NewTimer(time.Hour),
		renewTimer:   time.NewTimer(time.Hour),
	}
	l.timer.Stop()
	l.renewTimer.Stop()
	l.setStatus(func(st *Status) {
		st.Started, st.Port, st.Host, st.BrokerPort = time.Now(), s.set.PortName, s.set.Host, s.set.Port
		st.Stage = stagePort.String()
	})
	s.setLED(true, "power-up")
	if s.set.WatchdogInterval > 0 {
		go s.watchdog(ctx)
	}
	return l.run(ctx)
}

// loop is the state machine's runner: it turns what happens into the machine's inputs and
// performs the machine's effects. It is the only goroutine that touches its fields, and it owns
// every timer.
type loop struct {
	*Supervisor
	m *machine

	link        *link // the open port, nil while there is none
	stageCancel context.CancelFunc
	stageDone   chan stageResult
	stageLive   bool // a stage goroutine has not reported back yet
	healthDone  chan healthResult
	resetDone   chan struct{}
	drainCancel context.CancelFunc
	drainDone   chan error
	timer       *time.Timer
	renewTimer  *time.Timer // the machine's renewal of an expiring password
	renewed     bool        // effRenewed was performed; the next effConnected continues the session
	// preparedNote carries the module stage's progress note (stageIn.prepared); it holds one,
	// and a module stage sends at most one.
	preparedNote chan preparedNote
	// pending holds, in order, the events while took and left for the loop.
	pending []pendingEvent
	// newSet holds session settings from Reconfigure until no stage goroutine reads l.set.
	newSet *Settings

	// resetAt is when the loop last ordered AT+CFUN=1,1, zero once its RDY came; readyAt is when
	// the last RDY came. They tell the reset's own URCs from news (handleEvent).
	resetAt, readyAt time.Time

	lastPoll string // the last "not yet" logged at info, so polls do not flood the log
	// polledAt is when a health check last went on to read the signal, the registration and
	// the operator (pollInterval).
	polledAt time.Time
	// lastIMEI is the IMEI of the module last identified, to notice another one.
	lastIMEI string
	// clockNote is what was last said about the clock used for signing, so that it is logged at
	// warn/info when it changes and at debug otherwise (the MQTT stage carries it on).
	clockNote string
	// connectedAt is when the MQTT stage last connected, for the platform's hint on a lost link.
	connectedAt time.Time
	// expires is when the identity of the current session stops being accepted (zero: never),
	// from the MQTT stage's result: the session must be renewed before then.
	expires time.Time
	exit    bool
	exitErr error
}

// healthResult is a health check's answer on the port k: err, and whether the check goes on to
// read the signal, the registration and the operator (polling). Those readings come in a second
// healthResult, with found set.
type healthResult struct {
	k       *link
	err     error
	polling bool
	found   *findings
}

// preparedNote is the module stage's note that ATE0 took effect on the port k.
type preparedNote struct {
	k      *link
	echoes uint64
}

// stageResult is a stage's end as the loop takes it: which stage, on which port, what it
// handed back and its error.
type stageResult struct {
	st  stage
	ran *link // the port the stage ran on (nil for stagePort)
	stageOut
	err error
}

func (l *loop) run(ctx context.Context) error {
	health := time.NewTicker(l.set.HealthInterval)
	defer health.Stop()
	l.feed(ctx, input{kind: inStart})
	for !l.exit {
		if len(l.pending) > 0 {
			p := l.pending[0]
			l.pending = l.pending[1:]
			if p.k == l.link { // not an event of a port closed since
				l.event(ctx, p.ev)
			}
			continue
		}
		var events <-chan qmt.Event
		var portDone <-chan struct{}
		if l.link != nil && !l.link.dead {
			events, portDone = l.link.session, l.link.conn.Done()
		}
		select {
		case <-ctx.Done():
			l.feed(ctx, input{kind: inStop})
		case <-portDone:
			l.portGone(ctx)
		case ev, ok := <-events:
			if !ok {
				l.portGone(ctx)
				continue
			}
			l.event(ctx, ev)
		case r := <-l.reconf:
			l.reconfigure(ctx, r)
		case n := <-l.preparedNote:
			l.prepared(n)
		case r := <-l.stageDone:
			l.stageLive = false
			l.stageCancel()
			select {
			case n := <-l.preparedNote: // sent before the result: taken first
				l.prepared(n)
			default:
			}
			l.applySettings()
			if r.link != nil {
				l.link = r.link
				l.startConsumer(ctx, r.link)
				l.reader.Store(r.link.conn)
				l.setStatus(func(st *Status) { st.PortOpen = true })
			}
			if r.st == stageMQTT {
				l.clockNote = r.clockNote
			}
			if r.ran != nil && r.ran == l.link {
				l.learn(r.found)
			}
			if r.err == nil && r.st == stageSIM && l.link != nil {
				l.setTopics()
			}
			if r.err == nil && r.st == stageMQTT {
				l.connectedAt, l.expires = time.Now(), r.expires
				l.setStatus(func(st *Status) { st.IdentityExpires = r.expires })
			}
			l.feed(ctx, input{kind: inStageDone, stage: r.st, err: r.err, validFor: r.validFor, signedAt: r.signedAt})
		case <-l.timer.C:
			l.feed(ctx, input{kind: inTimer})
		case <-l.renewTimer.C:
			l.feed(ctx, input{kind: inRenewDue})
		case <-health.C:
			l.feed(ctx, input{kind: inHealthTick})
		case r := <-l.healthDone:
			switch {
			case r.k != l.link: // a late answer from a port closed since
			case r.found != nil:
				l.learn(*r.found)
			default:
				if r.polling {
					l.polledAt = time.Now()
				}
				l.healthChecked(ctx, r.err)
			}
		case <-l.resetDone:
			l.feed(ctx, input{kind: inResetDone})
		case <-l.probe:
			// The watchdog asked: taking it is the answer.
		}
	}
	l.cleanUp()
	l.notify.Stopping()
	return l.exitErr
}

// reconfigure takes Reconfigure's settings: at once when no stage goroutine reads them, else when
// the stage reports back; and has the machine reconnect.
func (l *loop) reconfigure(ctx context.Context, r reconfig) {
	set := r.set
	l.newSet = &set
	if !l.stageLive {
		l.applySettings()
	}
	l.feed(ctx, input{kind: inReconnect, why: r.why})
	close(r.done)
}

// applySettings puts the session settings Reconfigure gave in place, when there are any.
func (l *loop) applySettings() {
	n := l.newSet
	if n == nil {
		return
	}
	l.newSet = nil
	l.set.Host, l.set.Port, l.set.Platform = n.Host, n.Port, n.Platform
	l.set.Subscribe, l.set.PublishOnConnect = n.Subscribe, n.PublishOnConnect
	l.set.MQTT, l.set.TLS = n.MQTT, n.TLS
	if l.link != nil {
		l.setTopics()
	}
	l.setStatus(func(st *Status) { st.Host, st.BrokerPort = n.Host, n.Port })
}

// event acts on one event of the link's client and gives the machine what it means.
func (l *loop) event(ctx context.Context, ev qmt.Event) {
	if r, ok := l.handleEvent(ev); ok {
		l.feed(ctx, input{kind: inFallBack, stage: r.to, why: r.why, loss: r.loss})
	}
}

// pendingEvent is a session event while kept, with the link it came from.
type pendingEvent struct {
	k  *link
	ev qmt.Event
}

// maxPending bounds the events while keeps for the loop; beyond it the rest wait in the link's
// session queue.
const maxPending = 64

// while runs fn, which waits for something that may need the module's output (a disconnect's
// result, the drain's last publish, a stage's last command), and meanwhile goes on taking the
// link's session events: a full session queue holds the downlink consumer back, and with it
// the AT reader, which would leave fn's answer unread. The events are kept, in order, for the
// loop to act on afterwards, since acting on one means feeding the machine, which is
// performing an effect now. Downlinks do not come here: their consumer hands them on meanwhile.
func (l *loop) while(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	ended := false // the session events ended; the loop will notice
	for {
		var events <-chan qmt.Event
		if l.link != nil && !l.link.dead && !ended && len(l.pending) < maxPending {
			events = l.link.session
		}
		select {
		case <-done:
			return
		case ev, ok := <-events:
			if !ok {
				ended = true
				continue
			}
			l.pending = append(l.pending, pendingEvent{l.link, ev})
		}
	}
}

// health hands a health check's result to the loop; once ctx ends the loop may be gone.
func (l *loop) health(ctx context.Context, r healthResult) {
	select {
	case l.healthDone <- r:
	case <-ctx.Done():
	}
}

// prepared takes the module stage's note that ATE0 took effect on its port.
func (l *loop) prepared(n preparedNote) {
	if n.k == l.link {
		n.k.prepared, n.k.echoes = true, n.echoes
	}
}

// learn puts what a stage or a health check on the open port found in the status and on the
// link. A module with another IMEI than the last one is a replaced module: the outbox forgets
// what it learnt about the old one.
func (l *loop) learn(f findings) {
	k := l.link
	if f.module != nil {
		id := *f.module
		k.id = id
		if l.lastIMEI != "" && l.lastIMEI != id.IMEI {
			l.log.Warn().Str("event", logging.EventModuleReplaced).Str("old_imei", l.lastIMEI).
				Str("new_imei", id.IMEI).Msg("a different module is attached; setting it up from the host's configuration")
			if l.set.Outbox != nil {
				l.set.Outbox.Reset()
			}
		}
		l.lastIMEI = id.IMEI
	}
	if f.iccid != nil {
		k.id.ICCID = *f.iccid
	}
	if f.deviceName != nil {
		k.deviceName = *f.deviceName
		if l.set.OnDeviceName != nil {
			l.set.OnDeviceName(k.deviceName)
		}
	}
	l.setStatus(func(st *Status) {
		if f.module != nil {
			st.Module = *f.module
		}
		if f.sim != nil {
			st.SIM = *f.sim
		}
		if f.iccid != nil {
			st.Module.ICCID = *f.iccid
		}
		if f.deviceName != nil {
			st.DeviceName = *f.deviceName
		}
		if r := f.reg; r != nil {
			st.Registered, st.Registration, st.NetworkType = r.Registered(), r.String(), networkType(*r)
		}
		if f.pdpKnown {
			st.PDPAddresses = f.pdp
			st.PDPAddress = ""
			if len(f.pdp) > 0 {
				st.PDPAddress = f.pdp[0]
			}
		}
		if f.signal != nil {
			st.Signal, st.SignalAt = *f.signal, f.signalAt
		}
		if f.operator != nil {
			st.Operator = *f.operator
		}
		if f.clientID != nil {
			st.ClientID = *f.clientID
		}
		if f.subsKnown {
			st.Subscriptions, st.Subscribed = st.Subscriptions[:0], f.subscribed
			for _, sub := range f.subscribed {
				st.Subscriptions = append(st.Subscriptions, sub.Topic)
			}
		}
		st.Published += f.published
	})
	if f.networkReady {
		if l.set.LEDBound != nil {
			l.setLED(l.set.LEDBound(), "network ready; the LED shows its property")
		} else {
			l.setLED(false, "network ready")
		}
	}
}

// portGone reports the loss of the open port to the machine, once.
func (l *loop) portGone(ctx context.Context) {
	err := l.link.conn.Err()
	if err == nil {
		err = at.ErrPortGone
	}
	l.link.dead = true
	l.feed(ctx, input{kind: inPortLost, err: err})
}

// healthChecked hands a health check's result to the machine, logging a failure, and notices a
// module that restarted with its echo on although its RDY was missed.
func (l *loop) healthChecked(ctx context.Context, err error) {
	if l.link != nil {
		l.link.reportHeldBack(l.log)
	}
	if err != nil {
		l.log.Warn().Err(err).Msg("module did not answer the health check")
	}
	l.feed(ctx, input{kind: inHealthDone, err: err})
	if err == nil && l.link != nil && l.link.restartedWithEcho() {
		l.feed(ctx, input{kind: inFallBack, stage: stageModule, why: "echo is back on: the module restarted", loss: lossReboot})
	}
}

// feed gives the machine one input, stamped with the time, and performs its effects.
func (l *loop) feed(ctx context.Context, in input) {
	in.now = time.Now()
	for _, e := range l.m.step(in) {
		l.perform(ctx, in.now, e)
	}
}

func (l *loop) perform(ctx context.Context, now time.Time, e effect) {
	switch e.kind {
	case effReady:
		l.notify.Ready()
	case effStatus:
		l.notify.Status(e.text)
		l.setStatus(func(st *Status) { st.Doing = e.text })
	case effRunStage:
		l.setStatus(func(st *Status) { st.Stage = e.stage.String() })
		var sctx context.Context
		sctx, l.stageCancel = context.WithCancel(ctx)
		l.stageLive = true
		lk := l.link
		if e.stage == stageModule && lk != nil {
			lk.prepared = false // until the stage's note says ATE0 took effect again
		}
		in := stageIn{clockNote: l.clockNote, prepared: func(echoes uint64) {
			select {
			case l.preparedNote <- preparedNote{lk, echoes}:
			case <-sctx.Done():
			}
		}}
		go func() {
			out, err := l.runStage(sctx, e.stage, lk, in)
			l.stageDone <- stageResult{st: e.stage, ran: lk, stageOut: out, err: err}
		}()
	case effCancelStage:
		l.stageCancel()
	case effArmTimer:
		if !l.timer.Stop() {
			select {
			case <-l.timer.C:
			default:
			}
		}
		l.timer.Reset(e.at.Sub(now))
	case effRetry:
		l.setStatus(func(st *Status) {
			st.LastError, st.LastErrorAt = e.err.Error(), now
			st.NextAttempt, st.Attempt = now.Add(e.delay), e.attempt
		})
		l.logRetry(e)
	case effPoll:
		l.logPoll(e)
	case effConnected:
		l.lastPoll = ""
		renewed := l.renewed
		l.renewed = false
		l.setStatus(func(st *Status) {
			st.Connected, st.Stage = true, stageConnected.String()
			if !renewed || st.ConnectedAt.IsZero() {
				st.ConnectedAt = now // a renewed session goes on: connected since it first came up
			}
			st.NextAttempt, st.Attempt = time.Time{}, 0
		})
		status := fmt.Sprintf("connected to %s:%d as module %s", l.set.Host, l.set.Port, l.link.id.IMEI)
		ev := l.log.Info().Str("event", logging.EventSessionUp).Str("host", l.set.Host).Int("port", l.set.Port).
			Str("imei", l.link.id.IMEI)
		if renewed {
			ev = ev.Bool("renewed", true)
		}
		ev.Msg("session up")
		l.notify.Status(status)
		l.session.Store(l.link.client)
		if l.set.OnConnect != nil {
			l.set.OnConnect()
		}
	case effStartDrain:
		l.startDrain(ctx)
	case effStopDrain:
		l.stopDrain()
	case effLost:
		l.session.Store(nil)
		l.setStatus(func(st *Status) {
			st.Connected, st.ConnectedAt = false, time.Time{}
			if st.Reconnects == nil {
				st.Reconnects = map[string]uint64{}
			}
			st.Reconnects[e.loss.String()]++
		})
		ev := l.log.Warn().Str("event", logging.EventMQTTDisconnected).Str("reason", e.text).
			Str("connected_for", e.dur.Round(time.Millisecond).String())
		if e.dur < l.set.StableAfter {
			ev = ev.Str("note", fmt.Sprintf("up less than %s: counts as a failed attempt", l.set.StableAfter))
		}
		ev.Msg("MQTT session lost")
	case effHealth:
		k := l.link
		poll := now.Sub(l.polledAt) >= pollInterval
		go func() {
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := k.conn.Run(hctx, "AT")
			poll := poll && err == nil
			l.health(ctx, healthResult{k: k, err: err, polling: poll})
			if poll {
				f := l.poll(hctx, k)
				l.health(ctx, healthResult{k: k, found: &f})
			}
		}()
	case effReset:
		lk := l.link
		l.resetAt = now
		go func() {
			if lk != nil { // a port lost meanwhile: reopening it is the reset
				lk.escalate(ctx, l.Supervisor, e.err)
			}
			l.resetDone <- struct{}{}
		}()
	case effClosePort:
		l.closeLink()
	case effShutdown:
		if e.text != "" { // a reconnect, not the daemon stopping
			l.setStatus(func(st *Status) { st.Connected, st.ConnectedAt = false, time.Time{} })
		}
		if k := l.link; k != nil {
			l.while(func() { k.shutdown(l.log, e.text) })
		}
	case effArmRenew:
		if !l.renewTimer.Stop() {
			select {
			case <-l.renewTimer.C:
			default:
			}
		}
		if !e.at.IsZero() {
			l.renewTimer.Reset(e.at.Sub(now))
			l.log.Debug().Time("renew_at", e.at).Str("renew_in", e.at.Sub(now).Round(time.Millisecond).String()).
				Msg("the session's password expires: renewal planned")
		}
	case effRenew:
		l.log.Info().Time("expires", e.at).Str("expires_in", e.at.Sub(now).Round(time.Millisecond).String()).
			Msg("the session's password expires soon: disconnecting cleanly to connect with a fresh one")
		if k := l.link; k != nil {
			l.while(func() { k.renewDisconnect(ctx, l.log) })
		}
	case effRenewed:
		l.renewed = true // the effConnected that follows is the same session's
		l.setStatus(func(st *Status) { st.Renewals++ })
		ev := l.log.Info().Str("event", logging.EventTokenRenewed).Str("took", e.dur.Round(time.Millisecond).String())
		if !l.expires.IsZero() {
			ev = ev.Time("expires", l.expires)
		}
		ev.Msg("password renewed: the session was re-established with a freshly signed identity")
	case effExit:
		l.exit, l.exitErr = true, e.err
	}
}

// logRetry logs a failed attempt with the time to the next one (retry_in), which is what the
// machine's timer is armed for.
func (l *loop) logRetry(e effect) {
	l.lastPoll = ""
	retry := e.delay.Round(time.Millisecond).String()
	var step *stepError
	stepName := e.stage.String()
	if errors.As(e.err, &step) {
		stepName = step.step
	}
	var ev *zerolog.Event
	switch {
	case e.spread:
		l.log.Info().Str("event", logging.EventMQTTReconnectSpread).Str("stage", e.stage.String()).
			Int("attempt", e.attempt).Str("retry_in", retry).Str("window", l.set.Reconnect.Initial.String()).
			Msg("the broker closed a session that had lasted: reconnecting after a delay spread over the reconnect window")
		return
	case e.lost:
		ev = l.log.Warn()
	case e.kindOf == kindPort:
		ev = l.log.Warn().Str("event", logging.EventModuleLost).Str("port", l.set.PortName)
	case e.kindOf == kindMQTT:
		ev = l.log.Error().Str("event", logging.EventMQTTConnectFailed)
		var re *qmt.ResultError
		if errors.As(e.err, &re) {
			ev = ev.Int("code", re.Code).Int("result", re.Result)
		}
	default:
		ev = l.log.Error().Str("event", logging.EventBringUpFailed)
	}
	ev = ev.Str("stage", e.stage.String()).Str("step", stepName).Err(e.err).
		Int("attempt", e.attempt).Str("retry_in", retry)
	if step != nil && step.hint != "" {
		ev = ev.Str("hint", step.hint)
	}
	switch {
	case e.lost:
		ev.Msg("the session did not last: backing off before the next attempt")
	case e.kindOf == kindPort:
		ev.Msg("module lost; waiting for it to come back")
	case e.kindOf == kindMQTT:
		ev.Msg("MQTT " + stepName + " failed")
	default:
		ev.Msg("module bring-up failed at " + stepName)
	}
}

// logPoll logs a stage that waits for its condition: at info when what the module says changes,
// at debug while it stays the same.
func (l *loop) logPoll(e effect) {
	what := e.stage.String() + ": " + e.err.Error()
	ev := l.log.Debug()
	if what != l.lastPoll {
		ev = l.log.Info()
		l.lastPoll = what
	}
	ev.Str("step", e.stage.String()).Str("state", e.err.Error()).
		Str("poll_in", e.delay.Round(time.Millisecond).String()).Msg(e.stage.doing())
}

// The outbox drains while the session is connected, and only then.
func (l *loop) startDrain(ctx context.Context) {
	if l.set.Outbox == nil || l.drainCancel != nil {
		return
	}
	var dctx context.Context
	dctx, l.drainCancel = context.WithCancel(ctx)
	client := l.link.client
	go func() { l.drainDone <- l.set.Outbox.Drain(dctx, client) }()
}

func (l *loop) stopDrain() {
	if l.drainCancel == nil {
		return
	}
	l.drainCancel()
	var err error
	l.while(func() { err = <-l.drainDone })
	if err != nil {
		l.log.Error().Err(err).Msg("outbox drain stopped with an error")
	}
	l.drainCancel = nil
}

func (l *loop) closeLink() {
	if l.link == nil {
		return
	}
	l.session.Store(nil)
	l.link.close()
	l.retireReader()
	l.link = nil
	l.setStatus(func(st *Status) { st.PortOpen, st.PDPAddress, st.PDPAddresses = false, "", nil })
}

// cleanUp stops what still runs when Run returns.
func (l *loop) cleanUp() {
	l.stopDrain()
	if l.stageLive {
		l.stageCancel()
		var r stageResult
		l.while(func() { r = <-l.stageDone })
		if r.link != nil {
			r.link.close()
		}
	}
	l.closeLink()
	l.timer.Stop()
	l.renewTimer.Stop()
}

// watchdog pings the service manager while the supervisor loop makes progress — it takes the
// watchdog's probe within a quarter of the interval — and, when a module is attached, its AT
// reader has read something within readerWindow (the health checks make the module answer at
// least every HealthInterval). A daemon that recovers by itself keeps being pinged; one that
// hangs is restarted by systemd. One tick every half interval is all it wakes for.
func (s *Supervisor) watchdog(ctx context.Context) {
	t := time.NewTicker(s.set.WatchdogInterval / 2)
	defer t.Stop()
	readerWindow := 4 * s.set.HealthInterval
	var lastIn uint64
	var lastConn *at.Conn
	lastRead := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			loopOK := false
			wait := time.NewTimer(s.set.WatchdogInterval / 4)
			select {
			case s.probe <- struct{}{}:
				loopOK = true
			case <-wait.C:
			case <-ctx.Done():
				wait.Stop()
				return
			}
			wait.Stop()
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

// ledState is the LED as last set. The LED is a device several goroutines drive — the loop
// (power-up, network ready), the downlinks (a toggle) and SetLED (the thing model) — so it is
// not the loop's state: its lock orders them, and is held from the change to its record, so
// that the record is the device's state.
type ledState struct {
	mu        sync.Mutex
	on, known bool
}

// setLED switches the LED for why, logged; a failure is logged too.
func (s *Supervisor) setLED(on bool, why string) {
	if err := s.SetLED(on, why); err != nil {
		s.log.Error().Err(err).Msg("cannot set the LED")
	}
}

// SetLED switches the LED (for the thing model: a property set, a blink), logged with why.
func (s *Supervisor) SetLED(on bool, why string) error {
	if s.led == nil {
		return nil
	}
	s.ledState.mu.Lock()
	defer s.ledState.mu.Unlock()
	if err := s.led.Set(on); err != nil {
		return err
	}
	s.ledChanged(on, why)
	return nil
}

// ledChanged records and logs that the LED is now on (or off), for why. s.ledState.mu is held.
func (s *Supervisor) ledChanged(on bool, why string) {
	s.ledState.on, s.ledState.known = on, true
	s.log.Info().Str("event", logging.EventLED).Bool("on", on).Str("why", why).Msg("LED")
}

// LEDState is the LED's state as last set; known is false before the first.
func (s *Supervisor) LEDState() (on, known bool) {
	s.ledState.mu.Lock()
	defer s.ledState.mu.Unlock()
	return s.ledState.on, s.ledState.known
}

// ErrNotConnected is returned by Publish while there is no MQTT session.
var ErrNotConnected = errors.New("no MQTT session now")

// Publish sends m on the connected session, in turn with the session's other publishes, and
// waits for the module's result (the broker's acknowledgement for QoS 1). Without a session it
// returns ErrNotConnected at once. It never runs on the loop.
func (s *Supervisor) Publish(ctx context.Context, m qmt.Message) error {
	c := s.session.Load()
	if c == nil {
		return ErrNotConnected
	}
	return c.Publish(ctx, m)
}

// toggleLED toggles the LED for why, logged; a failure is logged too.
func (s *Supervisor) toggleLED(why string) {
	if s.led == nil {
		return
	}
	s.ledState.mu.Lock()
	defer s.ledState.mu.Unlock()
	on, err := s.led.Toggle()
	if err != nil {
		s.log.Error().Err(err).Msg("cannot toggle the LED")
		return
	}
	s.ledChanged(on, why)
}
