package at

import (
	"bytes"
	"strings"
)

// Line is one framed token: an information line or a URC.
type Line struct {
	// Text is the line without CR/LF. For a counted payload it is the header
	// up to and including the length field, e.g. `+QMTRECV: 0,0,"t",5`
	// (no trailing `,"`).
	Text string
	// Payload holds the counted payload bytes exactly as received; nil when
	// the line was not length-framed. Every subscriber receives the same
	// slice: treat it as read-only.
	Payload []byte
	// Err is non-nil when framing found a problem with this token (e.g.
	// ErrBadTrailer: the bytes after the counted payload were not `"` CRLF);
	// Text and Payload hold what was read.
	Err error
}

// PayloadFunc is asked, by the reader, whether the line read so far (head,
// starting at the prefix, no CR/LF) announces a counted payload that
// follows. The reader calls it (a) each time it has just appended a '"'
// that follows a ',' — e.g. head = `+QMTRECV: 0,0,"t",5,"` — and if ok,
// reads exactly n bytes, then expects `"` and CRLF; (b) at the end of a line
// not ending in ',' — head = `+QMTRECV: 0,0,"t",5` — and if ok, reads
// exactly n bytes from the next line (the "payload on the next line"
// variant), then an optional CRLF; (c) at each byte other than '"' (CR and
// LF included) that follows `",<digits>,`, with head ending in that ',' —
// e.g. head = `+QMTRECV: 0,0,"t",5,` — and if ok, reads exactly n bytes starting
// at that byte (the unquoted same-line variant), then an optional CRLF. In
// (b) and (c) the token's header is the line without the trailing ','. It
// must not retain head. It runs on the reader goroutine: it must be quick
// and must not call the Conn.
type PayloadFunc func(head []byte) (n int, ok bool)

// RawFunc is asked, by the reader, at each CR or LF inside a line that starts
// with the spec's prefix, with the line read so far (head, without that CR or
// LF). It reports whether the line is inside a field the module prints raw —
// an MQTT topic between quotes holds `"`, CR and LF as they are — so that the
// CR or LF belongs to the line instead of ending it. The line then goes on
// until the spec's PayloadFunc accepts a `,"` or RawFunc says no at a later CR
// or LF. For a line longer than MaxLine the reader drops the middle and passes
// the first and the last few dozen bytes to RawFunc and PayloadFunc, and then
// drops the counted payload as well, so that no byte of such a line is ever
// read as a line of its own. It must not retain head and must be quick.
type RawFunc func(head []byte) bool

// URCSpec names a URC prefix the layer above knows, such as "+QMTRECV:".
type URCSpec struct {
	Prefix  string
	Payload PayloadFunc // nil: plain line
	Raw     RawFunc     // nil: a CR or LF always ends the line
}

// BuiltinURCs lists the module-level URC prefixes the engine always knows:
// power, SIM and registration reports that are not specific to MQTT.
func BuiltinURCs() []URCSpec {
	return []URCSpec{
		{Prefix: "RDY"},
		{Prefix: "APP RDY"},
		{Prefix: "POWERED DOWN"},
		{Prefix: "+CPIN:"},
		{Prefix: "+CFUN:"},
		{Prefix: "+QUSIM:"},
		{Prefix: "+QIND:"},
		{Prefix: "+CREG:"},
		{Prefix: "+CGREG:"},
		{Prefix: "+CEREG:"},
		{Prefix: "+QIURC:"},
	}
}

type urcSpec struct {
	prefix  string
	payload PayloadFunc
	raw     RawFunc
}

// specTable finds the URC spec a line starts with: "+NAME:" prefixes by a
// map lookup on the text up to the first colon, others by comparison.
type specTable struct {
	colon map[string]*urcSpec
	other []*urcSpec
}

func newSpecTable(specs ...[]URCSpec) specTable {
	t := specTable{colon: make(map[string]*urcSpec)}
	for _, list := range specs {
		for _, s := range list {
			if s.Prefix == "" {
				continue
			}
			u := &urcSpec{prefix: s.Prefix, payload: s.Payload, raw: s.Raw}
			if s.Prefix[0] == '+' && strings.IndexByte(s.Prefix, ':') == len(s.Prefix)-1 {
				t.colon[s.Prefix] = u // a later spec replaces an earlier one
				continue
			}
			replaced := false
			for i, o := range t.other {
				if o.prefix == s.Prefix {
					t.other[i], replaced = u, true
				}
			}
			if !replaced {
				t.other = append(t.other, u)
			}
		}
	}
	return t
}

func (t *specTable) lookup(line []byte) *urcSpec {
	if len(line) > 0 && line[0] == '+' {
		if i := bytes.IndexByte(line, ':'); i > 0 {
			if s, ok := t.colon[string(line[:i+1])]; ok {
				return s
			}
		}
	}
	for _, s := range t.other {
		if len(line) >= len(s.prefix) && string(line[:len(s.prefix)]) == s.prefix {
			return s
		}
	}
	return nil
}
