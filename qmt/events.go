package qmt

import (
	"strconv"
	"strings"
)

// Event is one unsolicited line from the module, decoded. The concrete types are listed below;
// switch on them. String renders the event as the module prints it (without the CR LF around it),
// in the canonical form: no spaces after commas, and only the fields the reference documents.
type Event interface {
	String() string
	event()
}

// Received is a message the broker delivered: +QMTRECV in direct mode, or one line read out of a
// buffer slot with ReadStored.
type Received struct {
	Client   int
	MsgID    int // MQTT packet id of the incoming PUBLISH; 0 for QoS 0
	Topic    string
	Payload  []byte
	NoLength bool // came in the form without a length field (recv/mode msg_len_enable 0)
}

// Stored announces a message kept in a buffer slot (recv/mode 1): +QMTRECV: <idx>,<slot>.
// Read it with Client.ReadStored.
type Stored struct{ Client, Slot int }

// LinkStatus is +QMTSTAT: the client's link changed state and it is no longer connected.
type LinkStatus struct{ Client, Code int }

// PingFailed is +QMTPING with a result other than 0: the keep-alive exchange failed and the link
// is probably dead (expect a +QMTSTAT).
type PingFailed struct{ Client, Result int }

// PingOK is +QMTPING with result 0.
type PingOK struct{ Client int }

// Opened is the result of AT+QMTOPEN: +QMTOPEN: <idx>,<result>.
type Opened struct{ Client, Result int }

// LinkClosed is the result of AT+QMTCLOSE: +QMTCLOSE: <idx>,<result>.
type LinkClosed struct{ Client, Result int }

// Connected is the result of AT+QMTCONN: +QMTCONN: <idx>,<result>[,<ret_code>]. Success is result
// 0 with ret_code 0.
type Connected struct {
	Client, Result int
	Code           int  // CONNACK return code, when HasCode
	HasCode        bool // the ret_code field was present
}

// Disconnected is the result of AT+QMTDISC: +QMTDISC: <idx>,<result>.
type Disconnected struct{ Client, Result int }

// Subscribed is the result of AT+QMTSUB: +QMTSUB: <idx>,<msgID>,<result>[,<value>...]. With
// result 0 Values are the granted QoS per topic (128 = refused); with result 1 the retransmission
// count.
type Subscribed struct {
	Client, MsgID, Result int
	Values                []int
}

// Unsubscribed is the result of AT+QMTUNS: +QMTUNS: <idx>,<msgID>,<result>[,<value>...].
type Unsubscribed struct {
	Client, MsgID, Result int
	Values                []int
}

// Published is the result of a publish: +QMTPUBEX: or +QMTPUB: <idx>,<msgID>,<result>[,<value>].
// With result 1 the value is the retransmission count.
type Published struct {
	Client, MsgID, Result int
	Values                []int
	Ex                    bool // the module named it +QMTPUBEX (else +QMTPUB)
}

// ModuleReady is RDY: the module (re)started and the AT port is ready. All MQTT state is gone.
type ModuleReady struct{}

// AppReady is APP RDY, the second ready URC some families print after RDY (a BG77 at power-on;
// an EC200U late after a reset). It follows a RDY: on its own it says no more than that the
// module's applications are up, and it ends no call.
type AppReady struct{}

// PoweredDown is POWERED DOWN: the module is about to switch off. AT+CFUN=1,1 prints it too.
type PoweredDown struct{}

// SIMStatus is +CPIN: <state>, e.g. READY, SIM PIN, SIM PUK.
type SIMStatus struct{ State string }

// PDPDeactivated is +QIURC: "pdpdeact",<contextID>: the network deactivated the PDP context and
// every socket on it, the MQTT link included, is gone.
type PDPDeactivated struct{ ContextID int }

// RegistrationChanged is a +CEREG/+CGREG/+CREG URC (enabled with n >= 1): <stat>[,"<area>","<cell>"[,<AcT>]].
type RegistrationChanged struct {
	Command     string // "CEREG", "CGREG" or "CREG"
	Stat        int
	Area, Cell  string // tac/lac and cell id in hex, when HasLocation
	AcT         int    // access technology (7 = E-UTRAN), when HasAcT
	HasLocation bool
	HasAcT      bool
}

// Registered reports whether the module can carry data: registered at home (1) or roaming (5).
func (r RegistrationChanged) Registered() bool { return r.Stat == 1 || r.Stat == 5 }

// Functionality is +CFUN: <fun> (1 full, 0 minimum, 4 airplane).
type Functionality struct{ Level int }

// USIMStatus is +QUSIM: <n> (1: USIM inserted).
type USIMStatus struct{ Value int }

// Indication is +QIND: <text>, e.g. "SMS DONE", "PB DONE".
type Indication struct{ Text string }

// Unknown is a line no parser here knows.
type Unknown struct{ Line string }

// Malformed is a line with a known prefix that does not have the documented shape; Err says why.
type Malformed struct {
	Line string
	Err  error
}

func (Received) event()            {}
func (Stored) event()              {}
func (LinkStatus) event()          {}
func (PingFailed) event()          {}
func (PingOK) event()              {}
func (Opened) event()              {}
func (LinkClosed) event()          {}
func (Connected) event()           {}
func (Disconnected) event()        {}
func (Subscribed) event()          {}
func (Unsubscribed) event()        {}
func (Published) event()           {}
func (ModuleReady) event()         {}
func (PoweredDown) event()         {}
func (AppReady) event()            {}
func (SIMStatus) event()           {}
func (PDPDeactivated) event()      {}
func (RegistrationChanged) event() {}
func (Functionality) event()       {}
func (USIMStatus) event()          {}
func (Indication) event()          {}
func (Unknown) event()             {}
func (Malformed) event()           {}

// ints renders prefix followed by the numbers, comma-separated.
func ints(prefix string, vs ...int) string {
	b := make([]byte, 0, len(prefix)+4*len(vs))
	b = append(b, prefix...)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return string(b)
}

// String gives `+QMTRECV: <idx>,<msgID>,"<topic>",<len>,"<payload>"` (or the form without length).
func (e Received) String() string {
	var b strings.Builder
	b.WriteString(ints("+QMTRECV: ", e.Client, e.MsgID))
	b.WriteString(`,"`)
	b.WriteString(e.Topic)
	b.WriteString(`",`)
	if !e.NoLength {
		b.WriteString(strconv.Itoa(len(e.Payload)))
		b.WriteString(",")
	}
	b.WriteString(`"`)
	b.Write(e.Payload)
	b.WriteString(`"`)
	return b.String()
}

// String gives `+QMTRECV: <idx>,<slot>`.
func (e Stored) String() string { return ints("+QMTRECV: ", e.Client, e.Slot) }

// String gives `+QMTSTAT: <idx>,<code>`.
func (e LinkStatus) String() string { return ints("+QMTSTAT: ", e.Client, e.Code) }

// Reason says in words what the code means (8 and above read as 7).
func (e LinkStatus) Reason() string { return LinkStatusText(e.Code) }

// Err gives the status as a *LinkError (ErrLinkLost).
func (e LinkStatus) Err() error {
	return &LinkError{Client: e.Client, Code: e.Code, Line: e.String()}
}

// String gives `+QMTPING: <idx>,<result>`.
func (e PingFailed) String() string { return ints("+QMTPING: ", e.Client, e.Result) }

// String gives `+QMTPING: <idx>,0`.
func (e PingOK) String() string { return ints("+QMTPING: ", e.Client, 0) }

// String gives `+QMTOPEN: <idx>,<result>`.
func (e Opened) String() string { return ints("+QMTOPEN: ", e.Client, e.Result) }

// Err is nil when the link opened, else a *ResultError saying why not.
func (e Opened) Err() error {
	if e.Result == 0 {
		return nil
	}
	return &ResultError{Op: OpOpen, Client: e.Client, Result: e.Result, Line: e.String()}
}

// String gives `+QMTCLOSE: <idx>,<result>`.
func (e LinkClosed) String() string { return ints("+QMTCLOSE: ", e.Client, e.Result) }

// Err is nil when the link was closed, else a *ResultError.
func (e LinkClosed) Err() error {
	if e.Result == 0 {
		return nil
	}
	return &ResultError{Op: OpClose, Client: e.Client, Result: e.Result, Line: e.String()}
}

// String gives `+QMTCONN: <idx>,<result>[,<ret_code>]`.
func (e Connected) String() string {
	if e.HasCode {
		return ints("+QMTCONN: ", e.Client, e.Result, e.Code)
	}
	return ints("+QMTCONN: ", e.Client, e.Result)
}

// Err is nil when the broker accepted the connection (result 0, ret_code 0 or absent), else a
// *ResultError, e.g. "broker refused the connection: bad user name or password".
func (e Connected) Err() error {
	if e.Result == 0 && (!e.HasCode || e.Code == 0) {
		return nil
	}
	return &ResultError{Op: OpConnect, Client: e.Client, Result: e.Result, Code: e.Code, Line: e.String()}
}

// String gives `+QMTDISC: <idx>,<result>`.
func (e Disconnected) String() string { return ints("+QMTDISC: ", e.Client, e.Result) }

// Err is nil on success, else a *ResultError.
func (e Disconnected) Err() error {
	if e.Result == 0 {
		return nil
	}
	return &ResultError{Op: OpDisconnect, Client: e.Client, Result: e.Result, Line: e.String()}
}

// String gives `+QMTSUB: <idx>,<msgID>,<result>[,<value>...]`.
func (e Subscribed) String() string {
	return ints("+QMTSUB: ", append([]int{e.Client, e.MsgID, e.Result}, e.Values...)...)
}

// Err is nil when every topic was granted, else a *ResultError (ErrRefused for a granted QoS of
// 128; topics, when given, name the refused topic).
func (e Subscribed) Err(topics ...string) error {
	if e.Result != 0 {
		return &ResultError{Op: OpSubscribe, Client: e.Client, MsgID: e.MsgID, Result: e.Result, Line: e.String()}
	}
	for i, q := range e.Values {
		if q == 128 {
			re := &ResultError{Op: OpSubscribe, Client: e.Client, MsgID: e.MsgID, Code: 128, Line: e.String()}
			if i < len(topics) {
				re.Topic = topics[i]
			}
			return re
		}
	}
	return nil
}

// String gives `+QMTUNS: <idx>,<msgID>,<result>[,<value>...]`.
func (e Unsubscribed) String() string {
	return ints("+QMTUNS: ", append([]int{e.Client, e.MsgID, e.Result}, e.Values...)...)
}

// Err is nil on success, else a *ResultError.
func (e Unsubscribed) Err() error {
	if e.Result == 0 {
		return nil
	}
	return &ResultError{Op: OpUnsubscribe, Client: e.Client, MsgID: e.MsgID, Result: e.Result, Line: e.String()}
}

// String gives `+QMTPUBEX: <idx>,<msgID>,<result>[,<value>]` (or +QMTPUB:).
func (e Published) String() string {
	p := "+QMTPUB: "
	if e.Ex {
		p = "+QMTPUBEX: "
	}
	return ints(p, append([]int{e.Client, e.MsgID, e.Result}, e.Values...)...)
}

// Err is nil when the message was sent (and, for QoS 1/2, acknowledged), else a *ResultError.
func (e Published) Err() error {
	if e.Result == 0 {
		return nil
	}
	return &ResultError{Op: OpPublish, Client: e.Client, MsgID: e.MsgID, Result: e.Result, Line: e.String()}
}

// String gives RDY.
func (ModuleReady) String() string { return "RDY" }

// String gives APP RDY.
func (AppReady) String() string { return "APP RDY" }

// String gives POWERED DOWN.
func (PoweredDown) String() string { return "POWERED DOWN" }

// String gives `+CPIN: <state>`.
func (e SIMStatus) String() string { return "+CPIN: " + e.State }

// String gives `+QIURC: "pdpdeact",<contextID>`.
func (e PDPDeactivated) String() string { return `+QIURC: "pdpdeact",` + strconv.Itoa(e.ContextID) }

// String gives `+CEREG: <stat>[,"<area>","<cell>"[,<AcT>]]`.
func (e RegistrationChanged) String() string {
	var b strings.Builder
	b.WriteString("+" + e.Command + ": " + strconv.Itoa(e.Stat))
	if e.HasLocation {
		b.WriteString(`,"` + e.Area + `","` + e.Cell + `"`)
		if e.HasAcT {
			b.WriteString("," + strconv.Itoa(e.AcT))
		}
	}
	return b.String()
}

// Reason says the registration state in words.
func (e RegistrationChanged) Reason() string { return RegStatText(e.Stat) }

// String gives `+CFUN: <fun>`.
func (e Functionality) String() string { return "+CFUN: " + strconv.Itoa(e.Level) }

// String gives `+QUSIM: <n>`.
func (e USIMStatus) String() string { return "+QUSIM: " + strconv.Itoa(e.Value) }

// String gives `+QIND: <text>`.
func (e Indication) String() string { return "+QIND: " + e.Text }

// String gives the line as received.
func (e Unknown) String() string { return e.Line }

// String gives the line as received.
func (e Malformed) String() string { return e.Line }
