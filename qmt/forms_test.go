package qmt

import (
	"io"
	"reflect"
	"strconv"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gatewayd/gatewayd/at"
)

// pipePort is the host side of a port whose module output is r (wrapped in an iotest reader);
// what the host writes is dropped.
type pipePort struct{ io.Reader }

func (pipePort) Write(p []byte) (int, error) { return len(p), nil }

// formsPayload holds everything that could end a payload early or be trimmed: CR LF, an "OK"
// line, raw quotes around a length-like field, leading and trailing whitespace and multi-byte
// UTF-8 (the NB-IoT capture's e3 80 80 "this  that ").
const formsPayload = "\xe3\x80\x80this  that \r\n\"q\",5,\"x\r\nOK\r\n "

// TestRecvFormsThroughTheReader: every +QMTRECV form of reference 9.1 — the payload in quotes,
// with empty lines around it, on the next line, unquoted on the same line — through a real
// at.Conn with URCs(), the bytes handed over one at a time, in halves and whole: each downlink
// is one Received with the exact topic and payload bytes (a raw topic holding `"`, CR and LF
// included), and the lines after them are their own events.
func TestRecvFormsThroughTheReader(t *testing.T) {
	p := formsPayload
	n := strconv.Itoa(len(p))
	wire := "\r\n+QMTRECV: 0,1,\"dev/cmd\"," + n + ",\"" + p + "\"\r\n" +
		"\r\n\r\n+QMTRECV: 0,2,\"dev/cmd\"," + n + ",\"" + p + "\"\r\n\r\n" +
		"\r\n+QMTRECV: 0,3,\"pump/01/cmd\"," + n + "\r\n" + p + "\r\n" +
		"\r\n+QMTRECV: 0,4,\"dev/cmd\"," + n + "," + p + "\r\n" +
		"\r\n+QMTRECV: 0,5,\"a\"b\r\n+QMTPUBEX: 0,7,0\r\nc\"," + n + "\r\n" + p + "\r\n" +
		"\r\n+QMTRECV: 0,6,\"a\"b\r\nc\"," + n + "," + p + "\r\n" +
		"\r\n+QMTRECV: 0,7,\"t\",0,\r\n" +
		"\r\n+QMTRECV: 0,8,\"t\",0\r\n\r\n" +
		"\r\n+QMTRECV: 0,9,\"t\",2,\r\n\r\n" +
		"\r\n+QMTRECV: 0,10,\"t\",3,{\"a\r\n" +
		"\r\n+QMTPUBEX: 0,9,0\r\n\r\n+QMTSTAT: 0,1\r\n"
	want := []Event{
		Received{Client: 0, MsgID: 1, Topic: "dev/cmd", Payload: []byte(p)},
		Received{Client: 0, MsgID: 2, Topic: "dev/cmd", Payload: []byte(p)},
		Received{Client: 0, MsgID: 3, Topic: "pump/01/cmd", Payload: []byte(p)},
		Received{Client: 0, MsgID: 4, Topic: "dev/cmd", Payload: []byte(p)},
		Received{Client: 0, MsgID: 5, Topic: "a\"b\r\n+QMTPUBEX: 0,7,0\r\nc", Payload: []byte(p)},
		Received{Client: 0, MsgID: 6, Topic: "a\"b\r\nc", Payload: []byte(p)},
		Received{Client: 0, MsgID: 7, Topic: "t", Payload: []byte{}},
		Received{Client: 0, MsgID: 8, Topic: "t", Payload: []byte{}},
		Received{Client: 0, MsgID: 9, Topic: "t", Payload: []byte("\r\n")},
		Received{Client: 0, MsgID: 10, Topic: "t", Payload: []byte("{\"a")},
		Published{Client: 0, MsgID: 9, Result: 0, Ex: true},
		LinkStatus{Client: 0, Code: 1},
	}
	for _, w := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"OneByteReader", iotest.OneByteReader},
		{"HalfReader", iotest.HalfReader},
	} {
		t.Run(w.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			conn := at.New(pipePort{w.wrap(pr)}, at.Options{URCs: URCs()})
			defer conn.Close()
			defer pw.Close()
			sub := conn.Subscribe()
			go func() { _, _ = pw.Write([]byte(wire)) }()
			for i, we := range want {
				select {
				case l := <-sub.C():
					if got := ParseURC(l); !reflect.DeepEqual(got, we) {
						t.Fatalf("event %d: got %#v\nwant %#v", i, got, we)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("event %d (%v) never came", i, we)
				}
			}
		})
	}
}

// TestRecvFormsHeaders: RecvPayload and RecvRawTopic on the headers of each form.
func TestRecvFormsHeaders(t *testing.T) {
	for _, tt := range []struct {
		head  string
		n     int
		ok    bool
		raw   bool // RecvRawTopic: a CR or LF here is part of the topic (after a ',' the reader asks RecvPayload first)
		ok0   bool // the modes without a length field (recvPayloadQuoted)
		descr string
	}{
		{`+QMTRECV: 0,0,"t",86,`, 86, true, true, false, "unquoted on the same line (BC25)"},
		{`+QMTRECV: 0,0,"t",23`, 23, true, false, true, "next line (EC200U note)"},
		{`+QMTRECV: 0,0,"t",23,"`, 23, true, true, true, "quoted"},
		{`+QMTRECV: 0,0,"a"b",5,`, 5, true, true, false, "topic holding a quote"},
		{`+QMTRECV: 0,0,"a"b",5`, 5, true, false, true, "topic holding a quote, next line"},
		{`+QMTRECV: 0,0,"t",`, 0, false, true, false, "no length yet"},
		{`+QMTRECV: 0,0,"t`, 0, false, true, false, "topic open"},
		{`+QMTRECV: 0,0,"a,`, 0, false, true, false, "comma inside the topic"},
		{`+QMTRECV: 0,0,"t","p,`, 0, false, true, false, "no-length form, comma in the payload"},
		{`+QMTRECV: 0,0,`, 0, false, false, false, "before the topic"},
		{`+QMTRECV: 0,`, 0, false, false, false, "before the msgID"},
		{`+QMTRECV: 0,0,"t",-1,`, 0, false, true, false, "negative length"},
		{`+QMTRECV: 0,0,"t",5,x,`, 0, false, true, false, "something after the length"},
	} {
		n, ok := RecvPayload([]byte(tt.head))
		if n != tt.n || ok != tt.ok {
			t.Errorf("%s: RecvPayload(%q) = %d, %v; want %d, %v", tt.descr, tt.head, n, ok, tt.n, tt.ok)
		}
		if _, ok0 := recvPayloadQuoted([]byte(tt.head)); ok0 != tt.ok0 {
			t.Errorf("%s: recvPayloadQuoted(%q) ok %v, want %v", tt.descr, tt.head, ok0, tt.ok0)
		}
		if raw := RecvRawTopic([]byte(tt.head)); raw != tt.raw {
			t.Errorf("%s: RecvRawTopic(%q) = %v, want %v", tt.descr, tt.head, raw, tt.raw)
		}
	}
	for _, head := range []string{`+QMTRECV: 0,0,"t",86,`, `+QMTRECV: 0,0,"t",23`} {
		b := []byte(head)
		if a := testing.AllocsPerRun(100, func() { RecvPayload(b); RecvRawTopic(b) }); a != 0 {
			t.Errorf("%s: %v allocations", head, a)
		}
	}
}
