package sim

import "testing"

// TestRefusalVariants: a refused CONNECT as the BG95-M3 prints it (the CONNACK code, then
// +QMTSTAT: <idx>,4) and as the M95 does (only +QMTSTAT: <idx>,1); either way the index is
// closed after it (QMTCLOSE answers ERROR, QMTOPEN works).
func TestRefusalVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		urcs string
	}{
		{Config{RefusalStat: 4}, "\r\n+QMTCONN: 0,0,2\r\n\r\n+QMTSTAT: 0,4\r\n"},
		{Config{RefusalStatOnly: true}, "\r\n+QMTSTAT: 0,1\r\n"},
	} {
		r := newRig(t, tc.cfg)
		h := r.h
		h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		if err := r.m.RefuseConnect(2); err != nil {
			t.Fatal(err)
		}
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0,0\r\n")
		h.cmd(`AT+QMTCONN=0,"dev"`, "\r\nOK\r\n")
		h.expect(tc.urcs)
		h.cmd("AT+QMTCLOSE=0", "\r\nERROR\r\n")
		h.cmd(`AT+QMTCFG="version",0,4`, "\r\nOK\r\n")
	}
}

// TestTwoFieldConnAckAndLoseLink: the older-firmware success +QMTCONN: <idx>,0, and a link lost
// with +QMTSTAT code 8.
func TestTwoFieldConnAckAndLoseLink(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{ConnAckTwoFields: true})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"dev"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0\r\n")
	if err := r.m.LoseLink(0); err == nil {
		t.Error("LoseLink(0) accepted")
	}
	if err := r.m.LoseLink(8); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QMTSTAT: 0,8\r\n")
	if err := r.m.LoseLink(8); err != ErrNoLink {
		t.Errorf("LoseLink with no link = %v, want ErrNoLink", err)
	}
}

// TestQMTCFGOnAnOpenIndex: AT+QMTCFG (set) answers ERROR on an index that is opening, open or
// connecting; a query still answers; a connected index takes it unless StrictQMTCFG.
func TestQMTCFGOnAnOpenIndex(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		r := newRig(t, Config{StrictQMTCFG: strict})
		h := r.h
		h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		if err := r.m.Occupy(0); err != nil {
			t.Fatal(err)
		}
		h.cmd(`AT+QMTCFG="version",0,4`, "\r\nERROR\r\n")
		h.cmd(`AT+QMTCFG="version",0`, "\r\n+QMTCFG: \"version\",4\r\n\r\nOK\r\n")
		h.cmd(`AT+QMTCFG="version",1,4`, "\r\nOK\r\n") // another index is free
		h.cmd("AT+QMTCLOSE=0", "\r\nOK\r\n")
		h.expect("\r\n+QMTCLOSE: 0,0\r\n")
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0,0\r\n")
		h.cmd(`AT+QMTCFG="keepalive",0,60`, "\r\nERROR\r\n")
		h.cmd(`AT+QMTCONN=0,"dev"`, "\r\nOK\r\n")
		h.expect("\r\n+QMTCONN: 0,0,0\r\n")
		want := "\r\nOK\r\n"
		if strict {
			want = "\r\nERROR\r\n"
		}
		h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, want)
	}
}

// TestFirstATErrorAndDualStack: the first command after power-on answers ERROR, the next OK;
// AT+QIACT? lists an IPv4 and an IPv6 address under the type the variant names.
func TestFirstATErrorAndDualStack(t *testing.T) {
	t.Parallel()
	for _, typ := range []int{1, 3} {
		r := newRig(t, Config{FirstATError: true, DualStack: typ})
		h := r.h
		h.cmd("AT", "AT\r\r\nERROR\r\n")
		h.cmd("AT", "AT\r\r\nOK\r\n")
		h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		h.cmd("AT+QIACT?", "\r\n+QIACT: 1,1,"+itoa(typ)+",\"10.2.198.114\",\"240E:404:8A1:D3C6::1\"\r\n\r\nOK\r\n")
		h.cmd("AT+QIACT=1", "\r\nERROR\r\n") // already active
	}
	if _, err := New(Config{DualStack: 2}); err == nil {
		t.Error("DualStack 2 accepted")
	}
}

// TestMaxQoS: a broker WithMaxQoS(1) grants 1 for a subscription asked at 2.
func TestMaxQoS(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{}, WithMaxQoS(1))
	r.connect("dev")
	r.h.cmd(`AT+QMTSUB=0,1,"a",2,"b",0`, "\r\nOK\r\n")
	r.h.expect("\r\n+QMTSUB: 0,1,0,1,0\r\n")
}

// TestBearerRace: the query sees context 1 down, the bearer comes back right after, and
// AT+QIACT=1 then finds it active.
func TestBearerRace(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	if err := r.m.BearerRace(); err != nil {
		t.Fatal(err)
	}
	h.cmd("AT+QIACT?", "\r\n+QIACT: 1,1,1,\"10.2.198.114\"\r\n\r\nOK\r\n") // active: the race waits
	if err := r.m.DeactivatePDP(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QIURC: \"pdpdeact\",1\r\n")
	h.cmd("AT+QIACT?", "\r\nOK\r\n")
	h.cmd("AT+QIACT=1", "\r\nERROR\r\n")
	h.cmd("AT+QIACT?", "\r\n+QIACT: 1,1,1,\"10.2.198.114\"\r\n\r\nOK\r\n")
}
