package at

import (
	"errors"
	"strconv"
	"strings"
)

// Errors returned by the engine. Test for them with errors.Is; the errors
// returned by Do wrap them with the command (secrets masked) for context.
var (
	// ErrError is the final result ERROR.
	ErrError = errors.New("ERROR")
	// ErrClosed means the engine was closed with Close.
	ErrClosed = errors.New("at: engine closed")
	// ErrPortGone means the port failed (a read or write error, EOF): the
	// module is gone. Conn.Err wraps it together with the I/O error.
	ErrPortGone = errors.New("at: port gone")
	// ErrTimeout means no final result came before the context ended. The
	// error Do returns also wraps the context's error, so
	// errors.Is(err, context.DeadlineExceeded) holds for a deadline.
	ErrTimeout = errors.New("no final result before the context ended")
	// ErrHeldBack is wrapped, together with ErrTimeout, by a timeout during
	// which the reader waited for room in a full URC queue: the reply may be
	// unread behind the URCs a slow subscriber held back. Such a timeout does
	// not count in Stats().ConsecutiveTimeouts.
	ErrHeldBack = errors.New("the reader was held back by a full URC queue")
	// ErrNoPrompt means the "> " prompt of a data command never came. It is
	// returned together with ErrTimeout.
	ErrNoPrompt = errors.New(`no "> " prompt`)
	// ErrUnresponsive means the resynchronisation after a timeout got no
	// OK (and no +CME ERROR) to AT: the module does not answer.
	ErrUnresponsive = errors.New("at: module unresponsive: no OK to AT")
	// ErrBadTrailer marks a Line whose counted payload was not followed by
	// `"` CRLF: the announced length was wrong or bytes were lost.
	ErrBadTrailer = errors.New("at: counted payload not followed by '\"' CRLF")
	// ErrInvalidCommand means a Command cannot be sent: its Line is empty or
	// holds CR, LF or NUL, which would end or split it on the wire.
	ErrInvalidCommand = errors.New("at: invalid command line")
)

// CMEError is the final result "+CME ERROR: <n>" (AT+CMEE=1) or
// "+CME ERROR: <text>" (AT+CMEE=2). Read it with errors.As.
type CMEError struct {
	// Code is the numeric error code, or -1 when the module gave text.
	Code int
	// Text is the module's text (CMEE=2) or, for a number, the meaning of
	// the code from 3GPP 27.007 and the Quectel tables ("" when unknown).
	Text string
}

// Error returns e.g. "+CME ERROR: 10 (SIM not inserted)".
func (e *CMEError) Error() string { return formatCode("+CME ERROR: ", e.Code, e.Text) }

// CMSError is the final result "+CMS ERROR: <n>" of an SMS command
// (3GPP 27.005). Read it with errors.As.
type CMSError struct {
	// Code is the numeric error code, or -1 when the module gave text.
	Code int
	// Text is the module's text or, for a number, the code's meaning.
	Text string
}

// Error returns e.g. "+CMS ERROR: 310 (SIM not inserted)".
func (e *CMSError) Error() string { return formatCode("+CMS ERROR: ", e.Code, e.Text) }

func formatCode(prefix string, code int, text string) string {
	if code < 0 {
		return prefix + text
	}
	s := prefix + strconv.Itoa(code)
	if text != "" {
		s += " (" + text + ")"
	}
	return s
}

// finalResult reports whether line is a final result code and, if so, the
// error it stands for (nil for OK).
func finalResult(line string) (final bool, err error) {
	switch {
	case line == "OK":
		return true, nil
	case line == "ERROR":
		return true, ErrError
	case strings.HasPrefix(line, "+CME ERROR:"):
		code, text := parseCode(line[11:])
		if code >= 0 {
			text = CMEMeaning(code)
		}
		return true, &CMEError{Code: code, Text: text}
	case strings.HasPrefix(line, "+CMS ERROR:"):
		code, text := parseCode(line[11:])
		if code >= 0 {
			text = CMSMeaning(code)
		}
		return true, &CMSError{Code: code, Text: text}
	}
	return false, nil
}

// parseCode reads the argument of +CME/+CMS ERROR: a number, or text.
func parseCode(s string) (int, string) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && s[0] != '+' {
		return n, ""
	}
	return -1, s
}

// CMEMeaning returns the meaning of a +CME ERROR code: the 3GPP 27.007
// codes as the Quectel manuals list them and the Quectel TCP/IP codes
// 550-568. It returns "" for a code it does not know.
func CMEMeaning(code int) string {
	switch code {
	case 0:
		return "phone failure"
	case 1:
		return "no connection to phone"
	case 2:
		return "phone-adaptor link reserved"
	case 3:
		return "operation not allowed"
	case 4:
		return "operation not supported"
	case 5:
		return "PH-SIM PIN required"
	case 6:
		return "PH-FSIM PIN required"
	case 7:
		return "PH-FSIM PUK required"
	case 10:
		return "SIM not inserted"
	case 11:
		return "SIM PIN required"
	case 12:
		return "SIM PUK required"
	case 13:
		return "SIM failure"
	case 14:
		return "SIM busy"
	case 15:
		return "SIM wrong"
	case 16:
		return "incorrect password"
	case 17:
		return "SIM PIN2 required"
	case 18:
		return "SIM PUK2 required"
	case 20:
		return "memory full"
	case 21:
		return "invalid index"
	case 22:
		return "not found"
	case 23:
		return "memory failure"
	case 24:
		return "text string too long"
	case 25:
		return "invalid characters in text string"
	case 26:
		return "dial string too long"
	case 27:
		return "invalid characters in dial string"
	case 30:
		return "no network service"
	case 31:
		return "network timeout"
	case 32:
		return "network not allowed - emergency calls only"
	case 40:
		return "network personalisation PIN required"
	case 41:
		return "network personalisation PUK required"
	case 42:
		return "network subset personalisation PIN required"
	case 43:
		return "network subset personalisation PUK required"
	case 44:
		return "service provider personalisation PIN required"
	case 45:
		return "service provider personalisation PUK required"
	case 46:
		return "corporate personalisation PIN required"
	case 47:
		return "corporate personalisation PUK required"
	case 100:
		return "unknown"
	case 103:
		return "illegal MS"
	case 106:
		return "illegal ME"
	case 107:
		return "GPRS services not allowed"
	case 111:
		return "PLMN not allowed"
	case 112:
		return "location area not allowed"
	case 113:
		return "roaming not allowed in this location area"
	case 132:
		return "service option not supported"
	case 133:
		return "requested service option not subscribed"
	case 134:
		return "service option temporarily out of order"
	case 148:
		return "unspecified GPRS error"
	case 149:
		return "PDP authentication failure"
	case 550:
		return "unknown error"
	case 551:
		return "operation blocked"
	case 552:
		return "invalid parameters"
	case 553:
		return "memory not enough"
	case 554:
		return "create socket failed"
	case 555:
		return "operation not supported"
	case 556:
		return "socket bind failed"
	case 557:
		return "socket listen failed"
	case 558:
		return "socket write failed"
	case 559:
		return "socket read failed"
	case 560:
		return "socket accept failed"
	case 561:
		return "open PDP context failed"
	case 562:
		return "close PDP context failed"
	case 563:
		return "socket identity has been used"
	case 564:
		return "DNS busy"
	case 565:
		return "DNS parse failed"
	case 566:
		return "socket connect failed"
	case 567:
		return "socket has been closed"
	case 568:
		return "operation busy"
	}
	return ""
}

// CMSMeaning returns the meaning of a +CMS ERROR code (3GPP 27.005 and
// the Quectel table), or "" for a code it does not know.
func CMSMeaning(code int) string {
	switch code {
	case 300:
		return "ME failure"
	case 301:
		return "SMS service of ME reserved"
	case 302:
		return "operation not allowed"
	case 303:
		return "operation not supported"
	case 304:
		return "invalid PDU mode parameter"
	case 305:
		return "invalid text mode parameter"
	case 310:
		return "SIM not inserted"
	case 311:
		return "SIM PIN required"
	case 313:
		return "SIM failure"
	case 314:
		return "SIM busy"
	case 315:
		return "SIM wrong"
	case 316:
		return "SIM PUK required"
	case 320:
		return "memory failure"
	case 321:
		return "invalid memory index"
	case 322:
		return "memory full"
	case 330:
		return "SMSC address unknown"
	case 331:
		return "no network service"
	case 332:
		return "network timeout"
	case 340:
		return "no +CNMA acknowledgement expected"
	case 500:
		return "unknown error"
	}
	return ""
}
