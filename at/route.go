package at

import (
	"bytes"
	"sync"
)

// phase is where a call stands; it decides what the router does with a line.
type phase uint8

const (
	phWriting   phase = iota // the command line is being written; reply lines are held
	phArmed                  // written: lines are the reply
	phAbandoned              // the caller gave up; late lines are dropped until a resync
	phResync                 // a resync AT: waiting for OK or +CME ERROR
	phDrain                  // after a resync: late lines are dropped
)

// call is one command on its way through the engine. Its fields are
// guarded by router.mu.
type call struct {
	cmd       Command
	line      []byte // cmd.Line, to recognise the echo
	phase     phase
	echoSeen  bool
	prompted  bool
	prompt    chan struct{} // closed when the prompt came
	done      chan struct{} // closed when the final result came
	finished  bool
	holds     uint64 // Stats().HeldBack when the command was sent
	held      []Line // lines that came while the command was being written
	heldFinal bool   // held ends with the final result
	lines     []Line
	err       error // the final result
}

func newCall(cmd Command, ph phase) *call {
	return &call{
		cmd:    cmd,
		line:   []byte(cmd.Line),
		phase:  ph,
		prompt: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// waitsForData reports whether cl still waits for the go-ahead to write
// its data.
func (cl *call) waitsForData() bool {
	return cl.cmd.Data != nil && !cl.prompted &&
		(cl.phase == phWriting || cl.phase == phArmed || cl.phase == phAbandoned)
}

// wantsPrompt reports whether a "> " now is this call's prompt.
func (cl *call) wantsPrompt() bool {
	return !cl.cmd.AfterConnect && cl.waitsForData()
}

// isConnect reports whether t is the CONNECT line that cl waits for.
func (cl *call) isConnect(t token) bool {
	if !cl.cmd.AfterConnect || t.payload != nil || t.spec != nil || !cl.waitsForData() {
		return false
	}
	return string(t.text) == "CONNECT" || bytes.HasPrefix(t.text, []byte("CONNECT "))
}

// router decides where each framed token goes: to the call the port is busy
// with (its echo, prompt, information lines and final result) or, as a URC,
// to the subscribers. The calls tell it how far they are (begin, arm,
// abandon, ...); route, on the reader goroutine, moves them on and returns
// the mode the framer frames the next token by. It does no I/O and never
// blocks.
type router struct {
	n *counters // echoes, stale

	mu         sync.Mutex
	cur        *call // the call the port is busy with, or nil
	echoOwner  *call // the call whose payload echo the framer is to expect
	needResync bool  // a call was abandoned: resynchronise before the next
}

// begin makes cl the call the port is busy with.
func (r *router) begin(cl *call) {
	r.mu.Lock()
	r.cur = cl
	r.mu.Unlock()
}

// arm makes cl, fully written, take reply lines: first those held while it
// was being written.
func (r *router) arm(cl *call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cl.phase = phArmed
	for _, l := range cl.held {
		r.take(cl, l)
	}
	cl.held = nil
}

// progress reports whether cl has its final result (err), and whether its
// data prompt came.
func (r *router) progress(cl *call) (finished, prompted bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return cl.finished, cl.prompted, cl.err
}

// abandon gives up cl unless it has finished: its late lines are dropped and
// the engine must resynchronise. It returns whether cl had finished, and the
// lines it got.
func (r *router) abandon(cl *call) (finished bool, lines []Line) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cl.finished {
		return true, cl.lines
	}
	cl.phase = phAbandoned
	r.needResync = true
	return false, cl.lines
}

// resyncNeeded reports whether a call was abandoned since the last resync.
func (r *router) resyncNeeded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.needResync
}

// setPhase moves cl to ph.
func (r *router) setPhase(cl *call, ph phase) {
	r.mu.Lock()
	cl.phase = ph
	r.mu.Unlock()
}

// resynced ends the resync whose drain call is cl: the port is idle again.
func (r *router) resynced(cl *call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == cl {
		r.cur = nil
	}
	r.needResync = false
}

// mode is the mode the framer frames the next token by, now: a call may
// have begun or been armed since route last returned one.
func (r *router) mode() mode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.modeLocked()
}

// modeLocked is the mode the framer frames the next token by. r.mu is held.
func (r *router) modeLocked() mode {
	m := mode{prompt: r.cur != nil && r.cur.wantsPrompt()}
	if r.echoOwner != nil {
		m.echo = &r.echoOwner.cmd
	}
	return m
}

// route takes one token: to the call in flight, or, when urc is set, back
// to the caller to deliver as the URC l. It returns the framer's mode for
// the next token. It runs on the reader goroutine.
func (r *router) route(t token) (l Line, urc bool, m mode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cl := r.cur
	if r.echoOwner != nil && (cl != r.echoOwner || cl.finished || cl.phase != phArmed && cl.phase != phWriting) {
		r.echoOwner = nil
	}
	if t.prompt {
		if cl != nil && cl.wantsPrompt() {
			cl.prompted = true
			close(cl.prompt)
			if cl.echoSeen && cl.phase != phAbandoned {
				r.echoOwner = cl
			}
		}
		return Line{}, false, r.modeLocked()
	}
	if cl == nil {
		return t.line(), true, r.modeLocked()
	}
	if cl.isConnect(t) {
		cl.prompted = true
		close(cl.prompt)
		return Line{}, false, r.modeLocked()
	}
	if !cl.echoSeen && t.payload == nil && bytes.Equal(t.text, cl.line) {
		cl.echoSeen = true
		r.n.echoes.Add(1)
		return Line{}, false, r.modeLocked()
	}
	l = t.line()
	claimed := t.spec != nil && cl.cmd.Answers != nil && cl.cmd.Answers(l)
	if t.spec != nil && !claimed {
		return l, true, r.modeLocked()
	}
	switch cl.phase {
	case phWriting:
		if cl.heldFinal { // the reply is complete: this line comes after it
			return l, true, r.modeLocked()
		}
		cl.held = append(cl.held, l)
		cl.heldFinal, _ = finalResult(l.Text)
	case phArmed:
		r.take(cl, l)
		if cl.finished && r.echoOwner == cl {
			r.echoOwner = nil
		}
	case phResync:
		if final, err := finalResult(l.Text); final && !cl.finished {
			cl.err = err // OK, ERROR or +CME ERROR: the module answers
			r.finish(cl)
		} else {
			r.n.stale.Add(1)
		}
	default: // phAbandoned, phDrain
		r.n.stale.Add(1)
	}
	return Line{}, false, r.modeLocked()
}

// line converts a line token for the world outside the reader.
func (t token) line() Line {
	return Line{Text: string(t.text), Payload: t.payload, Err: t.err}
}

// take gives line l to the armed call cl: an information line or its final
// result. r.mu is held.
func (r *router) take(cl *call, l Line) {
	if final, err := finalResult(l.Text); final && l.Payload == nil {
		cl.err = err
		r.finish(cl)
		return
	}
	cl.lines = append(cl.lines, l)
}

// finish marks cl done. r.mu is held.
func (r *router) finish(cl *call) {
	cl.finished = true
	close(cl.done)
	if r.cur == cl && cl.phase == phArmed {
		r.cur = nil
	}
}
