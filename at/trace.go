package at

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// Trace flushing: input is logged a line at a time so that a secret is
// never split between two records; a run without a line end is logged
// once it grows past traceFlushAt, holding back traceHoldBack bytes.
const (
	traceFlushAt  = 4096
	traceHoldBack = 512
	maxSecrets    = 32
)

// tracer logs every byte in and out at trace level, quoted, with secrets
// replaced by "***". It exists only when Options.Trace is set.
type tracer struct {
	log zerolog.Logger

	mu      sync.Mutex
	secrets []string // Command.Secrets seen recently, newest last

	pending []byte // input not yet logged (reader goroutine only)
}

// remember adds the secrets of a command about to be sent, so that they
// are masked in the output and in the echo that comes back.
func (t *tracer) remember(secrets []string) {
	if len(secrets) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range secrets {
		if s == "" || slices.Contains(t.secrets, s) {
			continue
		}
		if len(t.secrets) == maxSecrets {
			t.secrets = slices.Delete(t.secrets, 0, 1)
		}
		t.secrets = append(t.secrets, s)
	}
}

// in logs bytes read from the port, whole lines at a time.
func (t *tracer) in(p []byte) {
	t.pending = append(t.pending, p...)
	cut := bytes.LastIndexAny(t.pending, "\r\n") + 1
	rest := t.pending[cut:]
	switch {
	case string(rest) == ">" || string(rest) == "> ":
		cut = len(t.pending) // the prompt has no line end
	case len(rest) > traceFlushAt:
		cut = len(t.pending) - traceHoldBack
	}
	if cut == 0 {
		return
	}
	t.emit("in", t.pending[:cut])
	t.pending = append(t.pending[:0], t.pending[cut:]...)
}

// flush logs whatever input is left, when the reader ends.
func (t *tracer) flush() {
	if len(t.pending) > 0 {
		t.emit("in", t.pending)
		t.pending = t.pending[:0]
	}
}

// out logs bytes written to the port.
func (t *tracer) out(p []byte) { t.emit("out", p) }

// withheld logs that n secret bytes were written, without them.
func (t *tracer) withheld(n int) {
	t.log.Trace().Str("dir", "out").Int("withheld_bytes", n).Msg("at trace")
}

func (t *tracer) emit(dir string, p []byte) {
	e := t.log.Trace()
	if e == nil {
		return
	}
	t.mu.Lock()
	s := maskSecrets(string(p), t.secrets)
	t.mu.Unlock()
	e.Str("dir", dir).Str("bytes", strconv.Quote(maskCredentials(s))).Msg("at trace")
}

// maskSecrets replaces every occurrence of each secret in s with "***".
func maskSecrets(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// credentialCommands are commands whose third quoted argument is a
// credential, counted after the text given here: the password of
// AT+QMTCONN=<idx>,"<id>","<user>","<password>" and the device secret of
// AT+QMTCFG="aliauth",<idx>,"<pk>","<dn>","<secret>". Upper case: matching
// ignores ASCII case.
var credentialCommands = [...]string{"AT+QMTCONN=", `AT+QMTCFG="ALIAUTH"`}

// maskCredentials is the safety net behind Command.Secrets: it replaces the
// third quoted argument of every AT+QMTCONN= and AT+QMTCFG="aliauth" in s
// (up to the end of its line; an unterminated argument to the end of s)
// with "***".
func maskCredentials(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	u := upperASCII(s)
	var spans [][2]int
	for _, cmd := range credentialCommands {
		for off := 0; ; {
			i := strings.Index(u[off:], cmd)
			if i < 0 {
				break
			}
			off += i + len(cmd)
			if a, b, ok := thirdQuoted(s, off); ok {
				spans = append(spans, [2]int{a, b})
			}
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(x, y [2]int) int { return x[0] - y[0] })
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp[0] < last {
			continue
		}
		b.WriteString(s[last:sp[0]])
		b.WriteString("***")
		last = sp[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// thirdQuoted returns the bounds of the contents of the third quoted
// argument in s from index from on, within the line.
func thirdQuoted(s string, from int) (start, end int, ok bool) {
	quotes := 0
	for k := from; k < len(s); k++ {
		switch s[k] {
		case '\r', '\n':
			if quotes == 5 {
				return start, k, true
			}
			return 0, 0, false
		case '"':
			quotes++
			switch quotes {
			case 5:
				start = k + 1
			case 6:
				return start, k, true
			}
		}
	}
	if quotes == 5 {
		return start, len(s), true
	}
	return 0, 0, false
}

// upperASCII returns s with ASCII lower-case letters in upper case and
// every other byte unchanged, so indexes into the result are indexes into s.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
