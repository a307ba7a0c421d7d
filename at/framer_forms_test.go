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

// formsRecvURCs frame +QMTRECV as qmt does in the length modes (reference 9.1): the topic is
// raw until `",<len>` follows, and after `<len>` the payload comes in quotes (`,"`), unquoted on
// the same line (`,` then anything else) or on the next line (the line ends).
func formsRecvURCs() []URCSpec {
	specs := testURCs()
	specs[0] = URCSpec{Prefix: "+QMTRECV:", Payload: formsPayload, Raw: func(head []byte) bool {
		_, complete := formsLength(head)
		return bytes.HasPrefix(head, []byte("+QMTRECV:")) && bytes.IndexByte(head, '"') > 0 && !complete
	}}
	return specs
}

// formsLength reads `+QMTRECV: <idx>,<msgid>,"<topic>",<len>` (the topic ends at the last quote).
func formsLength(head []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(head, []byte("+QMTRECV:"))
	if !ok || bytes.IndexByte(rest, '"') < 0 {
		return 0, false
	}
	i := bytes.LastIndex(rest, []byte(`",`))
	if i < 0 || i == bytes.IndexByte(rest, '"') {
		return 0, false
	}
	digits := rest[i+2:]
	if len(digits) == 0 || len(digits) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func formsPayload(head []byte) (int, bool) {
	if h, ok := bytes.CutSuffix(head, []byte(`,"`)); ok {
		return formsLength(h)
	}
	if h, ok := bytes.CutSuffix(head, []byte(`,`)); ok {
		return formsLength(h)
	}
	return formsLength(head)
}

// TestFramerRecvForms: the three payload forms after `<len>` with a raw topic, byte by byte and
// in every read size: exactly len bytes are the payload whatever they hold (CR LF, quotes, an
// "OK" line, a URC), the topic keeps `"`, CR and LF, the lines after are lines, and what is too
// long is dropped with its payload, never read as lines.
func TestFramerRecvForms(t *testing.T) {
	forged := "\r\n+QMTPUBEX: 0,7,0\r\n"
	p := "\r\nOK\r\n\",3,\"x " // 13 bytes
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"next line", "\r\n+QMTRECV: 0,0,\"t\",13\r\n" + p + "\r\n\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,0,\"t\",13"|"\r\nOK\r\n\",3,\"x "`, `L:"OK"`}},
		{"next line, raw topic", "+QMTRECV: 0,1,\"a\"b" + forged + "c\",13\r\n" + p + "\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,1,\"a\"b\r\n+QMTPUBEX: 0,7,0\r\nc\",13"|"\r\nOK\r\n\",3,\"x "`, `L:"OK"`}},
		{"unquoted", "\r\n+QMTRECV: 0,0,\"t\",13," + p + "\r\n\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,0,\"t\",13"|"\r\nOK\r\n\",3,\"x "`, `L:"OK"`}},
		{"unquoted JSON (BC25)", "+QMTRECV: 0,0,\"t\",20,{\"method\":\"control\"}\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,0,\"t\",20"|"{\"method\":\"control\"}"`, `L:"OK"`}},
		{"unquoted, raw topic", "+QMTRECV: 0,1,\"a\"b" + forged + "c\",13," + p + "\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,1,\"a\"b\r\n+QMTPUBEX: 0,7,0\r\nc\",13"|"\r\nOK\r\n\",3,\"x "`, `L:"OK"`}},
		{"unquoted, empty", "+QMTRECV: 0,0,\"t\",0,\r\nOK\r\n", []string{`P:"+QMTRECV: 0,0,\"t\",0"|""`, `L:"OK"`}},
		{"next line, empty", "+QMTRECV: 0,0,\"t\",0\r\n\r\nOK\r\n", []string{`P:"+QMTRECV: 0,0,\"t\",0"|""`, `L:"OK"`}},
		{"quoted still", "\r\n\r\n+QMTRECV: 0,0,\"t\",13,\"" + p + "\"\r\n\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,0,\"t\",13"|"\r\nOK\r\n\",3,\"x "`, `L:"OK"`}},
		{"three forms in one read", "+QMTRECV: 0,1,\"t\",2,\"ab\"\r\n+QMTRECV: 0,2,\"t\",2,cd\r\n+QMTRECV: 0,3,\"t\",2\r\nef\r\n+QMTSTAT: 0,1\r\n",
			[]string{`P:"+QMTRECV: 0,1,\"t\",2"|"ab"`, `P:"+QMTRECV: 0,2,\"t\",2"|"cd"`, `P:"+QMTRECV: 0,3,\"t\",2"|"ef"`, `L:"+QMTSTAT: 0,1"`}},
		{"unquoted payload too long", "+QMTRECV: 0,0,\"t\",129," + strings.Repeat(forged, 6) + strings.Repeat("z", 9) + "\r\nOK\r\n",
			[]string{`L:"OK"`}},
		{"over-long topic, unquoted", "+QMTRECV: 0,0,\"" + strings.Repeat("t", 120) + forged + "\",13," + p + "\r\nOK\r\n",
			[]string{`L:"OK"`}},
		{"over-long topic, next line", "+QMTRECV: 0,0,\"" + strings.Repeat("t", 120) + forged + "\",13\r\n" + p + "\r\nOK\r\n",
			[]string{`L:"OK"`}},
		{"over-long topic, next line, LF alone", "+QMTRECV: 0,0,\"" + strings.Repeat("t", 120) + "\",13\n" + p + "\r\nOK\r\n",
			[]string{`L:"OK"`}},
		{"a line ending in a comma is no header", "+QMTRECV: 0,0,\"t\",x,\r\nOK\r\n\",1,\"y\"\r\nOK\r\n",
			[]string{`P:"+QMTRECV: 0,0,\"t\",x,\r\nOK\r\n\",1"|"y"`, `L:"OK"`}},
	}
	wraps := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"OneByteReader", iotest.OneByteReader},
		{"HalfReader", iotest.HalfReader},
		{"halves", func(r io.Reader) io.Reader { return &halvesReader{r: r} }},
	}
	for _, tt := range tests {
		for _, w := range wraps {
			t.Run(fmt.Sprint(tt.name, "/", w.name), func(t *testing.T) {
				fr := newFrameRunURCs(96, 128, false, "", formsRecvURCs())
				fr.feed(t, w.wrap(strings.NewReader(tt.in)))
				if !slices.Equal(fr.toks, tt.want) {
					t.Errorf("tokens\n got %q\nwant %q", fr.toks, tt.want)
				}
				fr.checkAccounting(t)
			})
		}
	}
}

// FuzzFramerForms is FuzzFramer with the +QMTRECV framing of the length modes (formsRecvURCs):
// raw topics and the three payload forms.
func FuzzFramerForms(f *testing.F) {
	f.Add([]byte("+QMTRECV: 0,0,\"a\"b\r\nc\",3,x\r\n\r\n+QMTRECV: 0,0,\"t\",2\r\n\r\nOK\r\n"), uint8(1))
	f.Add([]byte("+QMTRECV: 0,0,\""+strings.Repeat("t", 60)+"\r\n\",2\n\r\nOK\r\n+QMTRECV: 0,0,\"t\",0,\r\n"), uint8(5))
	f.Add([]byte("+QMTRECV: 0,0,\"t\",200,"+strings.Repeat("\r\nOK", 60)+"\r\n"), uint8(16))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const maxLine, maxPayload = 48, 96
		fr := newFrameRunURCs(maxLine, maxPayload, false, "", formsRecvURCs())
		fr.feed(t, &chunkReader{data: in, size: int(chunk%16) + 1})
		fr.checkAccounting(t)
		if fr.f.c.fed != uint64(len(in)) {
			t.Fatalf("fed %d of %d bytes", fr.f.c.fed, len(in))
		}
		if len(fr.f.buf) > maxLine+1+bufExtra {
			t.Fatalf("buffer grew to %d", len(fr.f.buf))
		}
		for _, tok := range fr.toks {
			if q, ok := strings.CutPrefix(tok, "L:"); ok {
				s, err := strconv.Unquote(q)
				if err != nil || len(s) > maxLine || strings.ContainsAny(s, "\r\n") {
					t.Fatalf("bad line token %s", tok)
				}
			}
		}
	})
}

// BenchmarkFramerForms frames +QMTRECV URCs with a 100-byte payload (holding quotes, CR LF and
// "OK") on the framer alone, no goroutines, in each payload form with a raw topic: one op is one
// message.
func BenchmarkFramerForms(b *testing.B) {
	payload := bytes.Repeat([]byte(`{"a":"\r\nOK\r\n"}`), 7)[:100]
	for _, form := range []struct{ name, sep, end string }{
		{"quoted", `,"`, `"`}, {"unquoted", ",", ""}, {"next-line", "\r\n", ""},
	} {
		b.Run(form.name, func(b *testing.B) {
			msg := append([]byte("\r\n+QMTRECV: 0,0,\"t/x\",100"+form.sep), payload...)
			msg = append(msg, form.end+"\r\n"...)
			block := bytes.Repeat(msg, 64)
			f := newFramer(4096, 4096, newSpecTable(BuiltinURCs(), formsRecvURCs()))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			r := bytes.NewReader(nil)
			for n := 0; n < b.N; {
				r.Reset(block)
				for r.Len() > 0 {
					if _, err := fill(b, f, r); err != nil {
						b.Fatal(err)
					}
					for {
						t, ok := f.next(mode{})
						if !ok {
							break
						}
						if len(t.payload) != 100 {
							b.Fatalf("token %q %q", t.text, t.payload)
						}
						n++
					}
				}
			}
		})
	}
}
