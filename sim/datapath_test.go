package sim

import (
	"strings"
	"testing"
	"time"
)

// The data-path variants of the reference (sections 0, 2.6, 2.7), byte for byte over the pty.

// recvRig is a rig connected, in direct receive mode with the length field, subscribed to dn/#,
// and a cloud peer.
func recvRig(t *testing.T, cfg Config) (*rig, *peer) {
	t.Helper()
	r := newRig(t, cfg)
	r.connect("recv")
	r.h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
	r.h.cmd(`AT+QMTSUB=0,1,"dn/#",0`, "\r\nOK\r\n")
	r.h.expect("\r\n+QMTSUB: 0,1,0,0\r\n")
	return r, newPeer(t, r.broker, "cloud")
}

// nasty holds CR LF, quotes, a comma and a length-like field, leading and trailing whitespace and
// multi-byte UTF-8 (the NB-IoT capture's e3 80 80 "this  that ").
const nasty = "\xe3\x80\x80this  that \r\n\",5,\"x\r\nOK\r\n "

func TestRecvForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		cfg  Config
		want func(topic, payload string) string
	}{
		{"quoted", Config{}, func(tp, p string) string {
			return "\r\n+QMTRECV: 0,0,\"" + tp + "\"," + itoa(len(p)) + ",\"" + p + "\"\r\n"
		}},
		{"next-line", Config{RecvForm: RecvNextLine}, func(tp, p string) string {
			return "\r\n+QMTRECV: 0,0,\"" + tp + "\"," + itoa(len(p)) + "\r\n" + p + "\r\n"
		}},
		{"unquoted", Config{RecvForm: RecvUnquoted}, func(tp, p string) string {
			return "\r\n+QMTRECV: 0,0,\"" + tp + "\"," + itoa(len(p)) + "," + p + "\r\n"
		}},
		{"blank-lines", Config{RecvBlankLines: true}, func(tp, p string) string {
			return "\r\n\r\n+QMTRECV: 0,0,\"" + tp + "\"," + itoa(len(p)) + ",\"" + p + "\"\r\n\r\n"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, p := recvRig(t, c.cfg)
			for _, payload := range []string{`{"method":"control","params":{"LED":1}}`, nasty, ""} {
				p.publish(t, "dn/1", 0, []byte(payload))
				r.h.expect(c.want("dn/1", payload))
			}
			// The form is the length mode's only: without the length field it is the usual one.
			r.h.cmd(`AT+QMTCFG="recv/mode",0,0,0`, "\r\nOK\r\n")
			p.publish(t, "dn/2", 0, []byte("x y"))
			pre, post := "\r\n", "\r\n"
			if c.cfg.RecvBlankLines {
				pre, post = "\r\n\r\n", "\r\n\r\n"
			}
			r.h.expect(pre + "+QMTRECV: 0,0,\"dn/2\",\"x y\"" + post)
		})
	}
}

// TestURCBeforePrompt: with PromptDelay a downlink that comes while the prompt is held back is
// written before "\r\n> " (the BG96 trace), and is counted; one that comes after the prompt
// waits for the OK as before.
func TestURCBeforePrompt(t *testing.T) {
	t.Parallel()
	r, p := recvRig(t, Config{PromptDelay: 300 * time.Millisecond})
	h := r.h
	p.subscribe(t, "up", 0)
	cmds := r.m.Stats().Commands
	h.write(`AT+QMTPUBEX=0,0,0,0,"up",5` + "\r")
	for r.m.Stats().Commands == cmds { // the command is in: the prompt is being held back
		time.Sleep(time.Millisecond)
	}
	p.publish(t, "dn/1", 0, []byte("early"))
	h.expect("\r\n+QMTRECV: 0,0,\"dn/1\",5,\"early\"\r\n")
	h.expect("\r\n> ")
	p.publish(t, "dn/2", 0, []byte("later"))
	h.quiet(100 * time.Millisecond) // held while the host types data
	h.write("hello")
	h.expect("\r\nOK\r\n")
	got := h.until("\"later\"\r\n") + h.until("+QMTPUBEX: 0,0,0\r\n")
	if !strings.Contains(got, "\r\n+QMTRECV: 0,0,\"dn/2\",5,\"later\"\r\n") {
		t.Fatalf("after the OK: %q", got)
	}
	if n := r.m.Stats().URCsBeforePrompt; n != 1 {
		t.Errorf("URCsBeforePrompt %d, want 1", n)
	}
	if m := p.next(t); string(m.Payload()) != "hello" {
		t.Errorf("broker got %q", m.Payload())
	}
}

// TestSplitPrompt: ">" comes alone; its space is the first byte of the next output.
func TestSplitPrompt(t *testing.T) {
	t.Parallel()
	r, _ := recvRig(t, Config{SplitPrompt: true})
	h := r.h
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"up",2`, "\r\n>")
	h.quiet(50 * time.Millisecond) // no space yet
	h.write("hi")
	h.expect(" \r\nOK\r\n")
	h.expect("\r\n+QMTPUBEX: 0,0,0\r\n")
	// The next command's answer has no space in front of it.
	h.cmd("AT", "\r\nOK\r\n")
}

// TestCoalesce: a publish to a topic the module is subscribed to brings its result and the
// message back; with Coalesce they reach the host in one read.
func TestCoalesce(t *testing.T) {
	t.Parallel()
	r, _ := recvRig(t, Config{Coalesce: 50 * time.Millisecond})
	h := r.h
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"dn/own",3`, "\r\n> ")
	before := r.m.Stats()
	h.write("own")
	result, own := "\r\n+QMTPUBEX: 0,0,0\r\n", "\r\n+QMTRECV: 0,0,\"dn/own\",3,\"own\"\r\n"
	// One read must hold the result and the downlink (in the order the broker's acknowledgement
	// and the message came back, which is not fixed).
	deadline := time.Now().Add(waitFor)
	for {
		got := string(h.buf)
		if strings.Contains(got, "+QMTPUBEX") != strings.Contains(got, "+QMTRECV") {
			t.Fatalf("one came without the other: %q", got)
		}
		if strings.Contains(got, "+QMTRECV") {
			if got != "\r\nOK\r\n"+result+own && got != "\r\nOK\r\n"+own+result {
				t.Fatalf("got %q", got)
			}
			break
		}
		if err := h.fill(deadline); err != nil {
			t.Fatalf("waiting: %q: %v", h.buf, err)
		}
	}
	after := r.m.Stats()
	if after.Coalesced <= before.Coalesced || after.CoalescedDownlinks <= before.CoalescedDownlinks {
		t.Errorf("Coalesced %d → %d, CoalescedDownlinks %d → %d: no joined write with the downlink",
			before.Coalesced, after.Coalesced, before.CoalescedDownlinks, after.CoalescedDownlinks)
	}
}

func TestNewRejectsBadDataPathConfig(t *testing.T) {
	for _, cfg := range []Config{{PromptDelay: -1}, {Coalesce: -1}, {RecvForm: RecvUnquoted + 1}} {
		cfg.Broker = "127.0.0.1:1"
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
