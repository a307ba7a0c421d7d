// Package replay plays transcripts of a module's AT port — bytes that real modules printed,
// or that `gatewayd probe` recorded — back through the real at, qmt and modem code, and
// renders what that code made of them as a list of typed events, to compare with a list
// written down next to the transcript.
//
// # Transcript format
//
// A transcript is a UTF-8 text file, one item per line:
//
//	# a comment                     ignored, as are blank lines
//	source: 03-EC600S-….txt         provenance: where the bytes come from (at least one)
//	recv: length                    the +QMTRECV framing the host had configured:
//	                                "length" (recv/mode …,1, the daemon's) or "nolength"
//	note: free text                 anything worth knowing; any number of them
//	pending: why, and where         today's code fails this transcript and the fix is on its way
//	                                elsewhere: the test skips it while it fails, says so once it passes
//	module "\r\nOK\r\n"            one read: the bytes the module sent that the host got in one read
//	host "AT+CPIN?\r"              one write: the bytes the host sent
//	host-unseen 1188                the host wrote 1188 bytes the capture does not show (a file upload)
//
// The bytes are a Go double-quoted string literal (strconv.Quote / strconv.Unquote): `\r`, `\n`,
// `\t`, `\"`, `\\`, `\xNN` for any byte, and UTF-8 text as it is. Between the direction and the
// bytes a record may carry a timestamp token starting with '@' (for example @14:17:36.124 or
// @+0.216s); it is informational and kept as written. Records are in wire order; a module record
// is one read, so a transcript says how the bytes were split where its source shows it.
//
// # How a transcript is replayed
//
// Run drives the real stack: an at.Conn (created with qmt.URCsFor for the transcript's recv mode)
// over a Port that plays the module's side, with the host's side coming from the code.
//
// The replay is driven by the host records: each group of consecutive host records ending in CR is
// a command, which Run sends through the engine — through the modem or qmt function that sends
// exactly that line where there is one (AT+CPIN? via modem.SIMState, ATI then AT+GSN via
// modem.Identify, ATI alone via modem.Product, AT+GSN alone via modem.IMEI, AT+QIACT? via
// modem.PDPActive, AT+CSQ, AT+COPS?, AT+QURCCFG="urcport",
// AT+QMTOPEN? via qmt.Client.OpenLinks, AT+QMTCONN? via ConnState), otherwise as a raw
// at.Command. A command whose answer holds a data prompt (a line starting with '>') or a CONNECT
// line is a data command: the next host group is its data, written by the engine after the
// prompt (a trailing Ctrl-Z is its DataEnd). A command followed by ESC in the same group of host
// records is one the module did not answer: Run sends it, gives up on it, and leaves the ESC and
// the ATs of the engine's resynchronisation for the engine to write before the next command.
//
// The Port checks every byte the engine writes against the host records, in order, and fails the
// replay at the first difference (a resynchronisation, a reworded command, a missing or extra
// byte). When a host record has been written in full it releases the module records that follow
// it, each as one Read. Before each command Run waits until the engine's reader has taken every
// released byte and come back for more, so that every line has been routed (to the command or as
// a URC) before the next command is armed: the routing is as deterministic as the transcript.
//
// Run renders, in order: each command with its information lines (quoted, exact bytes), its final
// result, or the typed result of the modem/qmt function; and each URC decoded by qmt.ParseURC,
// the payload of a downlink quoted byte for byte. A transcript replays cleanly when the engine
// consumed every record, no command timed out and the rendering equals the expected one.
package replay
