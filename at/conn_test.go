package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wire examples from the reference (/work/shared/reference/ec600-at.md),
// byte for byte, echo on unless the name says otherwise.
const (
	openCmd  = `AT+QMTOPEN=0,"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com",1883`
	pubexCmd = `AT+QMTPUBEX=0,0,0,0,"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply",33`
	pubexMsg = `{"id":"123","code":200,"data":{}}`
	subCmd   = `AT+QMTSUB=0,1,"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",2`
	aliyun92 = `{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`
	aliTopic = "/sys/a1VPyJEJRjJ/test01/thing/service/property/set"
)

// answersPrefix claims lines that start with prefix and have n fields.
func answersPrefix(prefix string, fields int) func(Line) bool {
	return func(l Line) bool {
		rest, ok := strings.CutPrefix(l.Text, prefix)
		return ok && (fields == 0 || strings.Count(rest, ",")+1 == fields)
	}
}

type wireTest struct {
	name   string
	cmd    Command
	script []step
	lines  []string // information lines, rendered with fmtLine
	err    error    // errors.Is target; nil for OK
	cme    *CMEError
	urcs   []string // URCs rendered with fmtLine, endMark excluded
}

var wireTests = []wireTest{
	{
		name:   "AT echo ends in CR then OK",
		cmd:    Command{Line: "AT"},
		script: []step{{"AT\r", "AT\r\r\nOK\r\n"}},
	},
	{
		name:   "APP RDY during a command is a URC, not the command's answer",
		cmd:    Command{Line: "AT+CGSN"},
		script: []step{{"AT+CGSN\r", "\r\nAPP RDY\r\n\r\n866123456789011\r\n\r\nOK\r\n"}},
		lines:  []string{"866123456789011"},
		urcs:   []string{"APP RDY"},
	},
	{
		name:   "POWERED DOWN then a stale pdpdeact whose CR LF ends its line",
		cmd:    Command{Line: "AT+CFUN=1,1"},
		script: []step{{"AT+CFUN=1,1\r", "\r\nOK\r\n\r\nPOWERED DOWN\r\n+QIURC: \"pdpdeact\",1\r\n"}},
		urcs:   []string{"POWERED DOWN", `+QIURC: "pdpdeact",1`},
	},
	{
		name:   "ATE0 is still echoed",
		cmd:    Command{Line: "ATE0"},
		script: []step{{"ATE0\r", "ATE0\r\r\nOK\r\n"}},
	},
	{
		name:   "QMTOPEN OK then result URC",
		cmd:    Command{Line: openCmd},
		script: []step{{openCmd + "\r", openCmd + "\r\r\nOK\r\n"}, {"", "\r\n+QMTOPEN: 0,0\r\n"}},
		urcs:   []string{"+QMTOPEN: 0,0"},
	},
	{
		name:   "QMTOPEN query answer claimed by Answers",
		cmd:    Command{Line: "AT+QMTOPEN?", Answers: answersPrefix("+QMTOPEN: ", 3)},
		script: []step{{"AT+QMTOPEN?\r", "AT+QMTOPEN?\r\r\n+QMTOPEN: 0,\"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com\",1883\r\n\r\nOK\r\n"}},
		lines:  []string{`+QMTOPEN: 0,"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com",1883`},
	},
	{
		name:   "QMTOPEN test command single CRLF before OK",
		cmd:    Command{Line: "AT+QMTOPEN=?", Answers: answersPrefix("+QMTOPEN: (", 0)},
		script: []step{{"AT+QMTOPEN=?\r", "\r\n+QMTOPEN: (0-5),<host_name>,(0-65535)\r\nOK\r\n"}},
		lines:  []string{"+QMTOPEN: (0-5),<host_name>,(0-65535)"},
	},
	{
		name: "QMTCONN query answer and a same-prefix URC",
		cmd:  Command{Line: "AT+QMTCONN?", Answers: answersPrefix("+QMTCONN: ", 2)},
		script: []step{{"AT+QMTCONN?\r",
			"AT+QMTCONN?\r\r\n+QMTCONN: 0,0,0\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n"}},
		lines: []string{"+QMTCONN: 0,3"},
		urcs:  []string{"+QMTCONN: 0,0,0"},
	},
	{
		name: "QMTCONN OK then CONNACK URC",
		cmd:  Command{Line: `AT+QMTCONN=0,"pi-led-01","user","pw"`},
		script: []step{{"AT+QMTCONN=0,\"pi-led-01\",\"user\",\"pw\"\r",
			"AT+QMTCONN=0,\"pi-led-01\",\"user\",\"pw\"\r\r\nOK\r\n\r\n+QMTCONN: 0,0,0\r\n"}},
		urcs: []string{"+QMTCONN: 0,0,0"},
	},
	{
		name:   "QMTSUB granted QoS URC",
		cmd:    Command{Line: subCmd},
		script: []step{{subCmd + "\r", subCmd + "\r\r\nOK\r\n"}, {"", "\r\n+QMTSUB: 0,1,0,1\r\n"}},
		urcs:   []string{"+QMTSUB: 0,1,0,1"},
	},
	{
		name: "QMTPUBEX echo, prompt, data echo, OK, result",
		cmd:  Command{Line: pubexCmd, Data: []byte(pubexMsg)},
		script: []step{
			{pubexCmd + "\r", pubexCmd + "\r\r\n> "},
			{pubexMsg, pubexMsg + "\r\nOK\r\n\r\n+QMTPUBEX: 0,0,0\r\n"},
		},
		urcs: []string{"+QMTPUBEX: 0,0,0"},
	},
	{
		name: "QMTPUBEX with ATE0",
		cmd:  Command{Line: pubexCmd, Data: []byte(pubexMsg)},
		script: []step{
			{pubexCmd + "\r", "\r\n> "},
			{pubexMsg, "\r\nOK\r\n\r\n+QMTPUBEX: 0,0,0\r\n"},
		},
		urcs: []string{"+QMTPUBEX: 0,0,0"},
	},
	{
		name: "QMTPUBEX bare prompt and data echo holding CRLF and OK",
		cmd:  Command{Line: `AT+QMTPUBEX=0,0,0,0,"t",12`, Data: []byte("a\r\nOK\r\n>b\r\n\x00")},
		script: []step{
			{"AT+QMTPUBEX=0,0,0,0,\"t\",12\r", "AT+QMTPUBEX=0,0,0,0,\"t\",12\r\r\n>"},
			{"a\r\nOK\r\n>b\r\n\x00", "a\r\nOK\r\n>b\r\n\x00\r\nOK\r\n"},
		},
	},
	{
		name: "QMTPUBEX data echo after a URC",
		cmd:  Command{Line: `AT+QMTPUBEX=0,0,0,0,"t",4`, Data: []byte("OK\r\n")},
		script: []step{
			{"AT+QMTPUBEX=0,0,0,0,\"t\",4\r", "AT+QMTPUBEX=0,0,0,0,\"t\",4\r\r\n> "},
			{"OK\r\n", "\r\n+QMTSTAT: 0,1\r\nOK\r\n\r\nOK\r\n"},
		},
		urcs: []string{"+QMTSTAT: 0,1"},
	},
	{
		name: "Ctrl-Z form writes DataEnd",
		cmd:  Command{Line: `AT+QMTPUB=0,0,0,0,"t"`, Data: []byte("hi"), DataEnd: []byte{0x1A}},
		script: []step{
			{"AT+QMTPUB=0,0,0,0,\"t\"\r", "\r\n> "},
			{"hi\x1a", "\r\nOK\r\n"},
		},
	},
	{
		name:   "data command refused with ERROR writes no data",
		cmd:    Command{Line: `AT+QMTPUBEX=0,0,0,0,"t",2`, Data: []byte("hi")},
		script: []step{{"AT+QMTPUBEX=0,0,0,0,\"t\",2\r", "\r\nERROR\r\n"}},
		err:    ErrError,
	},
	{
		name:   "ATI multi-line",
		cmd:    Command{Line: "ATI"},
		script: []step{{"ATI\r", "ATI\r\r\nQuectel\r\nEC600N\r\nRevision: EC600NCNLCR03A01M08\r\n\r\nOK\r\n"}},
		lines:  []string{"Quectel", "EC600N", "Revision: EC600NCNLCR03A01M08"},
	},
	{
		name:   "CSQ information line",
		cmd:    Command{Line: "AT+CSQ"},
		script: []step{{"AT+CSQ\r", "\r\n+CSQ: 31,99\r\n\r\nOK\r\n"}},
		lines:  []string{"+CSQ: 31,99"},
	},
	{
		name:   "CPIN query claimed by Answers, built-in prefix",
		cmd:    Command{Line: "AT+CPIN?", Answers: answersPrefix("+CPIN: ", 0)},
		script: []step{{"AT+CPIN?\r", "\r\n+CPIN: READY\r\n\r\nOK\r\n"}},
		lines:  []string{"+CPIN: READY"},
	},
	{
		name:   "CPIN without Answers goes to the URC stream",
		cmd:    Command{Line: "AT+CPIN?"},
		script: []step{{"AT+CPIN?\r", "\r\n+CPIN: READY\r\n\r\nOK\r\n"}},
		urcs:   []string{"+CPIN: READY"},
	},
	{
		name:   "ERROR",
		cmd:    Command{Line: "AT+QMTCFG=\"bogus\""},
		script: []step{{"AT+QMTCFG=\"bogus\"\r", "\r\nERROR\r\n"}},
		err:    ErrError,
	},
	{
		name:   "CME error number (CMEE=1)",
		cmd:    Command{Line: "AT+CIMI"},
		script: []step{{"AT+CIMI\r", "AT+CIMI\r\r\n+CME ERROR: 10\r\n"}},
		cme:    &CMEError{Code: 10, Text: "SIM not inserted"},
	},
	{
		name:   "CME error text (CMEE=2)",
		cmd:    Command{Line: "AT+CIMI"},
		script: []step{{"AT+CIMI\r", "\r\n+CME ERROR: SIM not inserted\r\n"}},
		cme:    &CMEError{Code: -1, Text: "SIM not inserted"},
	},
	{
		name:   "CME error Quectel TCP/IP code",
		cmd:    Command{Line: openCmd},
		script: []step{{openCmd + "\r", "\r\n+CME ERROR: 565\r\n"}},
		cme:    &CMEError{Code: 565, Text: "DNS parse failed"},
	},
	{
		name:   "CMS error",
		cmd:    Command{Line: "AT+CMGS=\"123\""},
		script: []step{{"AT+CMGS=\"123\"\r", "\r\n+CMS ERROR: 310\r\n"}},
		err:    &CMSError{},
	},
	{
		name: "QMTRECV payload with OK CRLF between echo and OK",
		cmd:  Command{Line: "AT+CSQ"},
		script: []step{{"AT+CSQ\r", "AT+CSQ\r" + recvURC("t", "x\r\nOK\r\n") +
			"\r\n+CSQ: 31,99\r\n" + recvURC("t", "\r\nERROR\r\n") + "\r\nOK\r\n"}},
		lines: []string{"+CSQ: 31,99"},
		urcs:  []string{`+QMTRECV: 0,0,"t",7 |"x\r\nOK\r\n"`, `+QMTRECV: 0,0,"t",9 |"\r\nERROR\r\n"`},
	},
	{
		name: "QMTRECV buffer-mode read claimed by Answers",
		cmd:  Command{Line: "AT+QMTRECV=0,1", Answers: answersPrefix("+QMTRECV: ", 0)},
		script: []step{{"AT+QMTRECV=0,1\r",
			"\r\n+QMTRECV: 0,1,\"t\",5,\"a\"\r\nb\"\r\n\r\nOK\r\n"}},
		lines: []string{`+QMTRECV: 0,1,"t",5 |"a\"\r\nb"`},
	},
}

func TestDoWire(t *testing.T) {
	for _, rd := range readers {
		for _, tt := range wireTests {
			t.Run(rd.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				c, m := newTestConn(t, rd.wrap, Options{})
				urcs := c.Subscribe()
				done := m.run(append(slices.Clone(tt.script), step{"", "\r\n" + endMark + "\r\n"})...)
				resp, err := c.Do(ctxTimeout(t, 5*time.Second), tt.cmd)
				checkResult(t, resp, err, tt)
				waitDone(t, done)
				if got := fmtLines(collectURCs(t, urcs)); !slices.Equal(got, nilIfEmpty(tt.urcs)) && len(got)+len(tt.urcs) > 0 {
					t.Errorf("URCs = %q, want %q", got, tt.urcs)
				}
			})
		}
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func checkResult(t *testing.T, resp Response, err error, tt wireTest) {
	t.Helper()
	switch {
	case tt.cme != nil:
		var cme *CMEError
		if !errors.As(err, &cme) || *cme != *tt.cme {
			t.Errorf("err = %v, want %v", err, tt.cme)
		}
	case tt.err != nil:
		var cms *CMSError
		if _, isCMS := tt.err.(*CMSError); isCMS {
			if !errors.As(err, &cms) || cms.Code != 310 || cms.Text != "SIM not inserted" {
				t.Errorf("err = %v, want +CMS ERROR: 310", err)
			}
		} else if !errors.Is(err, tt.err) {
			t.Errorf("err = %v, want %v", err, tt.err)
		}
	case err != nil:
		t.Errorf("err = %v, want nil", err)
	}
	if got := fmtLines(resp.Lines); !slices.Equal(got, nilIfEmpty(tt.lines)) && len(got)+len(tt.lines) > 0 {
		t.Errorf("lines = %q, want %q", got, tt.lines)
	}
}

// splitReply cuts a module reply after every CR LF, so a URC can be put
// between any two of its lines.
func splitReply(s string) []string {
	var parts []string
	for {
		i := strings.Index(s, "\r\n")
		if i < 0 {
			if s != "" {
				parts = append(parts, s)
			}
			return parts
		}
		parts = append(parts, s[:i+2])
		s = s[i+2:]
	}
}

// TestURCInsideReply puts URCs (a plain one and a counted one whose payload
// holds "OK") at every line boundary of multi-line replies: the reply must
// not change and each URC must reach the stream exactly once.
func TestURCInsideReply(t *testing.T) {
	injected := "\r\n+QMTSTAT: 0,1\r\n" + recvURC("t/x", "\r\nOK\r\n")
	wantURCs := []string{"+QMTSTAT: 0,1", `+QMTRECV: 0,0,"t/x",6 |"\r\nOK\r\n"`}
	var base []wireTest
	for _, tt := range wireTests {
		switch tt.name {
		case "QMTOPEN query answer claimed by Answers", "QMTCONN query answer and a same-prefix URC",
			"ATI multi-line", "CSQ information line", "CME error number (CMEE=1)":
			base = append(base, tt)
		}
	}
	if len(base) != 5 {
		t.Fatalf("found %d of the 5 base tests", len(base))
	}
	for _, rd := range readers {
		for _, tt := range base {
			reply := tt.script[0].send
			parts := splitReply(reply)
			// The echo ends in CR only: also inject right after it.
			if i := strings.Index(parts[0], "\r"); i >= 0 && i+2 <= len(parts[0]) && parts[0][i+1] != '\n' {
				parts = append([]string{parts[0][:i+1], parts[0][i+1:]}, parts[1:]...)
			}
			for at := 0; at < len(parts); at++ {
				name := fmt.Sprintf("%s/%s/after%d", rd.name, tt.name, at)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					send := strings.Join(parts[:at+1], "") + injected + strings.Join(parts[at+1:], "")
					c, m := newTestConn(t, rd.wrap, Options{})
					urcs := c.Subscribe()
					done := m.run(step{tt.script[0].expect, send}, step{"", "\r\n" + endMark + "\r\n"})
					resp, err := c.Do(ctxTimeout(t, 5*time.Second), tt.cmd)
					checkResult(t, resp, err, tt)
					waitDone(t, done)
					want := append(slices.Clone(tt.urcs), wantURCs...)
					got := fmtLines(collectURCs(t, urcs))
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("URCs = %q, want %q (reply sent as %q)", got, want, send)
					}
				})
			}
		}
	}
}

// TestPromptSplitAcrossReads sends "\r\n", ">" and " " in separate writes.
func TestPromptSplitAcrossReads(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	done := m.run(
		step{"AT+QMTPUBEX=0,0,0,0,\"t\",3\r", "AT+QMTPUBEX=0,0,0,0,\"t\",3\r"},
		step{"", "\r\n"}, step{"", ">"}, step{"", " "},
		step{"abc", "abc"}, step{"", "\r\nOK\r\n"},
	)
	_, err := c.Do(ctxTimeout(t, 5*time.Second), Command{Line: `AT+QMTPUBEX=0,0,0,0,"t",3`, Data: []byte("abc")})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	waitDone(t, done)
}

// TestLeadingGreaterThanIsNoPromptWhenNoneIsWanted: with no data command
// in flight, a line that begins with '>' is a line.
func TestLeadingGreaterThanIsNoPromptWhenNoneIsWanted(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			c, m := newTestConn(t, rd.wrap, Options{})
			urcs := c.Subscribe()
			done := m.run(step{"AT+X\r", "\r\n> not a prompt\r\n\r\nOK\r\n"}, step{"", "\r\n>\r\n\r\n" + endMark + "\r\n"})
			resp, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+X")
			if err != nil || len(resp.Lines) != 1 || resp.Lines[0].Text != "> not a prompt" {
				t.Fatalf("Run = %q, %v", fmtLines(resp.Lines), err)
			}
			waitDone(t, done)
			if got := fmtLines(collectURCs(t, urcs)); !slices.Equal(got, []string{">"}) {
				t.Errorf("URCs = %q, want [\">\"]", got)
			}
		})
	}
}

// TestQMTRECVPayloads sends +QMTRECV URCs whose counted payloads hold what
// would end or split a line.
func TestQMTRECVPayloads(t *testing.T) {
	payloads := []string{
		aliyun92,
		`"quoted", "more"`,
		"a\r\nb\r\n",
		"OK\r\n",
		"\r\nERROR\r\n+CME ERROR: 10\r\n",
		"nul\x00bytes\xff\xfe",
		"> leading prompt",
		">",
		"\"\r\n",
		"",
		strings.Repeat("x", 3000),
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			c, m := newTestConn(t, rd.wrap, Options{})
			urcs := c.Subscribe()
			var send strings.Builder
			var want []string
			for _, p := range payloads {
				send.WriteString(recvURC(aliTopic, p))
				want = append(want, fmtLine(Line{Text: fmt.Sprintf("+QMTRECV: 0,0,%q,%d", aliTopic, len(p)), Payload: []byte(p)}))
			}
			// The payload on the next line, unquoted (one EC200U report).
			next := "{\"on\":1,\"x\":\"\r\nOK\r\n\"}"
			fmt.Fprintf(&send, "\r\n+QMTRECV: 0,0,\"pump/01/cmd\",%d\r\n%s\r\n", len(next), next)
			want = append(want, fmtLine(Line{Text: fmt.Sprintf(`+QMTRECV: 0,0,"pump/01/cmd",%d`, len(next)), Payload: []byte(next)}))
			send.WriteString("\r\n+QMTRECV: 0,0,\"t\",2\r\nab+QMTSTAT: 0,1\r\n")
			want = append(want, `+QMTRECV: 0,0,"t",2 |"ab"`, "+QMTSTAT: 0,1")
			// Without the length field, and the buffer-mode announcement: plain lines.
			send.WriteString("\r\n+QMTRECV: 0,0,\"t\",\"plain\"\r\n\r\n+QMTRECV: 0,2\r\n")
			want = append(want, `+QMTRECV: 0,0,"t","plain"`, "+QMTRECV: 0,2")
			done := m.run(step{"", send.String() + "\r\n" + endMark + "\r\n"})
			waitDone(t, done)
			checkLines(t, "URCs", fmtLines(collectURCs(t, urcs)), want)
		})
	}
}

// TestBadTrailer: a wrong length leaves bytes where `"` CRLF belongs.
func TestBadTrailer(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	urcs := c.Subscribe()
	done := m.run(step{"", "\r\n+QMTRECV: 0,0,\"t\",3,\"abcd\"\r\n\r\n+QMTRECV: 0,0,\"t\",3,\"ab\"\r\n\r\n" + endMark + "\r\n"})
	waitDone(t, done)
	got := collectURCs(t, urcs)
	want := []string{`+QMTRECV: 0,0,"t",3 |"abc" !` + ErrBadTrailer.Error(), `+QMTRECV: 0,0,"t",3 |"ab\"" !` + ErrBadTrailer.Error()}
	if !slices.Equal(fmtLines(got), want) {
		t.Fatalf("URCs = %q, want %q", fmtLines(got), want)
	}
	if !errors.Is(got[0].Err, ErrBadTrailer) {
		t.Errorf("Err = %v", got[0].Err)
	}
	if s := c.Stats(); s.BadFrames != 2 {
		t.Errorf("BadFrames = %d, want 2", s.BadFrames)
	}
}

// TestLimits: over-long lines and payloads are dropped up to their line
// end and counted; garbage never wedges the reader.
func TestLimits(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			c, m := newTestConn(t, rd.wrap, Options{MaxLine: 64, MaxPayload: 32})
			urcs := c.Subscribe()
			send := "\r\n+QMTSTAT: " + strings.Repeat("9", 200) + "\r\n" +
				recvURC("t", strings.Repeat("p", 33)) +
				"\x00\x00\xff\xff\r\n\r\r\r\n\x00\n" +
				"\r\n+QMTSTAT: 0,1\r\n" +
				recvURC("t", strings.Repeat("p", 32))
			done := m.run(
				step{"", send},
				step{"AT\r", "\r\n" + strings.Repeat("L", 65) + "\r\n" + strings.Repeat("k", 64) + "\r\nOK\r\n"},
				step{"", "\r\n" + endMark + "\r\n"},
			)
			resp, err := c.Run(ctxTimeout(t, 5*time.Second), "AT")
			if err != nil || !slices.Equal(fmtLines(resp.Lines), []string{strings.Repeat("k", 64)}) {
				t.Errorf("Run = %q, %v", fmtLines(resp.Lines), err)
			}
			waitDone(t, done)
			want := []string{"+QMTSTAT: 0,1", `+QMTRECV: 0,0,"t",32 |"` + strings.Repeat("p", 32) + `"`}
			if got := fmtLines(collectURCs(t, urcs)); !slices.Equal(got, want) {
				t.Errorf("URCs = %q, want %q", got, want)
			}
			s := c.Stats()
			if s.LinesTooLong != 2 || s.PayloadsTooLong != 1 || s.NoiseLines != 2 {
				t.Errorf("Stats = %+v; want 2 lines too long, 1 payload too long, 2 noise lines", s)
			}
		})
	}
}

// TestPortErrorMidReply: the port fails while a reply is half read; the
// pending Do returns ErrPortGone with the cause, and so does the next.
func TestPortErrorMidReply(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			c, m := newTestConn(t, rd.wrap, Options{})
			urcs := c.Subscribe()
			go func() {
				if m.expect("ATI\r") {
					m.send("ATI\r\r\nQuectel\r\nEC6")
					m.toHost.CloseWithError(errUnplugged)
				}
			}()
			_, err := c.Run(ctxTimeout(t, 5*time.Second), "ATI")
			if !errors.Is(err, ErrPortGone) || !errors.Is(err, errUnplugged) {
				t.Fatalf("Run err = %v, want ErrPortGone wrapping the read error", err)
			}
			<-c.Done()
			if !errors.Is(c.Err(), ErrPortGone) {
				t.Errorf("Err = %v", c.Err())
			}
			if _, err := c.Run(ctxTimeout(t, time.Second), "AT"); !errors.Is(err, ErrPortGone) {
				t.Errorf("Run after the end = %v", err)
			}
			if _, ok := <-urcs.C(); ok {
				t.Error("subscription not closed")
			}
		})
	}
}

// TestEOFEndsConn: EOF from the port is the module gone.
func TestEOFEndsConn(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	m.toHost.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after EOF")
	}
	if !errors.Is(c.Err(), ErrPortGone) || !errors.Is(c.Err(), io.EOF) {
		t.Errorf("Err = %v, want ErrPortGone wrapping EOF", c.Err())
	}
}

// failingWriter is a port whose writes fail, as a serial port's do once the
// device is gone.
type failingWriter struct {
	io.Reader
}

func (failingWriter) Write([]byte) (int, error) { return 0, errUnplugged }

func TestWriteErrorEndsConn(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	c := New(failingWriter{pr}, Options{})
	_, err := c.Run(ctxTimeout(t, 5*time.Second), "AT")
	if !errors.Is(err, ErrPortGone) || !errors.Is(err, errUnplugged) {
		t.Fatalf("Run = %v, want ErrPortGone wrapping the write error", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after a write error")
	}
}

// TestCloseDuringBlockedDo: Close ends a Do waiting for a reply, and the
// callers queued behind it, with ErrClosed.
func TestCloseDuringBlockedDo(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	read := make(chan bool)
	go func() { read <- m.expect("AT+COPS=?\r") }()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.Run(context.Background(), "AT+COPS=?") })
		if i == 0 {
			if !<-read {
				t.Fatal("command not received")
			}
		} else {
			waitFor(t, "queued callers", func() bool { return c.queued() == i })
		}
	}
	c.Close()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Do %d = %v, want ErrClosed", i, err)
		}
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err = %v", c.Err())
	}
}

// queued reports how many callers wait for their turn (tests only).
func (c *Conn) queued() int {
	c.turn.mu.Lock()
	defer c.turn.mu.Unlock()
	return len(c.turn.waiters)
}

// TestCallersServedInOrder: commands reach the module in call order.
func TestCallersServedInOrder(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	const n = 6
	var steps []step
	for i := range n {
		steps = append(steps, step{fmt.Sprintf("AT+N=%d\r", i), fmt.Sprintf("\r\n+N: %d\r\n\r\nOK\r\n", i)})
	}
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-release
		<-m.run(steps...)
	}()
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := range n {
		if i > 1 {
			waitFor(t, "queued callers", func() bool { return c.queued() == i-1 })
		}
		wg.Go(func() {
			resp, err := c.Run(ctxTimeout(t, 5*time.Second), fmt.Sprintf("AT+N=%d", i))
			if err != nil || len(resp.Lines) != 1 {
				t.Errorf("Run %d = %v, %v", i, fmtLines(resp.Lines), err)
				return
			}
			results[i] = resp.Lines[0].Text
		})
		if i == 0 {
			waitFor(t, "first command in flight", func() bool { return c.Stats().Commands == 1 })
		}
	}
	close(release)
	wg.Wait()
	<-done
	for i, r := range results {
		if want := fmt.Sprintf("+N: %d", i); r != want {
			t.Errorf("result %d = %q, want %q", i, r, want)
		}
	}
}

// TestWriteDoesNotHoldUpReader: while the module does not read the
// command, its URCs still reach the subscribers.
func TestWriteDoesNotHoldUpReader(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	urcs := c.Subscribe()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+QMTDISC=0")
		errc <- err
	}()
	m.send("\r\n+QMTSTAT: 0,1\r\n")
	select {
	case l := <-urcs.C():
		if l.Text != "+QMTSTAT: 0,1" {
			t.Errorf("URC = %q", l.Text)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("URC held up by a blocked write")
	}
	<-m.run(step{"AT+QMTDISC=0\r", "\r\nOK\r\n"})
	if err := <-errc; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestTimeoutResyncNextCommand: a command that gets no answer times out;
// the next command first resynchronises (ESC, AT, OK; late lines of the
// abandoned command drained) and then works.
func TestTimeoutResyncNextCommand(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			c, m := newTestConn(t, rd.wrap, Options{ResyncTimeout: 200 * time.Millisecond})
			urcs := c.Subscribe()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			got := make(chan struct{})
			go func() { m.expect("AT+QMTDISC=0\r"); close(got) }()
			_, err := c.Run(ctx, "AT+QMTDISC=0")
			if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run = %v, want ErrTimeout and DeadlineExceeded", err)
			}
			<-got
			if s := c.Stats(); s.Timeouts != 1 || s.ConsecutiveTimeouts != 1 {
				t.Errorf("after timeout: Stats = %+v", s)
			}
			// The late answer of the abandoned command, then the resync.
			m.send("\r\n+QMTDISC: 0,0\r\n\r\nlate info\r\n\r\nOK\r\n")
			waitFor(t, "late lines dropped", func() bool { return c.Stats().StaleLines == 2 })
			done := m.run(
				step{"\x1b", ""},
				step{"AT\r", "AT\r\r\nOK\r\n"},
				step{"AT+CSQ\r", "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},
				step{"", "\r\n" + endMark + "\r\n"},
			)
			resp, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+CSQ")
			if err != nil || !slices.Equal(fmtLines(resp.Lines), []string{"+CSQ: 20,99"}) {
				t.Fatalf("Run after timeout = %q, %v", fmtLines(resp.Lines), err)
			}
			waitDone(t, done)
			if got := fmtLines(collectURCs(t, urcs)); !slices.Equal(got, []string{"+QMTDISC: 0,0"}) {
				t.Errorf("URCs = %q", got)
			}
			s := c.Stats()
			if s.Resyncs != 1 || s.ConsecutiveTimeouts != 0 || s.StaleLines != 2 {
				t.Errorf("Stats = %+v; want 1 resync, 0 consecutive timeouts, 2 stale lines", s)
			}
		})
	}
}

// TestConsecutiveTimeouts: the counter grows while commands time out, even
// when the module still answers AT, and resets on a final result.
func TestConsecutiveTimeouts(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{ResyncTimeout: 100 * time.Millisecond})
	short := func() context.Context { return ctxTimeout(t, 80*time.Millisecond) }
	go m.expect("AT+A\r")
	if _, err := c.Run(short(), "AT+A"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first: %v", err)
	}
	done := m.run(step{"\x1b", ""}, step{"AT\r", "\r\nOK\r\n"}, step{"AT+B\r", ""})
	if _, err := c.Run(ctxTimeout(t, 400*time.Millisecond), "AT+B"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second: %v", err)
	}
	waitDone(t, done)
	if s := c.Stats(); s.ConsecutiveTimeouts != 2 || s.Timeouts != 2 {
		t.Errorf("Stats = %+v, want 2 consecutive timeouts", s)
	}
	done = m.run(step{"\x1b", ""}, step{"AT\r", "\r\nOK\r\n"}, step{"AT+C\r", "\r\n+CME ERROR: 3\r\n"})
	var cme *CMEError
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+C"); !errors.As(err, &cme) || cme.Code != 3 {
		t.Fatalf("third: %v", err)
	}
	waitDone(t, done)
	if s := c.Stats(); s.ConsecutiveTimeouts != 0 || s.Timeouts != 2 || s.Resyncs != 2 {
		t.Errorf("Stats = %+v, want 0 consecutive timeouts after a final result", s)
	}
}

// TestResyncFailsUnresponsive: a module that answers nothing makes the
// resync give up with ErrUnresponsive after ResyncTries.
func TestResyncFailsUnresponsive(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{ResyncTries: 2, ResyncTimeout: 50 * time.Millisecond})
	go func() { _, _ = io.Copy(io.Discard, m.fromHost) }() // reads everything, answers nothing
	if _, err := c.Run(ctxTimeout(t, 50*time.Millisecond), "AT+A"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first: %v", err)
	}
	_, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+B")
	if !errors.Is(err, ErrUnresponsive) {
		t.Fatalf("second: %v, want ErrUnresponsive", err)
	}
	if s := c.Stats(); s.ResyncFailures != 1 || s.Commands != 1 {
		t.Errorf("Stats = %+v; want 1 resync failure and AT+B not sent", s)
	}
}

// TestNoPrompt: a data command whose prompt never comes times out with
// ErrNoPrompt, writes no data, and the next command resynchronises.
func TestNoPrompt(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{ResyncTimeout: 200 * time.Millisecond})
	go m.run(step{"AT+QMTPUBEX=0,0,0,0,\"t\",3\r", "AT+QMTPUBEX=0,0,0,0,\"t\",3\r"})
	_, err := c.Do(ctxTimeout(t, 100*time.Millisecond), Command{Line: `AT+QMTPUBEX=0,0,0,0,"t",3`, Data: []byte("abc")})
	if !errors.Is(err, ErrNoPrompt) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want ErrNoPrompt, ErrTimeout, DeadlineExceeded", err)
	}
	// The prompt comes late: the resync's ESC ends data mode.
	m.send("\r\n> ")
	done := m.run(step{"\x1b", "\r\nERROR\r\n"}, step{"AT\r", "\r\nOK\r\n"}, step{"AT\r", "\r\nOK\r\n"})
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT"); err != nil {
		t.Fatalf("Run after no prompt: %v", err)
	}
	waitDone(t, done)
}

// TestCanceledDoResyncsWithoutCountingTimeout: a caller's cancel is no
// module timeout, but the reply is still owed, so the engine resyncs.
func TestCanceledDoResyncsWithoutCountingTimeout(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{ResyncTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if m.expect("AT+A\r") {
			cancel()
		}
	}()
	_, err := c.Run(ctx, "AT+A")
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if s := c.Stats(); s.Timeouts != 0 || s.ConsecutiveTimeouts != 0 {
		t.Errorf("Stats = %+v, want no timeouts counted for a cancel", s)
	}
	done := m.run(step{"\x1b", ""}, step{"AT\r", "\r\nOK\r\n"}, step{"AT+B\r", "\r\nOK\r\n"})
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+B"); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	waitDone(t, done)
}

func TestInvalidCommand(t *testing.T) {
	c, _ := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	for _, line := range []string{"", "AT\rAT", "AT\n", "AT\x00"} {
		if _, err := c.Run(context.Background(), line); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Run(%q) = %v, want ErrInvalidCommand", line, err)
		}
	}
	if s := c.Stats(); s.Commands != 0 || s.BytesOut != 0 {
		t.Errorf("invalid commands were sent: %+v", s)
	}
}

// statLines are n distinct URC lines, and the bytes that carry them.
func statLines(n int) ([]string, string) {
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("+QMTSTAT: %d,1", i))
	}
	return lines, "\r\n" + strings.Join(lines, "\r\n\r\n") + "\r\n"
}

// TestFullSubscriptionHoldsTheReaderBack: a full queue makes the reader wait
// instead of dropping; every URC comes out in order, and a command's reply
// behind them completes the command once the subscriber has made room.
func TestFullSubscriptionHoldsTheReaderBack(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{URCQueue: 2})
	sub := c.Subscribe()
	want, wire := statLines(5)
	go m.send(wire)
	waitFor(t, "the reader to be held back", func() bool { return c.Stats().HeldBack >= 1 })

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Run(ctx, "AT")
		done <- err
	}()
	m.expect("AT\r")
	go m.send("\r\nOK\r\n") // read only once the reader has room again
	for _, w := range want {
		if l := <-sub.C(); l.Text != w {
			t.Fatalf("got %q, want %q", l.Text, w)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("command behind the held-back URCs: %v", err)
	}
	if st := c.Stats(); st.HeldFor <= 0 || st.URCs != 5 {
		t.Errorf("stats %+v: want HeldFor > 0 and 5 URCs", st)
	}
}

// TestTimeoutWhileHeldBackIsNotTheModules: a command that times out while the
// reader waits for a slow subscriber says so, and does not count towards the
// consecutive timeouts the caller escalates on.
func TestTimeoutWhileHeldBackIsNotTheModules(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{URCQueue: 1})
	sub := c.Subscribe()
	_, wire := statLines(3)
	go m.send(wire)
	waitFor(t, "the reader to be held back", func() bool { return c.Stats().HeldBack >= 1 })
	go m.expect("AT\r")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Run(ctx, "AT")
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrHeldBack) {
		t.Fatalf("err = %v, want ErrTimeout and ErrHeldBack", err)
	}
	if st := c.Stats(); st.Timeouts != 1 || st.ConsecutiveTimeouts != 0 {
		t.Errorf("Timeouts = %d, ConsecutiveTimeouts = %d; want 1 and 0", st.Timeouts, st.ConsecutiveTimeouts)
	}
	for range 3 {
		<-sub.C()
	}
}

// TestClosingAHeldSubscriptionReleasesTheReader: the reader waiting on a
// subscriber that then closes goes on, and the other subscribers get every
// URC; closing the engine while held back ends it too.
func TestClosingAHeldSubscriptionReleasesTheReader(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{URCQueue: 1})
	slow := c.Subscribe()
	fast := c.Subscribe()
	want, wire := statLines(4)
	go m.send(wire + "\r\n" + endMark + "\r\n")
	got := make(chan []Line, 1)
	go func() { got <- collectURCs(t, fast) }()
	waitFor(t, "the reader to be held back", func() bool { return c.Stats().HeldBack >= 1 })
	slow.Close()
	if lines := fmtLines(<-got); !slices.Equal(lines, want) {
		t.Errorf("fast subscriber got %q, want %q", lines, want)
	}
	if _, ok := <-slow.C(); !ok {
		t.Error("the line queued before Close is gone")
	}

	held := c.Subscribe()
	go m.send(wire)
	waitFor(t, "the reader to be held back again", func() bool { return c.Stats().HeldBack >= 2 })
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while the reader was held back")
	}
	for range held.C() {
	}
}

// TestUnknownLinesWhenIdleAreURCs: with no command in flight any line is
// passed on for the layer above to judge.
func TestUnknownLinesWhenIdleAreURCs(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{})
	urcs := c.Subscribe()
	m.send("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nsomething new\r\n\r\nPOWERED DOWN\r\n\r\n" + endMark + "\r\n")
	want := []string{"RDY", "+CFUN: 1", "+CPIN: READY", "something new", "POWERED DOWN"}
	if got := fmtLines(collectURCs(t, urcs)); !slices.Equal(got, want) {
		t.Errorf("URCs = %q, want %q", got, want)
	}
}

// checkLines reports the first difference between two rendered line lists.
func checkLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("%s: missing [%d] %q", what, i, want[i])
		case i >= len(want):
			t.Errorf("%s: extra [%d] %q", what, i, got[i])
		case got[i] != want[i]:
			t.Errorf("%s: [%d] = %q, want %q", what, i, got[i], want[i])
		default:
			continue
		}
		return
	}
}

// TestResyncDrainsLateOK: the abandoned command's OK arrives right before
// the resync's own OK; the drain keeps the second one away from the next
// command.
func TestResyncDrainsLateOK(t *testing.T) {
	c, m := newTestConn(t, readers[0].wrap, Options{ResyncTimeout: 200 * time.Millisecond})
	go m.expect("AT+QMTCLOSE=0\r")
	if _, err := c.Run(ctxTimeout(t, 50*time.Millisecond), "AT+QMTCLOSE=0"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first: %v", err)
	}
	done := m.run(
		step{"\x1b", ""},
		step{"AT\r", "\r\nOK\r\n\r\nOK\r\n"},
		step{"AT+CSQ\r", "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},
	)
	resp, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+CSQ")
	if err != nil || !slices.Equal(fmtLines(resp.Lines), []string{"+CSQ: 20,99"}) {
		t.Fatalf("Run = %q, %v", fmtLines(resp.Lines), err)
	}
	waitDone(t, done)
	if s := c.Stats(); s.StaleLines != 1 {
		t.Errorf("StaleLines = %d, want 1 (the second OK)", s.StaleLines)
	}
}

// TestResyncAcceptsCMEError: any +CME ERROR to AT proves the module alive.
func TestResyncAcceptsCMEError(t *testing.T) {
	c, m := newTestConn(t, readers[0].wrap, Options{ResyncTimeout: 200 * time.Millisecond})
	go m.expect("AT+A\r")
	if _, err := c.Run(ctxTimeout(t, 50*time.Millisecond), "AT+A"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first: %v", err)
	}
	done := m.run(step{"\x1b", ""}, step{"AT\r", "\r\n+CME ERROR: 14\r\n"}, step{"AT+B\r", "\r\nOK\r\n"})
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+B"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitDone(t, done)
}

// TestResyncAcceptsERROR: a module that answers the resync's AT with plain ERROR — it took the
// ESC as part of the line, as one real module answered a stray first line — is alive: the
// resync succeeds at the first answer and the next command is sent (issue 20; before, only OK
// and +CME ERROR counted, and such a module was declared unresponsive).
func TestResyncAcceptsERROR(t *testing.T) {
	c, m := newTestConn(t, readers[0].wrap, Options{ResyncTries: 2, ResyncTimeout: 200 * time.Millisecond})
	go m.expect("AT+A\r")
	if _, err := c.Run(ctxTimeout(t, 50*time.Millisecond), "AT+A"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first: %v", err)
	}
	done := m.run(step{"\x1b", ""}, step{"AT\r", "\r\nERROR\r\n"}, step{"AT+B\r", "\r\nOK\r\n"})
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+B"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitDone(t, done)
	if s := c.Stats(); s.ResyncFailures != 0 || s.Resyncs != 1 {
		t.Errorf("Stats = %+v, want one resync and no failure", s)
	}
}

// FuzzConnRoute sends random module output in answer to a command (a data
// command when data is set) and then ends the port: Do must return, with a
// result or ErrPortGone, and the Conn must end.
func FuzzConnRoute(f *testing.F) {
	for _, tt := range wireTests {
		f.Add([]byte(tt.script[0].send), tt.cmd.Data != nil)
	}
	f.Add([]byte("\r\n> \r\n+QMTRECV: 0,0,\"t\",4,\"OK\r\n\"\r\nOK\r\n"), true)
	f.Fuzz(func(t *testing.T, reply []byte, data bool) {
		c, m := newTestConn(t, readers[0].wrap, Options{MaxLine: 64, MaxPayload: 64})
		urcs := c.Subscribe()
		cmd := Command{Line: "AT+X"}
		if data {
			cmd.Data = []byte("ab")
		}
		go func() {
			if !m.expect("AT+X\r") {
				return
			}
			m.send(string(reply))
			m.toHost.Close()
			_, _ = io.Copy(io.Discard, m.fromHost)
		}()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Do(context.Background(), cmd)
			errc <- err
		}()
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			t.Fatal("Do did not return after the port ended")
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Conn did not end after EOF")
		}
		for range urcs.C() {
		}
	})
}

// TestTurnQueueCancelWhileQueued: a caller whose context ends while it
// waits leaves the queue; the one behind it still gets the turn.
func TestTurnQueueCancelWhileQueued(t *testing.T) {
	var q turnQueue
	done := make(chan struct{})
	if err := q.acquire(context.Background(), done); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- q.acquire(ctx, done) }()
	waitFor(t, "first waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters) == 1 })
	second := make(chan error, 1)
	go func() { second <- q.acquire(context.Background(), done) }()
	waitFor(t, "second waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters) == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first = %v, want context.Canceled", err)
	}
	q.release()
	select {
	case err := <-second:
		if err != nil {
			t.Errorf("second = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second waiter never got the turn")
	}
	q.release()
	if q.busy {
		t.Error("queue still busy after the last release")
	}
}

func TestDoWithEndedContextSendsNothing(t *testing.T) {
	c, _ := newTestConn(t, readers[0].wrap, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Run(ctx, "AT"); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	if s := c.Stats(); s.BytesOut != 0 || s.Resyncs != 0 {
		t.Errorf("Stats = %+v, want nothing sent", s)
	}
}

// TestConnectDataMode: AT+QFUPL's data goes after a CONNECT line, not a
// "> " prompt, whichever way the module's output is chopped; a '>' line
// meanwhile is not taken for a prompt, and URCs still route.
func TestConnectDataMode(t *testing.T) {
	const cmd = `AT+QFUPL="ca.pem",5,10`
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			c, m := newTestConn(t, rd.wrap, Options{URCs: testURCs()})
			urcs := c.Subscribe()
			done := m.run(
				step{cmd + "\r", "\r\n+QMTSTAT: 0,1\r\n\r\nCONNECT\r\n"},
				step{"a\r\n> ", "\r\n+QFUPL: 5,6f0a\r\n\r\nOK\r\n"},
				step{"", "\r\n" + endMark + "\r\n"},
			)
			resp, err := c.Do(ctxTimeout(t, 5*time.Second), Command{Line: cmd, Data: []byte("a\r\n> "), AfterConnect: true})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if got := fmtLines(resp.Lines); !slices.Equal(got, []string{"+QFUPL: 5,6f0a"}) {
				t.Errorf("lines = %q", got)
			}
			waitDone(t, done)
			if got := fmtLines(collectURCs(t, urcs)); !slices.Equal(got, []string{"+QMTSTAT: 0,1"}) {
				t.Errorf("URCs = %q", got)
			}
		})
	}
}

// TestConnectDataModeError: a file error instead of CONNECT ends the call
// with it, and the data is never written.
func TestConnectDataModeError(t *testing.T) {
	const cmd = `AT+QFUPL="ca.pem",5,10`
	c, m := newTestConn(t, readers[0].wrap, Options{})
	done := m.run(step{cmd + "\r", "\r\n+CME ERROR: 406\r\n"}, step{"AT\r", "\r\nOK\r\n"})
	_, err := c.Do(ctxTimeout(t, 5*time.Second), Command{Line: cmd, Data: []byte("hello"), AfterConnect: true})
	var cme *CMEError
	if !errors.As(err, &cme) || cme.Code != 406 {
		t.Fatalf("Do = %v, want +CME ERROR: 406", err)
	}
	// The next bytes the module sees are the next command, not the data.
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitDone(t, done)
}

// TestPromptIsNoConnect: a "> " does not start a CONNECT-mode upload.
func TestPromptIsNoConnect(t *testing.T) {
	const cmd = `AT+QFUPL="ca.pem",5,10`
	c, m := newTestConn(t, readers[0].wrap, Options{ResyncTimeout: 200 * time.Millisecond})
	go m.run(step{cmd + "\r", "\r\n> "})
	_, err := c.Do(ctxTimeout(t, 200*time.Millisecond), Command{Line: cmd, Data: []byte("hello"), AfterConnect: true})
	if !errors.Is(err, ErrNoPrompt) {
		t.Fatalf("Do = %v, want ErrNoPrompt", err)
	}
}
