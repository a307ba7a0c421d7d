package probe

import (
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/replay"
)

// TestMaskSplitSecret: a secret split between two reads (an echo in pieces) is masked all the
// same, in both directions, and nothing else changes.
func TestMaskSplitSecret(t *testing.T) {
	recs := []record{
		{dir: replay.Host, data: []byte(`AT+QMTCONN=0,"id","u","hunter2"` + "\r")},
		{dir: replay.Module, data: []byte(`AT+QMTCONN=0,"id","u","hun`)},
		{dir: replay.Module, data: []byte(`ter2"` + "\r\r\nOK\r\n")},
		{dir: replay.Host, data: []byte("hunter")},
	}
	r := &Recorder{recs: recs}
	tr := r.Transcript([]string{"s"}, nil, []string{"hunter2"})
	var got []string
	for _, rec := range tr.Records {
		got = append(got, rec.Dir.String()+" "+string(rec.Data))
	}
	want := []string{
		`host AT+QMTCONN=0,"id","u","***"` + "\r",
		`module AT+QMTCONN=0,"id","u","***`,
		`module "` + "\r\r\nOK\r\n",
		"host hunter",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// TestPromptForm: the prompt's bytes, its space in the same or the next read, and URC lines
// that came between the command and the prompt.
func TestPromptForm(t *testing.T) {
	for _, tc := range []struct {
		reads []string
		want  string
	}{
		{[]string{"\r\n> "}, `"> " after "\r\n", the space in the same read`},
		{[]string{"\r\n>", " "}, `">" after "\r\n", its space in the next read`},
		{[]string{"AT+X\r\r\n>"}, `">" after "\r\n" with no space after it`},
		{[]string{"\r\n+QMTRECV: 0,0,\"t\",1,\"a\"\r\n", "\r\n> "}, `"> " after "\r\n", the space in the same read; URC lines between the command and its prompt: "+QMTRECV: 0,0,\"t\",1,\"a\""`},
		{[]string{"\r\nERROR\r\n"}, "no prompt seen"},
	} {
		recs := []record{{dir: replay.Host, data: []byte("AT+X\r")}}
		for _, r := range tc.reads {
			recs = append(recs, record{dir: replay.Module, data: []byte(r)})
		}
		recs = append(recs, record{dir: replay.Host, data: []byte("data")}, record{dir: replay.Module, data: []byte("> late")})
		if got := promptForm(recs); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.reads, got, tc.want)
		}
	}
}

// FuzzRecordAnalysis: what the probe reads out of recorded bytes (the prompt's form, the
// +QMTRECV form, masking) never panics on any bytes a module may send, and masking leaves no
// secret behind.
func FuzzRecordAnalysis(f *testing.F) {
	f.Add([]byte("\r\n> "), []byte("\r\n+QMTRECV: 0,0,\"t\",3,\"abc\"\r\n"), "t", "abc")
	f.Add([]byte("\r\n>"), []byte(" \r\nOK\r\n+QMTRECV: 0,0,\"t\",3\r\nabc"), "t", "b")
	f.Fuzz(func(t *testing.T, a, b []byte, topic, secret string) {
		recs := []record{
			{dir: replay.Host, data: []byte("AT+X\r")},
			{dir: replay.Module, data: a},
			{dir: replay.Host, data: []byte("data")},
			{dir: replay.Module, data: b},
		}
		_ = promptForm(recs)
		_ = recvForm(recs, topic)
		r := &Recorder{recs: recs}
		tr := r.Transcript([]string{"s"}, nil, []string{secret})
		if secret == "" || strings.Contains(secret, "*") {
			return
		}
		for _, dir := range []replay.Direction{replay.Host, replay.Module} {
			var all []byte
			for _, rec := range tr.Records {
				if rec.Dir == dir {
					all = append(all, rec.Data...)
				}
			}
			if strings.Contains(string(all), secret) {
				t.Fatalf("secret %q left in %q", secret, all)
			}
		}
	})
}
