package replay

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const sample = `# comment
source: a capture
recv: nolength
pending: a fix elsewhere
note: n1

host "AT\r"
module @14:17:36.124 "AT\r\r\nOK\r\n"
host "x\x00\xff é"
host-unseen 12
module "\r\n+QMTRECV: 0,1,\"t\",\"p\"\r\n"
`

func TestParseAndWriteRoundTrip(t *testing.T) {
	tr, err := Parse(strings.NewReader(sample), "sample")
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Dir: Host, Data: []byte("AT\r"), Line: 7},
		{Dir: Module, Time: "14:17:36.124", Data: []byte("AT\r\r\nOK\r\n"), Line: 8},
		{Dir: Host, Data: []byte("x\x00\xff é"), Line: 9},
		{Dir: HostUnseen, Len: 12, Line: 10},
		{Dir: Module, Data: []byte("\r\n+QMTRECV: 0,1,\"t\",\"p\"\r\n"), Line: 11},
	}
	if !reflect.DeepEqual(tr.Records, want) || tr.Recv != RecvNoLength || tr.Pending != "a fix elsewhere" ||
		!reflect.DeepEqual(tr.Sources, []string{"a capture"}) || !reflect.DeepEqual(tr.Notes, []string{"n1"}) {
		t.Fatalf("parsed %+v", tr)
	}
	var b bytes.Buffer
	if _, err := tr.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	again, err := Parse(&b, "again")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for i := range again.Records {
		again.Records[i].Line = tr.Records[i].Line
	}
	again.Name = tr.Name
	if !reflect.DeepEqual(again, tr) {
		t.Fatalf("round trip:\n%+v\n%+v", again, tr)
	}
}

func TestParseRefusesBadInput(t *testing.T) {
	for _, in := range []string{
		``,                                   // nothing
		`module "x"`,                         // no source
		"source: s\n",                        // no records
		"source: s\nmodem \"x\"",             // unknown item
		"source: s\nhost x",                  // not quoted
		"source: s\nhost \"x",                // unterminated
		"source: s\nhost \"\"",               // empty
		"source: s\nhost-unseen -1",          // bad count
		"source: s\nhost-unseen 99999999999", // too big
		"source: s\nrecv: sometimes\nhost \"x\"",
	} {
		if _, err := Parse(strings.NewReader(in), "bad"); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%q) = %v, want ErrFormat", in, err)
		}
	}
}

// FuzzParse: any input either parses into records that write back and parse to the same
// records, or is refused with ErrFormat; it never panics.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("source: s\nhost @t \"AT\\r\"\nmodule \"\\xff\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := Parse(strings.NewReader(in), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		var b bytes.Buffer
		if _, err := tr.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&b, "again")
		if err != nil {
			t.Fatalf("written transcript does not parse: %v\n%q", err, b.String())
		}
		if len(again.Records) != len(tr.Records) {
			t.Fatalf("%d records, then %d", len(tr.Records), len(again.Records))
		}
		for i, r := range tr.Records {
			a := again.Records[i]
			if a.Dir != r.Dir || !bytes.Equal(a.Data, r.Data) || a.Len != r.Len {
				t.Fatalf("record %d: %+v, then %+v", i, r, a)
			}
		}
	})
}
