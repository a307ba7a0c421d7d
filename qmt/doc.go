// Package qmt drives the MQTT client built into Quectel EC600 modules (AT+QMTCFG, AT+QMTOPEN,
// AT+QMTCONN, AT+QMTSUB, AT+QMTPUBEX, ...) over an at.Conn, and decodes the module's unsolicited
// lines into typed events.
//
// Client is one of the module's six MQTT client indexes. Each of its calls sends one command,
// which the module only accepts with OK, and then waits for the result URC that reports the real
// outcome (+QMTOPEN: 0,0), matched by client index and message id, within the worst-case time the
// reference documents. Publish may be called from several goroutines at once, so several QoS 1
// messages are in flight together.
//
// Event is a decoded URC: Received (a downlink), LinkStatus (+QMTSTAT), the result events, and the
// module-level ones (ModuleReady for RDY, SIMStatus, PDPDeactivated, PoweredDown, ...). Lines no
// parser knows are Unknown, known lines of the wrong shape Malformed; parsing never panics.
//
// ResultError turns a result code into words ("broker refused the connection: bad user name or
// password"); errors.Is matches its kinds (ErrRefused, ErrBadCredentials, ErrDNS, ...). Strings
// that would end or split a quoted AT parameter (a `"`, CR, LF, NUL, Ctrl-Z, ...) are refused with
// a StringError before anything is sent.
//
// URCs gives the at.URCSpec list (with RecvPayload, the framing of +QMTRECV payloads) that the
// at.Conn must be created with.
package qmt
