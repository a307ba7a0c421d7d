package qmt

import (
	"bytes"
	"fmt"

	"github.com/gatewayd/gatewayd/at"
)

// URCs returns the at.URCSpec list for every +QMT... URC, with RecvPayload framing the counted
// payload of +QMTRECV. Create the at.Conn with it (at.Options.URCs); the module-level URCs (RDY,
// +CPIN, +CEREG, +QIURC, ...) are built into at.
func URCs() []at.URCSpec {
	return []at.URCSpec{
		{Prefix: recvPrefix, Payload: RecvPayload},
		{Prefix: "+QMTSTAT:"},
		{Prefix: "+QMTPING:"},
		{Prefix: "+QMTOPEN:"},
		{Prefix: "+QMTCLOSE:"},
		{Prefix: "+QMTCONN:"},
		{Prefix: "+QMTDISC:"},
		{Prefix: "+QMTSUB:"},
		{Prefix: "+QMTUNS:"},
		{Prefix: "+QMTPUB:"},
		{Prefix: "+QMTPUBEX:"},
	}
}

// ParseURC decodes one line the at reader framed. It never panics: a line no parser knows is
// Unknown, a known one of the wrong shape (or one at could not frame cleanly) Malformed. A
// Received holds its own copy of the payload.
func ParseURC(l at.Line) Event {
	if l.Err != nil {
		return Malformed{Line: l.Text, Err: fmt.Errorf("framing: %w", l.Err)}
	}
	return parseURC(l.Text, bytes.Clone(l.Payload), l.Payload != nil)
}
