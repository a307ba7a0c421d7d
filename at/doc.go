// Package at is the AT command engine of gatewayd: it talks to a Quectel
// module over any io.ReadWriter (a serial port, a pty, a pipe in tests).
//
// A Conn owns the port. One reader goroutine reads all input and frames it
// into tokens: CR/LF-terminated lines (empty ones dropped), the
// unterminated data prompt "> " (only while a data command waits for it),
// and counted payloads whose length a URC header announces (URCSpec.Payload,
// e.g. +QMTRECV with the length field). Each line is routed exactly once: to
// the command in flight when it answers it, otherwise to the URC
// subscribers (Subscribe), each through its own bounded, ordered queue; a
// full queue holds the reader back (nothing is dropped), which pushes back on
// the module.
//
// Commands (Do, Run) run one at a time, in call order, each bounded by its
// context. Do returns the command's information lines and its final
// result: nil for OK, ErrError, *CMEError or *CMSError. Echoes (ATE1) of
// command lines and of data-command payloads are dropped, so the engine
// works before ATE0. After a timeout the engine resynchronises (ESC, then
// AT until OK) before the next command; Stats counts consecutive timeouts
// so the caller can escalate. A read or write error ends the Conn with
// ErrPortGone; Close ends it with ErrClosed.
//
// Usage:
//
//	conn := at.New(port, at.Options{Logger: log, URCs: qmt.URCs()})
//	defer conn.Close()
//	urcs := conn.Subscribe()
//	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
//	resp, err := conn.Run(ctx, "AT+CSQ") // resp.Lines[0].Text == "+CSQ: 31,99"
//	cancel()
//	for l := range urcs.C() { ... }      // "+QMTSTAT: 0,1", ...
package at
