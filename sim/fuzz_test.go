package sim

import (
	"context"
	"strings"
	"testing"
)

// FuzzEngineInput feeds arbitrary host bytes to the command interpreter: it must never panic,
// and with echo off whatever it answers ends a line.
func FuzzEngineInput(f *testing.F) {
	for _, s := range []string{
		"AT\r", "ATE0\rATI\r", "AT+CEREG=2\rAT+CEREG?\r", `AT+QMTCFG="will",0,1,1,0,"t","m"` + "\r",
		`AT+QMTCFG="willex",0,1,0,0,"w",3` + "\rabc", `AT+QMTOPEN=0,"h",1883` + "\r", "AT+QMTRECV=0,4\r",
		`AT+QMTCFG=?` + "\r", "AT+CFUN=1,1\rAT\r", "AT+QPOWD\rAT\r", "\x00\xff\r\n\x08\x7f", `AT+QICSGP=1,3,"a","b","c",3` + "\r",
		`AT+QMTCFG="ssl",0,1,"` + "\r", "AT+CMEE=2\rAT+QCCID\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := New(Config{Broker: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // links created by QMTOPEN end at once
		e := newEngine(m)
		e.ctx = ctx
		e.w = newWriter(m, nil) // queued only, never written
		e.powerOn()
		e.w.q.take()
		e.input(b)
		m.wg.Wait()
		var out strings.Builder
		for _, it := range e.w.q.take() {
			out.Write(it.b)
		}
		// With echo off and no data pending, the module only ever stops after a complete line
		// (the "> " prompt is the one exception, and it leaves data mode on).
		if s := out.String(); s != "" && !e.echo && e.data == nil && !strings.HasSuffix(s, "\r\n") {
			t.Fatalf("output %q does not end a line", s)
		}
	})
}

// FuzzSplitArgs checks the argument splitter's contract on arbitrary input.
func FuzzSplitArgs(f *testing.F) {
	for _, s := range []string{`0,"a,b",1`, `"x"`, ` 1 , "" ,2`, `"unterminated`, `a"b`, `,,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := splitArgs(s)
		if err != nil {
			return
		}
		for _, f := range fs {
			if strings.ContainsRune(f.text, '"') || !f.quoted && strings.ContainsRune(f.text, ',') {
				t.Fatalf("splitArgs(%q) gave field %+v", s, f)
			}
		}
		if q := strings.Count(s, `"`); q%2 != 0 {
			t.Fatalf("splitArgs(%q) accepted an odd number of quotes", s)
		}
	})
}
