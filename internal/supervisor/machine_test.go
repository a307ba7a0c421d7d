package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/qmt"
)

// harness drives the machine as the loop does, on a clock of its own, and checks the
// machine's invariants after every step (see checkInvariants).
type harness struct {
	t   testing.TB
	m   *machine
	now time.Time

	live      bool  // a stage goroutine would be running
	liveStage stage // ... this one
	cancelled bool
	timerAt   time.Time // the armed timer, zero if none
	renewAt   time.Time // the armed renewal timer, zero if none
	deadline  time.Time // the latest retry deadline the machine announced (effRetry, effPoll)
	portOpen  bool
	draining  bool
	health    bool // a health check is outstanding
	resetting bool
	exited    bool

	runs    []run         // every stage started
	retries []effect      // every effRetry
	all     []effectKind  // every effect kind, in order
	status  []string      // every STATUS=
	last    []effect      // the effects of the last step
	errs    []string      // invariant violations
	errEach func(e error) // set by fuzzing to fail fast
}

type run struct {
	st stage
	at time.Time
}

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func testConfig(seed uint64) machineConfig {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return machineConfig{
		backoff:     backoff.Default,
		stableAfter: time.Minute,
		pollLimit:   map[stage]time.Duration{stageSIM: 30 * time.Second, stageRegister: 3 * time.Minute},
		rnd:         r.Float64,
	}
}

func newHarness(t testing.TB, cfg machineConfig) *harness {
	h := &harness{t: t, m: newMachine(cfg), now: t0}
	h.feed(input{kind: inStart})
	return h
}

func (h *harness) feed(in input) []effect {
	in.now = h.now
	if in.kind == inTimer {
		h.timerAt = time.Time{}
	}
	if in.kind == inStageDone {
		h.live = false
		h.cancelled = false
	}
	if in.kind == inHealthDone {
		h.health = false
	}
	if in.kind == inResetDone {
		h.resetting = false
	}
	if in.kind == inRenewDue {
		h.renewAt = time.Time{}
	}
	wasConnected := h.m.connected
	if in.kind == inStageDone && in.stage == stagePort && in.err == nil {
		h.portOpen = true // the loop holds the link from here until effClosePort
	}
	effs := h.m.step(in)
	h.last = append(h.last[:0], effs...)
	for _, e := range effs {
		h.all = append(h.all, e.kind)
		if h.exited {
			h.violate("effect %d after effExit", e.kind)
		}
		switch e.kind {
		case effRunStage:
			if h.live {
				h.violate("stage %s started while stage %s runs", e.stage, h.liveStage)
			}
			if h.resetting {
				h.violate("stage %s started while the module is being reset", e.stage)
			}
			if h.now.Before(h.deadline) {
				h.violate("stage %s started at %s, before the retry deadline %s", e.stage, h.now.Sub(t0), h.deadline.Sub(t0))
			}
			h.live, h.liveStage, h.cancelled = true, e.stage, false
			h.runs = append(h.runs, run{e.stage, h.now})
		case effCancelStage:
			if !h.live {
				h.violate("cancel with no stage running")
			}
			h.cancelled = true
		case effArmTimer:
			h.timerAt = e.at
		case effArmRenew:
			h.renewAt = e.at
		case effRenew:
			if !wasConnected {
				h.violate("renewal of a session that was not connected")
			}
			if has(effs, effRetry) || has(effs, effLost) || has(effs, effShutdown) {
				h.violate("a renewal counted as a failure or a loss: %v", effs)
			}
		case effRetry, effPoll:
			if d := h.now.Add(e.delay); d.Before(h.deadline) {
				h.violate("retry deadline moved in from %s to %s", h.deadline.Sub(t0), d.Sub(t0))
			} else {
				h.deadline = d
			}
			if e.kind == effRetry {
				h.retries = append(h.retries, e)
			}
		case effStartDrain:
			if h.draining {
				h.violate("drain started twice")
			}
			h.draining = true
		case effStopDrain:
			h.draining = false
		case effHealth:
			if h.health {
				h.violate("two health checks at once")
			}
			if !h.portOpen {
				h.violate("health check with no port")
			}
			h.health = true
		case effReset:
			h.resetting = true
		case effClosePort:
			h.portOpen = false
			h.health = false // its answer is an error from the closed port, ignored
		case effStatus:
			h.status = append(h.status, e.text)
		case effExit:
			h.exited = true
		}
	}
	h.checkInvariants()
	return effs
}

func (h *harness) violate(format string, args ...any) {
	msg := fmt.Sprintf("at %s: ", h.now.Sub(t0)) + fmt.Sprintf(format, args...)
	h.errs = append(h.errs, msg)
	if h.errEach != nil {
		h.errEach(errors.New(msg))
		return
	}
	h.t.Helper()
	h.t.Fatal(msg)
}

// checkInvariants checks what must hold between any two inputs.
func (h *harness) checkInvariants() {
	m := h.m
	if h.draining != m.connected && !h.exited {
		h.violate("draining %t while connected %t", h.draining, m.connected)
	}
	if !h.renewAt.IsZero() && !m.connected && !h.exited {
		h.violate("renewal timer armed for %s while not connected", h.renewAt.Sub(t0))
	}
	if h.exited || h.live || m.connected || h.resetting {
		return
	}
	// Waiting: the timer must be armed for the deadline, or nothing would ever wake the machine.
	if h.timerAt.IsZero() || !h.timerAt.After(h.now) {
		h.violate("stuck: no stage running, not connected, no reset, and no timer armed (timer %v)", h.timerAt)
	}
}

// elapse moves the clock by d, firing the timer when it is due.
func (h *harness) elapse(d time.Duration) {
	end := h.now.Add(d)
	for !h.timerAt.IsZero() && !h.timerAt.After(end) {
		h.now = h.timerAt
		h.feed(input{kind: inTimer})
	}
	h.now = end
}

// untilRun moves the clock to the next stage start (firing timers) and returns its time.
func (h *harness) untilRun() time.Time {
	h.t.Helper()
	for i := 0; !h.live; i++ {
		if h.timerAt.IsZero() || i > 1000 {
			h.t.Fatalf("no stage will run: timer %v", h.timerAt)
		}
		h.now = h.timerAt
		h.feed(input{kind: inTimer})
	}
	return h.now
}

func (h *harness) done(err error) []effect {
	h.t.Helper()
	if !h.live {
		h.t.Fatal("done: no stage running")
	}
	return h.feed(input{kind: inStageDone, stage: h.liveStage, err: err})
}

// connect runs the stages to connected, each succeeding at once.
func (h *harness) connect() {
	h.t.Helper()
	for !h.m.connected {
		h.untilRun()
		h.done(nil)
	}
}

// failAt brings the session to stage st (stages before it succeed) and fails it with err.
func (h *harness) failAt(st stage, err error) effect {
	h.t.Helper()
	for {
		h.untilRun()
		if h.liveStage == st {
			h.done(err)
			break
		}
		h.done(nil)
	}
	if n := len(h.retries); n > 0 && h.retries[n-1].stage == st {
		return h.retries[n-1]
	}
	h.t.Fatalf("no retry after stage %s failed with %v; effects %v", st, err, h.last)
	return effect{}
}

func has(effs []effect, k effectKind) bool {
	for _, e := range effs {
		if e.kind == k {
			return true
		}
	}
	return false
}

// inBackoff checks that delay d is the nth (0-based) of backoff.Default with its half jitter.
func inBackoff(t *testing.T, n int, d time.Duration) {
	t.Helper()
	hi := time.Second << n
	if n >= 7 || hi > 2*time.Minute {
		hi = 2 * time.Minute
	}
	if d < hi/2 || d > hi {
		t.Fatalf("delay %d is %s, want %s–%s", n, d, hi/2, hi)
	}
}

var errRefused = &qmt.ResultError{Op: qmt.OpConnect, Client: 0, Result: 1, Code: 4}

func TestReadyAtStartWhateverTheModuleDoes(t *testing.T) {
	h := newHarness(t, testConfig(1))
	if len(h.all) == 0 || h.all[0] != effReady {
		t.Fatalf("first effects %v, want effReady first", h.all)
	}
	if !h.live || h.liveStage != stagePort {
		t.Fatal("the port stage does not start at once")
	}
}

// TestRefusedConnectThenQMTSTATWaitsOutTheBackoff: the broker refuses the CONNECT and closes the
// link, so +QMTSTAT follows +QMTCONN's refusal, in either order; no attempt comes before the
// deadline, and the deadlines grow.
func TestRefusedConnectThenQMTSTATWaitsOutTheBackoff(t *testing.T) {
	for _, statFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("QMTSTAT first %t", statFirst), func(t *testing.T) {
			h := newHarness(t, testConfig(2))
			var last time.Time
			for n := 0; n < 9; n++ {
				for h.untilRun(); h.liveStage != stageMQTT; h.untilRun() {
					h.done(nil)
				}
				if n > 0 {
					r := h.retries[n-1]
					if gap := h.now.Sub(last); gap < r.delay {
						t.Fatalf("attempt %d came %s after the last, retry_in said %s", n+1, gap, r.delay)
					}
				}
				last = h.now
				if statFirst {
					h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1"})
					h.done(errRefused)
				} else {
					h.done(errRefused)
					h.elapse(10 * time.Millisecond)
					h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1"})
				}
				if len(h.retries) != n+1 {
					t.Fatalf("after %d refusals, %d retries logged: each attempt must count once", n+1, len(h.retries))
				}
				r := h.retries[n]
				inBackoff(t, n, r.delay)
				if r.attempt != n+1 || r.kindOf != kindMQTT {
					t.Fatalf("retry %d: attempt %d kind %s", n, r.attempt, r.kindOf)
				}
			}
		})
	}
}

func TestRDYWhileBackingOffKeepsTheDeadline(t *testing.T) {
	h := newHarness(t, testConfig(3))
	h.failAt(stageMQTT, errRefused)
	h.failAt(stageMQTT, errRefused)
	deadline := h.deadline
	h.elapse(100 * time.Millisecond)
	effs := h.feed(input{kind: inFallBack, stage: stageModule, why: "module rebooted (RDY)"})
	if has(effs, effRunStage) {
		t.Fatal("RDY started a stage during the back-off")
	}
	at := h.untilRun()
	if h.liveStage != stageModule {
		t.Fatalf("after RDY the session resumed at %s, want module", h.liveStage)
	}
	if !at.Equal(deadline) {
		t.Fatalf("resumed at %s, deadline was %s", at.Sub(t0), deadline.Sub(t0))
	}
}

func TestPersistentFailureAtEveryStageBacksOffGrowing(t *testing.T) {
	errs := map[stage]error{
		stagePort:     errors.New("open /dev/ttyUSB2: no such file or directory"),
		stageModule:   fmt.Errorf("identify: %w", at.ErrError),
		stageSIM:      fmt.Errorf("apn: %w", at.ErrError), // AT+QICSGP refused
		stageRegister: errors.New("AT+CEREG?: ERROR"),
		stagePDP:      errors.New("AT+QIACT=1: ERROR"),
		stageMQTT:     errRefused,
	}
	for st := stagePort; st <= stageMQTT; st++ {
		t.Run(st.String(), func(t *testing.T) {
			h := newHarness(t, testConfig(uint64(st)+10))
			var prev time.Duration
			for n := 0; n < 10; n++ {
				r := h.failAt(st, errs[st])
				if r.kindOf != kindOf(st) {
					t.Fatalf("failure at %s counted as %s", st, r.kindOf)
				}
				inBackoff(t, n, r.delay)
				if n <= 7 && r.delay < prev { // past the cap the jitter alone varies it
					t.Fatalf("delay %d shrank: %s after %s", n, r.delay, prev)
				}
				prev = r.delay
			}
			if h.runs[len(h.runs)-1].st != st {
				t.Fatalf("retried from %s, want %s", h.runs[len(h.runs)-1].st, st)
			}
		})
	}
}

// TestSessionsDroppedAtOnceBackOff: twin gateways with one client id kick each other right after
// CONNACK; each drop counts as a failure until a session stays up for stableAfter.
func TestSessionsDroppedAtOnceBackOff(t *testing.T) {
	h := newHarness(t, testConfig(4))
	h.connect()
	var prev time.Duration
	for n := 0; n < 8; n++ {
		h.elapse(time.Second)
		h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1: connection closed by the broker"})
		if !has(h.last, effLost) || !has(h.last, effStopDrain) {
			t.Fatalf("drop %d: effects %v", n, h.last)
		}
		r := h.retries[len(h.retries)-1]
		inBackoff(t, n, r.delay)
		if n <= 7 && r.delay < prev {
			t.Fatalf("delay shrank from %s to %s", prev, r.delay)
		}
		prev = r.delay
		before := h.now
		h.untilRun()
		if h.now.Sub(before) < r.delay {
			t.Fatal("reconnected before the deadline")
		}
		h.connect()
	}
	// A session that lasts resets the back-off. The broker closing it is retried after one delay
	// from the reconnect window (full jitter, 0–5 s), and the next failure from twice that window.
	h.elapse(61 * time.Second)
	h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1"})
	r := h.retries[len(h.retries)-1]
	if !r.spread || r.attempt != 1 || r.kindOf != kindMQTT || r.delay > backoff.Reconnect.Initial || h.live {
		t.Fatalf("a lasting session's loss: retry %+v, live %t; want one spread delay within %s", r, h.live, backoff.Reconnect.Initial)
	}
	r = h.failAt(stageMQTT, errRefused)
	if r.attempt != 2 || r.delay > 2*backoff.Reconnect.Initial {
		t.Fatalf("the failure after a spread reconnect: attempt %d, delay %s; want attempt 2 within %s", r.attempt, r.delay, 2*backoff.Reconnect.Initial)
	}
	// A session that lasts again ends the spreading: a later failure is on the half-jitter back-off.
	h.connect()
	h.elapse(61 * time.Second)
	h.feed(input{kind: inPortLost, err: at.ErrPortGone})
	r = h.failAt(stageMQTT, errRefused)
	inBackoff(t, 0, r.delay)
}

func TestThreeFailedHealthChecksResetTheModule(t *testing.T) {
	h := newHarness(t, testConfig(5))
	h.connect()
	for i := 0; i < 3; i++ {
		h.elapse(15 * time.Second)
		if !has(h.feed(input{kind: inHealthTick}), effHealth) {
			t.Fatalf("health tick %d sent no check", i)
		}
		h.elapse(3 * time.Second)
		effs := h.feed(input{kind: inHealthDone, err: fmt.Errorf("AT: %w", at.ErrTimeout)})
		if got := has(effs, effReset); got != (i == 2) {
			t.Fatalf("failure %d: reset %t", i+1, got)
		}
	}
	if h.m.connected || h.draining {
		t.Fatal("still connected while resetting")
	}
	if has(h.feed(input{kind: inHealthTick}), effHealth) {
		t.Fatal("health check during the reset")
	}
	h.elapse(15 * time.Second)
	effs := h.feed(input{kind: inResetDone})
	if !has(effs, effClosePort) || !has(effs, effRetry) {
		t.Fatalf("reset done: effects %v", effs)
	}
	h.untilRun()
	if h.liveStage != stagePort {
		t.Fatalf("after the reset the session starts at %s, want port", h.liveStage)
	}
}

func TestHealthChecksContinueWhileBackingOff(t *testing.T) {
	h := newHarness(t, testConfig(6))
	for i := 0; i < 4; i++ {
		h.failAt(stageMQTT, errRefused)
	}
	checks := 0
	for h.now.Add(time.Second).Before(h.deadline) {
		h.elapse(time.Second)
		if has(h.feed(input{kind: inHealthTick}), effHealth) {
			checks++
			h.feed(input{kind: inHealthDone})
		}
	}
	if checks == 0 {
		t.Fatal("no health checks while backing off")
	}
}

func TestSIMNotReadyIsPolledThenBackedOff(t *testing.T) {
	h := newHarness(t, testConfig(7))
	notReady := &notYetError{state: "SIM busy", poll: time.Second}
	var first time.Time
	polls := 0
	for {
		h.untilRun()
		if h.liveStage != stageSIM {
			h.done(nil)
			continue
		}
		if first.IsZero() {
			first = h.now
		}
		h.done(notReady)
		if has(h.last, effRetry) {
			break
		}
		polls++
	}
	if polls < 29 || polls > 31 {
		t.Fatalf("%d polls in the 30 s SIM limit, want about 30", polls)
	}
	if got := h.retries[len(h.retries)-1]; got.kindOf != kindModule {
		t.Fatalf("SIM timeout counted as %s", got.kindOf)
	}
	polled, retried := false, false
	for _, st := range h.status {
		polled = polled || st == "waiting for the SIM: SIM busy"
		retried = retried || strings.HasPrefix(st, "module sim failed: waiting for the SIM after 30s") && strings.Contains(st, "; retry in ")
	}
	if !polled || !retried {
		t.Fatalf("STATUS= did not say it waited for the SIM, then when it retries: %q", h.status)
	}
}

func TestPortLossAfterALastingSessionReopensAtOnce(t *testing.T) {
	h := newHarness(t, testConfig(8))
	h.connect()
	h.elapse(2 * time.Minute)
	effs := h.feed(input{kind: inPortLost, err: at.ErrPortGone})
	if !has(effs, effClosePort) || !h.live || h.liveStage != stagePort {
		t.Fatalf("effects %v", effs)
	}
	h.done(errors.New("no such device"))
	r := h.retries[len(h.retries)-1]
	inBackoff(t, 0, r.delay)
	if r.kindOf != kindPort {
		t.Fatalf("kind %s", r.kindOf)
	}
}

func TestStopWhileConnectedDisconnects(t *testing.T) {
	h := newHarness(t, testConfig(9))
	h.connect()
	effs := h.feed(input{kind: inStop})
	want := []effectKind{effStopDrain, effShutdown, effExit}
	if len(effs) != len(want) {
		t.Fatalf("effects %v, want kinds %v", effs, want)
	}
	for i, e := range effs {
		if e.kind != want[i] {
			t.Fatalf("effect %d is %d, want %d", i, e.kind, want[i])
		}
	}
}

func TestPermanentErrorExits(t *testing.T) {
	h := newHarness(t, testConfig(10))
	for h.untilRun(); h.liveStage != stageMQTT; h.untilRun() {
		h.done(nil)
	}
	effs := h.done(&PermanentError{Err: errors.New("credentials: no key")})
	if !has(effs, effExit) || effs[len(effs)-1].err == nil {
		t.Fatalf("effects %v", effs)
	}
}

func TestPDPFailureDuringMQTTGoesBackToRegistration(t *testing.T) {
	h := newHarness(t, testConfig(11))
	h.failAt(stageMQTT, &qmt.ResultError{Op: qmt.OpOpen, Result: 3})
	h.untilRun()
	if h.liveStage != stageRegister {
		t.Fatalf("resumed at %s", h.liveStage)
	}
}

func TestQuietFirstBringUpSendsNoHealthCheck(t *testing.T) {
	cfg := testConfig(12)
	cfg.quiet = 2500 * time.Millisecond
	h := newHarness(t, cfg)
	h.done(nil) // port open
	if h.live {
		t.Fatal("module stage started inside the quiet period")
	}
	h.elapse(time.Second)
	if has(h.feed(input{kind: inHealthTick}), effHealth) {
		t.Fatal("health check inside the quiet period")
	}
	if at := h.untilRun(); at.Sub(t0) != cfg.quiet || h.liveStage != stageModule {
		t.Fatalf("module stage at %s", at.Sub(t0))
	}
}

// FuzzMachine feeds random input sequences and checks the invariants after every step.
func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x11\x21\x31\x41\x51\x61\x71\x81\x91\xa1\xb1\xc1\xd1"))
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzMachine(t, data)
	})
}

// TestMachineRandomSequences runs the fuzz body over many seeded random sequences, so the
// invariants are checked on every go test run, not only when fuzzing.
func TestMachineRandomSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 7))
	for i := 0; i < 2000; i++ {
		data := make([]byte, 20+r.IntN(400))
		for j := range data {
			data[j] = byte(r.UintN(256))
		}
		fuzzMachine(t, data)
		if t.Failed() {
			t.Fatalf("sequence %d: %x", i, data)
		}
	}
}

var fuzzErrs = []error{
	nil, nil, nil,
	errors.New("ERROR"),
	errRefused,
	&notYetError{state: "searching", poll: 2 * time.Second},
	fmt.Errorf("AT: %w", at.ErrPortGone),
	fmt.Errorf("sync: %w", at.ErrUnresponsive),
	&qmt.ResultError{Op: qmt.OpOpen, Result: 3},
}

func fuzzMachine(t *testing.T, data []byte) {
	cfg := testConfig(uint64(len(data)))
	if len(data) > 0 && data[0]&1 == 1 {
		cfg.quiet = 2500 * time.Millisecond
	}
	var failure error
	h := &harness{t: t, m: newMachine(cfg), now: t0, errEach: func(e error) {
		if failure == nil {
			failure = e
		}
	}}
	h.feed(input{kind: inStart})
	for i := 0; i+1 < len(data) && failure == nil && !h.exited; i += 2 {
		op, arg := data[i]%13, data[i+1]
		h.now = h.now.Add(time.Duration(arg&0x0f) * 150 * time.Millisecond)
		if !h.timerAt.IsZero() && !h.timerAt.After(h.now) {
			h.now = h.timerAt
			h.feed(input{kind: inTimer})
			continue
		}
		healthBefore := h.health
		wasBackingOff := !h.live && !h.m.connected && !h.resetting && h.portOpen && h.now.After(h.m.quietUntil)
		switch op {
		case 0, 1, 2, 3:
			if h.live {
				in := input{kind: inStageDone, stage: h.liveStage, err: fuzzErrs[int(arg>>4)%len(fuzzErrs)]}
				if arg&0x40 != 0 {
					in.validFor, in.signedAt = time.Duration(arg&0x0f)*time.Second, h.now
				}
				h.feed(in)
			}
		case 4:
			h.feed(input{kind: inFallBack, stage: stageModule + stage(arg>>4)%5, why: "urc"})
		case 5:
			if h.portOpen {
				h.feed(input{kind: inPortLost, err: at.ErrPortGone})
			}
		case 6:
			effs := h.feed(input{kind: inHealthTick})
			if wasBackingOff && !healthBefore && !has(effs, effHealth) {
				failure = fmt.Errorf("at %s: no health check while backing off with a port open", h.now.Sub(t0))
			}
		case 7:
			if h.health {
				var err error
				if arg&0x30 != 0 {
					err = at.ErrTimeout
				}
				h.feed(input{kind: inHealthDone, err: err})
			}
		case 8:
			if h.resetting {
				h.feed(input{kind: inResetDone})
			}
		case 9:
			if !h.timerAt.IsZero() {
				h.now = h.timerAt
				h.feed(input{kind: inTimer})
			}
		case 10:
			if arg == 0xff {
				h.feed(input{kind: inStop})
			}
		case 11:
			if !h.renewAt.IsZero() {
				if h.renewAt.After(h.now) {
					h.now = h.renewAt
				}
				renewing := h.m.connected
				effs := h.feed(input{kind: inRenewDue})
				if renewing && (!has(effs, effRenew) || !has(effs, effRunStage) || h.liveStage != stageMQTT) {
					failure = fmt.Errorf("at %s: the renewal timer fired on a connected session, effects %v", h.now.Sub(t0), effs)
				}
			} else if arg&1 == 1 {
				h.feed(input{kind: inRenewDue}) // a stale timer: nothing may happen
				if len(h.last) != 0 {
					failure = fmt.Errorf("at %s: a renewal timer with none armed did %v", h.now.Sub(t0), h.last)
				}
			}
		case 12:
			h.feed(input{kind: inReconnect, why: "configuration reloaded"})
		}
	}
	if failure != nil {
		t.Fatal(failure)
	}
}

// fleetAfterBrokerRestart runs n machines, each with its own random source, through a session
// that lasted and a broker restart that closes all of them at the same instant; the broker then
// refuses every CONNECT for refuseFor. It returns, per attempt (1-based, index 0 unused), the
// delays the machines drew, and every CONNECT's time after the close.
func fleetAfterBrokerRestart(t *testing.T, n int, refuseFor time.Duration) (delays [][]time.Duration, connects []time.Duration) {
	t.Helper()
	delays = make([][]time.Duration, 8)
	for i := 0; i < n; i++ {
		h := newHarness(t, testConfig(uint64(1000+i)))
		h.connect()
		h.elapse(2 * time.Minute)
		closed := h.now
		before := len(h.retries)
		h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1: connection closed by the broker"})
		if len(h.retries) == before {
			t.Fatalf("gateway %d: no reconnect delay after the broker closed its lasting session (live %t)", i, h.live)
		}
		for {
			r := h.retries[len(h.retries)-1]
			if r.attempt < len(delays) {
				delays[r.attempt] = append(delays[r.attempt], r.delay)
			}
			for h.untilRun(); h.liveStage != stageMQTT; h.untilRun() {
				h.done(nil)
			}
			connects = append(connects, h.now.Sub(closed))
			if h.now.Sub(closed) >= refuseFor {
				h.done(nil)
				break
			}
			h.done(errRefused)
		}
		if !h.m.connected {
			t.Fatalf("gateway %d is not connected after the broker came back", i)
		}
	}
	return delays, connects
}

// uniformKS is the Kolmogorov–Smirnov distance between the delays and the uniform distribution
// on [0, w].
func uniformKS(delays []time.Duration, w time.Duration) float64 {
	s := append([]time.Duration(nil), delays...)
	slices.Sort(s)
	var d float64
	for i, x := range s {
		f := float64(x) / float64(w)
		d = max(d, math.Abs(f-float64(i)/float64(len(s))), math.Abs(f-float64(i+1)/float64(len(s))))
	}
	return d
}

// busiestSecond is the largest number of CONNECTs in any one second (whole seconds after the close).
func busiestSecond(connects []time.Duration) (peak, at int) {
	per := map[int]int{}
	for _, c := range connects {
		s := int(c / time.Second)
		if per[s]++; per[s] > peak {
			peak, at = per[s], s
		}
	}
	return peak, at
}

// TestBrokerRestartSpreadsTheFleetsReconnects: 1,000 gateways whose sessions had lasted are
// closed by the broker at the same instant. The first reconnect of each is drawn uniformly from
// [0, 5 s] (full jitter), and each refused attempt after it from a window twice as long: the
// delays of attempt k are uniform on [0, 5 s·2^(k-1)] (Kolmogorov–Smirnov distance under the 1 %
// critical value 1.63/√n), and no one second gets much more than its share of the CONNECTs.
// Before: every gateway reconnected at the instant of the close.
func TestBrokerRestartSpreadsTheFleetsReconnects(t *testing.T) {
	const n = 1000
	delays, connects := fleetAfterBrokerRestart(t, n, 20*time.Second)
	w := backoff.Reconnect.Initial
	for k := 1; k <= 3; k++ {
		ds := delays[k]
		if k == 1 && len(ds) != n {
			t.Fatalf("%d first reconnects for %d gateways", len(ds), n)
		}
		if len(ds) < n/4 {
			break // most are back before the attempt: too few for the statistic
		}
		for _, d := range ds {
			if d < 0 || d > w {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", k, d, w)
			}
		}
		crit := 1.63 / math.Sqrt(float64(len(ds)))
		if ks := uniformKS(ds, w); ks > crit {
			t.Errorf("attempt %d: the %d delays are not uniform on [0, %s]: KS distance %.3f > %.3f", k, len(ds), w, ks, crit)
		}
		t.Logf("attempt %d: %d delays, KS distance from uniform on [0, %s] %.3f (critical %.3f)", k, len(ds), w, uniformKS(ds, w), crit)
		w *= 2
	}
	// The first window spreads n CONNECTs over 5 s: n/5 a second; allow 25 % for chance.
	if peak, at := busiestSecond(delays[1]); peak > n/5*5/4 {
		t.Errorf("%d of %d first reconnects in second %d after the close, want at most %d", peak, n, at, n/5*5/4)
	}
	peak, at := busiestSecond(connects)
	t.Logf("%d CONNECTs while the broker refused for 20 s, then every gateway back; busiest second %d with %d", len(connects), at, peak)
	// First attempts (n/5 a second) and the second attempts of the first to be refused overlap
	// in the first seconds: at most a third of the fleet in any one second (before: all of it in
	// the first second, and again in the next).
	if peak > n/3 {
		t.Errorf("%d CONNECTs in second %d after the close: a reconnect storm", peak, at)
	}
}

// TestALoneGatewayReconnectsQuickly: a broker-side close of a lasting session is retried within
// the first window, 5 s, however the jitter falls; and a loss that is the device's own (the
// module restarted) is still retried at once.
func TestALoneGatewayReconnectsQuickly(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		h := newHarness(t, testConfig(seed))
		h.connect()
		h.elapse(2 * time.Minute)
		closed := h.now
		h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1"})
		if at := h.untilRun(); at.Sub(closed) > backoff.Reconnect.Initial {
			t.Fatalf("seed %d: reconnected %s after the close", seed, at.Sub(closed))
		}
	}
	h := newHarness(t, testConfig(1))
	h.connect()
	h.elapse(2 * time.Minute)
	h.feed(input{kind: inFallBack, stage: stageModule, why: "module rebooted (RDY)"})
	if !h.live || h.liveStage != stageModule {
		t.Fatalf("a lasting session lost to a module restart was not retried at once: live %t %s", h.live, h.liveStage)
	}
}

// A reload that changes the session's settings reconnects a connected session at once: a clean
// DISCONNECT (not a loss: no will, no effLost), the drain stopped first, the MQTT stage run again
// without waiting, and no back-off grown, even for a session up less than stableAfter.
func TestReconnectIsCleanAndImmediate(t *testing.T) {
	h := newHarness(t, testConfig(9))
	h.connect()
	h.elapse(time.Second) // up far less than stableAfter: a loss now would count as a failure
	retries := len(h.retries)
	effs := h.feed(input{kind: inReconnect, why: "configuration reloaded: broker"})
	var kinds []effectKind
	for _, e := range effs {
		kinds = append(kinds, e.kind)
	}
	stop, shut, run := -1, -1, -1
	for i, e := range effs {
		switch e.kind {
		case effStopDrain:
			stop = i
		case effShutdown:
			shut = i
			if e.text != "configuration reloaded: broker" {
				t.Errorf("effShutdown says %q", e.text)
			}
		case effRunStage:
			run = i
			if e.stage != stageMQTT {
				t.Errorf("ran stage %s, want mqtt", e.stage)
			}
		case effLost, effRetry, effExit:
			t.Errorf("a reconnect gave %d (effects %v)", e.kind, kinds)
		}
	}
	if stop < 0 || shut < stop || run < shut {
		t.Fatalf("want drain stopped, then a clean disconnect, then the MQTT stage at once; effects %v", kinds)
	}
	if h.m.connected || len(h.retries) != retries {
		t.Fatalf("connected %t, retries %d -> %d", h.m.connected, retries, len(h.retries))
	}
	h.done(nil)
	if !h.m.connected {
		t.Fatal("not connected after the MQTT stage succeeded")
	}
}

// A reload while the MQTT stage runs cancels it and runs it again at once: not a failure.
func TestReconnectDuringTheMQTTStage(t *testing.T) {
	h := newHarness(t, testConfig(10))
	for {
		h.untilRun()
		if h.liveStage == stageMQTT {
			break
		}
		h.done(nil)
	}
	retries := len(h.retries)
	if effs := h.feed(input{kind: inReconnect, why: "configuration reloaded"}); !has(effs, effCancelStage) {
		t.Fatalf("the MQTT stage was not cancelled: %v", effs)
	}
	effs := h.feed(input{kind: inStageDone, stage: stageMQTT, err: context.Canceled})
	if !has(effs, effRunStage) || !h.live || h.liveStage != stageMQTT || len(h.retries) != retries {
		t.Fatalf("after the cancelled stage: live %t %s, retries %d -> %d, effects %v", h.live, h.liveStage, retries, len(h.retries), effs)
	}
}

// TestLossReasonIsCarried: the reason a connected session was lost reaches effLost as the
// typed value the event gave (a URC's), or the machine's own (the port, an unresponsive
// module), whatever the words say.
func TestLossReasonIsCarried(t *testing.T) {
	lost := func(h *harness) effect {
		t.Helper()
		for _, e := range h.last {
			if e.kind == effLost {
				return e
			}
		}
		t.Fatalf("no effLost in %v", h.last)
		return effect{}
	}
	h := newHarness(t, testConfig(11))
	h.connect()
	h.feed(input{kind: inFallBack, stage: stageMQTT, why: "port words in a PDP sentence", loss: lossPing})
	if e := lost(h); e.loss != lossPing || e.loss.String() != LossPing || e.text != "port words in a PDP sentence" {
		t.Errorf("fall-back: loss %v (%q), want %s", e.loss, e.text, LossPing)
	}
	h.connect()
	h.feed(input{kind: inPortLost, err: at.ErrPortGone})
	if e := lost(h); e.loss != lossPort {
		t.Errorf("port lost: loss %v, want %s", e.loss, LossPort)
	}
	h.connect()
	for i := 0; i < maxHealthFailures; i++ {
		h.elapse(15 * time.Second)
		h.feed(input{kind: inHealthTick})
		h.feed(input{kind: inHealthDone, err: fmt.Errorf("AT: %w", at.ErrTimeout)})
	}
	if e := lost(h); e.loss != lossUnresponsive {
		t.Errorf("unresponsive: loss %v, want %s", e.loss, LossUnresponsive)
	}
	if got := loss(99).String(); got != LossOther {
		t.Errorf("an unknown loss is %q, want %q", got, LossOther)
	}
}
