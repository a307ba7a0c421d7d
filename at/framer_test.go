package at

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// frameRun feeds everything r gives through a framer, as the reader
// goroutine does, and renders the tokens. When prompt is set, one "> " is
// wanted; after it, the framer expects echo (if not empty) as a data
// command's payload echo.
type frameRun struct {
	f      *framer
	prompt bool
	echo   string
	mode   mode
	toks   []string
}

func newFrameRun(maxLine, maxPayload int, prompt bool, echo string) *frameRun {
	return newFrameRunURCs(maxLine, maxPayload, prompt, echo, testURCs())
}

// newFrameRunURCs is newFrameRun with the URC specs urcs beyond the builtin ones.
func newFrameRunURCs(maxLine, maxPayload int, prompt bool, echo string, urcs []URCSpec) *frameRun {
	f := newFramer(maxLine, maxPayload, newSpecTable(BuiltinURCs(), urcs))
	return &frameRun{f: f, prompt: prompt, echo: echo}
}

// fill reads once from r into f, as the reader goroutine does.
func fill(tb testing.TB, f *framer, r io.Reader) (int, error) {
	p := f.room()
	if len(p) == 0 {
		tb.Fatal("room() is empty")
	}
	n, err := r.Read(p)
	if n < 0 || n > len(p) {
		tb.Fatalf("Read returned %d for %d bytes", n, len(p))
	}
	f.added(n)
	return n, err
}

func renderToken(t token) string {
	if t.prompt {
		return ">"
	}
	var s string
	if t.payload != nil {
		s = "P:" + strconv.Quote(string(t.text)) + "|" + strconv.Quote(string(t.payload))
	} else {
		s = "L:" + strconv.Quote(string(t.text))
	}
	if t.err != nil {
		s += " !" + t.err.Error()
	}
	return s
}

// drain takes every complete token from the buffer.
func (fr *frameRun) drain(tb testing.TB) {
	for i := 0; ; i++ {
		if i > 1<<20 {
			tb.Fatal("framer does not stop returning tokens")
		}
		fr.mode.prompt = fr.prompt
		t, ok := fr.f.next(fr.mode)
		if !ok {
			return
		}
		if t.prompt {
			fr.prompt = false
			if fr.echo != "" {
				fr.mode.echo = &Command{Data: []byte(fr.echo)}
			}
		}
		fr.toks = append(fr.toks, renderToken(t))
	}
}

// feed reads r to its end through the framer.
func (fr *frameRun) feed(tb testing.TB, r io.Reader) {
	for reads := 0; ; reads++ {
		n, err := fill(tb, fr.f, r)
		fr.drain(tb)
		if err != nil {
			return
		}
		if n == 0 && reads > 1<<20 {
			tb.Fatal("no progress")
		}
	}
}

// checkAccounting verifies that every byte read is in a token, framing,
// dropped, echoed, or still waiting in the buffer or the token in progress.
func (fr *frameRun) checkAccounting(tb testing.TB) {
	tb.Helper()
	c := &fr.f.c
	sum := c.framing + c.tokens + c.dropped.Load() + c.echoed + c.pending + uint64(fr.f.w-fr.f.r)
	if sum != c.fed {
		tb.Fatalf("bytes unaccounted: fed %d, framing %d + tokens %d + dropped %d + echoed %d + pending %d + buffered %d = %d",
			c.fed, c.framing, c.tokens, c.dropped.Load(), c.echoed, c.pending, fr.f.w-fr.f.r, sum)
	}
}

var frameTests = []struct {
	name   string
	in     string
	prompt bool   // a data command waits for "> "
	echo   string // and expects this payload echo after it
	want   []string
}{
	{name: "empty lines dropped", in: "\r\n\r\nOK\r\n\r\n", want: []string{`L:"OK"`}},
	{name: "echo ends in CR only", in: "AT\r\r\nOK\r\n", want: []string{`L:"AT"`, `L:"OK"`}},
	{name: "bare LF and lone CR end lines", in: "a\nb\rc\r\n", want: []string{`L:"a"`, `L:"b"`, `L:"c"`}},
	{name: "ATI multi-line", in: "ATI\r\r\nQuectel\r\nEC600N\r\nRevision: R1\r\n\r\nOK\r\n",
		want: []string{`L:"ATI"`, `L:"Quectel"`, `L:"EC600N"`, `L:"Revision: R1"`, `L:"OK"`}},
	{name: "prompt with space", in: "AT+X\r\r\n> ", prompt: true, want: []string{`L:"AT+X"`, ">"}},
	{name: "bare prompt", in: "\r\n>", prompt: true, want: []string{">"}},
	{name: "prompt right after the echo CR", in: "AT+X\r> ", prompt: true, want: []string{`L:"AT+X"`, ">"}},
	{name: "no prompt wanted: > starts a line", in: "\r\n> x\r\n>\r\n", want: []string{`L:"> x"`, `L:">"`}},
	{name: "only one prompt", in: "\r\n> \r\n>x\r\n", prompt: true, want: []string{">", `L:">x"`}},
	{name: "data echo with CRLF and OK dropped", in: "\r\n> a\r\nOK\r\nb\r\nOK\r\n", prompt: true, echo: "a\r\nOK\r\nb",
		want: []string{">", `L:"OK"`}},
	{name: "data echo after a URC", in: "\r\n> \r\n+QMTSTAT: 0,1\r\nab\r\nOK\r\n", prompt: true, echo: "ab",
		want: []string{">", `L:"+QMTSTAT: 0,1"`, `L:"OK"`}},
	{name: "no data echo (firmware without it)", in: "\r\n> \r\nOK\r\n", prompt: true, echo: "OK?",
		want: []string{">", `L:"OK"`}},
	{name: "partial data echo is framed normally", in: "\r\n> abX\r\nOK\r\n", prompt: true, echo: "abc",
		want: []string{">", `L:"abX"`, `L:"OK"`}},
	{name: "QMTRECV Aliyun example", in: "\r\n+QMTRECV: 0,0,\"" + aliTopic + "\",92,\"" + aliyun92 + "\"\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"` + aliTopic + `\",92"|` + strconv.Quote(aliyun92)}},
	{name: "QMTRECV payload with CRLF OK NUL and >", in: "+QMTRECV: 0,0,\"t\",12,\"\r\nOK\r\n\x00>\"\xff,\"\"\r\nOK\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"t\",12"|"\r\nOK\r\n\x00>\"\xff,\""`, `L:"OK"`}},
	{name: "QMTRECV empty payload", in: "+QMTRECV: 0,0,\"t\",0,\"\"\r\n", want: []string{`P:"+QMTRECV: 0,0,\"t\",0"|""`}},
	{name: "QMTRECV payload on the next line", in: "+QMTRECV: 0,0,\"pump/01/cmd\",5\r\n\r\nOK\r\n\r\nOK\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"pump/01/cmd\",5"|"\r\nOK\r"`, `L:"OK"`}},
	{name: "QMTRECV next line, no CRLF after", in: "+QMTRECV: 0,0,\"t\",2\nabOK\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"t\",2"|"ab"`, `L:"OK"`}},
	{name: "QMTRECV without length is a line", in: "+QMTRECV: 0,0,\"t\",\"a,\"b\"\r\n", want: []string{`L:"+QMTRECV: 0,0,\"t\",\"a,\"b\""`}},
	{name: "QMTRECV buffer-mode announcement", in: "+QMTRECV: 0,3\r\n", want: []string{`L:"+QMTRECV: 0,3"`}},
	{name: "unregistered prefix is never counted", in: "+QMTFOO: 0,0,\"t\",2,\"a\r\n",
		want: []string{`L:"+QMTFOO: 0,0,\"t\",2,\"a"`}},
	{name: "bad trailer: length too short", in: "+QMTRECV: 0,0,\"t\",2,\"abc\"\r\nOK\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"t\",2"|"ab" !` + ErrBadTrailer.Error(), `L:"OK"`}},
	{name: "bad trailer: no line end after quote", in: "+QMTRECV: 0,0,\"t\",2,\"ab\"x\r\nOK\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"t\",2"|"ab" !` + ErrBadTrailer.Error(), `L:"OK"`}},
	{name: "bad trailer: line end instead of quote", in: "+QMTRECV: 0,0,\"t\",2,\"ab\r\nOK\r\n",
		want: []string{`P:"+QMTRECV: 0,0,\"t\",2"|"ab" !` + ErrBadTrailer.Error(), `L:"OK"`}},
	{name: "line too long dropped", in: strings.Repeat("x", 97) + "\r\nOK\r\n" + strings.Repeat("y", 96) + "\r\n",
		want: []string{`L:"OK"`, `L:"` + strings.Repeat("y", 96) + `"`}},
	{name: "payload too long dropped with its line", in: "+QMTRECV: 0,0,\"t\",129,\"" + strings.Repeat("p", 129) + "\"\r\nOK\r\n",
		want: []string{`L:"OK"`}},
	{name: "next-line payload too long dropped by its count", in: "+QMTRECV: 0,0,\"t\",129\r\n" + strings.Repeat("\r\nOK", 32) + "x\r\nOK\r\n",
		want: []string{`L:"OK"`}},
	{name: "noise lines dropped", in: "\x00\x00\xff\r\n\xff\nOK\r\n\x00x\r\n", want: []string{`L:"OK"`, `L:"\x00x"`}},
	{name: "garbage never wedges", in: "\r\r\r\x00\xfe\r\x1b\x1a\r\n\r\nOK\r\n",
		want: []string{`L:"\x00\xfe"`, `L:"\x1b\x1a"`, `L:"OK"`}},
}

func TestFramer(t *testing.T) {
	wraps := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"OneByteReader", iotest.OneByteReader},
		{"HalfReader", iotest.HalfReader},
		{"halves", func(r io.Reader) io.Reader { return &halvesReader{r: r} }},
		{"DataErrReader", iotest.DataErrReader},
	}
	for _, w := range wraps {
		for _, tt := range frameTests {
			t.Run(w.name+"/"+tt.name, func(t *testing.T) {
				fr := newFrameRun(96, 128, tt.prompt, tt.echo)
				fr.feed(t, w.wrap(strings.NewReader(tt.in)))
				if !slices.Equal(fr.toks, tt.want) {
					t.Errorf("tokens\n got %q\nwant %q", fr.toks, tt.want)
				}
				fr.checkAccounting(t)
			})
		}
	}
}

func TestFramerCounters(t *testing.T) {
	fr := newFrameRun(32, 64, false, "")
	// The payload too long is dropped by its count, CR LF inside included.
	in := strings.Repeat("x", 40) + "\r\n" + "+QMTRECV: 0,0,\"t\",65,\"" + strings.Repeat("p\r\n", 21) + "pq\"\r\n" + "\x00\r\n" +
		"+QMTRECV: 0,0,\"t\",1,\"ab\r\n"
	fr.feed(t, iotest.OneByteReader(strings.NewReader(in)))
	c := &fr.f.c
	if c.linesTooLong.Load() != 1 || c.payloadsTooLong.Load() != 1 || c.noiseLines.Load() != 1 || c.badFrames.Load() != 1 {
		t.Errorf("counters: too long %d, payloads too long %d, noise %d, bad frames %d; want 1 each",
			c.linesTooLong.Load(), c.payloadsTooLong.Load(), c.noiseLines.Load(), c.badFrames.Load())
	}
	fr.checkAccounting(t)
}

// TestFramerBufferBounded: endless input without a line end keeps the
// buffer at its initial size.
func TestFramerBufferBounded(t *testing.T) {
	fr := newFrameRun(64, 64, false, "")
	size := len(fr.f.buf)
	fr.feed(t, io.LimitReader(neverEOL{}, 1<<20))
	if len(fr.f.buf) != size || len(fr.toks) != 0 {
		t.Errorf("buffer grew to %d (from %d), %d tokens", len(fr.f.buf), size, len(fr.toks))
	}
	if fr.f.c.linesTooLong.Load() != 1 {
		t.Errorf("linesTooLong = %d, want 1", fr.f.c.linesTooLong.Load())
	}
	fr.checkAccounting(t)
}

type neverEOL struct{}

func (neverEOL) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}

// TestFramerResetDropsTokenInProgress: a resync drops a counted payload
// that would otherwise swallow the module's answers.
func TestFramerResetDropsTokenInProgress(t *testing.T) {
	fr := newFrameRun(64, 1000, false, "")
	fr.feed(t, strings.NewReader("+QMTRECV: 0,0,\"t\",999,\"abc"))
	if len(fr.toks) != 0 || fr.f.st != stPayload {
		t.Fatalf("tokens %q, state %d", fr.toks, fr.f.st)
	}
	fr.f.reset()
	fr.feed(t, strings.NewReader("\r\nOK\r\n"))
	if !slices.Equal(fr.toks, []string{`L:"OK"`}) {
		t.Errorf("tokens after reset = %q", fr.toks)
	}
	fr.checkAccounting(t)
}

func FuzzFramer(f *testing.F) {
	for _, tt := range frameTests {
		f.Add([]byte(tt.in), uint8(7), tt.prompt)
	}
	f.Add([]byte("+QMTRECV: 0,0,\"t\",3,\"\r\n\"\"\r\n+QMTRECV: 0,0,\"t\",2\r\n\r\n"), uint8(1), false)
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, prompt bool) {
		const maxLine, maxPayload = 48, 96
		fr := newFrameRun(maxLine, maxPayload, prompt, "")
		if chunk%3 == 0 {
			fr.echo = "ab\r\n"
		}
		r := &chunkReader{data: in, size: int(chunk%16) + 1}
		fr.feed(t, r)
		fr.checkAccounting(t)
		if fr.f.c.fed != uint64(len(in)) {
			t.Fatalf("fed %d of %d bytes", fr.f.c.fed, len(in))
		}
		if len(fr.f.buf) > maxLine+1+bufExtra+len(fr.echo) {
			t.Fatalf("buffer grew to %d", len(fr.f.buf))
		}
		for _, tok := range fr.toks {
			if strings.HasPrefix(tok, "L:") {
				s, err := strconv.Unquote(tok[2:])
				if err != nil || len(s) > maxLine || strings.ContainsAny(s, "\r\n") {
					t.Fatalf("bad line token %s", tok)
				}
			}
		}
	})
}

// chunkReader returns data in reads of at most size bytes.
type chunkReader struct {
	data []byte
	size int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data[:min(c.size, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

// rawRecvURCs frame +QMTRECV as qmt does in length mode: the topic is printed raw, so a CR or
// LF after its opening quote belongs to it, and it ends only at `",<digits>,"`.
func rawRecvURCs() []URCSpec {
	specs := testURCs()
	specs[0] = URCSpec{Prefix: "+QMTRECV:", Payload: recvPayloadRaw, Raw: func(head []byte) bool {
		return bytes.HasPrefix(head, []byte("+QMTRECV:")) && bytes.IndexByte(head, '"') > 0
	}}
	return specs
}

// recvPayloadRaw accepts `+QMTRECV: <idx>,<msgid>,"<topic>",<len>,"` whatever the topic holds.
func recvPayloadRaw(head []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(head, []byte("+QMTRECV:"))
	if !ok || bytes.IndexByte(rest, '"') < 0 {
		return 0, false
	}
	rest, ok = bytes.CutSuffix(rest, []byte(`,"`))
	i := bytes.LastIndex(rest, []byte(`",`))
	if !ok || i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[i+2:]))
	if err != nil || n < 0 || strings.ContainsAny(string(rest[i+2:]), "+- ") {
		return 0, false
	}
	return n, true
}

// TestFramerRawTopic: a topic holding `"`, CR and LF — passed raw by the module — stays in its
// +QMTRECV line, so a line inside it (a forged +QMTPUBEX acknowledgement) is never framed as
// module output; an over-long one is dropped whole, its payload included.
func TestFramerRawTopic(t *testing.T) {
	forged := "\r\n+QMTPUBEX: 0,7,0\r\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"quote CR LF in the topic", "\r\n+QMTRECV: 0,3,\"a\"b" + forged + "c\",5,\"hello\"\r\n\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,3,\"a\"b` + "\\r\\n+QMTPUBEX: 0,7,0\\r\\n" + `c\",5"|"hello"`, `L:"OK"`}},
		{"lone CR and LF", "+QMTRECV: 0,0,\"x\ry\nz\",0,\"\"\r\n", []string{`P:"+QMTRECV: 0,0,\"x\ry\nz\",0"|""`}},
		{"over-long topic dropped with its payload", "+QMTRECV: 0,0,\"" + strings.Repeat("t", 120) + forged +
			"\",6,\"" + forged[:6] + "\"\r\nOK\r\n", []string{`L:"OK"`}},
		{"over-long topic, payload too long", "+QMTRECV: 0,0,\"" + strings.Repeat("t", 120) +
			"\",200,\"" + strings.Repeat(forged, 10) + "\"\r\nOK\r\n", []string{`L:"OK"`}},
		{"buffer announcement untouched", "+QMTRECV: 0,2\r\n+QMTSTAT: 0,1\r\n", []string{`L:"+QMTRECV: 0,2"`, `L:"+QMTSTAT: 0,1"`}},
	}
	wraps := []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.HalfReader}
	for _, tt := range tests {
		for i, wrap := range wraps {
			t.Run(fmt.Sprint(tt.name, "/", i), func(t *testing.T) {
				fr := newFrameRunURCs(96, 128, false, "", rawRecvURCs())
				fr.feed(t, wrap(strings.NewReader(tt.in)))
				if !slices.Equal(fr.toks, tt.want) {
					t.Errorf("tokens\n got %q\nwant %q", fr.toks, tt.want)
				}
				fr.checkAccounting(t)
			})
		}
	}
}
