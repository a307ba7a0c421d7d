// Package daemon wires a validated configuration to the parts that do the work: the AT port
// (a path, or found by USB identity), the LED (a GPIO line or a virtual one), the credentials,
// the local MQTT endpoint with its outbox, and the supervisor. cmd/gatewayd and `gatewayd sim`
// both run the daemon through it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/gpio"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/outbox/migrate"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/internal/supervisor"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
)

// EditTimeout is how long the module waits for a publish's payload before it gives the publish
// up; the first bring-up of a process stays quiet this long (plus a margin), so that a publish a
// killed gatewayd left half-sent is never completed with the new process's commands.
const EditTimeout = 2 * time.Second

// Run runs the gateway described by cfg until ctx ends. notify may be nil; version is what
// `gatewayd status` reports.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger, notify supervisor.Notifier, watchdog time.Duration, version string) error {
	return RunWith(ctx, cfg, log, Options{Notify: notify, Watchdog: watchdog, Version: version})
}

// Options are RunWith's settings beyond the configuration.
type Options struct {
	Notify   supervisor.Notifier // may be nil
	Watchdog time.Duration       // systemd's watchdog interval; 0: none
	Version  string              // what `gatewayd status` reports
	// Reloads, when not nil, delivers configurations to apply while the daemon runs (SIGHUP);
	// see Reload for what is applied how.
	Reloads <-chan Reload
	// Level is the level of log, which a reload changes; nil: a new log.level needs a restart.
	Level *logging.Level
}

// RunWith runs the gateway described by cfg until ctx ends, applying the reloads it is given.
func RunWith(ctx context.Context, cfg *config.Config, log zerolog.Logger, opt Options) error {
	notify, watchdog, version := opt.Notify, opt.Watchdog, opt.Version
	for _, w := range cfg.Warnings {
		log.Warn().Str("config", cfg.File).Msg(w)
	}
	gl, err := OpenLED(cfg.LED, log)
	if err != nil {
		return err
	}
	led := &swapLED{led: gl, cfg: cfg.LED}
	defer func() {
		if err := led.Close(); err != nil {
			log.Warn().Err(err).Msg("releasing the LED line")
		}
	}()
	set, err := Settings(cfg, log)
	if err != nil {
		return err
	}
	if r := cfg.Reset; r != nil {
		reset, err := gpio.OpenReset(gpioConfig(r.Line), r.Pulse, log)
		if err != nil {
			return fmt.Errorf("reset line: %w", err)
		}
		defer func() {
			if err := reset.Close(); err != nil {
				log.Warn().Err(err).Msg("releasing the reset line")
			}
		}()
		log.Info().Str("line", reset.String()).Msg("module reset line ready")
		set.Reset = reset
	}
	set.WatchdogInterval = watchdog
	uplinks := newUplinks(cfg)
	if uplinks == nil && opt.Reloads != nil {
		uplinks = metrics.NewUplinks() // a reload may turn [metrics] on: count from the start
	}
	var store *outbox.Store
	var ep *local.Endpoint
	if cfg.Local != nil {
		var d *drain.Drainer
		store, d, ep, err = openLocal(cfg, log)
		if err != nil {
			return err
		}
		defer func() {
			logOutboxStats(log, store, d, ep)
			if store == nil {
				return
			}
			if err := store.Close(); err != nil {
				log.Warn().Err(err).Msg("closing the outbox")
			}
		}()
		if d != nil {
			set.Outbox = drainer{d, log, uplinks}
		}
		set.Downlinks = func(topic string, payload []byte) {
			// Deliver never waits; a downlink its queue had no room for is logged by the endpoint.
			if err := ep.Deliver(topic, payload); err != nil && !errors.Is(err, local.ErrQueueFull) {
				log.Warn().Err(err).Str("topic", topic).Msg("downlink not delivered to local clients")
			}
		}
	}
	var createThing func(*supervisor.Supervisor, thing.Publisher, func() any) *thing.Engine
	if cfg.Thing != nil {
		if createThing, err = thingHooks(cfg, &set, log); err != nil {
			return err
		}
	}
	sup := supervisor.New(set, log, led, notify)
	ctl := controlHandler{sup: sup, store: store, ep: ep, version: version, device: cfg.DeviceName(), rev: cfg.Revision}
	var eng *thing.Engine
	if createThing != nil {
		var pub thing.Publisher = sessionPublisher{sup: sup, qos: cfg.Thing.QoS, log: log}
		if dr, ok := set.Outbox.(drainer); ok && store != nil {
			pub = outboxPublisher{store: store, d: dr.Drainer, qos: cfg.Thing.QoS}
		}
		eng = createThing(sup, pub, func() any { return ctl.Status() })
	}

	// From here every part runs as a task of t (see tasks.go for what each one's end means), and
	// RunWith returns once all have ended; the deferred closes above run after that.
	t := newTasks(ctx)
	if ep != nil {
		t.background(func(ctx context.Context) { runLocal(ctx, ep, log) })
	}
	if eng != nil {
		t.background(eng.Run)
	}
	if p, ok := controlPart(cfg, ctl, log); ok {
		t.background(func(ctx context.Context) { keep(ctx, p, restartPolicy, log) })
	}
	mx := &metricsRunner{tasks: t, src: metricSources{sup: sup, outbox: set.Outbox, store: store, ep: ep, uplinks: uplinks, version: version,
		thing: eng, device: cfg.DeviceName(), rev: cfg.Revision}, log: log}
	mx.start(cfg)
	t.essential(sup.Run)
	if opt.Reloads != nil {
		rl := &reloader{cfg: cfg, log: log, level: opt.Level, led: led, metrics: mx, sup: sup, ep: ep}
		t.background(func(ctx context.Context) { rl.run(ctx, opt.Reloads) })
	}
	return t.wait()
}

// runLocal runs the local endpoint until ctx ends. Its failure is logged and ends nothing else
// (see tasks.go): the cellular session, and the draining of what the outbox holds, go on.
func runLocal(ctx context.Context, ep *local.Endpoint, log zerolog.Logger) {
	if err := ep.Run(ctx); err != nil {
		log.Error().Str(logging.EventKey, logging.EventLocalUnavailable).Err(err).
			Str("hint", "systemctl restart gatewayd starts the local endpoint again").
			Msg("the local MQTT endpoint stopped: local clients can neither publish nor receive downlinks until gatewayd restarts; the cellular session goes on")
	}
}

// openLocal opens the outbox (a damaged store is set aside) and the local MQTT endpoint that
// feeds it. An outbox directory that cannot be used (an SD card gone read-only, permissions)
// does not stop the daemon: it logs that loudly and runs without the outbox — store and
// drainer nil, the endpoint refusing what it would have stored — so that downlinks, the LED
// and local delivery go on. Only another process holding the store (outbox.ErrLocked: a
// second gatewayd) is fatal.
func openLocal(cfg *config.Config, log zerolog.Logger) (*outbox.Store, *drain.Drainer, *local.Endpoint, error) {
	o := cfg.Outbox
	var box local.Outbox
	commitWait := o.CommitWait
	if commitWait == 0 {
		commitWait = -1 // commit_wait = "0s": never wait (outbox.Config's 0 is its default)
	}
	store, err := outbox.Open(outbox.Config{Dir: o.Dir, MaxBytes: o.MaxBytes, MaxAge: o.MaxAge, Overflow: outbox.Overflow(o.Overflow),
		CommitWait: commitWait, Migrate: migrate.Bolt{Log: log.With().Str("component", "outbox").Logger()}}, log)
	var d *drain.Drainer
	switch {
	case errors.Is(err, outbox.ErrLocked):
		return nil, nil, nil, err
	case err != nil:
		log.Error().Str(logging.EventKey, logging.EventOutboxUnavailable).Str("dir", o.Dir).Err(err).
			Str("hint", "check that the directory is writable and its file system not read-only (dmesg; an SD card that fails turns read-only), then restart gatewayd").
			Msg("the outbox cannot be opened: running without it; local publishes on forwarded topics are refused, downlinks go on")
		store, box = nil, noOutbox{err}
	default:
		box = store
		d = drain.New(store, drain.Options{Window: o.Window}, log)
	}
	l := cfg.Local
	lc := local.Config{Listen: l.Listen, Socket: l.Socket, Username: l.Username, Password: l.Password.Reveal(), AllowNonLoopback: l.AllowNonLoopback,
		MaxClients: l.MaxClients, MaxTopic: l.MaxTopic, MaxRetained: l.MaxRetained, MaxRetainedBytes: l.MaxRetainedBytes}
	for _, f := range l.Forward {
		lc.Forward = append(lc.Forward, local.Forward{Topic: f.Topic, QoS: f.QoS})
	}
	var notify func()
	if d != nil {
		notify = d.Notify
	}
	ep, err := local.New(lc, box, notify, log)
	if err != nil {
		if store != nil {
			store.Close()
		}
		return nil, nil, nil, fmt.Errorf("local endpoint: %w", err)
	}
	return store, d, ep, nil
}

// noOutbox stands in for an outbox that could not be opened: it refuses every message.
type noOutbox struct{ err error }

// Append refuses the message, saying why.
func (n noOutbox) Append(*outbox.Source, string, []byte, int, bool) (outbox.Ticket, error) {
	return outbox.Ticket{}, fmt.Errorf("the outbox is unavailable (%w): %w", n.err, errNoOutbox)
}

// Wait is never reached: Append gives out no ticket.
func (n noOutbox) Wait(outbox.Ticket) error { return n.err }

// errNoOutbox marks a publish refused because the daemon runs without its outbox.
var errNoOutbox = errors.New("running without an outbox")

// drainer adapts drain.Drainer to the supervisor's Outbox.
type drainer struct {
	*drain.Drainer
	log     zerolog.Logger
	uplinks *metrics.Uplinks // nil without [metrics]
}

// Drain runs the drainer over the session's client until ctx ends.
func (d drainer) Drain(ctx context.Context, c *qmt.Client) error {
	return d.Run(ctx, loggedPublisher{c, d.log, d.uplinks})
}

// loggedPublisher is the session's client as the drainer's publisher: each message the broker
// acknowledged gets the same `published` line as the daemon's own publishes, with from "outbox".
// It is a drain.QueuedPublisher, so the drainer keeps its window. uplinks (nil without
// [metrics]) counts and times each one.
type loggedPublisher struct {
	c       *qmt.Client
	log     zerolog.Logger
	uplinks *metrics.Uplinks
}

var _ drain.QueuedPublisher = loggedPublisher{}

// Publish is PublishQueued without the callback.
func (p loggedPublisher) Publish(ctx context.Context, m qmt.Message) error {
	return p.PublishQueued(ctx, m, nil)
}

// PublishQueued publishes m through the client and logs it once acknowledged.
func (p loggedPublisher) PublishQueued(ctx context.Context, m qmt.Message, queued func()) error {
	start := time.Now()
	err := p.c.PublishQueued(ctx, m, queued)
	if err == nil {
		p.uplinks.Published(len(m.Payload), time.Since(start))
		p.log.Info().Str(logging.EventKey, logging.EventPublished).Str("from", "outbox").Str("topic", m.Topic).
			Int("bytes", len(m.Payload)).Int("qos", m.QoS).Msg("published")
	}
	return err
}

// logOutboxStats logs what the outbox, the drainer and the local endpoint counted in this run.
func logOutboxStats(log zerolog.Logger, store *outbox.Store, d *drain.Drainer, ep *local.Endpoint) {
	var st outbox.Stats
	var ds drain.Stats
	if store != nil { // nil: the daemon ran without its outbox
		st, ds = store.Stats(), d.Stats()
	}
	es := ep.Stats()
	log.Info().Str(logging.EventKey, logging.EventOutboxStats).Bool("outbox_available", store != nil).
		Int("messages", st.Messages).Int64("bytes", st.Bytes).
		Uint64("stored", st.Stored).Uint64("delivered", st.Delivered).Uint64("refused", st.Refused).
		Uint64("expired", st.Expired).Uint64("dropped_oldest", st.DroppedOldest).Uint64("rejected", st.Rejected).
		Uint64("damaged", st.Damaged).Uint64("duplicates_possible", st.DuplicatesPossible).
		Uint64("publish_failures", ds.Failed).Uint64("publish_undelivered", ds.Undelivered).Uint64("publish_refused_rejected", ds.Refused).
		Int("max_in_flight", ds.MaxInFlight).Uint64("window_shrunk", ds.Shrunk).Uint64("window_restored", ds.Restored).
		Uint64("local_forwarded", es.Forwarded).Uint64("local_refused", es.Refused).
		Uint64("local_not_forwarded", es.NotForwarded).Uint64("local_delivered", es.Delivered).
		Msg("outbox counters for this run")
}

// OpenLED opens the configured LED line, or a virtual LED when none is configured.
func OpenLED(c config.GPIOLine, log zerolog.Logger) (gpio.LED, error) {
	g := gpioConfig(c)
	g.Initial = true
	led, err := gpio.Open(g, log)
	if err != nil {
		return nil, fmt.Errorf("LED: %w", err)
	}
	return led, nil
}

// gpioConfig names a configured line for package gpio.
func gpioConfig(c config.GPIOLine) gpio.Config {
	g := gpio.Config{Chip: c.Chip, Line: c.Name, ActiveLow: c.ActiveLow}
	if c.Offset >= 0 {
		g.Line = fmt.Sprint(c.Offset)
	}
	return g
}

// Settings turns a validated configuration into the supervisor's settings.
func Settings(cfg *config.Config, log zerolog.Logger) (supervisor.Settings, error) {
	m := cfg.MQTT
	set := supervisor.Settings{
		PortName:        cfg.Serial.Port,
		URCPort:         cfg.Serial.URCPort,
		APN:             cfg.Module.APN,
		APNUser:         cfg.Module.APNUser,
		APNPassword:     cfg.Module.APNPassword.Reveal(),
		APNAuth:         APNAuth(cfg.Module.APNAuth),
		PDPContext:      cfg.Module.PDPContext,
		SIMTimeout:      cfg.Module.SIMTimeout,
		RegisterTimeout: cfg.Module.RegisterTimeout,
		HealthInterval:  cfg.Module.HealthInterval,
		Backoff:         backoff.Policy{Initial: cfg.Retry.Initial, Max: cfg.Retry.Max, Factor: 2, Jitter: 0.5},
		Reconnect:       backoff.Policy{Initial: cfg.Retry.ReconnectWindow, Max: cfg.Retry.ReconnectMax, Factor: 2, Jitter: 1},
		StableAfter:     cfg.Retry.StableAfter,
		ClientIndex:     m.ClientIndex,
		MQTT: qmt.Config{
			Version:       4,
			PDPCID:        cfg.Module.PDPContext,
			KeepAlive:     m.KeepAlive,
			CleanSession:  m.CleanSession,
			PacketTimeout: m.PacketTimeout,
			Retries:       m.Retries,
			RecvMode:      qmt.RecvDirectLength,
			EditTimeout:   EditTimeout,
		},
		Host:     m.Host,
		Port:     m.Port,
		Platform: cfg.Platform(),
		Trace:    cfg.Log.ATTrace,
		// A system clock before this build is wrong; an unsynchronised one is replaced by the
		// module's network clock for signing.
		ClockFloor:  BuildTime(),
		ClockSynced: ClockSynced,
	}
	if set.URCPort == config.URCPortKeep {
		set.URCPort = ""
	}
	if t := m.TLS; t != nil {
		q := t.QSSL()
		set.TLS = &q
		set.MQTT.SSL = &qmt.SSL{Context: q.Context}
	}
	if w := m.Will; w != nil {
		set.MQTT.Will = &qmt.Will{Topic: w.Topic, Message: w.Message, QoS: w.QoS, Retain: w.Retain}
	}
	if m.KeepAlive == 0 {
		set.MQTT.KeepAlive = -1 // 0 in the config means keep-alive off
	}
	for _, s := range m.Subscribe {
		set.Subscribe = append(set.Subscribe, qmt.Subscription{Topic: s.Topic, QoS: s.QoS})
	}
	for _, p := range m.PublishOnConnect {
		set.PublishOnConnect = append(set.PublishOnConnect, qmt.Message{Topic: p.Topic, Payload: []byte(p.Payload), QoS: p.QoS, Retain: p.Retain})
	}
	baud := cfg.Serial.Baud
	if cfg.Serial.Port == port.Auto {
		set.OpenPort = func(ctx context.Context) (io.ReadWriteCloser, error) { return openAuto(ctx, baud, log) }
	} else {
		path := cfg.Serial.Port
		set.OpenPort = func(ctx context.Context) (io.ReadWriteCloser, error) { return port.Open(ctx, path, baud) }
	}
	return set, nil
}

// APNAuth is the modem's value for module.apn_auth (validated by config).
func APNAuth(s string) modem.Auth {
	switch s {
	case "pap":
		return modem.AuthPAP
	case "chap":
		return modem.AuthCHAP
	case "pap_or_chap":
		return modem.AuthPAPOrCHAP
	case "none":
		return modem.AuthNone
	}
	return modem.AuthAuto
}

// openAuto finds the EC600 AT port by USB identity and opens the first candidate that answers AT.
func openAuto(ctx context.Context, baud int, log zerolog.Logger) (io.ReadWriteCloser, error) {
	cands, err := port.Find()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, c := range cands {
		if err := probe(ctx, c.Path, baud); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Path, err))
			continue
		}
		log.Info().Str("port", c.Path).Str("pid", c.PID).Str("interface", c.Interface).Msg("found the EC600 AT port")
		return port.Open(ctx, c.Path, baud)
	}
	return nil, fmt.Errorf("no EC600 port answered AT: %w", errors.Join(errs...))
}

// probe opens path and asks AT; OK or any +CME ERROR proves a live AT port.
func probe(ctx context.Context, path string, baud int) error {
	p, err := port.Open(ctx, path, baud)
	if err != nil {
		return err
	}
	conn := at.New(p, at.Options{})
	defer conn.Close()
	for range 3 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err = conn.Run(pctx, "AT")
		cancel()
		var cme *at.CMEError
		if err == nil || errors.As(err, &cme) {
			return nil
		}
	}
	return err
}
