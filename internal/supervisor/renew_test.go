package supervisor

import (
	"testing"
	"time"
)

// connectExpiring runs the stages to connected; the MQTT stage reports a password signed now
// that lives validFor.
func (h *harness) connectExpiring(validFor time.Duration) {
	h.t.Helper()
	for !h.m.connected {
		h.untilRun()
		if h.liveStage == stageMQTT {
			h.feed(input{kind: inStageDone, stage: stageMQTT, validFor: validFor, signedAt: h.now})
			continue
		}
		h.done(nil)
	}
}

func count(effs []effectKind, k effectKind) int {
	n := 0
	for _, e := range effs {
		if e == k {
			n++
		}
	}
	return n
}

// TestRenewalIsPlanned: a session whose password lives an hour is renewed at 90 % of it (54
// minutes after signing): the drain stops, a clean disconnect, the MQTT stage again at once —
// no retry, no loss, no back-off — and once it is up, effRenewed and the next renewal armed.
func TestRenewalIsPlanned(t *testing.T) {
	h := newHarness(t, testConfig(11))
	h.failAt(stageMQTT, errRefused) // a back-off history that a renewal must neither grow nor reset
	h.connectExpiring(time.Hour)
	signed := h.now
	if want := signed.Add(54 * time.Minute); !h.renewAt.Equal(want) {
		t.Fatalf("renewal armed for %s, want %s (90%% of 1h)", h.renewAt.Sub(signed), want.Sub(signed))
	}
	attempts := h.m.bo[kindMQTT].Attempts()
	retries := len(h.retries)
	h.now = h.renewAt.Add(-time.Second)
	if effs := h.feed(input{kind: inRenewDue}); len(effs) != 0 || !h.m.connected {
		t.Fatalf("a renewal timer that fired early did %v", effs)
	}
	h.now = signed.Add(54 * time.Minute)
	effs := h.feed(input{kind: inRenewDue})
	var kinds []effectKind
	for _, e := range effs {
		kinds = append(kinds, e.kind)
		if e.kind == effRenew && !e.at.Equal(signed.Add(time.Hour)) {
			t.Errorf("effRenew says the password expires at %s, want %s", e.at.Sub(signed), time.Hour)
		}
	}
	if count(kinds, effStopDrain) != 1 || count(kinds, effRenew) != 1 || count(kinds, effRunStage) != 1 || h.liveStage != stageMQTT {
		t.Fatalf("renewal effects %v, want stop drain, renew, run the MQTT stage", kinds)
	}
	if i, j := index(kinds, effRenew), index(kinds, effRunStage); i > j {
		t.Fatalf("the MQTT stage started before the disconnect: %v", kinds)
	}
	h.elapse(2 * time.Second)
	done := h.feed(input{kind: inStageDone, stage: stageMQTT, validFor: time.Hour, signedAt: h.now.Add(-time.Second)})
	if !has(done, effRenewed) || !has(done, effConnected) || !has(done, effStartDrain) {
		t.Fatalf("renewed session's effects %v", done)
	}
	for _, e := range done {
		if e.kind == effRenewed && e.dur != 2*time.Second {
			t.Errorf("renewal took %s, want 2s", e.dur)
		}
	}
	if len(h.retries) != retries || h.m.bo[kindMQTT].Attempts() != attempts {
		t.Fatalf("renewal changed the back-off: %d retries (was %d), %d attempts (was %d)", len(h.retries), retries, h.m.bo[kindMQTT].Attempts(), attempts)
	}
	if want := h.now.Add(-time.Second).Add(54 * time.Minute); !h.renewAt.Equal(want) {
		t.Fatalf("next renewal at %s, want 54m after the new signature", h.renewAt.Sub(t0))
	}
}

func index(ks []effectKind, k effectKind) int {
	for i, e := range ks {
		if e == k {
			return i
		}
	}
	return -1
}

// TestRenewalRefusedIsAFailure: when the freshly signed CONNECT is refused, that is a failure
// like any other (back-off), and the later success is not logged as a renewal.
func TestRenewalRefusedIsAFailure(t *testing.T) {
	h := newHarness(t, testConfig(12))
	h.connectExpiring(20 * time.Second)
	h.now = h.renewAt
	h.feed(input{kind: inRenewDue})
	effs := h.done(errRefused)
	if !has(effs, effRetry) || has(effs, effRenewed) {
		t.Fatalf("refused renewal: effects %v, want a retry and no renewed", effs)
	}
	h.untilRun()
	if h.liveStage != stageMQTT {
		t.Fatalf("after a refused renewal the session resumes at %s, want mqtt", h.liveStage)
	}
	if effs := h.feed(input{kind: inStageDone, stage: stageMQTT, validFor: 20 * time.Second, signedAt: h.now}); has(effs, effRenewed) || !has(effs, effConnected) {
		t.Fatalf("reconnect after a failed renewal: %v", effs)
	}
}

// TestRenewalTimerOfALostSession: a session lost before its renewal disarms the timer; a late
// renewal timer does nothing; a password that does not expire arms none.
func TestRenewalTimerOfALostSession(t *testing.T) {
	h := newHarness(t, testConfig(13))
	h.connectExpiring(time.Hour)
	h.elapse(2 * time.Minute)
	effs := h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1"})
	if !h.renewAt.IsZero() {
		t.Fatalf("renewal still armed after the session was lost: %v", effs)
	}
	h.now = t0.Add(time.Hour)
	if effs := h.feed(input{kind: inRenewDue}); has(effs, effRenew) {
		t.Fatalf("a stale renewal timer renewed: %v", effs)
	}
	h2 := newHarness(t, testConfig(14))
	h2.connect()
	if !h2.renewAt.IsZero() || count(h2.all, effArmRenew) != 0 {
		t.Fatal("a password without expiry armed a renewal")
	}
}

// TestRenewalOfAVeryShortPassword: a password that (wrong clock, odd configuration) lives
// under a second is renewed no sooner than a second after the connect, not in a loop.
func TestRenewalOfAVeryShortPassword(t *testing.T) {
	h := newHarness(t, testConfig(15))
	h.connectExpiring(300 * time.Millisecond)
	if got := h.renewAt.Sub(h.now); got != minRenewDelay {
		t.Fatalf("renewal %s after connect, want %s", got, minRenewDelay)
	}
}

// TestRenewedSessionCountsAsOne: a session kept up across renewals (20 s tokens) is one
// session for stableAfter (60 s): when it is lost after 70 s, the back-off was reset, so the
// next failure waits the first delay, not one grown by the failures before it.
func TestRenewedSessionCountsAsOne(t *testing.T) {
	h := newHarness(t, testConfig(16))
	for i := 0; i < 4; i++ {
		h.failAt(stageMQTT, errRefused)
	}
	h.connectExpiring(20 * time.Second)
	for i := 0; i < 4; i++ { // renewals at 18, 36, 54, 72 s
		h.now = h.renewAt
		h.feed(input{kind: inRenewDue})
		h.feed(input{kind: inStageDone, stage: stageMQTT, validFor: 20 * time.Second, signedAt: h.now})
	}
	if a := h.m.bo[kindMQTT].Attempts(); a != 4 {
		t.Fatalf("renewals changed the back-off's attempts to %d, want 4 until the session is left", a)
	}
	h.elapse(time.Second)
	// The broker closed a session that lasted: its reconnect is spread (issue 25), not a failure.
	effs := h.feed(input{kind: inFallBack, stage: stageMQTT, why: "+QMTSTAT 1"})
	for _, e := range effs {
		if e.kind == effRetry && (!e.spread || e.lost || e.attempt != 1) {
			t.Fatalf("a session up 73 s across renewals was lost and counted as a failure: %+v", e)
		}
	}
	if a := h.m.bo[kindMQTT].Attempts(); a != 0 {
		t.Fatalf("after a session of 73 s the back-off has %d attempts, want 0 (reset)", a)
	}
}
