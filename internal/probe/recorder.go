package probe

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/replay"
)

// Recorder passes reads and writes through to a port and records each one: the bytes, which way
// they went and when. The at engine is put on top of it, so what it records is exactly what
// crossed the wire.
type Recorder struct {
	rw    io.ReadWriteCloser
	start time.Time

	mu   sync.Mutex
	recs []record
}

type record struct {
	dir  replay.Direction
	at   time.Duration // since the Recorder was made
	data []byte
}

// NewRecorder records the traffic on rw from now on.
func NewRecorder(rw io.ReadWriteCloser) *Recorder {
	return &Recorder{rw: rw, start: time.Now()}
}

// Read reads from the port and records what came.
func (r *Recorder) Read(p []byte) (int, error) {
	n, err := r.rw.Read(p)
	if n > 0 {
		r.add(replay.Module, p[:n])
	}
	return n, err
}

// Write records what the host writes and writes it to the port.
func (r *Recorder) Write(p []byte) (int, error) {
	r.add(replay.Host, p)
	return r.rw.Write(p)
}

// Close closes the port.
func (r *Recorder) Close() error { return r.rw.Close() }

func (r *Recorder) add(dir replay.Direction, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, record{dir: dir, at: time.Since(r.start), data: append([]byte(nil), p...)})
}

// mark is a position in the recording.
func (r *Recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// since returns a copy of the records from mark m on.
func (r *Recorder) since(m int) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.recs[min(m, len(r.recs)):]...)
}

// Transcript gives the recording as a replay transcript, with every occurrence of each secret
// replaced by "***" in both directions — also one split between two reads or writes.
func (r *Recorder) Transcript(sources, notes []string, secrets []string) *replay.Transcript {
	r.mu.Lock()
	recs := append([]record(nil), r.recs...)
	r.mu.Unlock()
	recs = mask(recs, replay.Host, secrets)
	recs = mask(recs, replay.Module, secrets)
	t := &replay.Transcript{Sources: sources, Recv: replay.RecvLength, Notes: notes}
	for _, rc := range recs {
		if len(rc.data) == 0 {
			continue // a record that held only part of a secret
		}
		t.Records = append(t.Records, replay.Record{Dir: rc.dir, Time: fmt.Sprintf("+%.6fs", rc.at.Seconds()), Data: rc.data})
	}
	return t
}

// mask replaces the secrets in the stream of records going dir: the bytes of each occurrence
// are removed and "***" is put where it started.
func mask(recs []record, dir replay.Direction, secrets []string) []record {
	var stream []byte
	for _, rc := range recs {
		if rc.dir == dir {
			stream = append(stream, rc.data...)
		}
	}
	hide := make([]bool, len(stream))  // byte is part of a secret
	first := make([]bool, len(stream)) // byte starts one
	found := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for off := 0; ; {
			i := strings.Index(string(stream[off:]), s)
			if i < 0 {
				break
			}
			i += off
			first[i] = true
			for k := i; k < i+len(s); k++ {
				hide[k] = true
			}
			found = true
			off = i + len(s)
		}
	}
	if !found {
		return recs
	}
	out := make([]record, len(recs))
	pos := 0
	for j, rc := range recs {
		out[j] = rc
		if rc.dir != dir {
			continue
		}
		var b []byte
		for range rc.data {
			switch {
			case first[pos]:
				b = append(b, "***"...)
			case !hide[pos]:
				b = append(b, stream[pos])
			}
			pos++
		}
		out[j].data = b
	}
	return out
}
