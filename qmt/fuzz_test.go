package qmt

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// frame splits one URC's wire bytes (without the final CR LF) the way the at reader does with
// RecvPayload: at each `,"` it asks RecvPayload whether a counted payload starts, and if so takes
// exactly n bytes, which must be followed by the closing quote. It gives what at.Line would hold.
func frame(wire []byte) (text string, payload []byte, framed bool, ok bool) {
	if !bytes.HasPrefix(wire, []byte(recvPrefix)) {
		return string(wire), nil, false, true
	}
	for i := 1; i < len(wire); i++ {
		if wire[i] != '"' || wire[i-1] != ',' {
			continue
		}
		n, yes := RecvPayload(wire[:i+1])
		if !yes {
			continue
		}
		end := i + 1 + n
		if end >= len(wire) || wire[end] != '"' || end != len(wire)-1 {
			return "", nil, false, false // bad trailer
		}
		return string(wire[:i-1]), append([]byte{}, wire[i+1:end]...), true, true
	}
	return string(wire), nil, false, true
}

func FuzzParseURC(f *testing.F) {
	for _, s := range []string{
		"+QMTOPEN: 0,0", "+QMTOPEN: 0,-1", "+QMTCONN: 0,0,4", "+QMTSUB: 0,1,0,1", "+QMTPUBEX: 0, 9,2",
		"+QMTRECV: 0,3", `+QMTRECV: 0,0,"topic","payload"`, `+QMTRECV: 0,0,"t",5`, "+QMTSTAT: 0,1",
		"+QMTPING: 0,1", "RDY", "POWERED DOWN", "+CPIN: READY", `+QIURC: "pdpdeact",1`,
		`+CEREG: 5,"1A2B","01C2D3E4",7`, "+CFUN: 1", "+QIND: SMS DONE", "+QMTRECV: 0,0,0,0,0,0", `+QMTRECV: 0,0,"`,
	} {
		f.Add(s, []byte(nil))
	}
	f.Add(`+QMTRECV: 0,0,"t",3`, []byte("a\"b"))
	f.Fuzz(func(t *testing.T, line string, payload []byte) {
		ev := parseURC(line, payload, payload != nil)
		switch e := ev.(type) {
		case Unknown:
			if e.Line != line {
				t.Fatalf("Unknown lost the line: %q", e.Line)
			}
			return
		case Malformed:
			if e.Err == nil || e.Line != line {
				t.Fatalf("Malformed without a reason or line: %#v", e)
			}
			return
		}
		// A decoded event renders a canonical line that decodes to the same event.
		if r, isRecv := ev.(Received); isRecv {
			if r.NoLength {
				// The at reader would try RecvPayload on this line too; the payload may happen to
				// look like a length header. Parse the line as a whole, as at delivers it otherwise.
				if again := parseURC(ev.String(), nil, false); !reflect.DeepEqual(again, ev) {
					t.Fatalf("%q -> %#v -> %q -> %#v", line, ev, ev.String(), again)
				}
				return
			}
			if strings.Contains(r.Topic, `"`) {
				return // a topic holding `",<n>,"` is ambiguous on the wire itself
			}
		}
		text, pl, framed, ok := frame([]byte(ev.String()))
		if !ok {
			t.Fatalf("%#v renders %q, which does not frame", ev, ev.String())
		}
		again := parseURC(text, pl, framed)
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("%q -> %#v -> %q -> %#v", line, ev, ev.String(), again)
		}
	})
}

// FuzzReceivedRoundTrip: a +QMTRECV in the length form, framed as at would frame it, parses to
// the same message, and String gives the wire bytes back, for any payload bytes.
func FuzzReceivedRoundTrip(f *testing.F) {
	f.Add(0, 0, "/sys/a1VPyJEJRjJ/test01/thing/service/property/set", []byte(`{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`))
	f.Add(5, 65535, "a,b", []byte("\"\r\nOK\r\n\","))
	f.Add(1, 1, "t", []byte{})
	f.Fuzz(func(t *testing.T, client, msgID int, topic string, payload []byte) {
		if client < 0 || client > 5 || msgID < 0 || msgID > MaxMsgID || checkQuoted("topic", topic, false) != nil {
			t.Skip()
		}
		want := Received{Client: client, MsgID: msgID, Topic: topic, Payload: payload}
		if want.Payload == nil {
			want.Payload = []byte{}
		}
		wire := want.String()
		text, pl, framed, ok := frame([]byte(wire))
		if !ok || !framed {
			t.Fatalf("%q did not frame (ok %v framed %v)", wire, ok, framed)
		}
		got := parseURC(text, pl, framed)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q -> %#v, want %#v", wire, got, want)
		}
		if got.String() != wire {
			t.Fatalf("round trip %q -> %q", wire, got.String())
		}
	})
}

// FuzzRecvPayload: never panics; what it accepts is a header that parses with a payload of
// exactly n bytes.
func FuzzRecvPayload(f *testing.F) {
	for _, s := range []string{`+QMTRECV: 0,0,"t",92,"`, `+QMTRECV: 0,0,"t",23`, `+QMTRECV: 0,3`, `+QMTRECV: 0,0,"t","`, `+QMTRECV: 0,0,"a,"b",3,"`,
		`+QMTRECV: 0,0,"t",86,`, `+QMTRECV: 0,0,"t",`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		keep := append([]byte{}, head...)
		n, ok := RecvPayload(head)
		if !bytes.Equal(keep, head) {
			t.Fatal("RecvPayload changed head")
		}
		if !ok {
			return
		}
		if n < 0 {
			t.Fatalf("negative length %d accepted", n)
		}
		text, quoted := strings.CutSuffix(string(head), `,"`)
		if !quoted {
			text = strings.TrimSuffix(text, ",") // the unquoted same-line form
		}
		ev := parseURC(text, make([]byte, n), true)
		if r, isRecv := ev.(Received); !isRecv || len(r.Payload) != n {
			t.Fatalf("RecvPayload(%q) = %d but the header parses as %#v", head, n, ev)
		}
	})
}

// FuzzNumericURC: every numeric result URC, built from fields, renders and parses back exactly.
func FuzzNumericURC(f *testing.F) {
	f.Add(uint8(0), 0, 0, 0, 1, uint8(1))
	f.Add(uint8(3), 0, 1, 0, 128, uint8(2))
	f.Fuzz(func(t *testing.T, kind uint8, a, b, c, d int, nvals uint8) {
		fit := func(v int) int { return v % 1_000_000_000 }
		a, b, c, d = fit(a), fit(b), fit(c), fit(d)
		var values []int
		for i := 0; i < int(nvals%4); i++ {
			values = append(values, d+i)
		}
		var ev Event
		switch kind % 12 {
		case 0:
			ev = Opened{a, b}
		case 1:
			ev = LinkClosed{a, b}
		case 2:
			ev = Connected{Client: a, Result: b, Code: c, HasCode: nvals%2 == 1}
		case 3:
			ev = Subscribed{Client: a, MsgID: b, Result: c, Values: values}
		case 4:
			ev = Unsubscribed{Client: a, MsgID: b, Result: c, Values: values}
		case 5:
			ev = Published{Client: a, MsgID: b, Result: c, Values: values, Ex: nvals%2 == 1}
		case 6:
			ev = Disconnected{a, b}
		case 7:
			ev = LinkStatus{a, b}
		case 8:
			if b == 0 {
				ev = PingOK{a}
			} else {
				ev = PingFailed{a, b}
			}
		case 9:
			ev = Stored{a, b}
		case 10:
			ev = PDPDeactivated{a}
		default:
			ev = RegistrationChanged{Command: "CEREG", Stat: a}
		}
		if !canFuzzValues(ev) {
			t.Skip()
		}
		wire := ev.String()
		got := parseURC(wire, nil, false)
		if !reflect.DeepEqual(got, ev) || got.String() != wire {
			t.Fatalf("%#v -> %q -> %#v", ev, wire, got)
		}
	})
}

// canFuzzValues excludes a Connected without a code but with Code set (it renders without it).
func canFuzzValues(ev Event) bool {
	if c, ok := ev.(Connected); ok && !c.HasCode && c.Code != 0 {
		return false
	}
	return true
}
