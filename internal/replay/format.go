package replay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Direction says who sent a record's bytes.
type Direction int

// The directions of a record.
const (
	// Module is one read by the host: bytes the module sent.
	Module Direction = iota
	// Host is one write by the host.
	Host
	// HostUnseen is a write of Len bytes the source does not show (a file upload).
	HostUnseen
)

// String gives the direction as the format writes it.
func (d Direction) String() string {
	switch d {
	case Module:
		return "module"
	case Host:
		return "host"
	case HostUnseen:
		return "host-unseen"
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}

// Record is one read or write.
type Record struct {
	Dir  Direction
	Time string // the timestamp token without its '@', "" when none
	Data []byte // the bytes (nil for HostUnseen)
	Len  int    // HostUnseen: how many bytes
	Line int    // line number in the file, for messages
}

// Size is the number of bytes the record stands for.
func (r Record) Size() int {
	if r.Dir == HostUnseen {
		return r.Len
	}
	return len(r.Data)
}

// Recv modes a transcript can name.
const (
	RecvLength   = "length"   // +QMTRECV with the length field (recv/mode …,1): the daemon's
	RecvNoLength = "nolength" // +QMTRECV without the length field
)

// Transcript is one parsed transcript file.
type Transcript struct {
	Name    string   // the file name, for messages
	Sources []string // source: lines
	Recv    string   // RecvLength or RecvNoLength
	Notes   []string // note: lines
	Pending string   // pending: a known failure of today's code, and where it is being fixed
	Records []Record
}

// ErrFormat marks a transcript that does not follow the format.
var ErrFormat = errors.New("replay: bad transcript")

// maxRecord bounds one record's bytes, so a bad file cannot ask for unbounded memory.
const maxRecord = 1 << 20

// Parse reads a transcript. name is used in errors only.
func Parse(r io.Reader, name string) (*Transcript, error) {
	t := &Transcript{Name: name, Recv: RecvLength}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8*maxRecord)
	n := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrFormat, name, n, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(strings.TrimLeft(line, " \t"), "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimLeft(rest, " \t")
		switch word {
		case "source:":
			if rest == "" {
				return nil, bad("empty source")
			}
			t.Sources = append(t.Sources, rest)
			continue
		case "pending:":
			t.Pending = rest
			continue
		case "note:":
			t.Notes = append(t.Notes, rest)
			continue
		case "recv:":
			if rest != RecvLength && rest != RecvNoLength {
				return nil, bad("recv: %q: want %q or %q", rest, RecvLength, RecvNoLength)
			}
			t.Recv = rest
			continue
		}
		rec := Record{Line: n}
		switch word {
		case "module":
			rec.Dir = Module
		case "host":
			rec.Dir = Host
		case "host-unseen":
			rec.Dir = HostUnseen
		default:
			return nil, bad("unknown item %q (want source:, recv:, note:, module, host or host-unseen)", word)
		}
		if strings.HasPrefix(rest, "@") {
			ts, after, _ := strings.Cut(rest, " ")
			rec.Time = ts[1:]
			rest = strings.TrimLeft(after, " \t")
		}
		if rec.Dir == HostUnseen {
			v, err := strconv.Atoi(rest)
			if err != nil || v <= 0 || v > maxRecord {
				return nil, bad("host-unseen needs a byte count 1-%d, got %q", maxRecord, rest)
			}
			rec.Len = v
		} else {
			if !strings.HasPrefix(rest, `"`) {
				return nil, bad("%s: the bytes must be a double-quoted Go string", word)
			}
			s, err := strconv.Unquote(rest)
			if err != nil {
				return nil, bad("%s: %v: %s", word, err, rest)
			}
			if s == "" {
				return nil, bad("%s: an empty record", word)
			}
			if len(s) > maxRecord {
				return nil, bad("%s: record longer than %d bytes", word, maxRecord)
			}
			rec.Data = []byte(s)
		}
		t.Records = append(t.Records, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, name, err)
	}
	if len(t.Sources) == 0 {
		return nil, fmt.Errorf("%w: %s: no source: line (every transcript says where its bytes come from)", ErrFormat, name)
	}
	if len(t.Records) == 0 {
		return nil, fmt.Errorf("%w: %s: no records", ErrFormat, name)
	}
	return t, nil
}

// WriteTo writes t in the transcript format; Parse reads it back to an equal Transcript.
func (t *Transcript) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, s := range t.Sources {
		b.WriteString("source: " + oneLine(s) + "\n")
	}
	if t.Recv != "" {
		b.WriteString("recv: " + t.Recv + "\n")
	}
	if t.Pending != "" {
		b.WriteString("pending: " + oneLine(t.Pending) + "\n")
	}
	for _, s := range t.Notes {
		b.WriteString("note: " + oneLine(s) + "\n")
	}
	b.WriteString("\n")
	for _, r := range t.Records {
		b.WriteString(r.Dir.String())
		if r.Time != "" {
			b.WriteString(" @" + strings.ReplaceAll(r.Time, " ", "_"))
		}
		if r.Dir == HostUnseen {
			b.WriteString(" " + strconv.Itoa(r.Len) + "\n")
			continue
		}
		b.WriteString(" " + strconv.Quote(string(r.Data)) + "\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// oneLine keeps a header value on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
