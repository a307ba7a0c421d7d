package qmt

import (
	"bytes"
	"fmt"

	"github.com/gatewayd/gatewayd/at"
)

// URCs returns the at.URCSpec list for every +QMT... URC in the recommended receive mode,
// RecvDirectLength (the daemon's): URCsFor(RecvDirectLength). Create the at.Conn with it
// (at.Options.URCs); the module-level URCs (RDY, +CPIN, +CEREG, +QIURC, ...) are built into at.
func URCs() []at.URCSpec { return URCsFor(RecvDirectLength) }

// URCsFor returns the at.URCSpec list for every +QMT... URC, with RecvPayload framing the
// counted payload of +QMTRECV, for a client configured with receive mode mode.
//
// In the modes with a length field (RecvDirectLength, RecvBufferedLength) the +QMTRECV topic
// is read raw, as the module prints it (RecvRawTopic): `"`, CR and LF are topic bytes until
// `",<len>` follows with `,` (the payload in quotes or unquoted on the same line) or with the
// line's end (the payload on the next line), so a downlink topic holding them can never pass
// for module output (a forged +QMTPUBEX acknowledgement). The remaining risk is a topic that
// itself holds `",<digits>` followed by `,`, CR or LF, which only a wildcard subscription can
// receive: an exact topic filter cannot hold a quote. In the modes without a length a CR or LF
// ends the line, as there is nothing else to end it by, and an unquoted payload cannot be
// delimited.
func URCsFor(mode RecvMode) []at.URCSpec {
	recv := at.URCSpec{Prefix: recvPrefix, Payload: recvPayloadQuoted}
	if mode == RecvDirectLength || mode == RecvBufferedLength {
		recv.Payload, recv.Raw = RecvPayload, RecvRawTopic
	}
	return []at.URCSpec{
		recv,
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

// RecvRawTopic is the at.RawFunc for +QMTRECV in the length modes: head, the line read so far,
// is `+QMTRECV: <idx>,<msgID>,"` followed by topic bytes, so the topic is open and a CR or LF is
// part of it — unless head already ends in the length field, `"<topic>",<len>`: then the CR or
// LF ends the header and the payload follows on the next line (the length field followed by
// `,` starts the payload on the same line instead). It does not retain head and does not
// allocate.
func RecvRawTopic(head []byte) bool {
	h, found := bytes.CutPrefix(head, []byte(recvPrefix))
	if !found {
		return false
	}
	h, open := recvTopic(h)
	if !open {
		return false
	}
	_, complete := recvLength(h)
	return !complete
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
