package at

import (
	"slices"
	"testing"
)

// The router is tested alone here: tokens in, routing decisions and the
// framer's mode out, no port and no goroutines.

func lineTok(s string) token { return token{text: []byte(s)} }

func urcTok(s, prefix string) token {
	return token{text: []byte(s), spec: &urcSpec{prefix: prefix}}
}

func texts(ls []Line) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return out
}

func TestRouterIdleLinesAreURCs(t *testing.T) {
	r := &router{n: new(counters)}
	for _, tok := range []token{lineTok("OK"), urcTok("+QMTSTAT: 0,1", "+QMTSTAT:"), {prompt: true}} {
		l, urc, m := r.route(tok)
		if tok.prompt {
			if urc || m != (mode{}) {
				t.Errorf("unwanted prompt: urc %v, mode %+v", urc, m)
			}
			continue
		}
		if !urc || l.Text != string(tok.text) {
			t.Errorf("idle %q: urc %v, line %q", tok.text, urc, l.Text)
		}
	}
}

func TestRouterHoldsTheReplyWhileWriting(t *testing.T) {
	n := new(counters)
	r := &router{n: n}
	cl := newCall(Command{Line: "AT+CSQ"}, phWriting)
	r.begin(cl)
	steps := []struct {
		tok token
		urc bool
	}{
		{lineTok("AT+CSQ"), false},           // the echo: dropped
		{urcTok("+CREG: 1", "+CREG:"), true}, // a URC goes out at once
		{lineTok("+CSQ: 31,99"), false},      // held
		{lineTok("OK"), false},               // held: the reply is complete
		{lineTok("AT+CSQ"), true},            // after the final result: not this call's
		{urcTok("+CREG: 5", "+CREG:"), true},
	}
	for _, s := range steps {
		if _, urc, _ := r.route(s.tok); urc != s.urc {
			t.Errorf("%q: urc %v, want %v", s.tok.text, urc, s.urc)
		}
	}
	if cl.finished {
		t.Fatal("finished before it was armed")
	}
	r.arm(cl)
	if fin, _, err := r.progress(cl); !fin || err != nil {
		t.Fatalf("after arm: finished %v, err %v", fin, err)
	}
	if got := texts(cl.lines); !slices.Equal(got, []string{"+CSQ: 31,99"}) {
		t.Errorf("lines %q", got)
	}
	if n.echoes.Load() != 1 || r.cur != nil {
		t.Errorf("echoes %d, cur %v", n.echoes.Load(), r.cur)
	}
}

func TestRouterAnswersClaimsURCPrefixes(t *testing.T) {
	r := &router{n: new(counters)}
	cl := newCall(Command{Line: "AT+QMTCONN?", Answers: func(l Line) bool { return l.Text == "+QMTCONN: 0,3" }}, phWriting)
	r.begin(cl)
	r.arm(cl)
	if _, urc, _ := r.route(urcTok("+QMTCONN: 0,3", "+QMTCONN:")); urc {
		t.Error("claimed line went out as a URC")
	}
	if _, urc, _ := r.route(urcTok("+QMTCONN: 1,3", "+QMTCONN:")); !urc {
		t.Error("unclaimed line did not go out as a URC")
	}
	r.route(token{text: []byte("+CME ERROR: 10")})
	fin, _, err := r.progress(cl)
	if !fin || err == nil || !slices.Equal(texts(cl.lines), []string{"+QMTCONN: 0,3"}) {
		t.Errorf("finished %v, err %v, lines %q", fin, err, texts(cl.lines))
	}
}

// TestRouterDataCommandMode: the mode asks for the prompt while a data command waits for it,
// then for the payload echo once the command line's echo and the prompt came, until the result.
func TestRouterDataCommandMode(t *testing.T) {
	r := &router{n: new(counters)}
	cl := newCall(Command{Line: "AT+QMTPUB=0,0,0,0,\"t\"", Data: []byte("hi"), DataEnd: []byte{0x1A}}, phWriting)
	r.begin(cl)
	if !r.mode().prompt {
		t.Fatal("no prompt wanted for a data command being written")
	}
	if _, _, m := r.route(lineTok(cl.cmd.Line)); !m.prompt || m.echo != nil {
		t.Fatalf("after the echo: mode %+v", m)
	}
	r.arm(cl)
	_, urc, m := r.route(token{prompt: true})
	if urc || m.prompt || m.echo != &cl.cmd {
		t.Fatalf("after the prompt: urc %v, mode %+v", urc, m)
	}
	if fin, prompted, _ := r.progress(cl); fin || !prompted {
		t.Fatalf("finished %v, prompted %v", fin, prompted)
	}
	if _, _, m = r.route(urcTok("+QMTSTAT: 0,1", "+QMTSTAT:")); m.echo != &cl.cmd {
		t.Fatalf("a URC ended the echo: mode %+v", m)
	}
	if _, _, m = r.route(lineTok("OK")); m != (mode{}) {
		t.Errorf("after the result: mode %+v", m)
	}
}

// TestRouterNoEchoWithoutCommandEcho: with ATE0 (no command echo), no payload echo is expected.
func TestRouterNoEchoWithoutCommandEcho(t *testing.T) {
	r := &router{n: new(counters)}
	cl := newCall(Command{Line: "AT+QMTPUB=0", Data: []byte("hi")}, phWriting)
	r.begin(cl)
	r.arm(cl)
	if _, _, m := r.route(token{prompt: true}); m.echo != nil {
		t.Errorf("mode %+v", m)
	}
}

func TestRouterAbandonAndResync(t *testing.T) {
	n := new(counters)
	r := &router{n: n}
	cl := newCall(Command{Line: "AT+SLOW"}, phWriting)
	r.begin(cl)
	r.arm(cl)
	if fin, _ := r.abandon(cl); fin || !r.resyncNeeded() {
		t.Fatalf("abandon: finished %v, resync needed %v", fin, r.resyncNeeded())
	}
	if _, urc, _ := r.route(lineTok("OK")); urc || n.stale.Load() != 1 {
		t.Fatalf("late OK: urc %v, stale %d", urc, n.stale.Load())
	}
	at := newCall(Command{Line: "AT"}, phResync)
	r.begin(at)
	r.route(lineTok("ERROR")) // any final result: the module is alive
	if fin, _, err := r.progress(at); !fin || err == nil {
		t.Fatalf("resync answer: finished %v, err %v", fin, err)
	}
	r.setPhase(at, phDrain)
	r.route(lineTok("OK"))
	if n.stale.Load() != 2 {
		t.Errorf("stale %d after the drain", n.stale.Load())
	}
	r.resynced(at)
	if r.resyncNeeded() || r.cur != nil {
		t.Errorf("after resynced: needed %v, cur %v", r.resyncNeeded(), r.cur)
	}
	if _, urc, _ := r.route(lineTok("RING")); !urc {
		t.Error("idle line after the resync is no URC")
	}
}

// TestRouterAbandonFinished: a call whose result came just before its caller gave up keeps it.
func TestRouterAbandonFinished(t *testing.T) {
	r := &router{n: new(counters)}
	cl := newCall(Command{Line: "AT"}, phWriting)
	r.begin(cl)
	r.arm(cl)
	r.route(lineTok("OK"))
	if fin, _ := r.abandon(cl); !fin || r.resyncNeeded() {
		t.Errorf("finished %v, resync needed %v", fin, r.resyncNeeded())
	}
}
