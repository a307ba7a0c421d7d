package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/topic"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/qssl"
)

// session is one lifetime of the AT port. Its run loop is the only goroutine that changes its
// state; each bring-up stage runs in a goroutine of its own so that the loop keeps handling
// events (a downlink, RDY, a lost link) while a stage waits on the module.
type session struct {
	*Supervisor
	conn   *at.Conn
	client *qmt.Client
	mod    *modem.Module
	mqttBO *backoff.Backoff

	id        modem.Identity
	connected time.Time
	// echoes is the AT engine's echo count once ATE0 took effect; more echoes later mean the
	// module restarted with echo on, even if its RDY was missed.
	echoes atomic.Uint64
	// filters are the topic filters subscribed in this session (with {imei}/{iccid} expanded);
	// only the run loop touches them.
	filters []string
	// droppedURCs and droppedEvents are the drop counters last reported (run loop only).
	droppedURCs, droppedEvents uint64
	// prepared is set once ATE0 and AT+CMEE=1 took effect; a reboot after that undoes them.
	prepared atomic.Bool
}

type stageResult struct {
	st  stage
	err error
}

// maxHealthFailures is how many health checks in a row may fail before the module is reset.
const maxHealthFailures = 3

func (s *session) run(ctx context.Context) error {
	events := s.client.Events()
	st := stageModule
	var (
		stageCancel context.CancelFunc
		stageDone   = make(chan stageResult, 1)
		running     bool
		restart     = stage(-1) // where to go once the running stage has stopped
	)
	start := func(st stage) {
		var sctx context.Context
		sctx, stageCancel = context.WithCancel(ctx)
		running = true
		go func() { stageDone <- stageResult{st, s.runStage(sctx, st)} }()
	}
	// The outbox drains while the session is connected, and only then.
	var drainCancel context.CancelFunc
	drainDone := make(chan error, 1)
	startDrain := func() {
		if s.set.Outbox == nil {
			return
		}
		var dctx context.Context
		dctx, drainCancel = context.WithCancel(ctx)
		go func() { drainDone <- s.set.Outbox.Drain(dctx, s.client) }()
	}
	stopDrain := func() {
		if drainCancel == nil {
			return
		}
		drainCancel()
		if err := <-drainDone; err != nil {
			s.log.Error().Err(err).Msg("outbox drain stopped with an error")
		}
		drainCancel = nil
	}
	// fallBack sends the session back to stage to (never forward).
	fallBack := func(to stage, why string) {
		if st == stageConnected {
			stopDrain()
			s.log.Warn().Str("event", logging.EventMQTTDisconnected).Str("reason", why).
				Str("connected_for", time.Since(s.connected).Round(time.Millisecond).String()).Msg("MQTT session lost")
			s.notify.Status("reconnecting: " + why)
		}
		if running {
			if to > st {
				return // the running stage comes before the one that must be redone
			}
			// An earlier stage, or the running one itself (its work may already be undone), is
			// run again once the running stage has stopped.
			if restart < 0 || to < restart {
				restart = to
			}
			stageCancel()
			return
		}
		if to < st {
			st = to
		}
	}
	defer func() {
		stopDrain()
		if running {
			stageCancel()
			<-stageDone
		}
	}()

	health := time.NewTicker(s.set.HealthInterval)
	defer health.Stop()
	beat := time.NewTicker(s.beat)
	defer beat.Stop()
	healthDone := make(chan error, 1)
	healthRunning := false
	healthFailures := 0

	for {
		s.loops.Add(1)
		if !running && st != stageConnected {
			start(st)
		}
		select {
		case <-ctx.Done():
			stopDrain()
			if st == stageConnected {
				s.shutdown()
			}
			return ctx.Err()

		case <-s.conn.Done():
			return s.conn.Err()

		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("event stream ended: %w", s.conn.Err())
			}
			if to, why, ok := s.handleEvent(ev); ok {
				fallBack(to, why)
			}

		case r := <-stageDone:
			running = false
			stageCancel()
			switch {
			case restart >= 0:
				st, restart = restart, -1
			case r.err == nil:
				st = r.st + 1
				if r.st == stageModule {
					// The module is identified: fix the topic filters downlinks are checked against.
					s.filters = s.filters[:0]
					for _, sub := range s.subscriptions() {
						s.filters = append(s.filters, sub.Topic)
					}
				}
			default:
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(r.err, at.ErrPortGone) || errors.Is(r.err, at.ErrClosed) {
					return r.err
				}
				var perm *PermanentError
				if errors.As(r.err, &perm) {
					return r.err
				}
				if errors.Is(r.err, at.ErrUnresponsive) {
					return s.escalate(ctx, r.err)
				}
				// The stage logged its own failure; stage goroutines back off before retrying.
				switch {
				case r.st <= stageNetwork:
					st = stageModule
				case errors.Is(r.err, qmt.ErrPDP):
					st = stageNetwork // the module says mobile data is down: reactivate it
				default:
					st = r.st
				}
			}
			if st == stageConnected {
				s.reachedConnected = true
				s.connected = time.Now()
				s.mqttBO.Reset()
				if !s.ready {
					s.ready = true
					s.notify.Ready()
				}
				s.notify.Status(fmt.Sprintf("connected to %s:%d as module %s", s.set.Host, s.set.Port, s.id.IMEI))
				startDrain()
			}

		case <-beat.C:
			// The loop is alive; the watchdog counts s.loops.

		case <-health.C:
			if healthRunning || running {
				continue
			}
			healthRunning = true
			go func() {
				hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				_, err := s.conn.Run(hctx, "AT")
				healthDone <- err
			}()

		case err := <-healthDone:
			healthRunning = false
			s.reportDrops()
			if err == nil {
				healthFailures = 0
				if e := s.echoes.Load(); st > stageModule && s.conn.Stats().Echoes > e {
					fallBack(stageModule, "echo is back on: the module restarted")
				}
				continue
			}
			if errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
				return err
			}
			healthFailures++
			s.log.Warn().Err(err).Int("failures", healthFailures).Msg("module did not answer the health check")
			if healthFailures >= maxHealthFailures {
				return s.escalate(ctx, fmt.Errorf("%d health checks failed in a row: %w", healthFailures, err))
			}
		}
	}
}

// handleEvent acts on one URC. It returns the stage to fall back to when the event means the
// session must be rebuilt from there.
func (s *session) handleEvent(ev qmt.Event) (to stage, why string, fallBack bool) {
	switch e := ev.(type) {
	case qmt.Received:
		s.downlink(e.Topic, e.Payload, e.MsgID)
	case qmt.Stored:
		go s.readStored(e.Slot)
	case qmt.LinkStatus:
		return stageMQTT, fmt.Sprintf("+QMTSTAT %d: %s", e.Code, e.Reason()), true
	case qmt.PingFailed:
		return stageMQTT, fmt.Sprintf("keep-alive ping failed (+QMTPING result %d)", e.Result), true
	case qmt.PDPDeactivated:
		return stageNetwork, fmt.Sprintf("the network deactivated PDP context %d", e.ContextID), true
	case qmt.ModuleReady:
		if !s.prepared.Load() {
			s.log.Info().Msg("module finished booting (RDY)")
			return 0, "", false
		}
		s.log.Warn().Msg("module rebooted (RDY): bringing it up again")
		return stageModule, "module rebooted (RDY)", true
	case qmt.PoweredDown:
		s.log.Warn().Msg("module powered down")
		return stageModule, "module powered down", true
	case qmt.SIMStatus:
		if e.State != "READY" {
			return stageModule, "SIM state changed to " + e.State, true
		}
	case qmt.Unknown:
		s.log.Debug().Str("line", e.Line).Msg("unsolicited line not understood")
	case qmt.Malformed:
		s.log.Warn().Str("line", e.Line).Err(e.Err).Msg("malformed line from the module ignored")
	default:
		s.log.Debug().Str("urc", fmt.Sprintf("%+v", ev)).Msg("URC")
	}
	return 0, "", false
}

// maxLoggedPayload is the largest payload a downlink log line shows.
const maxLoggedPayload = 256

func (s *session) downlink(topic string, payload []byte, msgID int) {
	if !s.subscribed(topic) {
		s.log.Warn().Str("topic", topic).Int("bytes", len(payload)).Int("msgid", msgID).
			Msg("message on a topic gatewayd did not subscribe to; ignored")
		return
	}
	ev := s.log.Info().Str("event", logging.EventDownlink).Str("topic", topic).Int("bytes", len(payload)).Int("msgid", msgID)
	switch {
	case len(payload) > maxLoggedPayload:
	case utf8.Valid(payload):
		ev = ev.Str("payload", string(payload))
	default:
		ev = ev.Hex("payload_hex", payload)
	}
	ev.Msg("downlink")
	s.toggleLED("downlink")
	if s.set.Downlinks != nil {
		s.set.Downlinks(topic, payload)
	}
}

// reportDrops logs, once per health check, URCs and events that the bounded queues between the
// AT reader and this loop had to drop since the last look (a burst faster than the loop).
func (s *session) reportDrops() {
	urcs, events := s.conn.Stats().URCsDropped, s.client.DroppedEvents()
	if urcs == s.droppedURCs && events == s.droppedEvents {
		return
	}
	s.log.Warn().Uint64("urcs_dropped", urcs-s.droppedURCs).Uint64("events_dropped", events-s.droppedEvents).
		Uint64("urcs_dropped_total", urcs).Uint64("events_dropped_total", events).
		Msg("unsolicited lines were dropped: the module sent them faster than gatewayd handled them")
	s.droppedURCs, s.droppedEvents = urcs, events
}

// subscribed reports whether topic matches one of the session's subscriptions.
func (s *session) subscribed(t string) bool {
	for _, f := range s.filters {
		if topic.Match(f, t) {
			return true
		}
	}
	return false
}

// readStored reads a buffer-mode message out of its slot; the module frees the slot on reading.
func (s *session) readStored(slot int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := s.client.ReadStored(ctx, slot)
	if err != nil {
		s.log.Error().Err(err).Int("slot", slot).Msg("cannot read a stored downlink")
		return
	}
	for _, m := range msgs {
		s.downlink(m.Topic, m.Payload, m.MsgID)
	}
}

// runStage runs one bring-up stage. It logs what it waits for and why it failed.
func (s *session) runStage(ctx context.Context, st stage) error {
	switch st {
	case stageModule:
		return s.bringUpModule(ctx)
	case stageNetwork:
		return s.bringUpNetwork(ctx)
	case stageMQTT:
		return s.bringUpMQTT(ctx)
	}
	return nil
}

func (s *session) bringUpModule(ctx context.Context) error {
	s.prepared.Store(false)
	// A gatewayd killed between AT+QMTPUBEX and its payload leaves the module waiting for the
	// bytes: anything sent now would be published. Stay quiet until the module's edit timeout,
	// configured at every bring-up, has ended that data mode.
	if d := s.set.MQTT.EditTimeout; d > 0 && !s.quietDone.Load() {
		quiet := d + 500*time.Millisecond
		s.log.Info().Str("step", "quiet").Str("for", quiet.String()).
			Msg("letting any publish an earlier gatewayd left unfinished time out on the module")
		if !s.sleep(ctx, quiet) {
			return ctx.Err()
		}
		s.quietDone.Store(true)
	}
	s.log.Info().Str("step", "sync").Str("port", s.set.PortName).Msg("waiting for the module to answer AT")
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.mod.Sync(syncCtx, 500*time.Millisecond)
	cancel()
	if err != nil {
		if errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
			return err
		}
		// A module that answers nothing for this long needs more than a retry.
		return fmt.Errorf("sync: %w: %w", at.ErrUnresponsive, err)
	}
	if err := s.mod.Prepare(ctx); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	s.echoes.Store(s.conn.Stats().Echoes)
	s.prepared.Store(true)
	id, err := s.mod.Identify(ctx)
	if err != nil {
		return fmt.Errorf("identify: %w", err)
	}
	s.id = id
	s.log.Info().Str("event", logging.EventModule).Str("model", id.Model).Str("revision", id.Revision).
		Str("imei", id.IMEI).Str("iccid", id.ICCID).Msg("module identified")
	if s.lastIMEI != "" && s.lastIMEI != id.IMEI {
		s.log.Warn().Str("event", logging.EventModuleReplaced).Str("old_imei", s.lastIMEI).
			Str("new_imei", id.IMEI).Msg("a different module is attached; setting it up from the host's configuration")
		if s.set.Outbox != nil {
			s.set.Outbox.Reset()
		}
	}
	s.lastIMEI = id.IMEI

	s.log.Info().Str("step", "sim").Str("timeout", s.set.SIMTimeout.Round(time.Millisecond).String()).Msg("waiting for the SIM")
	deadline := time.Now().Add(s.set.SIMTimeout)
	for {
		state, err := s.mod.SIMState(ctx)
		if err == nil && state == "READY" {
			break
		}
		reason := state
		if err != nil {
			reason = err.Error()
		}
		if errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
			return err
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("SIM not ready after %s: %s", s.set.SIMTimeout, reason)
			s.log.Error().Str("step", "sim").Err(err).Msg("check that a SIM is inserted and has no PIN")
			return s.waitRetry(ctx, err)
		}
		if !s.sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
	if s.set.APN != "" {
		if err := s.mod.SetAPN(ctx, s.set.PDPContext, s.set.APN, s.set.APNUser, s.set.APNPassword); err != nil {
			return fmt.Errorf("set APN: %w", err)
		}
	}
	return nil
}

func (s *session) bringUpNetwork(ctx context.Context) error {
	s.log.Info().Str("step", "register").Str("timeout", s.set.RegisterTimeout.Round(time.Millisecond).String()).Msg("waiting for network registration")
	deadline := time.Now().Add(s.set.RegisterTimeout)
	for {
		reg, err := s.mod.Registration(ctx)
		if err == nil && reg.Registered() {
			break
		}
		if errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
			return err
		}
		if time.Now().After(deadline) {
			why := reg.String()
			if err != nil {
				why = err.Error()
			}
			err := fmt.Errorf("not registered after %s: %s", s.set.RegisterTimeout, why)
			s.log.Error().Str("step", "register").Err(err).Msg("check the antenna, coverage and the SIM's data plan")
			return s.waitRetry(ctx, err)
		}
		if !s.sleep(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
	cid := s.set.PDPContext
	s.log.Info().Str("step", "pdp").Int("context", cid).Msg("checking the PDP context")
	active, addr, err := s.mod.PDPActive(ctx, cid)
	if err != nil {
		return err
	}
	if !active {
		if err := s.mod.ActivatePDP(ctx, cid); err != nil {
			s.log.Error().Str("step", "pdp").Err(err).Msg("cannot activate the PDP context; check the APN")
			return s.waitRetry(ctx, err)
		}
		if _, addr, err = s.mod.PDPActive(ctx, cid); err != nil {
			return err
		}
	}
	ev := s.log.Info().Str("event", logging.EventNetworkReady).Int("context", cid).Str("address", addr)
	if dbm, ok, err := s.mod.SignalDBm(ctx); err == nil && ok {
		ev = ev.Int("rssi_dbm", dbm)
	}
	ev.Msg("network ready")
	s.setLED(false, "network ready")
	return nil
}

// waitRetry backs off before a failed stage is tried again, and returns err.
func (s *session) waitRetry(ctx context.Context, err error) error {
	d := s.mqttBO.Next()
	s.log.Info().Str("retry_in", d.Round(time.Millisecond).String()).Msg("will retry")
	s.sleep(ctx, d)
	return err
}

func (s *session) bringUpMQTT(ctx context.Context) error {
	c := s.client
	// Whatever state an earlier attempt or another program left our client in, start clean.
	if err := s.closeStaleLink(ctx); err != nil {
		return s.mqttFailed(ctx, "close stale link", err)
	}
	if s.set.TLS != nil {
		if err := s.setUpTLS(ctx); err != nil {
			return s.mqttFailed(ctx, "tls", err)
		}
	}
	if err := c.Configure(ctx, s.set.MQTT); err != nil {
		return s.mqttFailed(ctx, "configure", err)
	}
	s.log.Info().Str("step", "open").Str("host", s.set.Host).Int("port", s.set.Port).Msg("opening the link to the broker")
	if err := c.Open(ctx, s.set.Host, s.set.Port); err != nil {
		return s.mqttFailed(ctx, "open", err)
	}
	clientID, user, pass, err := s.set.Credentials(time.Now())
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("credentials: %w", err)}
	}
	if err := c.Connect(ctx, clientID, user, pass); err != nil {
		return s.mqttFailed(ctx, "connect", err)
	}
	s.log.Info().Str("event", logging.EventMQTTConnected).Str("host", s.set.Host).Int("port", s.set.Port).
		Str("client_id", clientID).Str("username", user).Msg("MQTT connected")
	ids := s.identityVars()
	subs := s.subscriptions()
	if len(subs) > 0 {
		granted, err := c.Subscribe(ctx, subs...)
		if err != nil {
			return s.mqttFailed(ctx, "subscribe", err)
		}
		for i, sub := range subs {
			ev := s.log.Info().Str("event", logging.EventSubscribed).Str("topic", sub.Topic).Int("qos", sub.QoS)
			if i < len(granted) {
				ev = ev.Int("granted_qos", granted[i])
			}
			ev.Msg("subscribed")
		}
	}
	for _, m := range s.set.PublishOnConnect {
		m.Topic = ids.Replace(m.Topic)
		if err := c.Publish(ctx, m); err != nil {
			return s.mqttFailed(ctx, "publish", err)
		}
		s.log.Info().Str("event", logging.EventPublished).Str("topic", m.Topic).Int("bytes", len(m.Payload)).
			Int("qos", m.QoS).Msg("published")
	}
	return nil
}

// setUpTLS puts the certificates in the module's file system when they are not there yet (a new
// module) and configures the TLS context.
func (s *session) setUpTLS(ctx context.Context) error {
	res, err := qssl.Apply(ctx, s.conn, *s.set.TLS)
	if err != nil {
		return err
	}
	ev := s.log.Info().Str("event", logging.EventTLSReady).Int("context", s.set.TLS.Context).
		Int("seclevel", s.set.TLS.SecLevel()).Strs("uploaded", res.Uploaded).Int("kept", len(res.Kept))
	if len(res.Deleted) > 0 {
		ev = ev.Strs("deleted", res.Deleted)
	}
	if res.BareNames {
		ev = ev.Bool("bare_file_names", true)
	}
	ev.Msg("TLS context ready")
	return nil
}

// identityVars fills {imei} and {iccid} in topics with this module's, so that one
// configuration serves a fleet.
func (s *session) identityVars() *strings.Replacer {
	return strings.NewReplacer("{imei}", s.id.IMEI, "{iccid}", s.id.ICCID)
}

// subscriptions are the configured subscriptions for this module.
func (s *session) subscriptions() []qmt.Subscription {
	ids := s.identityVars()
	subs := make([]qmt.Subscription, len(s.set.Subscribe))
	for i, sub := range s.set.Subscribe {
		subs[i] = qmt.Subscription{Topic: ids.Replace(sub.Topic), QoS: sub.QoS}
	}
	return subs
}

// closeStaleLink closes our client's link if the module reports it open (AT+QMTOPEN?).
func (s *session) closeStaleLink(ctx context.Context) error {
	links, err := s.client.OpenLinks(ctx)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Client == s.set.ClientIndex {
			s.log.Info().Str("host", l.Host).Int("port", l.Port).Msg("closing a link left open on the module")
			return s.client.CloseLink(ctx)
		}
	}
	return nil
}

// mqttFailed logs a failed MQTT step in words, closes the link and backs off before the retry.
func (s *session) mqttFailed(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil || errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
		return err
	}
	d := s.mqttBO.Next()
	ev := s.log.Error().Str("event", logging.EventMQTTConnectFailed).Str("step", step).Err(err).
		Int("attempt", s.mqttBO.Attempts()).Str("retry_in", d.Round(time.Millisecond).String())
	var re *qmt.ResultError
	if errors.As(err, &re) {
		ev = ev.Int("code", re.Code).Int("result", re.Result)
		if step == "open" && s.set.TLS != nil && (re.Result == -1 || re.Result == 5) {
			ev = ev.Str("hint", "TLS is on and the module does not say why a link fails: check that mqtt.tls.ca_file "+
				"signed the broker's certificate, that the certificate names mqtt.host, and cert_file/key_file")
		}
	}
	ev.Msg("MQTT " + step + " failed")
	s.notify.Status("MQTT " + step + " failed: " + err.Error())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := s.closeStaleLink(cctx); err != nil {
		s.log.Debug().Err(err).Msg("closing the link after a failure")
	}
	cancel()
	s.sleep(ctx, d)
	return fmt.Errorf("mqtt %s: %w", step, err)
}

// shutdown disconnects cleanly on the way out.
func (s *session) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		s.log.Warn().Err(err).Msg("MQTT disconnect on shutdown failed")
		return
	}
	s.log.Info().Str("event", logging.EventMQTTDisconnected).Str("reason", "shutting down").Msg("MQTT disconnected")
}

// escalate handles a module that stopped answering: reset it with AT+CFUN=1,1 or, when that goes
// unanswered and a reset line is wired, by pulsing the line; then the caller reopens the port.
func (s *session) escalate(ctx context.Context, cause error) error {
	s.log.Error().Str("event", logging.EventModuleReset).Str("method", "AT+CFUN=1,1").Err(cause).
		Msg("module unresponsive; resetting it")
	rctx, cancel := context.WithTimeout(ctx, s.cfunWait)
	defer cancel()
	err := s.mod.Reset(rctx)
	switch {
	case err == nil:
	case s.set.Reset == nil:
		s.log.Error().Err(err).Str("action", "reopen port").
			Msg("AT+CFUN=1,1 failed and no reset line is configured ([reset]); reopening the port")
	default:
		s.log.Error().Str("event", logging.EventModuleReset).Str("method", "gpio").Str("line", s.set.Reset.String()).
			Err(err).Msg("AT+CFUN=1,1 failed; pulsing the module's reset line")
		if err := s.set.Reset.Pulse(ctx); err != nil {
			s.log.Error().Err(err).Msg("pulsing the reset line failed")
		}
	}
	return fmt.Errorf("module unresponsive: %w", cause)
}
