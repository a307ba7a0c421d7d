package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/topic"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/qssl"
)

// link is one lifetime of the AT port: the engine over it, the MQTT client and the module.
type link struct {
	conn   *at.Conn
	client *qmt.Client
	mod    *modem.Module
	// opened is when the port was opened (set before the link reaches the loop).
	opened time.Time

	// session carries the client's session events (sessionEvent) from the link's downlink
	// consumer to the loop, in order; closed when the client's events end. closed is closed by
	// close, so that the consumer stops waiting for the loop; consumed once the consumer ended.
	session   chan qmt.Event
	closed    chan struct{}
	consumed  chan struct{}
	closeOnce sync.Once
	// topics are what the downlink consumer routes a message by: the loop stores them whole
	// (setTopics) whenever the settings or the identity they derive from change, the consumer
	// reads them.
	topics atomic.Pointer[downTopics]

	// The rest is the loop's: only the loop goroutine writes it. A stage goroutine reads id and
	// deviceName, which the loop set from earlier stages' findings before starting it.

	// dead is set once the loop has reported the port's loss.
	dead bool
	// consuming is set once the loop started the link's downlink consumer.
	consuming bool
	// id is the module's identity, from the module and SIM stages' findings.
	id modem.Identity
	// prepared is set once ATE0 and AT+CMEE=1 took effect (the module stage's progress note); a
	// reboot after that undoes them. echoes is the AT engine's echo count then: more echoes
	// later mean the module restarted with echo on, even if its RDY was missed.
	prepared bool
	echoes   uint64
	// deviceName is the device name of a dynamically registering platform, from the SIM
	// stage's findings (it may depend on the IMEI and ICCID); "" otherwise.
	deviceName string
	// heldBack and heldFor are the reader's hold-back counters last reported.
	heldBack uint64
	heldFor  time.Duration
}

func newLink(port io.ReadWriteCloser, s *Supervisor) *link {
	conn := at.New(port, at.Options{Logger: s.log, Trace: s.set.Trace, URCs: qmt.URCs()})
	return &link{conn: conn, client: qmt.NewClient(conn, s.set.ClientIndex), mod: modem.New(conn), opened: time.Now(),
		session: make(chan qmt.Event, sessionQueue), closed: make(chan struct{}), consumed: make(chan struct{})}
}

// resetSequence bounds how long after gatewayd ordered AT+CFUN=1,1 the lines the reset prints —
// POWERED DOWN, a stale +QIURC: "pdpdeact", RDY — are taken as the reset's own, not news; RDY
// ends it sooner. A BG96 printed RDY about 3 s after the reset; an EC600's time is UNCONFIRMED.
const resetSequence = 2 * time.Minute

// appReadyAfter is how long after a RDY, or after the port was opened, APP RDY is taken as part
// of the same boot.
const appReadyAfter = time.Minute

// resetting reports whether a reset gatewayd ordered is still printing its sequence: ordered
// within resetSequence, and no RDY since. Loop only.
func (l *loop) resetting(now time.Time) bool {
	return !l.resetAt.IsZero() && now.Sub(l.resetAt) < resetSequence
}

// close closes the port and waits for the link's downlink consumer, if it was started, to end:
// no downlink is handed on after it returns. Loop only.
func (k *link) close() {
	k.closeOnce.Do(func() { close(k.closed) })
	k.client.Close()
	k.conn.Close()
	if k.consuming {
		<-k.consumed
	}
}

// downTopics are the topics the downlink consumer routes a message by.
type downTopics struct {
	// filters are the topic filters subscribed (with {imei}/{iccid} expanded).
	filters []string
	// answers are the topics a dynamic registration's answer may come on (none when the
	// platform does not register).
	answers []string
}

// setTopics gives the link's downlink consumer the topics it routes by, from the settings and
// the identity now: a reload may change the platform, and with it the answer topics. Loop only.
func (l *loop) setTopics() {
	subs := l.subscriptions(l.link.id, l.link.deviceName)
	t := &downTopics{filters: make([]string, 0, len(subs))}
	for _, sub := range subs {
		t.filters = append(t.filters, sub.Topic)
	}
	if reg, ok := cloud.RegisteringOf(l.set.Platform); ok {
		t.answers = reg.Dynamic().AnswerTopics()
	}
	l.link.topics.Store(t)
}

// subscribed reports whether topic matches one of the session's subscriptions; t may be nil
// (none yet).
func (t *downTopics) subscribed(name string) bool {
	if t == nil {
		return false
	}
	for _, f := range t.filters {
		if topic.Match(f, name) {
			return true
		}
	}
	return false
}

// restartedWithEcho reports whether the module echoes again after ATE0 took effect.
func (k *link) restartedWithEcho() bool {
	return k.prepared && k.conn.Stats().Echoes > k.echoes
}

// reportHeldBack logs how often, since the last look, the module's output came faster than the
// downlink consumer took it, so that the AT reader waited (and stopped reading the port) until there was
// room. Nothing is lost that way; a burst of downlinks shows here.
func (k *link) reportHeldBack(log zerolog.Logger) {
	st := k.conn.Stats()
	if st.HeldBack == k.heldBack {
		return
	}
	log.Info().Str("event", logging.EventHeldBack).Uint64("times", st.HeldBack-k.heldBack).
		Str("for", (st.HeldFor-k.heldFor).Round(time.Millisecond).String()).
		Uint64("times_total", st.HeldBack).Uint64("events_held_back_total", k.client.HeldBack()).
		Msg("the module sent faster than gatewayd handled: the AT reader paused until there was room; nothing was dropped")
	k.heldBack, k.heldFor = st.HeldBack, st.HeldFor
}

// shutdown disconnects cleanly: on the way out, or for a reconnect (why; "" = shutting down).
func (k *link) shutdown(log zerolog.Logger, why string) {
	if why == "" {
		why = "shutting down"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.client.Disconnect(ctx); err != nil {
		log.Warn().Err(err).Str("reason", why).Msg("MQTT disconnect failed")
		return
	}
	log.Info().Str("event", logging.EventMQTTDisconnected).Str("reason", why).Msg("MQTT disconnected")
}

// renewDisconnect ends the session cleanly (AT+QMTDISC: MQTT DISCONNECT, then the socket) for
// a planned renewal. When that fails, the MQTT stage's first step closes the link anyway.
func (k *link) renewDisconnect(ctx context.Context, log zerolog.Logger) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.client.Disconnect(dctx); err != nil {
		log.Warn().Err(err).Msg("MQTT disconnect for the renewal failed; the link is closed before connecting again")
		return
	}
	log.Info().Str("event", logging.EventMQTTDisconnected).Str("reason", "renewing the password").Msg("MQTT disconnected")
}

// signingClock is how far the clock to sign a CONNECT with is from the system clock: 0 while
// the system clock is synchronised and plausible; otherwise the module's network clock is
// asked (AT+CCLK?, AT+QLTS), and when it knows no time either, the system clock is used after
// all, with a warning. A system clock before ClockFloor (the build's date) is reported as
// wrong: signatures made with a wrong time fail in confusing ways (expired tokens, a wrong
// Huawei hour).
//
// note is what was last said about that clock (see noteClock); signingClock updates it.
func (s *Supervisor) signingClock(ctx context.Context, k *link, note *string) time.Duration {
	now := time.Now()
	floor, floorWhat := s.set.ClockFloor, "this build"
	if floor.IsZero() {
		floor, floorWhat = plausibleFloor, "any time this software ran"
	}
	wrong := now.Before(floor)
	synced := true
	if s.set.ClockSynced != nil {
		ok, err := s.set.ClockSynced()
		if err != nil {
			s.log.Debug().Err(err).Msg("cannot tell whether the system clock is synchronised; taking it as it is")
		} else {
			synced = ok
		}
	}
	if !wrong && synced {
		s.noteClock(note, "system", "", nil)
		return 0
	}
	why := "the system clock is not synchronised"
	if wrong {
		why = fmt.Sprintf("the system clock says %s, before %s (%s): it is wrong",
			now.UTC().Format(time.RFC3339), floorWhat, floor.UTC().Format(time.RFC3339))
	}
	// A note is a warning when it changed, debug after; a wrong clock is always EventClockWrong.
	level := func(warn bool, event string) *zerolog.Event {
		ev := s.log.Debug()
		if warn {
			ev = s.log.Warn()
		}
		if wrong {
			event = logging.EventClockWrong
		}
		if event != "" {
			ev = ev.Str("event", event)
		}
		return ev.Str("why", why)
	}
	nt, err := k.mod.NetworkTime(ctx, floor)
	if err != nil {
		s.noteClock(note, "system: "+why, "signing with the system clock although it is not synchronised: the module knows no network time either", func(warn bool) *zerolog.Event {
			return level(warn, "").Err(err)
		})
		return 0
	}
	// The module gives whole seconds: the true time is within the second after nt.
	skew := time.Until(nt.Add(500 * time.Millisecond))
	if skew > -trustSkew && skew < trustSkew {
		// Not synchronised, but it agrees with the network: the system clock is finer.
		s.noteClock(note, "system: agrees with the network", "signing with the system clock: not synchronised, but it agrees with the module's network clock", func(bool) *zerolog.Event {
			return s.log.Debug().Str("why", why).Time("network_time", nt)
		})
		return 0
	}
	s.noteClock(note, "network: "+why, "signing with the module's network clock", func(warn bool) *zerolog.Event {
		return level(warn, logging.EventClockNetwork).Time("network_time", nt).Str("system_clock_off_by", skew.Round(time.Second).String())
	})
	return skew
}

// trustSkew is how far an unsynchronised system clock may be from the module's network clock
// and still be used for signing (it has sub-second resolution; the module's has seconds).
const trustSkew = 2 * time.Second

// plausibleFloor is a time no real clock is before, used when the build's date is not known (a
// binary built without VCS stamping): a system or module clock before it was never set.
var plausibleFloor = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// noteClock logs msg about the clock that signs CONNECTs (what, in short): at warn when that
// changed since the last connect (*last), at debug when not. ev builds the entry (nil: nothing
// to say).
func (s *Supervisor) noteClock(last *string, what, msg string, ev func(warn bool) *zerolog.Event) {
	changed := what != *last
	*last = what
	if ev != nil {
		ev(changed).Msg(msg)
	}
}

// escalate resets a module that stopped answering: AT+CFUN=1,1 or, when that goes unanswered
// and a reset line is wired, a pulse of the line. The machine then reopens the port.
func (k *link) escalate(ctx context.Context, s *Supervisor, cause error) {
	s.log.Error().Str("event", logging.EventModuleReset).Str("method", "AT+CFUN=1,1").Err(cause).
		Msg("module unresponsive; resetting it")
	rctx, cancel := context.WithTimeout(ctx, s.cfunWait)
	defer cancel()
	err := k.mod.Reset(rctx)
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
}

// rebuild is an event's verdict that the session must be rebuilt from stage to: why in words
// (for the log and STATUS=), and what the loss of a connected session counts as.
type rebuild struct {
	to   stage
	why  string
	loss loss
}

// handleEvent acts on one session event (see sessionEvent). ok says the event means the session
// must be rebuilt (r).
func (l *loop) handleEvent(ev qmt.Event) (r rebuild, ok bool) {
	switch e := ev.(type) {
	case qmt.LinkStatus:
		why := fmt.Sprintf("+QMTSTAT %d: %s", e.Code, e.Reason())
		if !l.connectedAt.IsZero() {
			if h := l.set.Platform.Hint(cloud.Trouble{Stat: e.Code, Up: time.Since(l.connectedAt)}); h != "" {
				why += "; " + h
			}
		}
		return rebuild{stageMQTT, why, lossLinkClosed}, true
	case qmt.PingFailed:
		return rebuild{stageMQTT, fmt.Sprintf("keep-alive ping failed (+QMTPING result %d)", e.Result), lossPing}, true
	case qmt.PDPDeactivated:
		if l.resetting(time.Now()) {
			l.log.Info().Int("context", e.ContextID).Msg("stale pdpdeact printed by the reset gatewayd ordered; ignored")
			return rebuild{}, false
		}
		return rebuild{stageRegister, fmt.Sprintf("the network deactivated PDP context %d", e.ContextID), lossPDP}, true
	case qmt.ModuleReady:
		now := time.Now()
		ordered := l.resetting(now)
		l.resetAt, l.readyAt = time.Time{}, now // the reset, if any, is over: later URCs are news
		switch {
		case ordered:
			l.log.Info().Msg("module finished resetting (RDY)")
			return rebuild{}, false
		case !l.link.prepared:
			l.log.Info().Msg("module finished booting (RDY)")
			return rebuild{}, false
		}
		l.log.Warn().Msg("module rebooted (RDY): bringing it up again")
		return rebuild{stageModule, "module rebooted (RDY)", lossReboot}, true
	case qmt.AppReady:
		// The second ready URC of some families follows RDY, seconds later on some. It is news
		// only when no RDY came lately and the module was already brought up on this port: a
		// reboot whose RDY was missed.
		now := time.Now()
		if !l.link.prepared || now.Sub(l.readyAt) < appReadyAfter || now.Sub(l.link.opened) < appReadyAfter {
			l.log.Info().Msg("module applications ready (APP RDY)")
			return rebuild{}, false
		}
		l.log.Warn().Msg("module rebooted (APP RDY without a RDY lately): bringing it up again")
		return rebuild{stageModule, "module rebooted (APP RDY)", lossReboot}, true
	case qmt.PoweredDown:
		if l.resetting(time.Now()) {
			l.log.Info().Msg("module powering down for the reset gatewayd ordered (POWERED DOWN)")
			return rebuild{}, false
		}
		l.log.Warn().Msg("module powered down")
		return rebuild{stageModule, "module powered down", lossReboot}, true
	case qmt.SIMStatus:
		if e.State != "READY" {
			return rebuild{stageSIM, "SIM state changed to " + e.State, lossSIM}, true
		}
	}
	return rebuild{}, false
}

// stageOut is what a stage hands back besides its error.
type stageOut struct {
	link *link // stagePort: the port it opened
	// expires: stageMQTT, when the identity it connected with stops being accepted (zero: never).
	expires time.Time
	// validFor and signedAt: stageMQTT, the password's lifetime from its signing, and when, on
	// this host's clock, it was signed (for the renewal).
	validFor time.Duration
	signedAt time.Time
	// found is what the stage learned, also when it then failed.
	found findings
	// clockNote: stageMQTT, what was last said about the clock that signs CONNECTs (noteClock).
	clockNote string
}

// findings is what a stage or a health check learned about the module, the SIM, the network
// and the session. It travels back to the loop with the result, and the loop alone puts it in
// the status and on the link. A nil field (a false flag) was not learned.
type findings struct {
	module     *modem.Identity // the module stage: model, revision and IMEI (no ICCID)
	sim        *string         // the SIM state AT+CPIN? gave, or what its error means
	iccid      *string
	deviceName *string // a dynamically registering platform's device name for this module
	reg        *modem.Registration
	pdp        []string // the PDP context's addresses, when pdpKnown
	pdpKnown   bool
	signal     *Signal
	signalAt   time.Time
	operator   *string
	// networkReady: the PDP stage found the network ready (the LED goes off, or shows its
	// property).
	networkReady bool
	clientID     *string
	subscribed   []Subscribed // the session's subscriptions, when subsKnown
	subsKnown    bool
	published    uint64 // publishes on connect the module reported done
}

// ptr is a pointer to a copy of v, for findings.
func ptr[T any](v T) *T { return &v }

// stageIn is what the loop gives a stage besides the port: state the loop owns that the stage
// carries on, and where it reports progress.
type stageIn struct {
	// clockNote: what was last said about the clock that signs CONNECTs (stageMQTT).
	clockNote string
	// prepared reports, from the module stage, that ATE0 and AT+CMEE=1 took effect, with the
	// AT engine's echo count then; the loop takes it at once (a RDY after it is a reboot). It
	// never waits.
	prepared func(echoes uint64)
}

// runStage runs one bring-up stage on the open port k (nil for stagePort, which returns the
// link it opened). Stages never sleep and never retry: they do their step once and return a
// classified error (see classify); the machine decides what comes next. They write nothing
// the loop owns: what they learn comes back in stageOut.
func (s *Supervisor) runStage(ctx context.Context, st stage, k *link, in stageIn) (out stageOut, err error) {
	switch st {
	case stagePort:
		port, err := s.set.OpenPort(ctx)
		if err != nil {
			return stageOut{}, &stepError{step: "open", err: fmt.Errorf("open %s: %w", s.set.PortName, err),
				hint: "check that the module is plugged in and that the port (serial.port) is right"}
		}
		return stageOut{link: newLink(port, s)}, nil
	case stageModule:
		err = s.bringUpModule(ctx, k, in, &out.found)
	case stageSIM:
		err = s.checkSIM(ctx, k, &out.found)
	case stageRegister:
		err = s.checkRegistration(ctx, k, &out.found)
	case stagePDP:
		err = s.activatePDP(ctx, k, &out.found)
	case stageMQTT:
		out.clockNote = in.clockNote
		err = s.connectMQTT(ctx, k, &out)
	default:
		err = fmt.Errorf("no such stage %s", st)
	}
	return out, err
}

func (s *Supervisor) bringUpModule(ctx context.Context, k *link, in stageIn, f *findings) error {
	s.log.Info().Str("step", "sync").Str("port", s.set.PortName).Msg("waiting for the module to answer AT")
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := k.mod.Sync(syncCtx, 500*time.Millisecond)
	cancel()
	if err != nil {
		if stopped(ctx, err) {
			return err
		}
		// A module that answers nothing for this long needs more than a retry.
		return fmt.Errorf("sync: %w: %w", at.ErrUnresponsive, err)
	}
	if err := k.mod.Prepare(ctx); err != nil {
		return failedStep("prepare", err)
	}
	in.prepared(k.conn.Stats().Echoes)
	if err := s.checkURCPort(ctx, k); err != nil {
		return err
	}
	id, err := k.mod.Identify(ctx)
	if err != nil {
		return failedStep("identify", err)
	}
	f.module = &id
	s.log.Info().Str("event", logging.EventModule).Str("model", id.Model).Str("revision", id.Revision).
		Str("imei", id.IMEI).Msg("module identified")
	return nil
}

// checkURCPort makes sure the module sends its URCs to the port gatewayd reads: the setting is
// kept in the module's NV, so a module set up elsewhere for the UART would answer every command
// here but never report a connection or a message.
func (s *Supervisor) checkURCPort(ctx context.Context, k *link) error {
	want := s.set.URCPort
	if want == "" {
		return nil
	}
	got, err := k.mod.URCPort(ctx)
	switch {
	case err != nil && stopped(ctx, err):
		return err
	case err != nil:
		s.log.Warn().Err(err).Msg(`cannot read AT+QURCCFG="urcport"; leaving it as it is`)
		return nil
	case got == want || got == "all":
		return nil
	}
	if err := k.mod.SetURCPort(ctx, want); err != nil {
		return &stepError{step: "urcport", err: err, hint: "the module sends its URCs to " + got + ", not to this port; set serial.urc_port"}
	}
	s.log.Warn().Str("event", logging.EventURCPortSet).Str("was", got).Str("now", want).
		Msg("the module sent its URCs to another port; set it to this one (the module keeps this setting)")
	return nil
}

// stopped reports that a stage cannot go on: it is being stopped, or the port is gone (classify
// then reopens it). Its error is returned as it is.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || classify(stageModule, err).class == classPortGone
}

// simPoll is how often the SIM is asked again while it is not ready.
const simPoll = time.Second

// checkSIM asks for the SIM state once; a SIM that is not ready is polled by the machine.
func (s *Supervisor) checkSIM(ctx context.Context, k *link, f *findings) error {
	state, err := k.mod.SIMState(ctx)
	var cme *at.CMEError
	switch {
	case err != nil && errors.As(err, &cme):
		f.sim = ptr(at.CMEMeaning(cme.Code))
		return &notYetError{state: at.CMEMeaning(cme.Code), poll: simPoll, err: err}
	case err != nil:
		return failedStep("sim", err)
	}
	f.sim = &state
	if state != "READY" {
		return &notYetError{state: state, poll: simPoll}
	}
	// Only now can the SIM's identity be read: for a while after RDY the module answers but the
	// SIM does not, and an empty {iccid} would subscribe to the wrong topics.
	iccid, err := k.mod.ICCID(ctx)
	switch {
	case err != nil && modem.SIMNotReady(err):
		return &notYetError{state: "SIM busy", poll: simPoll, err: err}
	case err != nil:
		return &stepError{step: "iccid", err: err, hint: "the SIM's number (AT+QCCID) is needed for {iccid} in topics; check the SIM"}
	}
	f.iccid = &iccid
	id := k.id
	id.ICCID = iccid
	if err := modem.ValidateTopicIdentity(id); err != nil {
		return &stepError{step: "identity", err: err, hint: "the module's IMEI or the SIM's ICCID cannot go into a topic; nothing is subscribed with it"}
	}
	s.log.Info().Str("event", logging.EventSIMReady).Str("iccid", iccid).Str("imei", id.IMEI).Msg("SIM ready")
	if reg, ok := cloud.RegisteringOf(s.set.Platform); ok {
		dn, err := s.resolveDeviceName(reg, id)
		if err != nil {
			return &stepError{step: "device name", err: err, hint: "the pinned device name in mqtt.aliyun.state_dir cannot be read; fix or remove it"}
		}
		f.deviceName = &dn
	}
	if s.set.APN != "" {
		if err := k.mod.SetAPNAuth(ctx, s.set.PDPContext, s.set.APN, s.set.APNUser, s.set.APNPassword, s.set.APNAuth); err != nil {
			hint := "check module.apn, module.apn_user and module.apn_password"
			if errors.Is(err, modem.ErrAuthNotOffered) {
				hint = "this module does not offer that authentication: set module.apn_auth to pap or chap"
			}
			return &stepError{step: "apn", err: err, hint: hint}
		}
	}
	return nil
}

// registerPoll is how often registration is asked again while the module is not registered.
const registerPoll = 2 * time.Second

func (s *Supervisor) checkRegistration(ctx context.Context, k *link, f *findings) error {
	reg, err := k.mod.Registration(ctx)
	if err != nil {
		return failedStep("register", err)
	}
	f.reg = &reg
	if !reg.Registered() {
		return &notYetError{state: reg.String(), poll: registerPoll}
	}
	return nil
}

func (s *Supervisor) activatePDP(ctx context.Context, k *link, f *findings) error {
	cid := s.set.PDPContext
	s.log.Info().Str("step", "pdp").Int("context", cid).Msg("checking the PDP context")
	active, addrs, err := k.mod.PDPAddresses(ctx, cid)
	if err != nil {
		return failedStep("pdp", err)
	}
	if !active {
		// ActivatePDP takes an ERROR for a context that is active by then (the firmware's answer
		// when it is already active) as done.
		if err := k.mod.ActivatePDP(ctx, cid); err != nil {
			return &stepError{step: "pdp", err: err, hint: "cannot activate the PDP context: check the APN and the SIM's data plan"}
		}
		if _, addrs, err = k.mod.PDPAddresses(ctx, cid); err != nil {
			return failedStep("pdp", err)
		}
	}
	addr := ""
	if len(addrs) > 0 {
		addr = addrs[0]
	}
	ev := s.log.Info().Str("event", logging.EventNetworkReady).Int("context", cid).Str("address", addr)
	if len(addrs) > 1 {
		ev = ev.Strs("addresses", addrs)
	}
	f.pdp, f.pdpKnown = addrs, true
	if dbm, ok, err := k.mod.SignalDBm(ctx); err == nil {
		f.signal, f.signalAt = &Signal{RSSI: dbm, HasRSSI: ok}, time.Now()
		if ok {
			ev = ev.Int("rssi_dbm", dbm)
		}
	}
	if op, err := k.mod.Operator(ctx); err == nil && op != "" {
		f.operator = &op
		ev = ev.Str("operator", op)
	}
	ev.Msg("network ready")
	f.networkReady = true
	return nil
}

// connectMQTT configures the module's MQTT client, opens the link, connects with the identity
// the platform gives for now, subscribes and publishes what is configured. It sets in out when
// the identity expires (zero: never) and its lifetime, and what it learned on the way.
func (s *Supervisor) connectMQTT(ctx context.Context, k *link, out *stageOut) error {
	c := k.client
	// Whatever state an earlier attempt or another program left our client in, start clean.
	if err := s.closeStaleLink(ctx, k); err != nil {
		return s.mqttFailed(ctx, k, "close stale link", err)
	}
	if s.set.TLS != nil {
		if err := s.setUpTLS(ctx, k); err != nil {
			return s.mqttFailed(ctx, k, "tls", err)
		}
	}
	skipped, err := c.ConfigureReport(ctx, s.set.MQTT)
	if err != nil {
		return s.mqttFailed(ctx, k, "configure", err)
	}
	for _, sk := range skipped {
		s.log.Info().Str("setting", sk.Setting).Err(sk.Err).
			Msg("this firmware lacks an optional AT+QMTCFG setting; going on without it")
	}
	// The clock to sign with is settled before the link opens: some brokers close a link that
	// stays idle between QMTOPEN and QMTCONN.
	skew := s.signingClock(ctx, k, &out.clockNote)
	s.log.Info().Str("step", "open").Str("host", s.set.Host).Int("port", s.set.Port).Msg("opening the link to the broker")
	err = c.Open(ctx, s.set.Host, s.set.Port)
	if errors.Is(err, qmt.ErrInUse) {
		// +QMTOPEN: <idx>,2: the index is occupied — a link an earlier process left open or
		// still opening, even when AT+QMTOPEN? lists nothing. Free it and open again, once.
		s.log.Warn().Int("client", s.set.ClientIndex).Msg("the module's MQTT client index is occupied; closing it and opening again")
		s.freeIndex(ctx, k)
		err = c.Open(ctx, s.set.Host, s.set.Port)
	}
	if err != nil {
		return s.mqttFailed(ctx, k, "open", err)
	}
	if reg, ok := cloud.RegisteringOf(s.set.Platform); ok {
		if err := s.ensureDevice(ctx, k, reg); err != nil {
			return err
		}
	}
	signedAt := time.Now()
	signNow := signedAt.Add(skew)
	id, err := s.set.Platform.Identity(signNow)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("credentials: %w", err)}
	}
	connect, user := c.Connect, id.Username
	if id.SecretUsername {
		connect, user = c.ConnectSecretUser, "***"
	}
	if err := connect(ctx, id.ClientID, id.Username, id.Password); err != nil {
		return s.mqttFailed(ctx, k, "connect", err)
	}
	out.expires = id.Expires
	if !id.Expires.IsZero() {
		out.validFor, out.signedAt = id.Expires.Sub(signNow), signedAt
	}
	out.found.clientID = &id.ClientID
	ev := s.log.Info().Str("event", logging.EventMQTTConnected).Str("host", s.set.Host).Int("port", s.set.Port).
		Str("client_id", id.ClientID).Str("username", user)
	if !id.Expires.IsZero() {
		ev = ev.Time("password_expires", id.Expires)
	}
	ev.Msg("MQTT connected")
	ids := identityVars(k.id, k.deviceName)
	subs := s.subscriptions(k.id, k.deviceName)
	var granted []int
	if len(subs) > 0 {
		if granted, err = c.Subscribe(ctx, subs...); err != nil {
			return s.mqttFailed(ctx, k, "subscribe", err)
		}
		for i, sub := range subs {
			switch {
			case i >= len(granted):
				s.log.Info().Str("event", logging.EventSubscribed).Str("topic", sub.Topic).Int("qos", sub.QoS).
					Msg("subscribed (the module did not report the granted QoS)")
			case granted[i] < sub.QoS:
				// The broker's choice (reference 2.5: Aliyun and ThingsBoard grant 1 for 2):
				// downlinks on it come at most at the granted QoS.
				s.log.Warn().Str("event", logging.EventSubscribed).Str("topic", sub.Topic).Int("qos", sub.QoS).
					Int("granted_qos", granted[i]).
					Msg(fmt.Sprintf("subscribed, but the broker granted QoS %d where %d was asked: messages on this topic come at most at QoS %d", granted[i], sub.QoS, granted[i]))
			default:
				s.log.Info().Str("event", logging.EventSubscribed).Str("topic", sub.Topic).Int("qos", sub.QoS).
					Int("granted_qos", granted[i]).Msg("subscribed")
			}
		}
	}
	out.found.subscribed, out.found.subsKnown = make([]Subscribed, 0, len(subs)), true
	for i, sub := range subs {
		g := -1
		if i < len(granted) {
			g = granted[i]
		}
		out.found.subscribed = append(out.found.subscribed, Subscribed{Topic: sub.Topic, QoS: sub.QoS, Granted: g})
	}
	for _, m := range s.set.PublishOnConnect {
		m.Topic = ids.Replace(m.Topic)
		if err := c.Publish(ctx, m); err != nil {
			return s.mqttFailed(ctx, k, "publish", err)
		}
		out.found.published++
		s.log.Info().Str("event", logging.EventPublished).Str("topic", m.Topic).Int("bytes", len(m.Payload)).
			Int("qos", m.QoS).Msg("published")
	}
	return nil
}

// setUpTLS puts the certificates in the module's file system when they are not there yet (a new
// module) and configures the TLS context.
func (s *Supervisor) setUpTLS(ctx context.Context, k *link) error {
	res, err := qssl.Apply(ctx, k.conn, *s.set.TLS)
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
// configuration serves a fleet, and {device_name} (a dynamically registered device's topics)
// with deviceName.
func identityVars(id modem.Identity, deviceName string) *strings.Replacer {
	return strings.NewReplacer("{imei}", id.IMEI, "{iccid}", id.ICCID, cloud.AliyunDeviceNameVar, deviceName)
}

// subscriptions are the configured subscriptions for the module with identity id.
func (s *Supervisor) subscriptions(id modem.Identity, deviceName string) []qmt.Subscription {
	ids := identityVars(id, deviceName)
	subs := make([]qmt.Subscription, len(s.set.Subscribe))
	for i, sub := range s.set.Subscribe {
		subs[i] = qmt.Subscription{Topic: ids.Replace(sub.Topic), QoS: sub.QoS}
	}
	return subs
}

// closeURCWait is how long the bring-up's AT+QMTCLOSE waits for +QMTCLOSE after OK: some firmware
// answers OK on an index with nothing open and prints no URC (reference 2.2).
const closeURCWait = 2 * time.Second

// closeStaleLink frees our client index whatever state an earlier attempt, an earlier process or
// another program left it in, before it is configured: the module refuses AT+QMTCFG on an index
// that is still open, also one left opening and not listed by AT+QMTOPEN? (reference 1, an
// EC600K-CN note). AT+QMTCLOSE goes first, always; its ERROR means nothing was open, or firmware
// that closes a connected index only with AT+QMTDISC — sent only when AT+QMTOPEN? lists the
// index, so never after a refused CONNECT (whose link is gone already).
func (s *Supervisor) closeStaleLink(ctx context.Context, k *link) error {
	open, err := k.client.CloseIndex(ctx, closeURCWait)
	if err != nil {
		return err
	}
	if open {
		s.log.Info().Int("client", s.set.ClientIndex).Msg("closed a link left open on the module's MQTT client index")
		return nil
	}
	links, err := k.client.OpenLinks(ctx)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Client == s.set.ClientIndex {
			s.log.Info().Str("host", l.Host).Int("port", l.Port).Msg("the module refused AT+QMTCLOSE on a link left open; disconnecting it")
			return k.client.Disconnect(ctx)
		}
	}
	return nil
}

// freeIndex frees the client index with AT+QMTCLOSE or, when the module refuses that (a
// connected client), AT+QMTDISC.
func (s *Supervisor) freeIndex(ctx context.Context, k *link) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.client.CloseLink(cctx); err != nil {
		s.log.Debug().Err(err).Msg("AT+QMTCLOSE on the occupied index")
		if err := k.client.Disconnect(cctx); err != nil {
			s.log.Debug().Err(err).Msg("AT+QMTDISC on the occupied index")
		}
	}
}

// mqttFailed closes the link after a failed MQTT step and returns the step's error with a hint;
// the machine logs it with the time to the next attempt.
func (s *Supervisor) mqttFailed(ctx context.Context, k *link, step string, err error) error {
	if stopped(ctx, err) {
		return err
	}
	se := &stepError{step: step, err: err}
	var re *qmt.ResultError
	var le *qmt.LinkError
	if errors.As(err, &le) && step == "connect" && le.Code == 1 {
		// An M95 answered a refused CONNECT with +QMTSTAT: <idx>,1 and no +QMTCONN at all
		// (reference 2.3): the broker closing the link at CONNECT may be a refusal.
		se.hint = "the broker closed the link in answer to CONNECT; some modules report a refused client id or " +
			"credentials only this way: check mqtt.client_id, username and password"
	}
	if errors.As(err, &re) && step == "open" && s.set.TLS != nil && (re.Result == -1 || re.Result == 5) {
		se.hint = "TLS is on and the module does not say why a link fails: check that mqtt.tls.ca_file " +
			"signed the broker's certificate, that the certificate names mqtt.host, and cert_file/key_file"
	}
	if errors.As(err, &re) && step == "connect" && re.Code > 0 {
		se.hint = s.set.Platform.Hint(cloud.Trouble{ConnackCode: re.Code})
	}
	if reg, ok := cloud.RegisteringOf(s.set.Platform); ok && step == "register" && errors.As(err, &re) && re.Code > 0 {
		se.hint = reg.RegisterHint(re.Code)
	} else if ok && step == "register" {
		se.hint = "Alibaba Cloud accepted the registration but its answer on " + strings.Join(reg.Dynamic().AnswerTopics(), " or ") +
			" did not come or was not usable; it is retried (the platform answers the same " + credName(reg.Dynamic()) +
			" until the device logs in with it)"
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := s.closeStaleLink(cctx, k); err != nil {
		s.log.Debug().Err(err).Msg("closing the link after a failure")
	}
	cancel()
	return se
}
