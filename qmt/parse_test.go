package qmt

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Wire examples from the reference (ec600-at.md), line by line, without CR LF.
func TestParseURCTable(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Event
	}{
		{"open ok (2.1 log)", "+QMTOPEN: 0,0", Opened{0, 0}},
		{"open negative", "+QMTOPEN: 0,-1", Opened{0, -1}},
		{"open dns", "+QMTOPEN: 1,4", Opened{1, 4}},
		{"open spaces", "+QMTOPEN:  2 , 5 ", Opened{2, 5}},
		{"close ok", "+QMTCLOSE: 0,0", LinkClosed{0, 0}},
		{"close failed", "+QMTCLOSE: 0,-1", LinkClosed{0, -1}},
		{"conn accepted", "+QMTCONN: 0,0,0", Connected{Client: 0, Result: 0, Code: 0, HasCode: true}},
		{"conn bad credentials", "+QMTCONN: 0,0,4", Connected{Client: 0, Result: 0, Code: 4, HasCode: true}},
		{"conn failed no code", "+QMTCONN: 0,2", Connected{Client: 0, Result: 2}},
		{"conn retransmitting", "+QMTCONN: 3,1", Connected{Client: 3, Result: 1}},
		{"disc ok (EC600S log)", "+QMTDISC: 0,0", Disconnected{0, 0}},
		{"disc failed", "+QMTDISC: 0,-1", Disconnected{0, -1}},
		{"sub granted 1 (EC800M log)", "+QMTSUB: 0,1,0,1", Subscribed{Client: 0, MsgID: 1, Result: 0, Values: []int{1}}},
		{"sub several", "+QMTSUB: 0,7,0,0,1,128", Subscribed{Client: 0, MsgID: 7, Result: 0, Values: []int{0, 1, 128}}},
		{"sub retrans count", "+QMTSUB: 0,2,1,3", Subscribed{Client: 0, MsgID: 2, Result: 1, Values: []int{3}}},
		{"sub no value", "+QMTSUB: 0,2,2", Subscribed{Client: 0, MsgID: 2, Result: 2}},
		{"uns ok", "+QMTUNS: 0,3,0", Unsubscribed{Client: 0, MsgID: 3, Result: 0}},
		{"uns extra field", "+QMTUNS: 0,3,1,2", Unsubscribed{Client: 0, MsgID: 3, Result: 1, Values: []int{2}}},
		{"pubex qos0 (2.6 log)", "+QMTPUBEX: 0,0,0", Published{Client: 0, MsgID: 0, Result: 0, Ex: true}},
		{"pub BG95 name", "+QMTPUB: 0,1,0", Published{Client: 0, MsgID: 1, Result: 0}},
		{"pubex retrans", "+QMTPUBEX: 0,65535,1,2", Published{Client: 0, MsgID: 65535, Result: 1, Values: []int{2}, Ex: true}},
		{"pubex EC800M space", "+QMTPUBEX: 0, 9,2", Published{Client: 0, MsgID: 9, Result: 2, Ex: true}},
		{"stat peer closed", "+QMTSTAT: 0,1", LinkStatus{0, 1}},
		{"stat reserved", "+QMTSTAT: 0,8", LinkStatus{0, 8}},
		{"ping failed", "+QMTPING: 0,1", PingFailed{0, 1}},
		{"ping ok", "+QMTPING: 0,0", PingOK{0}},
		{"buffer announcement", "+QMTRECV: 0,3", Stored{0, 3}},
		{"no-length form", `+QMTRECV: 0,0,"topic","payload"`, Received{Topic: "topic", Payload: []byte("payload"), NoLength: true}},
		{"no-length with quotes inside", `+QMTRECV: 1,5,"a/b","{"k":"v"}"`, Received{Client: 1, MsgID: 5, Topic: "a/b", Payload: []byte(`{"k":"v"}`), NoLength: true}},
		{"no-length empty payload", `+QMTRECV: 0,0,"t",""`, Received{Topic: "t", Payload: []byte{}, NoLength: true}},
		{"no-length spaces", `+QMTRECV: 0, 0, "t" , "p q"`, Received{Topic: "t", Payload: []byte("p q"), NoLength: true}},
		{"RDY", "RDY", ModuleReady{}},
		{"APP RDY", "APP RDY", AppReady{}},
		{"powered down", "POWERED DOWN", PoweredDown{}},
		{"cpin ready", "+CPIN: READY", SIMStatus{"READY"}},
		{"cpin pin", "+CPIN: SIM PIN", SIMStatus{"SIM PIN"}},
		{"pdpdeact", `+QIURC: "pdpdeact",1`, PDPDeactivated{1}},
		{"cereg 1 field", "+CEREG: 1", RegistrationChanged{Command: "CEREG", Stat: 1}},
		{"cereg location", `+CEREG: 5,"1A2B","01C2D3E4",7`, RegistrationChanged{Command: "CEREG", Stat: 5, Area: "1A2B", Cell: "01C2D3E4", AcT: 7, HasLocation: true, HasAcT: true}},
		{"creg unquoted", `+CREG: 2,1A2B,0000ABCD`, RegistrationChanged{Command: "CREG", Stat: 2, Area: "1A2B", Cell: "0000ABCD", HasLocation: true}},
		{"cgreg", "+CGREG: 0", RegistrationChanged{Command: "CGREG", Stat: 0}},
		{"cfun", "+CFUN: 1", Functionality{1}},
		{"qusim", "+QUSIM: 1", USIMStatus{1}},
		{"qind", "+QIND: SMS DONE", Indication{"SMS DONE"}},
		{"unknown", "HELLO", Unknown{"HELLO"}},
		{"unknown plus", "+QXYZ: 1", Unknown{"+QXYZ: 1"}},
		{"other qiurc", `+QIURC: "closed",2`, Unknown{`+QIURC: "closed",2`}},
		{"empty", "", Unknown{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseURC(tt.line, nil, false)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseURC(%q) = %#v, want %#v", tt.line, got, tt.want)
			}
		})
	}
}

// The length form arrives from at as a header line plus the counted payload bytes.
func TestParseURCCountedPayload(t *testing.T) {
	aliyun := `{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`
	if len(aliyun) != 92 {
		t.Fatalf("reference payload is %d bytes, the log says 92", len(aliyun))
	}
	tests := []struct {
		name    string
		header  string
		payload []byte
		want    Received
	}{
		{"aliyun log (2.7)", `+QMTRECV: 0,0,"/sys/a1VPyJEJRjJ/test01/thing/service/property/set",92`, []byte(aliyun),
			Received{Topic: "/sys/a1VPyJEJRjJ/test01/thing/service/property/set", Payload: []byte(aliyun)}},
		{"binary with CRLF and quotes", `+QMTRECV: 2,17,"bin",8`, []byte("a\"\r\nOK\r\n"),
			Received{Client: 2, MsgID: 17, Topic: "bin", Payload: []byte("a\"\r\nOK\r\n")}},
		{"topic with comma", `+QMTRECV: 0,1,"a,b",1`, []byte("x"), Received{MsgID: 1, Topic: "a,b", Payload: []byte("x")}},
		{"zero length", `+QMTRECV: 0,1,"t",0`, []byte{}, Received{MsgID: 1, Topic: "t", Payload: []byte{}}},
		{"spaces", `+QMTRECV: 0, 1, "t" , 2`, []byte("hi"), Received{MsgID: 1, Topic: "t", Payload: []byte("hi")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseURC(tt.header, tt.payload, true)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseURCMalformed(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		payload []byte
		framed  bool
		reason  string
	}{
		{"open one field", "+QMTOPEN: 0", nil, false, "needs 2 fields"},
		{"open text", "+QMTOPEN: 0,x", nil, false, `field 2 "x" is not a number`},
		{"open query answer", `+QMTOPEN: 0,"host",1883`, nil, false, "query answer"},
		{"conn one field", "+QMTCONN: 0", nil, false, "needs 2 or 3 fields"},
		{"sub two fields", "+QMTSUB: 0,1", nil, false, "at least 3 fields"},
		{"pubex empty field", "+QMTPUBEX: 0,,0", nil, false, `field 2 "" is not a number`},
		{"huge number", "+QMTSTAT: 0,99999999999", nil, false, "not a number"},
		{"stat empty", "+QMTSTAT:", nil, false, "not a number"},
		{"cpin empty", "+CPIN: ", nil, false, "no SIM state"},
		{"pdpdeact text", `+QIURC: "pdpdeact",x`, nil, false, "context id"},
		{"cereg query answer", "+CEREG: 0,1", nil, false, "AT+CEREG? answer"},
		{"cereg bad stat", "+CEREG: x", nil, false, "stat"},
		{"cfun text", "+CFUN: on", nil, false, "not a number"},
		{"recv slot status", "+QMTRECV: 0,0,0,0,0,0", nil, false, "slot status"},
		{"recv one field", "+QMTRECV: 0", nil, false, "needs 2 fields"},
		{"recv length mismatch", `+QMTRECV: 0,0,"t",5`, []byte("abc"), true, "announced 5 bytes but 3"},
		{"recv length not framed", `+QMTRECV: 0,0,"t",5`, nil, false, "no payload was framed"},
		{"recv negative length", `+QMTRECV: 0,0,"t",-1`, []byte{}, true, "negative length"},
		{"recv no topic", `+QMTRECV: 0,0,"t"`, nil, false, "no payload after the topic"},
		{"recv unclosed payload", `+QMTRECV: 0,0,"t","abc`, nil, false, "ends neither"},
		{"recv only topic quote", `+QMTRECV: 0,0,"t`, nil, false, "topic is not closed"},
		{"recv trailing junk", `+QMTRECV: 0,0,"t","abc"x`, nil, false, "ends neither"},
		{"recv one number before topic", `+QMTRECV: 0,"t","p"`, nil, false, "needs <client_idx>,<msgID>"},
		{"recv payload on wrong urc", "+QMTSTAT: 0,1", []byte("x"), true, "counted payload"},
		{"recv framed no length", `+QMTRECV: 0,0,"t","p"`, []byte("x"), true, "without a length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseURC(tt.line, tt.payload, tt.framed)
			m, ok := got.(Malformed)
			if !ok {
				t.Fatalf("parseURC(%q) = %#v, want Malformed", tt.line, got)
			}
			if m.Line != tt.line || m.Err == nil || !strings.Contains(m.Err.Error(), tt.reason) {
				t.Fatalf("Malformed = %q / %v, want line %q and a reason holding %q", m.Line, m.Err, tt.line, tt.reason)
			}
		})
	}
}

func TestRecvPayload(t *testing.T) {
	tests := []struct {
		head string
		n    int
		ok   bool
	}{
		{`+QMTRECV: 0,0,"/sys/a1VPyJEJRjJ/test01/thing/service/property/set",92,"`, 92, true},
		{`+QMTRECV: 0,0,"pump/01/cmd",23`, 23, true}, // next-line variant, at end of line
		{`+QMTRECV: 5,65535,"t",0,"`, 0, true},
		{`+QMTRECV: 0, 1, "t" , 7,"`, 7, true},
		{`+QMTRECV: 0,0,"a,"b",3,"`, 3, true}, // topic holding ," : the length is after the last quote
		{`+QMTRECV: 0,3`, 0, false},           // buffer announcement
		{`+QMTRECV: 0,0,"`, 0, false},         // the first ," : the topic has not been read yet
		{`+QMTRECV: 0,0,"topic","`, 0, false}, // no-length form
		{`+QMTRECV: 0,0,"topic","payload"`, 0, false},
		{`+QMTRECV: 0,0,"t",-1,"`, 0, false},
		{`+QMTRECV: 0,0,"t",x,"`, 0, false},
		{`+QMTRECV: 0,0,"t",1234567890,"`, 0, false},
		{`+QMTRECV: 0,0,0,0,0,0`, 0, false}, // AT+QMTRECV? answer
		{`+QMTRECV: x,0,"t",1,"`, 0, false},
		{`+QMTRECV: 0,"t",1,"`, 0, false},
		{`+QMTSTAT: 0,0,"t",1,"`, 0, false},
		{``, 0, false},
		{`+QMTRECV:`, 0, false},
	}
	for _, tt := range tests {
		n, ok := RecvPayload([]byte(tt.head))
		if n != tt.n || ok != tt.ok {
			t.Errorf("RecvPayload(%q) = %d, %v; want %d, %v", tt.head, n, ok, tt.n, tt.ok)
		}
	}
}

func TestRecvPayloadDoesNotAllocate(t *testing.T) {
	head := []byte(`+QMTRECV: 0,0,"some/topic",92,"`)
	allocs := testing.AllocsPerRun(100, func() { RecvPayload(head) })
	if allocs != 0 {
		t.Fatalf("RecvPayload allocates %v times per call", allocs)
	}
}

// String renders the canonical wire form; parsing it gives the event back.
func TestEventStringRoundTrip(t *testing.T) {
	lines := []string{
		"+QMTOPEN: 0,0", "+QMTOPEN: 0,-1", "+QMTCLOSE: 0,0", "+QMTCONN: 0,0,4", "+QMTCONN: 0,2",
		"+QMTDISC: 0,-1", "+QMTSUB: 0,1,0,1", "+QMTSUB: 0,7,0,0,1,128", "+QMTUNS: 0,3,0",
		"+QMTPUBEX: 0,0,0", "+QMTPUB: 0,1,1,2", "+QMTSTAT: 0,1", "+QMTPING: 0,1", "+QMTPING: 0,0",
		"+QMTRECV: 0,3", `+QMTRECV: 0,0,"topic","payload"`, "RDY", "POWERED DOWN", "+CPIN: READY",
		`+QIURC: "pdpdeact",1`, "+CEREG: 1", `+CEREG: 5,"1A2B","01C2D3E4",7`, `+CREG: 1,"1A2B","01C2D3E4"`,
		"+CFUN: 1", "+QUSIM: 1", "+QIND: SMS DONE", "whatever",
	}
	for _, l := range lines {
		ev := parseURC(l, nil, false)
		if _, bad := ev.(Malformed); bad {
			t.Errorf("%q parsed as %v", l, ev)
			continue
		}
		if got := ev.String(); got != l {
			t.Errorf("parse(%q).String() = %q", l, got)
		}
	}
	r := Received{Client: 1, MsgID: 2, Topic: "t", Payload: []byte("a\"\r\nb")}
	if got, want := r.String(), "+QMTRECV: 1,2,\"t\",5,\"a\"\r\nb\""; got != want {
		t.Errorf("Received.String() = %q, want %q", got, want)
	}
}

func TestEventErrors(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		text  string
		kinds []error
	}{
		{"conn bad credentials", parseURC("+QMTCONN: 0,0,4", nil, false).(Connected).Err(),
			"mqtt connect: broker refused the connection: bad user name or password (+QMTCONN: 0,0,4)",
			[]error{ErrRefused, ErrBadCredentials}},
		{"conn protocol", Connected{Result: 0, Code: 1, HasCode: true}.Err(), "unacceptable protocol version", []error{ErrRefused, ErrProtocolVersion}},
		{"conn id", Connected{Result: 0, Code: 2, HasCode: true}.Err(), "client identifier rejected", []error{ErrRefused, ErrIdentifierRejected}},
		{"conn server", Connected{Result: 0, Code: 3, HasCode: true}.Err(), "server unavailable", []error{ErrRefused, ErrServerUnavailable}},
		{"conn not authorized", Connected{Result: 0, Code: 5, HasCode: true}.Err(), "not authorized", []error{ErrRefused, ErrNotAuthorized}},
		{"conn unknown code", Connected{Result: 0, Code: 9, HasCode: true}.Err(), "unknown CONNACK return code 9", []error{ErrRefused}},
		{"conn send failed", Connected{Result: 2}.Err(), "failed to send CONNECT (+QMTCONN: 0,2)", []error{ErrSendFailed}},
		{"conn retrans", Connected{Result: 1}.Err(), "CONNECT being retransmitted", []error{ErrFailed}},
		{"open -1", Opened{0, -1}.Err(), "mqtt open: failed to open the network link (+QMTOPEN: 0,-1)", []error{ErrNetwork}},
		{"open 1", Opened{0, 1}.Err(), "rejected a parameter", []error{ErrWrongParameter}},
		{"open 2", Opened{0, 2}.Err(), "already in use", []error{ErrInUse}},
		{"open 3", Opened{0, 3}.Err(), "could not activate the PDP context", []error{ErrPDP}},
		{"open 4", Opened{0, 4}.Err(), "mqtt open: could not resolve the broker's host name (+QMTOPEN: 0,4)", []error{ErrDNS}},
		{"open 5", Opened{0, 5}.Err(), "network connection error", []error{ErrNetwork}},
		{"open 6", Opened{0, 6}.Err(), "unknown open result 6", []error{ErrFailed}},
		{"sub refused", Subscribed{Client: 0, MsgID: 1, Values: []int{1, 128}}.Err("a", "b/#"),
			`mqtt subscribe: broker refused the subscription to "b/#" (granted QoS 128) (+QMTSUB: 0,1,0,1,128)`, []error{ErrRefused}},
		{"sub failed", Subscribed{MsgID: 1, Result: 2}.Err(), "failed to send SUBSCRIBE", []error{ErrSendFailed}},
		{"uns failed", Unsubscribed{MsgID: 1, Result: 2}.Err(), "failed to send UNSUBSCRIBE", []error{ErrSendFailed}},
		{"pub failed", Published{MsgID: 1, Result: 2, Ex: true}.Err(), "mqtt publish: failed to send PUBLISH (+QMTPUBEX: 0,1,2)", []error{ErrSendFailed}},
		{"disc failed", Disconnected{0, -1}.Err(), "mqtt disconnect: the module failed to disconnect (+QMTDISC: 0,-1)", []error{ErrFailed}},
		{"close failed", LinkClosed{0, -1}.Err(), "mqtt close: the module failed to close the link (+QMTCLOSE: 0,-1)", []error{ErrFailed}},
		{"stat 1", LinkStatus{0, 1}.Err(), "mqtt link lost: connection closed or reset by the peer (+QMTSTAT: 0,1)", []error{ErrLinkLost}},
		{"stat 8", LinkStatus{0, 8}.Err(), "mqtt link lost: link not alive or server unavailable: the module closed the link itself (code 8: EC200-family firmware does so after QoS 1 retransmissions) (+QMTSTAT: 0,8)", []error{ErrLinkLost}},
		{"stat 9", LinkStatus{0, 9}.Err(), "link not alive or server unavailable (reserved code 9)", []error{ErrLinkLost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(tt.err.Error(), tt.text) {
				t.Errorf("error %q does not hold %q", tt.err, tt.text)
			}
			for _, k := range tt.kinds {
				if !errors.Is(tt.err, k) {
					t.Errorf("errors.Is(%q, %v) = false", tt.err, k)
				}
			}
			if errors.Is(tt.err, ErrDNS) != (tt.kinds[0] == ErrDNS) {
				t.Errorf("errors.Is(%q, ErrDNS) is wrong", tt.err)
			}
		})
	}
	successes := []interface{ Err() error }{Opened{0, 0}, Connected{HasCode: true}, Connected{}, Disconnected{}, LinkClosed{}, Unsubscribed{}, Published{}}
	for _, s := range successes {
		if err := s.Err(); err != nil {
			t.Errorf("%v.Err() = %v, want nil", s, err)
		}
	}
	if err := (Subscribed{Values: []int{0, 1, 2}}).Err(); err != nil {
		t.Errorf("granted 0,1,2: %v", err)
	}
}

func TestLinkStatusReasons(t *testing.T) {
	for code := 1; code <= 7; code++ {
		r := LinkStatus{Code: code}.Reason()
		if r == "" || strings.HasPrefix(r, "unknown") {
			t.Errorf("code %d has no meaning: %q", code, r)
		}
	}
	if !strings.HasPrefix(LinkStatus{Code: 8}.Reason(), LinkStatusText(7)) {
		t.Errorf("code 8 not read as 7: %q", LinkStatus{Code: 8}.Reason())
	}
}
