package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/supervisor"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/qmt"
)

// thingHooks binds the LED to the thing model: it sets the supervisor's hooks (downlinks go to
// the engine before the local endpoint; the LED no longer toggles; every session start reports)
// and returns a function that, once the supervisor exists, creates the engine, for RunWith to
// run. The engine's replies and reports go through the outbox when there is one, else on the
// session.
func thingHooks(cfg *config.Config, set *supervisor.Settings, log zerolog.Logger) (create func(sup *supervisor.Supervisor, pub thing.Publisher, status func() any) *thing.Engine, err error) {
	th := cfg.Thing
	d, err := thing.New(th.Dialect, th.Topics)
	if err != nil {
		return nil, err
	}
	var eng *thing.Engine // set by start, before the supervisor runs and calls the hooks
	// A registering device (dynamic registration) learns its name, and so its thing-model
	// topics, from the module at every bring-up: the engine waits for it.
	unbound := th.Topics.Contains(cloud.AliyunDeviceNameVar)
	if unbound {
		set.OnDeviceName = func(name string) {
			t := th.Topics.Fill(strings.NewReplacer(cloud.AliyunDeviceNameVar, name))
			bd, err := thing.New(th.Dialect, t)
			if err != nil { // the same dialect as above: it cannot fail
				log.Error().Err(err).Msg("the thing model cannot take the device name")
				return
			}
			eng.Rebind(bd)
			log.Info().Str("device_name", name).Str("set", t.Set).Str("report", t.Report).
				Msg("the thing model's topics are the registered device's")
		}
	}
	local := set.Downlinks
	set.Downlinks = func(topic string, payload []byte) {
		eng.Handle(topic, payload)
		if local != nil {
			local(topic, payload)
		}
	}
	set.LEDBound = func() bool { return eng.Want() }
	set.OnConnect = func() { eng.Connected() }
	return func(sup *supervisor.Supervisor, pub thing.Publisher, status func() any) *thing.Engine {
		tele := func() thing.Telemetry { return telemetry(sup.Status()) }
		eng = thing.NewEngine(d, thing.Config{Property: th.LEDProperty, Telemetry: th.Telemetry, ReportInterval: th.ReportInterval,
			QoS: th.QoS, Backoff: backoff.Policy{Initial: cfg.Retry.Initial, Max: cfg.Retry.Max, Factor: 2, Jitter: 0.5}, Unbound: unbound},
			sup, pub, status, tele, log)
		log.Info().Str("dialect", th.Dialect).Str("property", th.LEDProperty).Str("set", th.Topics.Set).
			Str("report", th.Topics.Report).Msg("the LED follows a property of the thing model")
		return eng
	}, nil
}

// telemetry is what the status knows, as the thing model reports it.
func telemetry(st supervisor.Status) thing.Telemetry {
	t := thing.Telemetry{Registration: st.Registration, Operator: st.Operator, NetworkType: st.NetworkType,
		IMEI: st.Module.IMEI, ICCID: st.Module.ICCID, Revision: st.Module.Revision}
	if st.Signal.HasRSSI {
		dbm := st.Signal.RSSI
		t.SignalDBm = &dbm
	}
	if !st.Started.IsZero() {
		t.Uptime = time.Since(st.Started)
	}
	var n uint64
	for _, c := range st.Reconnects {
		n += c
	}
	t.Reconnects = &n
	return t
}

// outboxPublisher stores the thing model's messages in the outbox (durably, in order, behind the
// local clients' messages) and wakes the drainer, which sends them while a session is up.
type outboxPublisher struct {
	store *outbox.Store
	d     *drain.Drainer
	qos   int
}

// Publish stores m; a message the outbox refuses (full, too large) wraps thing.ErrRefused.
func (p outboxPublisher) Publish(_ context.Context, m thing.Message) error {
	if _, err := p.store.Put(m.Topic, m.Payload, p.qos, false); err != nil {
		if errors.Is(err, outbox.ErrFull) || errors.Is(err, outbox.ErrTooLarge) || errors.Is(err, outbox.ErrInvalid) || errors.Is(err, outbox.ErrClosed) {
			return fmt.Errorf("%w: %w", thing.ErrRefused, err)
		}
		return err
	}
	p.d.Notify()
	return nil
}

// sessionPublisher publishes the thing model's messages on the connected session, one at a time
// (the engine waits for each), counted and logged like the outbox's.
type sessionPublisher struct {
	sup *supervisor.Supervisor
	qos int
	log zerolog.Logger
}

// Publish publishes m; without a session it returns thing.ErrOffline.
func (p sessionPublisher) Publish(ctx context.Context, m thing.Message) error {
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := p.sup.Publish(pctx, qmt.Message{Topic: m.Topic, Payload: m.Payload, QoS: p.qos})
	switch {
	case errors.Is(err, supervisor.ErrNotConnected):
		return thing.ErrOffline
	case err != nil:
		return err
	}
	p.log.Info().Str(logging.EventKey, logging.EventPublished).Str("from", "thing").Str("topic", m.Topic).
		Int("bytes", len(m.Payload)).Int("qos", p.qos).Msg("published")
	return nil
}
