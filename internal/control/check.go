package control

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MaxATLine is the longest AT command the control socket sends.
const MaxATLine = 1024

// ErrRefused marks an AT command CheckAT refuses; the message says why and whether --force
// would send it.
var ErrRefused = errors.New("refused")

// dataCommands enter the module's data mode ("> " or CONNECT) and would take the daemon's next
// commands as their payload: never sent from the control socket, whatever force says.
var dataCommands = []string{"AT+QMTPUBEX=", "AT+QMTPUB=", "AT+QFUPL=", "AT+CMGS=", "AT+CMGW", "AT+QISEND=",
	"AT+QSSLSEND=", "ATD", "ATO", "ATA", "AT+QFOPEN=", "AT+QFWRITE="}

// breaking lists commands that would break gatewayd's session or its dialogue with the module;
// sent only with force. Each entry is a prefix of the upper-cased command and why it breaks.
var breaking = []struct{ prefix, why string }{
	{"ATE", "turns the echo on or off, which gatewayd set"},
	{"ATV", "changes the result code format gatewayd parses"},
	{"ATQ", "turns result codes off"},
	{"ATZ", "restores the profile: echo and error formats change"},
	{"AT&F", "restores factory settings: echo and error formats change"},
	{"AT+IPR", "changes the baud rate of the port gatewayd talks on"},
	{"AT+IFC", "changes the flow control of the port"},
	{"AT+ICF", "changes the character framing of the port"},
	{"AT+CFUN", "changes the radio or restarts the module"},
	{"AT+QPOWD", "powers the module down"},
	{"AT+CMEE", "changes the error format gatewayd parses"},
	{"AT+QURCCFG", "moves the module's URCs to another port"},
	{"AT+QIDEACT", "deactivates the PDP context the session uses"},
	{"AT+CGACT", "changes the PDP contexts the session uses"},
}

// qmtIndex finds the client index of an AT+QMT… set command.
var qmtIndex = regexp.MustCompile(`^AT\+QMT[A-Z]+=\s*(?:"[^"]*"\s*,\s*)?(\d+)`)

// CheckAT decides whether the control socket may send line to the module, which gatewayd owns:
// always refused are lines that are not one AT command (control bytes, not starting with AT,
// longer than MaxATLine) and commands that enter data mode; refused unless force are commands
// that would break the session (echo, result and error formats, baud rate, CFUN, the URC port,
// the PDP context, and any AT+QMT… set command on gatewayd's own client index). Queries (`?`)
// and tests (`=?`) are always allowed. Several commands joined with ';' are checked one by one.
func CheckAT(line string, clientIndex int, force bool) error {
	switch {
	case line == "":
		return fmt.Errorf("%w: empty command", ErrRefused)
	case len(line) > MaxATLine:
		return fmt.Errorf("%w: command of %d bytes; at most %d", ErrRefused, len(line), MaxATLine)
	}
	for i := 0; i < len(line); i++ {
		if b := line[i]; b < 0x20 || b == 0x7F {
			return fmt.Errorf("%w: control byte 0x%02X at offset %d (one command per call, no CR, LF, Ctrl-Z or ESC)", ErrRefused, b, i)
		}
	}
	up := strings.ToUpper(strings.TrimSpace(line))
	if !strings.HasPrefix(up, "AT") {
		return fmt.Errorf("%w: %q does not start with AT", ErrRefused, line)
	}
	for i, part := range splitCommands(up) {
		if i > 0 {
			part = "AT" + strings.TrimPrefix(strings.TrimSpace(part), "AT")
		}
		if err := checkOne(part, clientIndex, force); err != nil {
			return err
		}
	}
	return nil
}

// splitCommands splits an upper-cased line at the ';' that are outside quotes.
func splitCommands(s string) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func checkOne(cmd string, clientIndex int, force bool) error {
	// V.250 modules ignore spaces in a command name ("AT +QMTPUBEX"): judge it without them.
	cmd = strings.ReplaceAll(strings.ReplaceAll(cmd, " ", ""), "\t", "")
	for _, d := range dataCommands {
		if strings.HasPrefix(cmd, d) && !strings.HasSuffix(cmd, "?") {
			return fmt.Errorf("%w: %s enters data mode, which would take gatewayd's next commands as its data; not sent, even with --force", ErrRefused, strings.TrimSuffix(d, "="))
		}
	}
	if strings.HasSuffix(cmd, "?") { // a query or a test changes nothing
		return nil
	}
	if force {
		return nil
	}
	for _, b := range breaking {
		if strings.HasPrefix(cmd, b.prefix) {
			return fmt.Errorf("%w: %s %s; use --force to send it anyway", ErrRefused, b.prefix, b.why)
		}
	}
	if m := qmtIndex.FindStringSubmatch(cmd); m != nil {
		if idx, err := strconv.Atoi(m[1]); err == nil && idx == clientIndex {
			return fmt.Errorf("%w: this AT+QMT command acts on MQTT client %d, gatewayd's own session; use another index, or --force", ErrRefused, clientIndex)
		}
	}
	return nil
}

// quoted matches the quoted strings of a command.
var quoted = regexp.MustCompile(`"[^"]*"`)

// Redact returns line for the log with the quoted strings of commands that may carry secrets
// (APN and MQTT credentials) replaced by "***".
func Redact(line string) string {
	up := strings.ToUpper(line)
	for _, p := range []string{"AT+QICSGP", "AT+QMTCONN", "AT+QMTCFG", "AT+CGAUTH", "AT+QSSLCFG"} {
		if strings.Contains(up, p) {
			return quoted.ReplaceAllString(line, `"***"`)
		}
	}
	return line
}
