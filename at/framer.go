package at

import (
	"bytes"
	"sync/atomic"
)

// token is one unit the framer cuts from the module's byte stream: a line
// (possibly with a counted payload) or the data prompt.
type token struct {
	prompt  bool
	text    []byte   // line without CR/LF; aliases the framer's memory until the next call to next
	payload []byte   // counted payload, owned by the token; nil for a plain line
	err     error    // ErrBadTrailer
	spec    *urcSpec // the URC prefix the line starts with, or nil
}

// mode is what the framer needs to know of the engine's state, handed to
// it as a value with every call to next: the reader computes it (route
// returns it after each token, and it is refreshed after each read), so the
// framer never calls back into the Conn.
type mode struct {
	// prompt: a command waits for its data prompt, so a '>' at a token
	// start is that prompt.
	prompt bool
	// echo is the data command whose payload echo (ATE1) the module sends
	// back after the prompt, or nil. A different pointer than last time
	// starts (or, nil, stops) the matching; the same one changes nothing.
	echo *Command
}

type frameState uint8

const (
	stStart   frameState = iota // between tokens
	stLine                      // inside a line
	stDiscard                   // dropping the rest of a bad line up to its end
	stPayload                   // reading the bytes of a counted payload
	stTrailer                   // expecting `"` CRLF after a quoted counted payload
	stEcho                      // matching the echo of a data command's payload
	stRawLong                   // dropping an over-long line that is inside a raw field (URCSpec.Raw)
	stSkip                      // dropping a counted payload that is too long, or belongs to a dropped line
)

// An over-long raw line is judged by its first rawKeep and last rawTailKeep bytes.
const (
	rawKeep     = 64
	rawTailKeep = 32
)

// frameCounts are the framer's counters. The atomic ones are read by
// Conn.Stats from other goroutines; the plain ones account for every byte
// and are read only in tests once the reader is idle.
type frameCounts struct {
	linesTooLong    atomic.Uint64
	payloadsTooLong atomic.Uint64
	badFrames       atomic.Uint64
	noiseLines      atomic.Uint64
	dropped         atomic.Uint64 // bytes discarded: over-long lines, bad trailers, noise, resets

	fed     uint64 // bytes read into the buffer
	framing uint64 // CR, LF, the prompt, the `,"` and `"` around counted payloads
	tokens  uint64 // bytes handed out in token text and payloads
	echoed  uint64 // bytes of data-command echo dropped
	pending uint64 // bytes of the counted token in progress
}

// framer splits the byte stream from the module into tokens: CR/LF
// terminated lines (empty ones dropped; a lone CR also ends a line, which is
// how a command echo ends), the unterminated data prompt "> " (only when the
// mode says a command waits for it), and counted payloads announced by a URC
// header whose PayloadFunc gives a length. Its contract is bufio.SplitFunc's:
// it frames the bytes it is given and hands out tokens, and it does no I/O.
// The reader reads into room() and reports the count with added; next cuts
// the next token from buf[r:w], given the engine's mode as a value, or
// reports that it needs more input. The buffer stays the framer's because a
// payload echo that turns out not to be one is given back to the input
// (unread). It never holds more than MaxLine bytes of a line; longer lines
// and oversized payloads are dropped up to the end of their line and counted.
//
// Only the reader goroutine uses a framer.
type framer struct {
	buf  []byte
	r, w int

	maxLine    int
	maxPayload int
	specs      specTable // the URC prefixes, and how their lines are framed

	st        frameState
	scan      int      // stLine: bytes of buf[r:w] already searched
	spec      *urcSpec // stLine: URC spec of the line, valid when specDone
	specDone  bool
	skipLF    bool // the last line ended in CR at the end of the input: a next LF belongs to it
	skipSpace bool // a bare ">" was taken as the prompt: a next space belongs to it

	head      []byte // header of the counted token in progress (reused)
	payload   []byte
	got       int
	quoted    bool // the payload is inside quotes on the header's line
	quoteSeen bool // stTrailer: the closing quote is consumed
	pspec     *urcSpec

	rawTail   []byte // stRawLong: the last bytes of the dropped line (head holds the first)
	skipN     int    // stSkip: payload bytes still to drop
	skipQuote bool   // stSkip: then a closing quote to drop

	echoFor  *Command // the mode's echo the matching below was started for
	echo     []byte   // expected echo of a data command's payload (ATE1)
	echoPos  int      // bytes of echo matched and consumed
	echoMin  int      // len(Data): a mismatch after this many bytes still ends the echo
	echoSkip bool     // the last attempt failed: frame one token normally first

	c frameCounts
}

// bufExtra is the room beyond MaxLine the buffer keeps for reading.
const bufExtra = 4096

func newFramer(maxLine, maxPayload int, specs specTable) *framer {
	return &framer{
		buf:        make([]byte, maxLine+1+bufExtra),
		maxLine:    maxLine,
		maxPayload: maxPayload,
		specs:      specs,
	}
}

// room returns the free end of the buffer, for the reader to read into; it
// is never empty. Bytes written there count once added reports them.
func (f *framer) room() []byte {
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	if f.w == len(f.buf) { // only after unread made the buffer hold more than a line
		nb := make([]byte, 2*len(f.buf))
		copy(nb, f.buf[:f.w])
		f.buf = nb
	}
	return f.buf[f.w:]
}

// added takes the n bytes just read into room() as input; n is at most
// len(room()).
func (f *framer) added(n int) {
	f.w += n
	f.c.fed += uint64(n)
}

// frame consumes n bytes of framing, drop n bytes of discarded input, take
// n bytes into the token in progress.
func (f *framer) frame(n int) { f.r += n; f.c.framing += uint64(n) }
func (f *framer) drop(n int)  { f.r += n; f.c.dropped.Add(uint64(n)) }
func (f *framer) take(n int)  { f.r += n; f.c.pending += uint64(n) }

// emit hands out the token in progress.
func (f *framer) emit(t token) token {
	f.c.tokens += f.c.pending
	f.c.pending = 0
	f.echoSkip = false
	return t
}

// eol returns how many bytes the line end at d[i] takes: CR LF, or a CR or
// an LF alone. A CR that is the last byte of d may be the first half of a
// CR LF: the LF, if it comes first in the next input, is taken with it
// (skipLF, consumed at the top of next).
func (f *framer) eol(d []byte, i int) int {
	if d[i] == '\r' {
		if i+1 == len(d) {
			f.skipLF = true
		} else if d[i+1] == '\n' {
			return 2
		}
	}
	return 1
}

// payloadFunc returns the PayloadFunc of the line begun in line, if any.
func (f *framer) payloadFunc(line []byte) PayloadFunc {
	if !f.specDone {
		f.specDone = true
		f.spec = f.specs.lookup(line)
	}
	if f.spec == nil {
		return nil
	}
	return f.spec.payload
}

// rawAt reports whether a CR or LF after line belongs to the line: it is inside a field the
// line's URCSpec.Raw says the module prints raw.
func (f *framer) rawAt(line []byte) bool {
	f.payloadFunc(line)
	return f.spec != nil && f.spec.raw != nil && f.spec.raw(line)
}

// startSkip drops the next n bytes (a counted payload nobody will get), then a closing quote
// when quoted.
func (f *framer) startSkip(n int, quoted bool) {
	f.skipN, f.skipQuote = n, quoted
	f.st = stSkip
	f.echoSkip = false
}

// next returns the next token, or ok == false when buf[r:w] holds no
// complete token and more input is needed. m is the engine's mode now. A
// line token's text is valid until the next call to next, room or reset.
func (f *framer) next(m mode) (t token, ok bool) {
	if m.echo != f.echoFor {
		f.echoFor = m.echo
		if m.echo == nil {
			f.clearEcho()
		} else {
			f.expectEcho(m.echo.Data, m.echo.DataEnd)
		}
	}
	for {
		d := f.buf[f.r:f.w]
		if f.skipLF { // only ever left pending in stStart, stSkip and stPayload
			if len(d) == 0 {
				return token{}, false
			}
			f.skipLF = false
			if d[0] == '\n' {
				f.frame(1)
				continue
			}
		}
		switch f.st {
		case stStart:
			if len(d) == 0 {
				return token{}, false
			}
			if f.skipSpace {
				f.skipSpace = false
				if d[0] == ' ' {
					f.frame(1)
					continue
				}
			}
			if f.echo != nil && !f.echoSkip {
				f.st = stEcho
				continue
			}
			switch d[0] {
			case '\r', '\n':
				f.frame(1) // line ends and empty lines
				continue
			case '>':
				if m.prompt {
					n := 1
					if len(d) == 1 {
						f.skipSpace = true
					} else if d[1] == ' ' {
						n = 2
					}
					f.frame(n)
					return f.emit(token{prompt: true}), true
				}
			}
			f.st, f.scan, f.spec, f.specDone = stLine, 0, nil, false

		case stLine:
			i, counted := f.scanLine(d)
			if counted {
				continue
			}
			if i < 0 {
				if len(d) > f.maxLine {
					f.c.linesTooLong.Add(1)
					if f.rawAt(d) {
						// Keep the start to judge the rest by; drop it all.
						k := min(rawKeep, len(d))
						f.head = append(f.head[:0], d[:k]...)
						f.rawTail = f.rawTail[:0]
						f.drop(k)
						f.st = stRawLong
						continue
					}
					f.drop(len(d))
					f.st = stDiscard
					continue
				}
				f.scan = len(d)
				return token{}, false
			}
			line := d[:i]
			end := f.eol(d, i)
			f.st = stStart
			switch {
			case i > f.maxLine:
				f.c.linesTooLong.Add(1)
				n, next := f.longHeader(line)
				f.drop(i)
				f.frame(end)
				f.echoSkip = false
				if next { // its payload follows on the next line: drop it too
					f.startSkip(n, false)
				}
				continue
			case isNoise(line):
				f.c.noiseLines.Add(1)
				f.drop(i)
				f.frame(end)
				f.echoSkip = false
				continue
			}
			if pf := f.payloadFunc(line); pf != nil && !bytes.HasSuffix(line, []byte(",")) {
				if n, ok := pf(line); ok && n >= 0 {
					if n > f.maxPayload {
						// Drop the payload too: its bytes are no lines.
						f.c.payloadsTooLong.Add(1)
						f.drop(i)
						f.frame(end)
						f.startSkip(n, false)
						continue
					}
					// The payload follows on the next line.
					f.head = append(f.head[:0], line...)
					f.take(i)
					f.frame(end)
					if n == 0 {
						f.pspec = f.spec
						f.payload = []byte{}
						return f.emit(f.countedToken(nil)), true
					}
					f.payload, f.got, f.quoted, f.pspec = make([]byte, n), 0, false, f.spec
					f.st = stPayload
					continue
				}
			}
			f.take(i)
			f.frame(end)
			return f.emit(token{text: line, spec: f.spec}), true

		case stRawLong:
			if len(d) == 0 {
				return token{}, false
			}
			if f.rawLong(d) {
				continue
			}
			return token{}, false

		case stSkip:
			if f.skipN > 0 {
				n := min(len(d), f.skipN)
				f.drop(n)
				f.skipN -= n
				if f.skipN > 0 {
					return token{}, false
				}
				continue
			}
			if f.skipQuote {
				if len(d) == 0 {
					return token{}, false
				}
				f.skipQuote = false
				if d[0] == '"' {
					f.drop(1)
				}
			}
			f.st = stStart

		case stDiscard:
			if len(d) == 0 {
				return token{}, false
			}
			i := indexEOL(d)
			if i < 0 {
				f.drop(len(d))
				return token{}, false
			}
			f.drop(i)
			f.st = stStart
			f.echoSkip = false

		case stPayload:
			if f.got < len(f.payload) {
				n := copy(f.payload[f.got:], d)
				f.got += n
				f.take(n)
				if f.got < len(f.payload) {
					return token{}, false
				}
			}
			if f.quoted {
				f.st, f.quoteSeen = stTrailer, false
				continue
			}
			f.st = stStart
			return f.emit(f.countedToken(nil)), true

		case stTrailer:
			if len(d) == 0 {
				return token{}, false
			}
			if !f.quoteSeen {
				if d[0] == '"' {
					f.frame(1)
					f.quoteSeen = true
					continue
				}
				f.c.badFrames.Add(1)
				f.st = stStart
				if d[0] != '\r' && d[0] != '\n' {
					f.st = stDiscard
				}
				return f.emit(f.countedToken(ErrBadTrailer)), true
			}
			if d[0] == '\r' || d[0] == '\n' {
				f.frame(f.eol(d, 0))
				f.st = stStart
				return f.emit(f.countedToken(nil)), true
			}
			f.c.badFrames.Add(1)
			f.st = stDiscard
			return f.emit(f.countedToken(ErrBadTrailer)), true

		case stEcho:
			if len(d) == 0 {
				return token{}, false
			}
			want := f.echo[f.echoPos:]
			n := min(len(d), len(want))
			k := 0
			for k < n && d[k] == want[k] {
				k++
			}
			f.echoPos += k
			f.r += k
			f.c.echoed += uint64(k)
			switch {
			case f.echoPos == len(f.echo):
				f.echo = nil
			case k < n: // mismatch: give back what was matched, frame normally
				m := f.echoPos
				if m >= f.echoMin {
					f.unread(f.echo[f.echoMin:m])
					f.echo = nil
				} else {
					f.unread(f.echo[:m])
					f.echoPos = 0
					f.echoSkip = true
				}
			default:
				return token{}, false
			}
			f.st = stStart
		}
	}
}

// scanLine searches the line at the start of d, from f.scan on, for its
// end. It returns the index of the CR or LF that ends it, or -1. When the
// line's PayloadFunc accepts the header read so far at a `,"` (the payload
// follows in quotes) or at a `,` followed by anything else (the payload
// follows unquoted), it starts the counted payload instead and reports
// counted.
func (f *framer) scanLine(d []byte) (end int, counted bool) {
	limit := min(len(d), f.maxLine+1)
	for i := f.scan; i < len(d); i++ {
		if i > 0 && i < limit && d[i-1] == ',' && d[i] != '"' && afterLength(d[:i]) && f.unquoted(d, i) {
			return -1, true
		}
		switch d[i] {
		case '\r', '\n':
			if f.rawAt(d[:i]) {
				continue // inside a raw field: part of the line
			}
			return i, false
		case '"':
			if i == 0 || d[i-1] != ',' || i >= limit {
				continue
			}
			pf := f.payloadFunc(d[:i])
			if pf == nil {
				continue
			}
			n, ok := pf(d[:i+1])
			if !ok || n < 0 {
				continue
			}
			if n > f.maxPayload {
				// Drop the line and exactly its payload: the payload's bytes are no lines.
				f.c.payloadsTooLong.Add(1)
				f.drop(i + 1)
				f.startSkip(n, true)
				return -1, true
			}
			f.head = append(f.head[:0], d[:i-1]...)
			f.take(i - 1)
			f.frame(2)
			f.payload, f.got, f.quoted, f.pspec = make([]byte, n), 0, true, f.spec
			f.st = stPayload
			return -1, true
		}
	}
	return -1, false
}

// afterLength reports whether head ends in `",<digits>,`, where a payload may follow unquoted.
func afterLength(head []byte) bool {
	j := len(head) - 2 // before the final comma
	for j >= 0 && head[j] >= '0' && head[j] <= '9' {
		j--
	}
	return j < len(head)-2 && j >= 1 && head[j] == ',' && head[j-1] == '"'
}

// longHeader asks the PayloadFunc of the over-long line whether it announces a payload on the
// next line, judging it by its first rawKeep and last rawTailKeep bytes as rawLong does.
func (f *framer) longHeader(line []byte) (int, bool) {
	pf := f.payloadFunc(line)
	if pf == nil || bytes.HasSuffix(line, []byte(",")) {
		return 0, false
	}
	k := min(rawKeep, len(line))
	h := append(append([]byte(nil), line[:k]...), line[max(k, len(line)-rawTailKeep):]...)
	n, ok := pf(h)
	return n, ok && n >= 0
}

// unquoted starts the counted payload of the line d[:i] when its PayloadFunc accepts it as a
// header followed by the payload itself, unquoted (head ending in `,`; d[i] is the payload's
// first byte and no quote). It reports whether it did.
func (f *framer) unquoted(d []byte, i int) bool {
	pf := f.payloadFunc(d[:i])
	if pf == nil {
		return false
	}
	n, ok := pf(d[:i])
	if !ok || n < 0 {
		return false
	}
	if n > f.maxPayload {
		f.c.payloadsTooLong.Add(1)
		f.drop(i)
		f.startSkip(n, false)
		return true
	}
	f.head = append(f.head[:0], d[:i-1]...)
	f.take(i - 1)
	f.frame(1) // the comma
	f.payload, f.got, f.quoted, f.pspec = make([]byte, n), 0, false, f.spec
	f.st = stPayload // a payload of 0 bytes is handed out at once there
	return true
}

// rawLong drops the over-long raw line at the start of d until its raw field ends: at a `,"`
// the PayloadFunc accepts (the payload is then dropped too), or at a CR or LF that the RawFunc
// says ends it. It reports whether the state changed; otherwise it consumed all of d.
func (f *framer) rawLong(d []byte) bool {
	pf := f.payloadFunc(nil)
	for i, c := range d {
		if pf != nil && c != '"' && len(f.rawTail) > 0 && f.rawTail[len(f.rawTail)-1] == ',' && afterLength(f.rawTail) {
			h := append(f.head[:len(f.head):len(f.head)], f.rawTail...)
			if n, ok := pf(h); ok && n >= 0 { // the payload follows unquoted: drop it too
				f.drop(i)
				f.startSkip(n, false)
				return true
			}
		}
		switch c {
		case '"':
			if pf == nil || len(f.rawTail) == 0 || f.rawTail[len(f.rawTail)-1] != ',' {
				break
			}
			h := append(append(f.head[:len(f.head):len(f.head)], f.rawTail...), '"')
			if n, ok := pf(h); ok && n >= 0 {
				f.drop(i + 1)
				f.startSkip(n, true)
				return true
			}
		case '\r', '\n':
			h := append(f.head[:len(f.head):len(f.head)], f.rawTail...)
			if f.spec == nil || f.spec.raw == nil || !f.spec.raw(h) {
				f.drop(i)
				f.st = stStart
				f.echoSkip = false
				if pf != nil && !bytes.HasSuffix(h, []byte(",")) {
					if n, ok := pf(h); ok && n >= 0 { // the payload follows on the next line: drop it too
						f.frame(f.eol(d, i))
						f.startSkip(n, false)
					}
				}
				return true
			}
		}
		if len(f.rawTail) == rawTailKeep {
			copy(f.rawTail, f.rawTail[1:])
			f.rawTail = f.rawTail[:rawTailKeep-1]
		}
		f.rawTail = append(f.rawTail, c)
	}
	f.drop(len(d))
	return false
}

func (f *framer) countedToken(err error) token {
	t := token{text: f.head, payload: f.payload, err: err, spec: f.pspec}
	f.payload, f.pspec = nil, nil
	return t
}

// expectEcho makes the framer drop the echo of data (then end) that the
// module sends back with ATE1 after the prompt, possibly after whole URC
// lines.
func (f *framer) expectEcho(data, end []byte) {
	if len(data)+len(end) == 0 {
		return
	}
	f.echo = append(append(make([]byte, 0, len(data)+len(end)), data...), end...)
	f.echoPos, f.echoMin, f.echoSkip = 0, len(data), false
}

// clearEcho stops expecting a payload echo. next calls it between tokens,
// when no echo match can be under way.
func (f *framer) clearEcho() {
	f.echo, f.echoPos, f.echoSkip = nil, 0, false
	if f.st == stEcho {
		f.st = stStart
	}
}

// unread puts p back in front of the unconsumed input.
func (f *framer) unread(p []byte) {
	if len(p) == 0 {
		return
	}
	f.c.echoed -= uint64(len(p))
	if f.r >= len(p) {
		f.r -= len(p)
		copy(f.buf[f.r:], p)
		return
	}
	rest := f.w - f.r
	nb := f.buf
	if len(p)+rest > len(nb) {
		nb = make([]byte, len(p)+rest+bufExtra)
	}
	copy(nb[len(p):], f.buf[f.r:f.w]) // copy handles the overlap
	copy(nb, p)
	f.buf, f.r, f.w = nb, 0, len(p)+rest
}

// reset drops the token in progress and the unconsumed input, as the
// resynchronisation after a timeout asks: a counted payload that will never
// complete must not swallow the module's answers. The reader calls it before
// it adds the bytes it read after the resync began. An echo being matched is
// dropped too; the mode's echo is not started again.
func (f *framer) reset() {
	if f.w > f.r {
		f.drop(f.w - f.r)
	}
	f.c.dropped.Add(f.c.pending)
	f.c.pending = 0
	f.payload, f.pspec = nil, nil
	f.st, f.skipLF, f.skipSpace = stStart, false, false
	f.clearEcho()
}

// indexEOL returns the index of the first CR or LF in d, or -1.
func indexEOL(d []byte) int {
	i := bytes.IndexByte(d, '\r')
	if i < 0 {
		return bytes.IndexByte(d, '\n')
	}
	if j := bytes.IndexByte(d[:i], '\n'); j >= 0 {
		return j
	}
	return i
}

// isNoise reports whether line holds only NUL and 0xFF bytes, the noise a
// UART shows while the module powers up.
func isNoise(line []byte) bool {
	for _, b := range line {
		if b != 0 && b != 0xFF {
			return false
		}
	}
	return true
}
