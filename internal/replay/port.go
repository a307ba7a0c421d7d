package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// ErrMismatch marks bytes the host wrote that the transcript does not have at that point.
var ErrMismatch = errors.New("replay: the host wrote something the transcript does not")

// Port plays the module's side of a transcript to the code under test, as an io.ReadWriteCloser
// (give it to at.New). Writes are checked against the transcript's host records; each Read
// returns at most one module record, and a module record becomes readable only once every host
// record before it has been written in full. A Port is safe for one reader and one writer.
type Port struct {
	t *Transcript

	mu      sync.Mutex
	cond    *sync.Cond
	next    int    // index of the first record not yet played
	hostOff int    // bytes of records[next] (a host record) already written
	readOff int    // bytes of records[next] (a module record) already read
	reading bool   // a Read waits for a module record
	started bool   // Start was called: reads may return bytes
	closed  bool   // Close was called
	err     error  // the first mismatch
	written []byte // the last bytes written, for messages
}

// NewPort returns a Port that plays t. Reads wait for Start; then the module records before the
// first host record are readable at once.
func NewPort(t *Transcript) *Port {
	p := &Port{t: t}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// Read returns the next module record (or the rest of it, when p is shorter), waiting until the
// host has written every record before it. It returns io.EOF once the Port is closed.
func (p *Port) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed {
			return 0, io.EOF
		}
		if p.started && p.next < len(p.t.Records) && p.t.Records[p.next].Dir == Module {
			r := p.t.Records[p.next]
			n := copy(b, r.Data[p.readOff:])
			p.readOff += n
			if p.readOff == len(r.Data) {
				p.next++
				p.readOff = 0
			}
			p.cond.Broadcast()
			return n, nil
		}
		p.reading = true
		p.cond.Broadcast()
		p.cond.Wait()
		p.reading = false
	}
}

// Write checks b against the host records; on a difference it fails with ErrMismatch, which
// ends the engine.
func (p *Port) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, io.ErrClosedPipe
	}
	if p.err != nil {
		return 0, p.err
	}
	p.written = append(p.written, b...)
	if len(p.written) > 256 {
		p.written = p.written[len(p.written)-256:]
	}
	for i := 0; i < len(b); {
		if p.next >= len(p.t.Records) {
			return i, p.fail(fmt.Errorf("%w: %q after the end of the transcript", ErrMismatch, b[i:]))
		}
		r := p.t.Records[p.next]
		if r.Dir == Module {
			return i, p.fail(fmt.Errorf("%w: %q written while the module record at line %d (%q) was still unread",
				ErrMismatch, b[i:], r.Line, r.Data[p.readOff:]))
		}
		n := min(len(b)-i, r.Size()-p.hostOff)
		if r.Dir == Host {
			want := r.Data[p.hostOff : p.hostOff+n]
			if string(want) != string(b[i:i+n]) {
				return i, p.fail(fmt.Errorf("%w: line %d: wrote %q, the transcript has %q (from byte %d of the record %q)",
					ErrMismatch, r.Line, b[i:i+n], want, p.hostOff, r.Data))
			}
		}
		i += n
		p.hostOff += n
		if p.hostOff == r.Size() {
			p.next++
			p.hostOff = 0
		}
	}
	p.cond.Broadcast()
	return len(b), nil
}

func (p *Port) fail(err error) error {
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	return err
}

// Start lets reads return bytes: the caller has subscribed to everything it wants to see.
func (p *Port) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = true
	p.cond.Broadcast()
}

// Close ends the Port: a waiting Read returns io.EOF.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cond.Broadcast()
	return nil
}

// Err is the first mismatch, or nil.
func (p *Port) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// WaitIdle waits until every module record that may be read now has been read and a Read waits
// for more: the reader has framed and routed everything before it. It fails when ctx ends first
// or on a mismatch.
func (p *Port) WaitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.err != nil:
			return p.err
		case p.closed:
			return io.ErrClosedPipe
		case p.reading && (p.next >= len(p.t.Records) || p.t.Records[p.next].Dir != Module):
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("replay: the engine did not read the module's bytes up to line %d: %w", p.lineLocked(), ctx.Err())
		}
		p.cond.Wait()
	}
}

// Done reports whether every record has been played.
func (p *Port) Done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next >= len(p.t.Records)
}

// Position says where the replay stands, for messages.
func (p *Port) Position() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= len(p.t.Records) {
		return "at the end"
	}
	r := p.t.Records[p.next]
	return "at line " + strconv.Itoa(r.Line) + " (" + r.Dir.String() + ")"
}

func (p *Port) lineLocked() int {
	if p.next >= len(p.t.Records) {
		return -1
	}
	return p.t.Records[p.next].Line
}
