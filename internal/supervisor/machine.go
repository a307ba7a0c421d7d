package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatewayd/gatewayd/internal/backoff"
)

// The session state machine. It is the one owner of time and of the decision what to do next:
// a pure transition function (machine.step) takes an input — a stage finished, a URC that says
// the session must be rebuilt, the retry timer fired, a health check's result — together with
// the time it happened, and returns the effects to perform. It starts no goroutine, reads no
// clock and does no I/O; the supervisor's loop (Run) feeds it and performs its effects, and owns
// every timer. Stages never sleep: they return a classified error (classify), and the machine
// decides when the next attempt may start.
//
// Its rules, which the tests check for every input sequence:
//   - at most one stage runs at a time, and nothing runs while the module is being reset;
//   - no stage starts before the retry deadline; a failure can only push the deadline out, and
//     a URC during a back-off may move the session back to an earlier stage, never the deadline
//     forward;
//   - every failed attempt at any stage, and a session that dies before it has been up for
//     stableAfter, grows the back-off of its kind (port, module, MQTT); only a session that
//     stayed up that long resets them;
//   - a session that stayed up that long and is closed by the broker (a URC sending the session
//     back to the MQTT stage) is not retried at once: a broker restart closes every gateway's
//     session in the same second. Its first reconnect, and every later attempt until a session
//     lasts again, waits a delay drawn uniformly from a window that starts at the reconnect
//     policy's Initial and doubles with each attempt (full jitter), so a fleet's CONNECTs arrive
//     spread evenly over the window instead of together. Any other loss of a lasting session
//     (the port, the module) is local to the device and is retried at once;
//   - the outbox drains while the session is connected, and only then;
//   - health checks run whenever a port is open and the module is not being brought up, reset
//     or kept quiet — backing off included — and three failures in a row reset the module;
//   - a session whose password expires is renewed before it does, in a planned way: at
//     renewFraction of the password's lifetime the session is left cleanly (DISCONNECT) and the
//     MQTT stage runs again at once with a freshly signed identity. That is neither a failure
//     nor a lost session: no back-off, nothing counted; only a failure of the new CONNECT is.

// stage is a step of the bring-up; a fault sends the session back to the stage that mends it.
type stage int

const (
	stagePort      stage = iota // open the AT port
	stageModule                 // sync, echo off, identify the module
	stageSIM                    // +CPIN: READY, the SIM's identity, the APN
	stageRegister               // network registration
	stagePDP                    // the PDP context (mobile data)
	stageMQTT                   // TLS, configure, open, connect, subscribe, publish on connect
	stageConnected              // up: waiting for events
)

var stageNames = [...]string{"port", "module", "sim", "register", "pdp", "mqtt", "connected"}

func (st stage) String() string {
	if st < 0 || int(st) >= len(stageNames) {
		return fmt.Sprintf("stage(%d)", int(st))
	}
	return stageNames[st]
}

// doing says in words what a running stage does, for systemd's STATUS=.
func (st stage) doing() string {
	switch st {
	case stagePort:
		return "opening the AT port"
	case stageModule:
		return "waiting for the module to answer AT"
	case stageSIM:
		return "waiting for the SIM"
	case stageRegister:
		return "waiting for network registration"
	case stagePDP:
		return "activating mobile data (PDP context)"
	case stageMQTT:
		return "connecting to the MQTT broker"
	}
	return st.String()
}

// failKind is a kind of failure with a back-off counter of its own.
type failKind int

const (
	kindPort   failKind = iota // the AT port could not be opened, or went away
	kindModule                 // module, SIM, registration, PDP context
	kindMQTT                   // the MQTT link and session
	numKinds
)

var kindNames = [...]string{"port", "module", "mqtt"}

func (k failKind) String() string { return kindNames[k] }

// kindOf is the back-off counter a failure of stage st counts against.
func kindOf(st stage) failKind {
	switch {
	case st == stagePort:
		return kindPort
	case st >= stageMQTT:
		return kindMQTT
	}
	return kindModule
}

// maxHealthFailures is how many health checks in a row may fail before the module is reset.
const maxHealthFailures = 3

// inputKind says what happened.
type inputKind int

const (
	inStart      inputKind = iota // the supervisor starts
	inStageDone                   // the running stage returned Err (nil: success)
	inFallBack                    // a URC says the session must be rebuilt from Stage; Why says why
	inTimer                       // the retry timer fired
	inHealthTick                  // time for a health check
	inHealthDone                  // the health check returned Err
	inPortLost                    // the AT port failed (Err)
	inResetDone                   // the module reset finished
	inRenewDue                    // the renewal timer fired
	inStop                        // the daemon is stopping
	inReconnect                   // the session's settings changed (Why): reconnect cleanly, not a failure
	numInputs
)

// input is one thing that happened, at Now.
type input struct {
	kind  inputKind
	now   time.Time
	stage stage  // inStageDone: the stage that finished; inFallBack: where to go back to
	err   error  // inStageDone, inHealthDone, inPortLost
	why   string // inFallBack, inReconnect
	loss  loss   // inFallBack: what the loss of a connected session counts as
	// inStageDone of stageMQTT: the password's lifetime (0: it does not expire) and when, on
	// this clock, it was signed.
	validFor time.Duration
	signedAt time.Time
}

// effectKind says what the loop must do.
type effectKind int

const (
	effReady       effectKind = iota // tell systemd READY=1
	effStatus                        // tell systemd STATUS=text
	effRunStage                      // start stage in a goroutine of its own
	effCancelStage                   // cancel the running stage (its result still comes back)
	effArmTimer                      // (re)arm the one retry timer to fire at at
	effRetry                         // log a failure and the time to the next attempt
	effPoll                          // log that a stage waits for a condition and polls again
	effConnected                     // the session is up: log it, STATUS=
	effStartDrain                    // start draining the outbox
	effStopDrain                     // stop draining the outbox
	effLost                          // log that a connected session was lost (why, connected for)
	effHealth                        // send a health check
	effReset                         // reset the module (AT+CFUN=1,1, then the reset line); err is why
	effClosePort                     // close the AT port
	effShutdown                      // disconnect MQTT cleanly; text: why, when not the daemon stopping
	effArmRenew                      // (re)arm the renewal timer to fire at at; zero at: stop it
	effRenew                         // the password expires at at: disconnect MQTT cleanly to renew it
	effRenewed                       // the session was renewed: log it (dur: how long it took)
	effExit                          // return err from Run (nil: a clean stop)
)

// effect is one thing for the loop to do.
type effect struct {
	kind    effectKind
	stage   stage         // effRunStage, effRetry/effPoll (the stage that failed)
	at      time.Time     // effArmTimer, effArmRenew; effRenew: the old password's expiry
	delay   time.Duration // effRetry, effPoll: time to the next attempt
	kindOf  failKind      // effRetry
	attempt int           // effRetry: failures of this kind since the last stable session
	lost    bool          // effRetry: the failure is a session that did not last
	spread  bool          // effRetry: the first reconnect after the broker closed a lasting session
	err     error         // effRetry, effPoll, effReset, effExit, effLost
	text    string        // effStatus; effLost: why
	loss    loss          // effLost: what the loss counts as (Status.Reconnects)
	dur     time.Duration // effLost: how long the session was up; effRenewed: how long renewing took
}

// machineConfig is what the machine needs to know of the settings.
type machineConfig struct {
	backoff backoff.Policy
	// reconnect is the MQTT back-off after the broker closed a lasting session, until a session
	// lasts again; zero: backoff.Reconnect.
	reconnect   backoff.Policy
	stableAfter time.Duration // a session up this long resets the back-off
	quiet       time.Duration // the first bring-up keeps the port quiet this long after opening it
	// pollLimit is how long a stage may keep answering "not yet" (the SIM, registration) before
	// that counts as a failure.
	pollLimit map[stage]time.Duration
	rnd       func() float64 // the back-off's jitter source; nil: math/rand
}

// machine is the session's state. Only step changes it.
type machine struct {
	cfg machineConfig
	bo  [numKinds]*backoff.Backoff
	// spread is the MQTT back-off while spreading is set: since the broker closed a lasting
	// session, and until a session lasts again.
	spread    *backoff.Backoff
	spreading bool

	next      stage     // the stage to run next (the running one while running)
	notBefore time.Time // no stage starts before this
	armedAt   time.Time // the retry timer's deadline, zero when not armed
	running   bool      // a stage goroutine is running
	cancelled bool      // ... and has been cancelled: its result only frees the slot
	// interrupted is why a URC cancelled the running stage: its result is then counted as
	// that attempt's failure (with the stage's own error when it has one).
	interrupted string
	connected   bool
	upSince     time.Time
	portOpen    bool
	resetting   bool
	stopped     bool

	quietUntil time.Time // the end of the first bring-up's quiet period; zero until it began

	pollStage stage // the stage whose "not yet" answers are being polled, -1 for none
	pollSince time.Time

	healthRunning  bool
	healthFailures int

	renewAt    time.Time // when the connected session's password must be renewed; zero: never
	expiresAt  time.Time // when it expires (signedAt + validFor)
	renewing   bool      // a planned renewal runs the MQTT stage
	renewSince time.Time // ... since then
	// renewUpSince is when the renewed session first came up: a session that lasts across
	// renewals counts as one for stableAfter.
	renewUpSince time.Time

	status string // the last STATUS= sent
	out    []effect
}

func newMachine(cfg machineConfig) *machine {
	if cfg.reconnect == (backoff.Policy{}) {
		cfg.reconnect = backoff.Reconnect
	}
	m := &machine{cfg: cfg, pollStage: -1}
	newBackoff := func(p backoff.Policy) *backoff.Backoff {
		if cfg.rnd != nil {
			return backoff.NewWithRand(p, cfg.rnd)
		}
		return backoff.New(p)
	}
	for k := range m.bo {
		m.bo[k] = newBackoff(cfg.backoff)
	}
	m.spread = newBackoff(cfg.reconnect)
	return m
}

// step applies one input and returns the effects, in the order they must be performed. The
// returned slice is only valid until the next call.
func (m *machine) step(in input) []effect {
	m.out = m.out[:0]
	if m.stopped {
		return nil
	}
	switch in.kind {
	case inStart:
		m.emit(effect{kind: effReady})
	case inStageDone:
		m.stageDone(in)
	case inFallBack:
		m.fallBack(in.now, in.stage, in.why, in.loss)
	case inReconnect:
		m.reconnect(in.now, in.why)
	case inTimer:
		m.armedAt = time.Time{}
	case inHealthTick:
		m.healthTick(in.now)
	case inHealthDone:
		m.healthDone(in)
	case inPortLost:
		m.portLost(in.now, in.err)
	case inRenewDue:
		m.renewDue(in.now)
	case inResetDone:
		m.resetting = false
		if m.portOpen {
			m.portOpen, m.healthRunning = false, false
			m.emit(effect{kind: effClosePort})
		}
		m.next = stagePort
		m.pollStage = -1
		m.fail(in.now, stagePort, errors.New("module reset; reopening the port"))
	case inStop:
		m.leaveConnected(in.now, "shutting down", lossOther, false)
		if m.running && !m.cancelled {
			m.emit(effect{kind: effCancelStage})
		}
		m.stopped = true
		m.emit(effect{kind: effExit})
		return m.out
	}
	m.advance(in.now)
	return m.out
}

func (m *machine) emit(e effect) { m.out = append(m.out, e) }

func (m *machine) setStatus(s string) {
	if s != m.status {
		m.status = s
		m.emit(effect{kind: effStatus, text: s})
	}
}

// advance starts the next stage when nothing stands in the way, and otherwise makes sure the
// timer will wake the loop at the deadline.
func (m *machine) advance(now time.Time) {
	if m.stopped || m.running || m.resetting || m.connected {
		return
	}
	if now.Before(m.notBefore) {
		if !m.armedAt.Equal(m.notBefore) {
			m.armedAt = m.notBefore
			m.emit(effect{kind: effArmTimer, at: m.notBefore})
		}
		return
	}
	if m.next == stageModule && m.quietUntil.IsZero() && m.cfg.quiet > 0 {
		// The first bring-up lets a publish that an earlier process left half-sent time out
		// on the module before anything is written to the port (see Settings.MQTT.EditTimeout).
		m.quietUntil = now.Add(m.cfg.quiet)
		m.notBefore = m.quietUntil
		m.setStatus("keeping the port quiet for a half-sent publish to time out")
		m.armedAt = m.notBefore
		m.emit(effect{kind: effArmTimer, at: m.notBefore})
		return
	}
	m.running, m.cancelled = true, false
	if m.pollStage != m.next {
		m.setStatus(m.next.doing())
	}
	m.emit(effect{kind: effRunStage, stage: m.next})
}

func (m *machine) stageDone(in input) {
	if !m.running {
		return // not ours: a result can only come from a stage the machine started
	}
	m.running = false
	if in.err != nil || m.cancelled || m.interrupted != "" {
		m.renewing = false // a renewal that did not come through is not logged as one
	}
	if c := classify(in.stage, in.err); !m.cancelled && in.err != nil && c.class != classRetry && c.class != classNotYet {
		m.interrupted = "" // the port is gone, the module unresponsive, ...: handled as such below
	}
	if why := m.interrupted; why != "" {
		// A URC interrupted the attempt: that is its failure, with the stage's own error when it
		// has one.
		m.cancelled, m.interrupted = false, ""
		err := in.err
		if err == nil || errors.Is(err, context.Canceled) {
			err = errors.New(why)
		}
		m.fail(in.now, in.stage, err)
		return
	}
	if m.cancelled {
		// The decision was taken when the stage was cancelled; this only frees the slot.
		m.cancelled = false
		if in.stage == stagePort && in.err == nil {
			m.emit(effect{kind: effClosePort}) // a port opened too late to be used
		}
		return
	}
	m.classified(in)
}

// classified acts on the result of a stage that ran its course.
func (m *machine) classified(in input) {
	st := in.stage
	if in.err == nil {
		if m.pollStage == st {
			m.pollStage = -1
		}
		if st == stagePort {
			m.portOpen = true
			m.healthRunning, m.healthFailures = false, 0
		}
		renewed := st == stageMQTT && m.renewing
		if st == stageMQTT {
			m.scheduleRenewal(in)
		}
		m.next = st + 1
		if m.next == stageConnected {
			m.connected, m.upSince = true, in.now
			if renewed {
				m.upSince = m.renewUpSince // the same session, renewed: how long it lasted goes on
			}
			m.emit(effect{kind: effConnected})
			m.status = "connected"
			m.emit(effect{kind: effStartDrain})
		}
		return
	}
	c := classify(st, in.err)
	switch c.class {
	case classFatal:
		m.stopped = true
		m.emit(effect{kind: effExit, err: in.err})
	case classPortGone:
		m.portLost(in.now, in.err)
	case classUnresponsive:
		m.startReset(in.now, in.err)
	case classNotYet:
		m.notYet(in.now, st, c, in.err)
	default:
		if c.from < m.next {
			m.next = c.from
		}
		m.fail(in.now, st, in.err)
	}
}

// notYet handles a stage that found its condition not met yet (no SIM, not registered): it is
// polled again after c.poll until its limit, then that is a failure with back-off.
func (m *machine) notYet(now time.Time, st stage, c classified, err error) {
	if m.pollStage != st {
		m.pollStage, m.pollSince = st, now
	}
	limit := m.cfg.pollLimit[st]
	if now.Sub(m.pollSince) >= limit {
		m.pollStage = -1
		m.fail(now, st, fmt.Errorf("%s after %s: %w", st.doing(), limit, err))
		return
	}
	m.push(now.Add(c.poll))
	m.setStatus(st.doing() + ": " + c.state)
	m.emit(effect{kind: effPoll, stage: st, delay: m.notBefore.Sub(now), err: err})
}

// fail counts a failed attempt at stage st against its kind and pushes the next attempt out.
func (m *machine) fail(now time.Time, st stage, err error) { m.failed(now, st, err, false) }

// failed is fail; lost says the failure is a connected session that did not last.
func (m *machine) failed(now time.Time, st stage, err error, lost bool) {
	k := kindOf(st)
	b := m.backoffOf(k)
	m.push(now.Add(b.Next()))
	d := m.notBefore.Sub(now)
	m.emit(effect{kind: effRetry, stage: st, kindOf: k, attempt: b.Attempts(), delay: d, err: err, lost: lost})
	m.setStatus(failStatus(st, err, d))
}

// backoffOf is the back-off a failure of kind k counts against.
func (m *machine) backoffOf(k failKind) *backoff.Backoff {
	if k == kindMQTT && m.spreading {
		return m.spread
	}
	return m.bo[k]
}

// failStatus is systemd's STATUS= for a failure of stage st, such as "MQTT connect failed:
// broker refused the connection: bad user name or password; retry in 32s".
func failStatus(st stage, err error, retry time.Duration) string {
	what := map[failKind]string{kindPort: "AT port", kindModule: "module " + st.String(), kindMQTT: "MQTT"}[kindOf(st)]
	var se *stepError
	if errors.As(err, &se) {
		what += " " + se.step
		err = se.err
	}
	if retry > time.Second {
		retry = retry.Round(time.Second)
	} else {
		retry = retry.Round(time.Millisecond)
	}
	return fmt.Sprintf("%s failed: %v; retry in %s", what, err, retry)
}

// push moves the retry deadline out to t; never in.
func (m *machine) push(t time.Time) {
	if t.After(m.notBefore) {
		m.notBefore = t
	}
}

// leaveConnected ends a connected session; it reports whether the session had been up long
// enough to reset the back-off. With log, the session was lost (why, counted as r).
func (m *machine) leaveConnected(now time.Time, why string, r loss, log bool) (stable bool) {
	if !m.connected {
		return false
	}
	m.connected = false
	m.stopRenewal()
	m.emit(effect{kind: effStopDrain})
	up := now.Sub(m.upSince)
	if log {
		m.emit(effect{kind: effLost, text: why, loss: r, dur: up})
	} else {
		m.emit(effect{kind: effShutdown})
	}
	if up >= m.cfg.stableAfter {
		for _, b := range m.bo {
			b.Reset()
		}
		m.spread.Reset()
		m.spreading = false
		return true
	}
	return false
}

// reconnect ends a connected session cleanly (an MQTT DISCONNECT: the broker does not publish the
// will) and connects again at once, with the settings the loop now holds: a reload of the
// configuration, not a failure, so no back-off grows. An MQTT stage under way is cancelled and
// run again at once, again not as a failure; an earlier stage, or a back-off, goes on as it was
// (the MQTT stage's next attempt uses the new settings anyway).
func (m *machine) reconnect(now time.Time, why string) {
	if !m.connected {
		if m.running && m.next == stageMQTT && !m.cancelled && m.interrupted == "" {
			m.cancelled = true // its result only frees the slot; advance then runs it again
			m.emit(effect{kind: effCancelStage})
			m.setStatus("reconnecting: " + why)
			return
		}
		m.fallBack(now, stageMQTT, why, lossOther)
		return
	}
	m.connected = false
	m.emit(effect{kind: effStopDrain})
	m.emit(effect{kind: effShutdown, text: why})
	m.next = stageMQTT
	m.setStatus("reconnecting: " + why)
}

func (m *machine) fallBack(now time.Time, to stage, why string, r loss) {
	if !m.portOpen || m.resetting || to < stageModule {
		return
	}
	switch {
	case m.connected:
		m.next = to
		if m.leaveConnected(now, why, r, true) {
			if kindOf(to) != kindMQTT {
				m.setStatus("reconnecting: " + why)
				return // the module or network, local to this device: try again at once
			}
			// The broker closed a session that lasted: it may have closed every gateway's at
			// this second. The first reconnect is spread over the reconnect window.
			m.spreading = true
			b := m.spread
			m.push(now.Add(b.Next()))
			d := m.notBefore.Sub(now)
			m.emit(effect{kind: effRetry, stage: to, kindOf: kindMQTT, attempt: b.Attempts(), delay: d,
				err: fmt.Errorf("session closed by the broker: %s", why), spread: true})
			m.setStatus(fmt.Sprintf("reconnecting in %s (spread over %s): %s", d.Round(time.Millisecond), m.cfg.reconnect.Initial, why))
			return
		}
		m.failed(now, to, fmt.Errorf("session lost %s after it came up: %s", now.Sub(m.upSince).Round(time.Millisecond), why), true)
	case m.running:
		switch {
		case to > m.next:
			// The running stage comes before the one that must be redone.
		case m.cancelled:
			if to < m.next {
				m.next = to
			}
		case to == m.next:
			// The running stage itself must be redone (its work may already be undone). It is
			// not cancelled: the URC ends its waiting calls (a +QMTSTAT fails an MQTT call), and
			// its own error says more than the URC (a refused CONNECT is followed by the
			// broker closing the link). Whatever it returns, the attempt is a failure.
			if m.interrupted == "" {
				m.interrupted = why
			}
		default:
			// An earlier stage must be redone: stop this one; the attempt is a failure,
			// counted when the stage has reported back.
			m.cancelled, m.interrupted = true, why
			m.emit(effect{kind: effCancelStage})
			m.next = to
		}
	default:
		if to < m.next {
			m.next = to // the deadline stays where it is
		}
	}
}

func (m *machine) portLost(now time.Time, err error) {
	if !m.portOpen {
		return
	}
	m.portOpen = false
	m.healthRunning = false
	m.interrupted = "" // the port's loss is this attempt's failure
	stable := m.leaveConnected(now, "port lost: "+err.Error(), lossPort, true)
	if m.running && !m.cancelled {
		m.cancelled = true
		m.emit(effect{kind: effCancelStage})
	}
	m.emit(effect{kind: effClosePort})
	m.next = stagePort
	m.pollStage = -1
	if m.resetting {
		return // the reset's end decides when to reopen
	}
	if stable {
		m.setStatus("reopening the port: " + err.Error())
		return
	}
	m.fail(now, stagePort, err)
}

func (m *machine) startReset(now time.Time, cause error) {
	if m.resetting {
		return
	}
	m.leaveConnected(now, "module unresponsive", lossUnresponsive, true)
	m.interrupted = "" // the reset is counted when it is done
	if m.running && !m.cancelled {
		m.cancelled = true
		m.emit(effect{kind: effCancelStage})
	}
	m.resetting = true
	m.healthFailures = 0
	m.setStatus("resetting the unresponsive module: " + cause.Error())
	m.emit(effect{kind: effReset, err: cause})
}

// healthAllowed reports whether a health check may be sent now: a port is open, and the module
// is neither being brought up (the module stage proves it alive itself), reset, nor kept quiet.
func (m *machine) healthAllowed(now time.Time) bool {
	switch {
	case !m.portOpen, m.resetting, m.healthRunning, now.Before(m.quietUntil):
		return false
	case m.running && m.next <= stageModule:
		return false
	}
	return true
}

func (m *machine) healthTick(now time.Time) {
	if m.healthAllowed(now) {
		m.healthRunning = true
		m.emit(effect{kind: effHealth})
	}
}

func (m *machine) healthDone(in input) {
	if !m.healthRunning {
		return // a check from a port that is gone
	}
	m.healthRunning = false
	if in.err == nil {
		m.healthFailures = 0
		return
	}
	if c := classify(stageConnected, in.err); c.class == classPortGone {
		m.portLost(in.now, in.err)
		return
	}
	m.healthFailures++
	if m.healthFailures >= maxHealthFailures {
		m.startReset(in.now, fmt.Errorf("%d health checks failed in a row: %w", m.healthFailures, in.err))
	}
}

// renewFraction is the share of a password's lifetime after which the session is renewed: 90 %,
// so a 1-hour token is renewed 6 minutes before it expires and a 20-second one 2 seconds before.
// A margin proportional to the lifetime keeps renewals rare for long tokens and still leaves the
// disconnect (well under a second on a live link) time to finish before expiry on short ones.
const renewFraction = 0.9

// minRenewDelay is the least time between a connect and its renewal, so that a password that
// (by a wrong clock or configuration) lives only moments cannot make the session renew in a loop.
const minRenewDelay = time.Second

// scheduleRenewal arms the renewal of a session whose password expires (in.validFor > 0).
func (m *machine) scheduleRenewal(in input) {
	if m.renewing {
		m.renewing = false
		m.emit(effect{kind: effRenewed, dur: in.now.Sub(m.renewSince)})
	}
	if in.validFor <= 0 {
		return
	}
	m.expiresAt = in.signedAt.Add(in.validFor)
	m.renewAt = in.signedAt.Add(time.Duration(float64(in.validFor) * renewFraction))
	if earliest := in.now.Add(minRenewDelay); m.renewAt.Before(earliest) {
		m.renewAt = earliest
	}
	m.emit(effect{kind: effArmRenew, at: m.renewAt})
}

// stopRenewal disarms the renewal of a session that is left.
func (m *machine) stopRenewal() {
	if !m.renewAt.IsZero() {
		m.renewAt = time.Time{}
		m.emit(effect{kind: effArmRenew})
	}
}

// renewDue renews the connected session when its time has come: a clean disconnect, then the
// MQTT stage at once, with no back-off and nothing counted.
func (m *machine) renewDue(now time.Time) {
	if !m.connected || m.renewAt.IsZero() || now.Before(m.renewAt) {
		return // a timer of a session left since, or fired early
	}
	expires := m.expiresAt
	m.renewAt = time.Time{}
	m.connected = false
	m.emit(effect{kind: effStopDrain})
	m.emit(effect{kind: effRenew, at: expires})
	m.renewing, m.renewSince, m.renewUpSince = true, now, m.upSince
	m.next = stageMQTT
	m.setStatus("renewing the session's password before it expires")
}
