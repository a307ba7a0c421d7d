package daemon

import (
	"context"
	"reflect"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/gpio"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/supervisor"
)

// Reload asks a running daemon (RunWith) to apply a configuration that config.Load has already
// read and validated — `systemctl reload gatewayd`. Done, when not nil, is closed once it has
// been applied.
type Reload struct {
	Config *config.Config
	Done   chan struct{}
}

// EventConfigReloaded is the log event of an applied reload: what changed, what was applied at
// once, whether the session reconnected, and what waits for a restart.
const EventConfigReloaded = "config_reloaded"

// What a reload changes, by the way it is applied:
//   - at once, the session untouched: log.level, [led] (the line is released and the new one
//     opened, in the state the LED had), [metrics] (the listener is stopped and started again),
//     and of [local] the forwarding rules and the retained bounds (local.Endpoint.SetLive);
//   - by a clean reconnect of the MQTT session (supervisor.Reconfigure: a DISCONNECT, then a new
//     CONNECT at once; the outbox keeps what the broker has not acknowledged and drains it in the
//     new session): [mqtt] but client_index — broker, credentials, subscriptions, publishes on
//     connect, the will, keep-alive, TLS;
//   - only by a restart: the rest (the port, the module, the reset line, the local endpoint's
//     listeners, credentials, max_clients and max_topic, [local] added or removed, the outbox,
//     retry, the control socket, log.format, log.at_trace, mqtt.client_index). The log says which;
//     the running daemon keeps their old values.

// reloader applies reloads to the parts RunWith started.
type reloader struct {
	cfg     *config.Config // what runs
	log     zerolog.Logger
	level   *logging.Level // nil: log.level needs a restart
	led     *swapLED
	metrics *metricsRunner
	sup     *supervisor.Supervisor
	ep      *local.Endpoint // nil without [local]
}

// run applies the reloads it is given until ctx ends or reloads is closed, closing each one's
// Done once applied.
func (r *reloader) run(ctx context.Context, reloads <-chan Reload) {
	for {
		select {
		case <-ctx.Done():
			return
		case rl, ok := <-reloads:
			if !ok {
				return // no more reloads (a closed channel would give a nil Config at once)
			}
			r.cfg = r.apply(ctx, rl.Config)
			if rl.Done != nil {
				close(rl.Done)
			}
		}
	}
}

// apply applies n as far as it can without a restart, logs what it did, and returns the
// configuration that now runs (n, with the old values where a restart is needed).
func (r *reloader) apply(ctx context.Context, n *config.Config) *config.Config {
	o := r.cfg
	running := *n
	var changed, applied, restart []string
	for _, w := range n.Warnings {
		r.log.Warn().Str("config", n.File).Msg(w)
	}

	if n.Log.Level != o.Log.Level {
		changed = append(changed, "log.level")
		if r.level != nil && r.level.Set(n.Log.Level) == nil {
			applied = append(applied, "log.level")
			r.log.Info().Str("from", o.Log.Level).Str("to", n.Log.Level).Msg("log level changed")
		} else {
			restart = append(restart, "log.level")
			running.Log.Level = o.Log.Level
		}
	}
	if n.Log.Format != o.Log.Format {
		changed, restart = append(changed, "log.format"), append(restart, "log.format")
		running.Log.Format = o.Log.Format
	}
	if n.Log.ATTrace != o.Log.ATTrace {
		changed, restart = append(changed, "log.at_trace"), append(restart, "log.at_trace")
		running.Log.ATTrace = o.Log.ATTrace
	}

	if !reflect.DeepEqual(n.LED, o.LED) {
		changed = append(changed, "led")
		if err := r.led.reopen(n.LED, r.log); err != nil {
			r.log.Error().Err(err).Str("led", o.LED.String()).Msg("the new LED line cannot be opened: keeping the old one")
			running.LED = o.LED
		} else {
			applied = append(applied, "led")
		}
	}

	if !reflect.DeepEqual(n.Metrics, o.Metrics) {
		changed, applied = append(changed, "metrics"), append(applied, "metrics")
		r.metrics.restart(n)
	}

	reconnect := false
	nm, om := n.MQTT, o.MQTT
	if nm.ClientIndex != om.ClientIndex {
		changed, restart = append(changed, "mqtt.client_index"), append(restart, "mqtt.client_index")
		nm.ClientIndex = om.ClientIndex
		running.MQTT.ClientIndex = om.ClientIndex
	}
	if keys := fieldsChanged("mqtt", om, nm); len(keys) > 0 {
		changed = append(changed, keys...)
		set, err := Settings(&running, r.log)
		if err == nil {
			err = r.sup.Reconfigure(ctx, set, "configuration reloaded: "+strings.Join(keys, ", "))
		}
		if err != nil {
			r.log.Error().Err(err).Msg("the new MQTT settings cannot be applied: keeping the old ones")
			running.MQTT = o.MQTT
		} else {
			reconnect = true
			applied = append(applied, keys...)
		}
	}

	for _, s := range []struct {
		name     string
		old, new any
		keep     func()
	}{
		{"serial", o.Serial, n.Serial, func() { running.Serial = o.Serial }},
		{"module", o.Module, n.Module, func() { running.Module = o.Module }},
		{"reset", o.Reset, n.Reset, func() { running.Reset = o.Reset }},
		{"outbox", o.Outbox, n.Outbox, func() { running.Outbox = o.Outbox }},
		{"retry", o.Retry, n.Retry, func() { running.Retry = o.Retry }},
		{"control", o.Control, n.Control, func() { running.Control = o.Control }},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			changed, restart = append(changed, s.name), append(restart, s.name)
			s.keep()
		}
	}

	if !reflect.DeepEqual(o.Local, n.Local) {
		keys, ok := r.applyLocal(o.Local, n.Local)
		changed = append(changed, keys...)
		if ok {
			applied = append(applied, keys...)
		} else {
			restart = append(restart, keys...)
			running.Local = o.Local
		}
	}

	ev := r.log.Info()
	if len(restart) > 0 {
		ev = r.log.Warn().Strs("needs_restart", restart).
			Str("hint", "systemctl restart gatewayd applies these; until then the old values stay")
	}
	msg := "configuration reloaded"
	switch {
	case len(changed) == 0:
		msg = "configuration reloaded: nothing changed"
	case reconnect:
		msg = "configuration reloaded: the MQTT session reconnects with the new settings"
	}
	ev.Str(logging.EventKey, EventConfigReloaded).Str("config", n.File).Strs("changed", nonNil(changed)).
		Strs("applied", nonNil(applied)).Bool("reconnect", reconnect).Msg(msg)
	return &running
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// applyLocal applies a change of [local] when it is only of the forwarding rules and the
// retained bounds (local.Endpoint.SetLive), and says which keys changed.
func (r *reloader) applyLocal(o, n *config.Local) (keys []string, ok bool) {
	if o == nil || n == nil || r.ep == nil {
		return []string{"local"}, false
	}
	keys = fieldsChanged("local", *o, *n)
	for _, k := range keys {
		switch k {
		case "local.forward", "local.max_retained", "local.max_retained_bytes":
		default:
			return keys, false
		}
	}
	l := local.Live{MaxRetained: n.MaxRetained, MaxRetainedBytes: n.MaxRetainedBytes}
	for _, f := range n.Forward {
		l.Forward = append(l.Forward, local.Forward{Topic: f.Topic, QoS: f.QoS})
	}
	if err := r.ep.SetLive(l); err != nil {
		r.log.Error().Err(err).Msg("the new local endpoint rules cannot be applied: keeping the old ones")
		return keys, false
	}
	return keys, true
}

// fieldsChanged names the fields of two structs of one type that differ, as "prefix.field" in
// lower case with the configuration's underscores (KeepAlive: keepalive, ClientID: client_id).
func fieldsChanged(prefix string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, prefix+"."+keyName(va.Type().Field(i).Name))
		}
	}
	return out
}

// keyName turns a Go field name into the configuration's key: PublishOnConnect:
// publish_on_connect, ClientID: client_id, TLS: tls, KeepAlive: keepalive.
func keyName(f string) string {
	switch f {
	case "KeepAlive":
		return "keepalive"
	case "HostFrom":
		return "host"
	}
	var b strings.Builder
	rs := []rune(f)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 && (rs[i-1] < 'A' || rs[i-1] > 'Z' || i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z') {
			b.WriteByte('_')
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	return b.String()
}

// swapLED is the LED the supervisor drives, whose line a reload can change.
type swapLED struct {
	mu  sync.Mutex
	led gpio.LED
	cfg config.GPIOLine // the line led is
}

// Set implements supervisor.LED.
func (s *swapLED) Set(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.led.Set(on)
}

// Toggle implements supervisor.LED.
func (s *swapLED) Toggle() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.led.Toggle()
}

// Close releases the line.
func (s *swapLED) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.led.Close()
}

// String names the line.
func (s *swapLED) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.led.String()
}

// reopen releases the line and opens c in its place, showing what the old one showed. The old
// line is released first (the new one may be the same line with another active_low); when the
// new one cannot be opened, the old one is opened again (and when even that fails, the LED is
// virtual until the next reload or restart, which the log says).
func (s *swapLED) reopen(c config.GPIOLine, log zerolog.Logger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	on := s.led.On()
	if err := s.led.Close(); err != nil {
		log.Warn().Err(err).Msg("releasing the old LED line")
	}
	led, err := OpenLED(c, log)
	if err != nil {
		back, berr := OpenLED(s.cfg, log)
		if berr != nil {
			log.Error().Err(berr).Msg("the old LED line cannot be opened again either: the LED is virtual until the next reload or restart")
			back, _ = OpenLED(config.GPIOLine{Offset: -1}, log)
			s.cfg = config.GPIOLine{Offset: -1}
		}
		s.led = back
		_ = back.Set(on)
		return err
	}
	if err := led.Set(on); err != nil {
		log.Warn().Err(err).Msg("setting the new LED line")
	}
	log.Info().Str("led", led.String()).Bool("on", on).Msg("LED line changed")
	s.led, s.cfg = led, c
	return nil
}

// metricsRunner is the metrics listener, a task of RunWith's group that a reload can stop and
// start again.
type metricsRunner struct {
	tasks  *tasks
	src    metricSources
	log    zerolog.Logger
	cancel context.CancelFunc // of the running listener's task; nil: none
	done   chan struct{}      // closed when that task has ended
}

// start serves the metrics of cfg ([metrics] absent: none) as a task of the group.
func (m *metricsRunner) start(cfg *config.Config) {
	p, ok := metricsPart(cfg, m.src, m.log)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(m.tasks.ctx)
	done := make(chan struct{})
	m.cancel, m.done = cancel, done
	m.tasks.background(func(context.Context) { // ctx: the group's, and stop's
		defer close(done)
		keep(ctx, p, restartPolicy, m.log)
	})
}

// stop stops the listener and waits for it.
func (m *metricsRunner) stop() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
		m.cancel, m.done = nil, nil
	}
}

// restart stops the listener and starts the one cfg describes.
func (m *metricsRunner) restart(cfg *config.Config) {
	m.stop()
	m.start(cfg)
}
