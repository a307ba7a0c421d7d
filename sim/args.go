package sim

import (
	"errors"
	"strconv"
	"strings"
)

// errSyntax marks a command line the emulator answers with plain ERROR (a syntax error: the
// reference says ERROR is used for those even with CMEE=1/2).
var errSyntax = errors.New("syntax error")

// cmdLine is one parsed AT command line.
type cmdLine struct {
	raw  string // the line as received, without the terminating CR
	name string // upper-cased: "" for a bare AT, "E0", "I", "+CSQ", "+QMTOPEN", ...
	kind cmdKind
	args string // the text after '=' for a set command
}

type cmdKind int

const (
	kindExec  cmdKind = iota // AT+CMD
	kindRead                 // AT+CMD?
	kindTest                 // AT+CMD=?
	kindSet                  // AT+CMD=args
	kindBasic                // ATE0, ATI ... (name holds letter and digits)
)

// parseCommand splits a received line into name, kind and arguments. ok is false when the line
// does not start with AT (in any case): a real module ignores such lines.
func parseCommand(line string) (cmdLine, bool) {
	c := cmdLine{raw: line}
	// Tolerate leading spaces or stray bytes before "AT", as modules resynchronise on "AT".
	i := indexAT(line)
	if i < 0 {
		return c, false
	}
	rest := line[i+2:]
	if rest == "" {
		c.kind = kindExec
		return c, true
	}
	if rest[0] != '+' {
		c.kind = kindBasic
		c.name = strings.ToUpper(strings.TrimSpace(rest))
		return c, true
	}
	end := strings.IndexAny(rest, "=?")
	if end < 0 {
		c.name = strings.ToUpper(strings.TrimSpace(rest))
		c.kind = kindExec
		return c, true
	}
	c.name = strings.ToUpper(strings.TrimSpace(rest[:end]))
	tail := rest[end:]
	switch {
	case tail == "?":
		c.kind = kindRead
	case strings.TrimSpace(tail) == "=?":
		c.kind = kindTest
	case tail[0] == '=':
		c.kind = kindSet
		c.args = tail[1:]
	default:
		c.kind = kindSet
		c.args = "\x00" // something no handler accepts: ERROR
	}
	return c, true
}

// indexAT finds the first "AT" (either letter in either case), or -1.
func indexAT(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if (s[i] == 'A' || s[i] == 'a') && (s[i+1] == 'T' || s[i+1] == 't') {
			return i
		}
	}
	return -1
}

// field is one comma-separated argument of a set command.
type field struct {
	text   string // without surrounding spaces; for a quoted field, without the quotes
	quoted bool
}

// splitArgs splits the arguments of a set command at commas outside double quotes. There is no
// escape character: a quoted string ends at the next '"'. Spaces around fields are dropped.
func splitArgs(s string) ([]field, error) {
	var out []field
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var f field
		if i < len(s) && s[i] == '"' {
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, errSyntax
			}
			f = field{text: s[i+1 : i+1+j], quoted: true}
			i += j + 2
			for i < len(s) && s[i] == ' ' {
				i++
			}
		} else {
			j := strings.IndexByte(s[i:], ',')
			if j < 0 {
				j = len(s) - i
			}
			f = field{text: strings.TrimSpace(s[i : i+j])}
			if strings.ContainsRune(f.text, '"') {
				return nil, errSyntax
			}
			i += j
		}
		out = append(out, f)
		if i >= len(s) {
			return out, nil
		}
		if s[i] != ',' {
			return nil, errSyntax
		}
		i++
	}
}

// num parses an unquoted decimal integer field and checks lo <= n <= hi.
func (f field) num(lo, hi int) (int, bool) {
	if f.quoted || f.text == "" {
		return 0, false
	}
	n, err := strconv.Atoi(f.text)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// str returns a quoted field's text, checking its length.
func (f field) str(maxLen int) (string, bool) {
	if !f.quoted || len(f.text) > maxLen {
		return "", false
	}
	return f.text, true
}

// argsBetween splits c's arguments as splitArgs does and reports whether c is a set command
// whose arguments parsed and number from lo to hi: the check every command makes before it reads
// its fields (its test and read forms answered before).
func (c cmdLine) argsBetween(lo, hi int) ([]field, bool) {
	if c.kind != kindSet {
		return nil, false
	}
	f, err := splitArgs(c.args)
	return f, err == nil && len(f) >= lo && len(f) <= hi
}
