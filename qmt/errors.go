package qmt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kinds of failure. Every error the Client returns for a reported outcome wraps one or more of
// these, so callers decide with errors.Is what to do next (retry later, fix the configuration, ...).
var (
	// ErrNetwork: the module could not open or keep the TCP/TLS link (+QMTOPEN -1 or 5).
	ErrNetwork = errors.New("network link failed")
	// ErrDNS: the broker's host name could not be resolved (+QMTOPEN 4).
	ErrDNS = errors.New("host name not resolved")
	// ErrPDP: the PDP context (mobile data) could not be activated (+QMTOPEN 3).
	ErrPDP = errors.New("PDP context not activated")
	// ErrInUse: the client index is already in use (+QMTOPEN 2).
	ErrInUse = errors.New("client index already in use")
	// ErrWrongParameter: the module rejected a parameter of the command (+QMTOPEN 1).
	ErrWrongParameter = errors.New("wrong parameter")
	// ErrRefused: the broker refused (CONNACK return code 1-5, or a subscription granted QoS 128).
	ErrRefused = errors.New("refused by the broker")
	// ErrProtocolVersion: CONNACK 1, unacceptable protocol version (also ErrRefused).
	ErrProtocolVersion = errors.New("unacceptable protocol version")
	// ErrIdentifierRejected: CONNACK 2, client identifier rejected (also ErrRefused).
	ErrIdentifierRejected = errors.New("client identifier rejected")
	// ErrServerUnavailable: CONNACK 3, server unavailable (also ErrRefused).
	ErrServerUnavailable = errors.New("server unavailable")
	// ErrBadCredentials: CONNACK 4, bad user name or password (also ErrRefused).
	ErrBadCredentials = errors.New("bad user name or password")
	// ErrNotAuthorized: CONNACK 5, not authorized (also ErrRefused).
	ErrNotAuthorized = errors.New("not authorized")
	// ErrSendFailed: the module failed to send the packet (result 2 of CONN/SUB/UNS/PUB).
	ErrSendFailed = errors.New("failed to send the packet")
	// ErrFailed: DISC or CLOSE reported -1, or another result the tables do not know.
	ErrFailed = errors.New("operation failed")
	// ErrLinkLost: the module reported +QMTSTAT for the client while a call waited for its result.
	ErrLinkLost = errors.New("MQTT link lost")
	// ErrModuleReset: the module restarted (RDY) or powered down while a call waited.
	ErrModuleReset = errors.New("module restarted")
	// ErrNoResult: the module sent no result within the documented worst-case time.
	ErrNoResult = errors.New("no result from the module in time")
	// ErrClientClosed: the Client was closed, or its at.Conn ended, while a call waited.
	ErrClientClosed = errors.New("mqtt client closed")
	// ErrNoMsgID: all 65535 message identifiers are in flight.
	ErrNoMsgID = errors.New("no free message identifier")
	// ErrInvalidString: a string would end or split the quoted AT parameter it goes into.
	ErrInvalidString = errors.New("string not allowed in an AT command")
	// ErrInvalidArgument: a number or length is out of the range the module accepts.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnexpectedAnswer: a query answer did not have the shape the reference gives.
	ErrUnexpectedAnswer = errors.New("unexpected answer from the module")
)

// Operation names used in errors (ResultError.Op, LinkError.Op).
const (
	OpOpen        = "open"
	OpClose       = "close"
	OpConnect     = "connect"
	OpDisconnect  = "disconnect"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPublish     = "publish"
)

// ResultError is an unsuccessful outcome reported by the module in a result URC, such as
// `+QMTCONN: 0,0,4`. Its Error says in words what happened; errors.Is matches its kinds
// (ErrRefused and ErrBadCredentials for that example).
type ResultError struct {
	Op     string // OpOpen, OpConnect, ...
	Client int    // client index
	MsgID  int    // message identifier, for subscribe/unsubscribe/publish; else 0
	Result int    // the <result> field
	Code   int    // CONNACK ret_code for connect, the refused granted QoS (128) for subscribe; else 0
	Topic  string // for a refused subscription: which topic
	Line   string // the URC as received, e.g. "+QMTCONN: 0,0,4"
}

// Error reads e.g. "mqtt connect: broker refused the connection: bad user name or password
// (+QMTCONN: 0,0,4)".
func (e *ResultError) Error() string {
	var b strings.Builder
	b.WriteString("mqtt ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Words())
	return withLine(&b, e.Line)
}

// Words is the outcome in words, without the operation and the URC.
func (e *ResultError) Words() string {
	switch e.Op {
	case OpOpen:
		return OpenResultText(e.Result)
	case OpConnect:
		if e.Result == 0 {
			return "broker refused the connection: " + ConnackText(e.Code)
		}
		return PacketResultText("CONNECT", e.Result)
	case OpSubscribe:
		if e.Result == 0 && e.Code == 128 {
			return fmt.Sprintf("broker refused the subscription to %q (granted QoS 128)", e.Topic)
		}
		return PacketResultText("SUBSCRIBE", e.Result)
	case OpUnsubscribe:
		return PacketResultText("UNSUBSCRIBE", e.Result)
	case OpPublish:
		return PacketResultText("PUBLISH", e.Result)
	case OpDisconnect:
		return DiscCloseText("disconnect", e.Result)
	case OpClose:
		return DiscCloseText("close the link", e.Result)
	}
	return "result " + strconv.Itoa(e.Result)
}

// Unwrap gives the kinds of this failure, for errors.Is.
func (e *ResultError) Unwrap() []error {
	switch e.Op {
	case OpOpen:
		switch e.Result {
		case -1, 5:
			return []error{ErrNetwork}
		case 1:
			return []error{ErrWrongParameter}
		case 2:
			return []error{ErrInUse}
		case 3:
			return []error{ErrPDP}
		case 4:
			return []error{ErrDNS}
		}
	case OpConnect:
		if e.Result == 0 {
			switch e.Code {
			case 1:
				return []error{ErrRefused, ErrProtocolVersion}
			case 2:
				return []error{ErrRefused, ErrIdentifierRejected}
			case 3:
				return []error{ErrRefused, ErrServerUnavailable}
			case 4:
				return []error{ErrRefused, ErrBadCredentials}
			case 5:
				return []error{ErrRefused, ErrNotAuthorized}
			}
			return []error{ErrRefused}
		}
		if e.Result == 2 {
			return []error{ErrSendFailed}
		}
	case OpSubscribe, OpUnsubscribe, OpPublish:
		if e.Result == 0 && e.Code == 128 {
			return []error{ErrRefused}
		}
		if e.Result == 2 {
			return []error{ErrSendFailed}
		}
	}
	return []error{ErrFailed}
}

// LinkError is a call that ended because the module reported +QMTSTAT for the client (the link
// is gone) or restarted, before the call's own result arrived.
type LinkError struct {
	Op     string // the call that was waiting; "" when the error describes a LinkStatus event
	Client int
	Code   int    // +QMTSTAT err_code; 0 for a module restart
	Line   string // what the module said, e.g. "+QMTSTAT: 0,1" or "RDY"
}

// Error reads e.g. "mqtt publish: link lost: connection closed or reset by the peer (+QMTSTAT: 0,1)".
func (e *LinkError) Error() string {
	var b strings.Builder
	b.WriteString("mqtt ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Code == 0 {
		b.WriteString("the module restarted or powered down")
	} else {
		b.WriteString("link lost: ")
		b.WriteString(LinkStatusText(e.Code))
	}
	return withLine(&b, e.Line)
}

// Unwrap gives ErrLinkLost, or ErrModuleReset for a restart.
func (e *LinkError) Unwrap() error {
	if e.Code == 0 {
		return ErrModuleReset
	}
	return ErrLinkLost
}

// StringError is a string parameter that cannot go inside a quoted AT parameter: it holds `"`
// (there is no escape), or CR, LF, NUL, Ctrl-Z, ESC or another control byte that would end, split
// or abort the command. It wraps ErrInvalidString.
type StringError struct {
	Field  string // which parameter, e.g. "topic", "password"
	Value  string // the value; empty for a secret
	Offset int    // byte offset of the first bad byte
	Byte   byte   // the bad byte
	Secret bool   // the value is a secret and is not shown
}

// Error reads e.g. `mqtt: topic "a\"b": byte 0x22 (") at offset 1 would end the quoted AT parameter`.
func (e *StringError) Error() string {
	what := e.Field
	if !e.Secret {
		what += " " + strconv.Quote(e.Value)
	}
	return fmt.Sprintf("mqtt: %s: byte 0x%02X (%s) at offset %d %s",
		what, e.Byte, byteName(e.Byte), e.Offset, byteHarm(e.Byte))
}

// Unwrap gives ErrInvalidString.
func (e *StringError) Unwrap() error { return ErrInvalidString }

func byteName(b byte) string {
	switch b {
	case '"':
		return `double quote`
	case '\r':
		return "CR"
	case '\n':
		return "LF"
	case 0:
		return "NUL"
	case 0x1A:
		return "Ctrl-Z"
	case 0x1B:
		return "ESC"
	case 0x7F:
		return "DEL"
	}
	return "control byte"
}

func byteHarm(b byte) string {
	switch b {
	case '"':
		return "would end the quoted AT parameter (there is no escape)"
	case '\r', '\n':
		return "would end the AT command line"
	case 0x1A:
		return "would end the module's data input"
	case 0x1B:
		return "would abort the command"
	}
	return "is not allowed inside an AT command"
}

// checkQuoted refuses a value that cannot go inside a quoted AT parameter.
func checkQuoted(field, v string, secret bool) error {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b == '"' || b < 0x20 || b == 0x7F {
			e := &StringError{Field: field, Offset: i, Byte: b, Secret: secret}
			if !secret {
				e.Value = v
			}
			return e
		}
	}
	return nil
}

// rangeError is an out-of-range argument; it wraps ErrInvalidArgument.
func rangeError(field string, v, lo, hi int) error {
	return fmt.Errorf("mqtt: %s %d out of range %d-%d: %w", field, v, lo, hi, ErrInvalidArgument)
}

func checkRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return rangeError(field, v, lo, hi)
	}
	return nil
}

// checkLen refuses a string longer than max bytes (or empty when nonEmpty is set).
func checkLen(field, v string, nonEmpty bool, max int, secret bool) error {
	if nonEmpty && v == "" {
		return fmt.Errorf("mqtt: %s is empty: %w", field, ErrInvalidArgument)
	}
	if len(v) > max {
		return fmt.Errorf("mqtt: %s is %d bytes, longer than %d: %w", field, len(v), max, ErrInvalidArgument)
	}
	return checkQuoted(field, v, secret)
}

// withLine is b's text followed by the module's line in parentheses, when there is one.
func withLine(b *strings.Builder, line string) string {
	if line != "" {
		b.WriteString(" (")
		b.WriteString(line)
		b.WriteString(")")
	}
	return b.String()
}
