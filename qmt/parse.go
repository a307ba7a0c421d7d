package qmt

import (
	"bytes"
	"fmt"
	"strings"
)

// maxDigits bounds every number parsed from the module, so no field can overflow an int.
const maxDigits = 9

// num parses a decimal integer with an optional minus sign, ignoring spaces around it.
func num(s string) (int, bool) { return decimal(strings.TrimSpace(s)) }

// numBytes is num for a byte slice, without allocating.
func numBytes(b []byte) (int, bool) { return decimal(bytes.TrimSpace(b)) }

// decimal parses s, a decimal integer of at most maxDigits digits with an optional minus sign.
func decimal[T string | []byte](s T) (n int, ok bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > maxDigits {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		d := s[i] - '0' // a byte: anything below '0' wraps past 9
		if d > 9 {
			return 0, false
		}
		n = n*10 + int(d)
	}
	if neg {
		n = -n
	}
	return n, true
}

// intFields parses comma-separated integers.
func intFields(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	vs := make([]int, len(parts))
	for i, p := range parts {
		v, ok := num(p)
		if !ok {
			return nil, fmt.Errorf("field %d %q is not a number", i+1, strings.TrimSpace(p))
		}
		vs[i] = v
	}
	return vs, nil
}

// parseURC decodes one URC. text is the line without CR LF; for a counted payload, text is the
// header up to and including the length field and payload holds the bytes (framed is true).
// It never panics: a line it does not know is Unknown, a known one of the wrong shape Malformed.
func parseURC(text string, payload []byte, framed bool) Event {
	t := strings.TrimSpace(text)
	switch t {
	case "RDY":
		return ModuleReady{}
	case "APP RDY":
		return AppReady{}
	case "POWERED DOWN":
		return PoweredDown{}
	}
	prefix, rest, ok := strings.Cut(t, ":")
	if !ok || !strings.HasPrefix(prefix, "+") {
		return Unknown{Line: text}
	}
	bad := func(format string, args ...any) Event {
		return Malformed{Line: text, Err: fmt.Errorf("%s: %w", prefix, fmt.Errorf(format, args...))}
	}
	if framed && prefix != "+QMTRECV" {
		return bad("a counted payload is not expected here")
	}
	switch prefix {
	case "+QMTRECV":
		return parseRecv(text, rest, payload, framed)
	case "+QMTOPEN", "+QMTCLOSE", "+QMTDISC", "+QMTSTAT", "+QMTPING":
		if strings.Contains(rest, `"`) {
			return bad("a quoted field: looks like a query answer, not a result URC")
		}
		vs, err := intFields(rest)
		if err != nil {
			return bad("%w", err)
		}
		if len(vs) < 2 {
			return bad("needs 2 fields (<client_idx>,<result>), got %d", len(vs))
		}
		switch prefix {
		case "+QMTOPEN":
			return Opened{Client: vs[0], Result: vs[1]}
		case "+QMTCLOSE":
			return LinkClosed{Client: vs[0], Result: vs[1]}
		case "+QMTDISC":
			return Disconnected{Client: vs[0], Result: vs[1]}
		case "+QMTSTAT":
			return LinkStatus{Client: vs[0], Code: vs[1]}
		default:
			if vs[1] == 0 {
				return PingOK{Client: vs[0]}
			}
			return PingFailed{Client: vs[0], Result: vs[1]}
		}
	case "+QMTCONN":
		vs, err := intFields(rest)
		if err != nil {
			return bad("%w", err)
		}
		if len(vs) < 2 {
			return bad("needs 2 or 3 fields (<client_idx>,<result>[,<ret_code>]), got %d", len(vs))
		}
		e := Connected{Client: vs[0], Result: vs[1]}
		if len(vs) >= 3 {
			e.Code, e.HasCode = vs[2], true
		}
		return e
	case "+QMTSUB", "+QMTUNS", "+QMTPUB", "+QMTPUBEX":
		vs, err := intFields(rest)
		if err != nil {
			return bad("%w", err)
		}
		if len(vs) < 3 {
			return bad("needs at least 3 fields (<client_idx>,<msgID>,<result>), got %d", len(vs))
		}
		var values []int
		if len(vs) > 3 {
			values = vs[3:]
		}
		switch prefix {
		case "+QMTSUB":
			return Subscribed{Client: vs[0], MsgID: vs[1], Result: vs[2], Values: values}
		case "+QMTUNS":
			return Unsubscribed{Client: vs[0], MsgID: vs[1], Result: vs[2], Values: values}
		default:
			return Published{Client: vs[0], MsgID: vs[1], Result: vs[2], Values: values, Ex: prefix == "+QMTPUBEX"}
		}
	case "+CPIN":
		s := strings.TrimSpace(rest)
		if s == "" {
			return bad("no SIM state")
		}
		return SIMStatus{State: s}
	case "+QIURC":
		typ, arg, _ := strings.Cut(rest, ",")
		if strings.TrimSpace(typ) != `"pdpdeact"` {
			return Unknown{Line: text}
		}
		cid, ok := num(arg)
		if !ok {
			return bad("context id %q is not a number", strings.TrimSpace(arg))
		}
		return PDPDeactivated{ContextID: cid}
	case "+CEREG", "+CGREG", "+CREG":
		return parseReg(text, prefix[1:], rest)
	case "+CFUN", "+QUSIM":
		v, ok := num(rest)
		if !ok {
			return bad("%q is not a number", strings.TrimSpace(rest))
		}
		if prefix == "+CFUN" {
			return Functionality{Level: v}
		}
		return USIMStatus{Value: v}
	case "+QIND":
		return Indication{Text: strings.TrimSpace(rest)}
	}
	return Unknown{Line: text}
}

// parseReg decodes `+CEREG: <stat>[,"<tac>","<ci>"[,<AcT>...]]` (the URC form, n >= 1).
func parseReg(line, cmd, rest string) Event {
	bad := func(format string, args ...any) Event {
		return Malformed{Line: line, Err: fmt.Errorf("+%s: %w", cmd, fmt.Errorf(format, args...))}
	}
	parts := strings.Split(rest, ",")
	stat, ok := num(parts[0])
	if !ok {
		return bad("stat %q is not a number", strings.TrimSpace(parts[0]))
	}
	e := RegistrationChanged{Command: cmd, Stat: stat}
	switch {
	case len(parts) == 1:
		return e
	case len(parts) == 2:
		return bad("two fields: looks like an AT+%s? answer (<n>,<stat>), not a URC", cmd)
	}
	unq := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			return s[1 : len(s)-1]
		}
		return s
	}
	e.Area, e.Cell, e.HasLocation = unq(parts[1]), unq(parts[2]), true
	if strings.Contains(e.Area, `"`) || strings.Contains(e.Cell, `"`) {
		return bad("badly quoted location fields")
	}
	if len(parts) >= 4 {
		act, ok := num(parts[3])
		if !ok {
			return bad("AcT %q is not a number", strings.TrimSpace(parts[3]))
		}
		e.AcT, e.HasAcT = act, true
	}
	return e
}

// parseRecv decodes the +QMTRECV forms: the buffer announcement `<idx>,<slot>`, the length form
// `<idx>,<msgID>,"<topic>",<len>` whose payload was framed by at, and the no-length form
// `<idx>,<msgID>,"<topic>","<payload>"`.
func parseRecv(line, rest string, payload []byte, framed bool) Event {
	bad := func(format string, args ...any) Event {
		return Malformed{Line: line, Err: fmt.Errorf("+QMTRECV: %w", fmt.Errorf(format, args...))}
	}
	q := strings.IndexByte(rest, '"')
	if q < 0 {
		if framed {
			return bad("a counted payload after a line without a topic")
		}
		vs, err := intFields(rest)
		if err != nil {
			return bad("%w", err)
		}
		switch {
		case len(vs) == 2:
			return Stored{Client: vs[0], Slot: vs[1]}
		case len(vs) > 2:
			return bad("%d numbers: looks like an AT+QMTRECV? slot status answer, not a URC", len(vs))
		}
		return bad("needs 2 fields (<client_idx>,<recv_id>), got 1")
	}
	head := strings.TrimSpace(rest[:q])
	if !strings.HasSuffix(head, ",") {
		return bad("no comma before the topic")
	}
	vs, err := intFields(head[:len(head)-1])
	if err != nil {
		return bad("%w", err)
	}
	if len(vs) != 2 {
		return bad("needs <client_idx>,<msgID> before the topic, got %d fields", len(vs))
	}
	e := Received{Client: vs[0], MsgID: vs[1]}
	body := rest[q:] // starts with the topic's opening quote
	lq := strings.LastIndexByte(body, '"')
	if lq == 0 {
		return bad("the topic is not closed by a quote")
	}
	tail := strings.TrimSpace(body[lq+1:])
	if after, ok := strings.CutPrefix(tail, ","); ok {
		n, ok := num(after)
		if !ok {
			return bad("length %q is not a number", strings.TrimSpace(after))
		}
		if n < 0 {
			return bad("negative length %d", n)
		}
		if framed && len(payload) != n {
			return bad("announced %d bytes but %d were framed", n, len(payload))
		}
		if !framed && n != 0 {
			return bad("announced %d bytes but no payload was framed", n)
		}
		e.Topic = body[1:lq]
		e.Payload = payload
		if e.Payload == nil {
			e.Payload = []byte{}
		}
		return e
	}
	if framed {
		return bad("a counted payload after a header without a length")
	}
	if tail != "" {
		return bad("ends neither with a quoted payload nor with a length")
	}
	tq := strings.IndexByte(body[1:], '"') + 1
	if tq <= 0 || tq == lq {
		return bad("no payload after the topic")
	}
	sep := strings.TrimLeft(body[tq+1:], " ")
	if !strings.HasPrefix(sep, ",") {
		return bad("no comma after the topic")
	}
	sep = strings.TrimLeft(sep[1:], " ")
	if !strings.HasPrefix(sep, `"`) {
		return bad("payload does not start with a quote")
	}
	p := len(body) - len(sep) // index of the payload's opening quote
	if p >= lq {
		return bad("payload is not closed by a quote")
	}
	e.Topic = body[1:tq]
	e.Payload = []byte(body[p+1 : lq])
	e.NoLength = true
	return e
}

// recvPrefix is the URC whose payload RecvPayload frames.
const recvPrefix = "+QMTRECV:"

// RecvPayload is the at.PayloadFunc for +QMTRECV in the modes with a length field. head is the
// line read so far, starting at the prefix. It accepts the three forms the reference lists
// after `<payload_len>` (9.1): `+QMTRECV: <idx>,<msgID>,"<topic>",<len>,"` (the payload follows
// in quotes), `+QMTRECV: <idx>,<msgID>,"<topic>",<len>,` (it follows unquoted on the same line,
// as a BC25 printed it) and `+QMTRECV: <idx>,<msgID>,"<topic>",<len>` at the end of a line (it
// follows on the next line, as an EC200U note reports), and returns len. It refuses the buffer
// announcement `+QMTRECV: <idx>,<slot>`, the no-length form
// `+QMTRECV: <idx>,<msgID>,"<topic>","<payload>"` and anything else. It does not retain head
// and does not allocate.
func RecvPayload(head []byte) (n int, ok bool) { return recvPayload(head, true) }

// recvPayloadQuoted is RecvPayload without the unquoted same-line form, for the modes without a
// length field, where a payload holding `",<digits>,` must not be taken for one.
func recvPayloadQuoted(head []byte) (n int, ok bool) { return recvPayload(head, false) }

func recvPayload(head []byte, unquoted bool) (n int, ok bool) {
	h, found := bytes.CutPrefix(head, []byte(recvPrefix))
	if !found {
		return 0, false
	}
	if x, cut := bytes.CutSuffix(h, []byte(`,"`)); cut {
		h = x
	} else if x, cut := bytes.CutSuffix(h, []byte(`,`)); cut {
		if !unquoted {
			return 0, false
		}
		h = x
	}
	h, ok = recvTopic(h)
	if !ok {
		return 0, false
	}
	return recvLength(h)
}

// recvTopic skips `<idx>,<msgID>,` and the spaces after it; ok when what is left starts with the
// topic's opening quote.
func recvTopic(h []byte) ([]byte, bool) {
	for range 2 {
		i := bytes.IndexByte(h, ',')
		if i < 0 {
			return nil, false
		}
		if _, ok := numBytes(h[:i]); !ok {
			return nil, false
		}
		h = h[i+1:]
	}
	h = bytes.TrimLeft(h, " ")
	return h, len(h) > 0 && h[0] == '"'
}

// recvLength reads `"<topic>",<len>` (h starts at the topic's opening quote; the topic ends at
// the last quote) and returns len.
func recvLength(h []byte) (int, bool) {
	lq := bytes.LastIndexByte(h, '"')
	if lq <= 0 {
		return 0, false
	}
	tail := bytes.TrimSpace(h[lq+1:])
	if len(tail) == 0 || tail[0] != ',' {
		return 0, false
	}
	n, ok := numBytes(tail[1:])
	if !ok || n < 0 {
		return 0, false
	}
	return n, true
}
