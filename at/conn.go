package at

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for the zero values in Options.
const (
	DefaultURCQueue      = 1024
	DefaultMaxLine       = 4096
	DefaultMaxPayload    = 64 << 10
	DefaultResyncTries   = 3
	DefaultResyncTimeout = 500 * time.Millisecond
)

// maxEmptyReads is how many reads in a row may return no bytes and no
// error before the port is taken as gone (as bufio does with
// io.ErrNoProgress).
const maxEmptyReads = 100

// Options configure a Conn. The zero value is usable.
type Options struct {
	Logger     zerolog.Logger // where warnings and (with Trace) the byte trace go; zero value = zerolog.Nop()
	Trace      bool           // log every byte in and out at trace level, secrets masked
	URCQueue   int            // capacity of each subscriber's bounded URC queue; 0 = 1024
	MaxLine    int            // longest line kept; longer ones are dropped and counted; 0 = 4096
	MaxPayload int            // largest counted payload accepted; 0 = 64 KiB
	URCs       []URCSpec      // extra URC prefixes (beyond BuiltinURCs), with payload framing

	// ResyncTries is how many times the resynchronisation after a timeout
	// sends AT before it gives up with ErrUnresponsive; 0 = 3.
	ResyncTries int
	// ResyncTimeout is how long each of those tries waits for OK; 0 = 500 ms.
	// A fifth of it is spent draining late lines after the OK.
	ResyncTimeout time.Duration
}

// Command is one AT command.
type Command struct {
	// Line is the command without the trailing CR, e.g. `AT+QMTCONN?`.
	Line string
	// Answers claims lines that would otherwise be URCs (they start with a
	// registered prefix) as this command's reply, e.g. `+QMTCONN:` lines
	// for AT+QMTCONN?; it decides by prefix and shape. nil: registered
	// prefixes are always URCs. It runs on the reader goroutine: it must be
	// quick and must not call the Conn.
	Answers func(l Line) bool
	// Data, when non-nil, makes the command wait for the "> " prompt and
	// then write Data, exactly, with no terminator.
	Data []byte
	// DataEnd is written right after Data (e.g. {0x1A} for the Ctrl-Z
	// form); nil for the length form.
	DataEnd []byte
	// AfterConnect makes a data command wait for a "CONNECT" line instead
	// of the "> " prompt before it writes Data, as AT+QFUPL does.
	AfterConnect bool
	// SecretData keeps Data out of the trace (a private key being
	// uploaded): the trace shows only how many bytes were written.
	SecretData bool
	// Secrets are substrings that must never appear in a log or an error;
	// the trace shows *** instead, in both directions.
	Secrets []string
}

// Response is what a command answered before its final result.
type Response struct {
	Lines []Line // information lines, in order, URCs excluded
}

// Stats are the engine's counters, for health reporting and escalation.
type Stats struct {
	BytesIn             uint64        // bytes read from the port
	BytesOut            uint64        // bytes written to the port
	Commands            uint64        // commands sent (resync ATs excluded)
	CommandTime         time.Duration // total time those commands took, from being sent to their result or timeout
	URCs                uint64        // URCs framed and offered to the subscribers
	HeldBack            uint64        // times the reader waited for room in a full subscriber queue (nothing is dropped)
	HeldFor             time.Duration // total time the reader spent waiting so
	Echoes              uint64        // command echoes dropped (ATE1)
	StaleLines          uint64        // lines no live command could own (late replies, resync chatter), dropped
	LinesTooLong        uint64        // lines longer than MaxLine, dropped
	PayloadsTooLong     uint64        // counted payloads longer than MaxPayload, dropped with their line
	BadFrames           uint64        // counted payloads not followed by `"` CRLF (Line.Err = ErrBadTrailer)
	NoiseLines          uint64        // lines of only NUL/0xFF bytes, dropped
	DroppedBytes        uint64        // bytes discarded by framing for the reasons above
	Timeouts            uint64        // commands whose deadline passed before their final result
	ConsecutiveTimeouts uint64        // deadline timeouts since the last final result; escalate on this
	Resyncs             uint64        // resynchronisations started
	ResyncFailures      uint64        // resynchronisations that got no OK (ErrUnresponsive)
}

// Conn is the AT engine over one port. One reader goroutine owns all input
// and frames it; one writer goroutine performs all writes; commands queue in
// call order and run one at a time. A Conn is safe for concurrent use.
type Conn struct {
	rw          io.ReadWriter
	log         zerolog.Logger
	trace       *tracer // nil when tracing is off
	specs       specTable
	queueLen    int
	resyncTries int
	resyncWait  time.Duration

	f *framer // reader goroutine only

	turn turnQueue
	wq   chan *writeReq

	mu         sync.Mutex
	cur        *call // the command the port is busy with, or nil
	echoOwner  *call // the call whose payload echo the framer expects
	needResync bool
	err        error
	done       chan struct{}

	subMu    sync.RWMutex
	subs     []*Subscription
	subsDone bool // the engine ended: no more subscriptions

	resetReq  atomic.Bool // ask the reader to drop the token in progress
	closeOnce sync.Once
	closeErr  error

	holdMu    sync.Mutex
	holding   chan struct{} // non-nil while the reader waits for room in a subscriber queue
	holds     atomic.Uint64
	heldNanos atomic.Int64
	cmdNanos  atomic.Int64 // Stats().CommandTime

	commands, urcs, echoes, stale atomic.Uint64
	bytesIn, bytesOut             atomic.Uint64
	timeouts, consecutive         atomic.Uint64
	resyncs, resyncFailures       atomic.Uint64
}

// New starts the single reader goroutine (and a writer goroutine) over rw
// and returns the engine. If rw is an io.Closer, Close closes it (that is
// what wakes a blocked Read on a serial port or pty).
func New(rw io.ReadWriter, opts Options) *Conn {
	c := &Conn{
		rw:          rw,
		log:         opts.Logger,
		specs:       newSpecTable(BuiltinURCs(), opts.URCs),
		queueLen:    orDefault(opts.URCQueue, DefaultURCQueue),
		resyncTries: orDefault(opts.ResyncTries, DefaultResyncTries),
		resyncWait:  opts.ResyncTimeout,
		wq:          make(chan *writeReq),
		done:        make(chan struct{}),
	}
	if c.resyncWait <= 0 {
		c.resyncWait = DefaultResyncTimeout
	}
	if opts.Trace {
		c.trace = &tracer{log: opts.Logger}
	}
	c.f = newFramer(orDefault(opts.MaxLine, DefaultMaxLine), orDefault(opts.MaxPayload, DefaultMaxPayload))
	c.f.lookup = c.specs.lookup
	c.f.promptWanted = c.promptWanted
	go c.readLoop()
	go c.writeLoop()
	return c
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// phase is where a call stands; it decides what the reader does with a line.
type phase uint8

const (
	phWriting   phase = iota // the command line is being written; reply lines are held
	phArmed                  // written: lines are the reply
	phAbandoned              // the caller gave up; late lines are dropped until a resync
	phResync                 // a resync AT: waiting for OK or +CME ERROR
	phDrain                  // after a resync: late lines are dropped
)

// call is one command on its way through the engine. Its fields are
// guarded by Conn.mu.
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

// Run is Do for a plain command line.
func (c *Conn) Run(ctx context.Context, line string) (Response, error) {
	return c.Do(ctx, Command{Line: line})
}

// Do queues cmd behind any command in flight (callers are served in call
// order), writes it, and returns its information lines and its final
// result: nil for OK; ErrError for ERROR; *CMEError / *CMSError (all wrapped
// with the command, secrets masked). Reply matching is armed only after the
// command is fully written: lines that come while it is being written (on a
// pipe or pty the module can answer before Write returns) are held and
// matched then; its echo and URCs are routed at once. It ends when ctx ends, with an error wrapping
// ErrTimeout and ctx.Err() (and ErrNoPrompt if a data command's prompt never
// came); the engine then resynchronises before the next command. When the
// engine ends it returns Err().
func (c *Conn) Do(ctx context.Context, cmd Command) (Response, error) {
	if cmd.Line == "" || strings.ContainsAny(cmd.Line, "\r\n\x00") {
		return Response{}, fmt.Errorf("%w: %q", ErrInvalidCommand, c.redact(cmd))
	}
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("at: %s: not sent: %w: %w", c.redact(cmd), ErrTimeout, err)
	}
	if err := c.turn.acquire(ctx, c.done); err != nil {
		if c.ended() {
			return Response{}, c.Err()
		}
		return Response{}, fmt.Errorf("at: %s: waiting for the port: %w: %w", c.redact(cmd), ErrTimeout, err)
	}
	defer c.turn.release()
	c.mu.Lock()
	need := c.needResync
	c.mu.Unlock()
	if need {
		if err := c.resync(ctx); err != nil {
			return Response{}, fmt.Errorf("at: resync before %s: %w", c.redact(cmd), err)
		}
	}
	return c.exec(ctx, cmd)
}

// exec runs one command; the caller holds the turn.
func (c *Conn) exec(ctx context.Context, cmd Command) (Response, error) {
	cl := newCall(cmd, phWriting)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return Response{}, c.err
	}
	c.cur = cl
	c.mu.Unlock()
	cl.holds = c.holds.Load()
	c.commands.Add(1)
	start := time.Now()
	defer func() { c.cmdNanos.Add(int64(time.Since(start))) }()
	if c.trace != nil {
		c.trace.remember(cmd.Secrets)
	}

	wire := make([]byte, 0, len(cmd.Line)+1)
	wire = append(append(wire, cmd.Line...), '\r')
	if err := c.write(ctx, wire); err != nil {
		return c.settle(ctx, cl, false)
	}

	// Fully written: arm reply matching, with what came meanwhile.
	c.mu.Lock()
	cl.phase = phArmed
	for _, l := range cl.held {
		c.take(cl, l)
	}
	cl.held = nil
	c.mu.Unlock()

	if cmd.Data != nil {
		c.wait(ctx, cl.prompt, cl.done)
		c.mu.Lock()
		finished, prompted := cl.finished, cl.prompted
		c.mu.Unlock()
		switch {
		case finished: // e.g. ERROR instead of the prompt
			return c.result(cl)
		case !prompted:
			return c.settle(ctx, cl, true)
		}
		data := make([]byte, 0, len(cmd.Data)+len(cmd.DataEnd))
		data = append(append(data, cmd.Data...), cmd.DataEnd...)
		if err := c.writeData(ctx, data, cmd.SecretData); err != nil {
			return c.settle(ctx, cl, false)
		}
	}
	c.wait(ctx, cl.done, nil)
	return c.settle(ctx, cl, false)
}

// wait blocks until a or b is closed, ctx ends or the engine ends.
func (c *Conn) wait(ctx context.Context, a, b <-chan struct{}) {
	select {
	case <-a:
	case <-b:
	case <-ctx.Done():
	case <-c.done:
	}
}

// settle ends a call whose wait is over: with its result if it finished,
// with the engine's error if the engine ended, otherwise as a timeout after
// which the engine resynchronises.
func (c *Conn) settle(ctx context.Context, cl *call, noPrompt bool) (Response, error) {
	c.mu.Lock()
	switch {
	case cl.finished:
		c.mu.Unlock()
		return c.result(cl)
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return Response{}, err
	}
	cl.phase = phAbandoned
	c.needResync = true
	lines := cl.lines
	c.mu.Unlock()

	ctxErr := ctx.Err()
	if ctxErr == nil { // cannot happen: every wait ends with ctx, the call or the engine
		ctxErr = context.Canceled
	}
	what := ErrTimeout
	if noPrompt {
		what = fmt.Errorf("%w: %w", ErrNoPrompt, ErrTimeout)
	}
	held := c.heldSince(cl.holds)
	if held {
		// The reply may be unread behind URCs a slow subscriber held back: not the module's
		// fault, so it does not count towards escalation.
		what = fmt.Errorf("%w: %w", ErrHeldBack, what)
	}
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		c.timeouts.Add(1)
		if !held {
			c.consecutive.Add(1)
		}
	}
	c.log.Debug().Str("command", c.redact(cl.cmd)).Err(ctxErr).Msg("at: command abandoned; resync before the next one")
	return Response{Lines: lines}, fmt.Errorf("at: %s: %w (%w)", c.redact(cl.cmd), what, ctxErr)
}

// result turns a finished call into Do's return values.
func (c *Conn) result(cl *call) (Response, error) {
	c.consecutive.Store(0)
	r := Response{Lines: cl.lines}
	if cl.err != nil {
		return r, fmt.Errorf("at: %s: %w", c.redact(cl.cmd), cl.err)
	}
	return r, nil
}

// take gives line l to the armed call cl: an information line or its final
// result. c.mu is held.
func (c *Conn) take(cl *call, l Line) {
	if final, err := finalResult(l.Text); final && l.Payload == nil {
		cl.err = err
		c.finish(cl)
		return
	}
	cl.lines = append(cl.lines, l)
}

// finish marks cl done. c.mu is held.
func (c *Conn) finish(cl *call) {
	cl.finished = true
	close(cl.done)
	if c.cur == cl && cl.phase == phArmed {
		c.cur = nil
	}
}

// resync brings the module back to a known state after a timeout: ESC
// (ends a pending data prompt), then AT until the module answers, each try
// waiting ResyncTimeout, then a short drain of late lines. Any final result
// proves the module alive: OK, +CME ERROR, and plain ERROR too — a firmware
// may take the ESC as part of the AT line, and one real module answered a
// stray first line ERROR. Only silence is ErrUnresponsive. The caller holds
// the turn.
func (c *Conn) resync(ctx context.Context) error {
	c.resyncs.Add(1)
	tctx, cancel := context.WithTimeout(ctx, c.resyncWait)
	c.resetReq.Store(true)
	_ = c.write(tctx, []byte{0x1B}) // a failure shows in c.ended() or ctx below
	cancel()
	var cl *call
	ok := false
	for try := 0; try < c.resyncTries && !c.ended() && ctx.Err() == nil && !ok; try++ {
		cl = newCall(Command{Line: "AT"}, phResync)
		c.mu.Lock()
		c.cur = cl
		c.mu.Unlock()
		c.waitReader(ctx) // the answer would be behind the URCs a slow subscriber holds back
		tctx, cancel := context.WithTimeout(ctx, c.resyncWait)
		if err := c.write(tctx, []byte("AT\r")); err == nil {
			c.wait(tctx, cl.done, nil)
		}
		cancel()
		c.mu.Lock()
		ok = cl.finished
		answer := cl.err
		c.mu.Unlock()
		if ok && answer != nil {
			c.log.Debug().Err(answer).Msg("at: the resync AT was answered with an error: the module is alive")
		}
	}
	switch {
	case c.ended():
		return c.Err()
	case !ok && ctx.Err() != nil:
		c.abandon(cl)
		return fmt.Errorf("%w (%w)", ErrTimeout, ctx.Err())
	case !ok:
		c.abandon(cl)
		c.resyncFailures.Add(1)
		c.log.Warn().Int("tries", c.resyncTries).Dur("each", c.resyncWait).Msg("at: module does not answer AT")
		return fmt.Errorf("%w (%d tries, %v each)", ErrUnresponsive, c.resyncTries, c.resyncWait)
	}

	c.setPhase(cl, phDrain)
	t := time.NewTimer(c.resyncWait / 5)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-c.done:
	}
	c.mu.Lock()
	if c.cur == cl {
		c.cur = nil
	}
	c.needResync = false
	c.mu.Unlock()
	return nil
}

// abandon marks the resync call cl (nil when no AT was sent) abandoned: its
// late answer is dropped.
func (c *Conn) abandon(cl *call) {
	if cl != nil {
		c.setPhase(cl, phAbandoned)
	}
}

func (c *Conn) setPhase(cl *call, ph phase) {
	c.mu.Lock()
	cl.phase = ph
	c.mu.Unlock()
}

// redact returns cmd.Line with its secrets and credentials masked, for
// logs and errors.
func (c *Conn) redact(cmd Command) string {
	return maskCredentials(maskSecrets(cmd.Line, cmd.Secrets))
}

// promptWanted tells the framer whether a '>' at a token start is the
// prompt of the command in flight.
func (c *Conn) promptWanted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil && c.cur.wantsPrompt()
}

// route sends one token where it belongs: to the command in flight or to
// the URC subscribers. It runs on the reader goroutine.
func (c *Conn) route(t token) {
	c.mu.Lock()
	cl := c.cur
	if c.echoOwner != nil && (cl != c.echoOwner || cl.finished || cl.phase != phArmed && cl.phase != phWriting) {
		c.echoOwner = nil
		c.f.clearEcho()
	}
	if t.prompt {
		if cl != nil && cl.wantsPrompt() {
			cl.prompted = true
			close(cl.prompt)
			if cl.echoSeen && cl.phase != phAbandoned {
				c.f.expectEcho(cl.cmd.Data, cl.cmd.DataEnd)
				c.echoOwner = cl
			}
		}
		c.mu.Unlock()
		return
	}
	if cl == nil {
		c.mu.Unlock()
		c.deliver(t.line())
		return
	}
	if cl.isConnect(t) {
		cl.prompted = true
		close(cl.prompt)
		c.mu.Unlock()
		return
	}
	if !cl.echoSeen && t.payload == nil && bytes.Equal(t.text, cl.line) {
		cl.echoSeen = true
		c.mu.Unlock()
		c.echoes.Add(1)
		return
	}
	l := t.line()
	claimed := t.spec != nil && cl.cmd.Answers != nil && cl.cmd.Answers(l)
	if t.spec != nil && !claimed {
		c.mu.Unlock()
		c.deliver(l)
		return
	}
	switch cl.phase {
	case phWriting:
		if cl.heldFinal { // the reply is complete: this line comes after it
			c.mu.Unlock()
			c.deliver(l)
			return
		}
		cl.held = append(cl.held, l)
		cl.heldFinal, _ = finalResult(l.Text)
	case phArmed:
		c.take(cl, l)
		if cl.finished && c.echoOwner == cl {
			c.echoOwner = nil
			c.f.clearEcho()
		}
	case phResync:
		if final, err := finalResult(l.Text); final && !cl.finished {
			cl.err = err // OK, ERROR or +CME ERROR: the module answers
			c.finish(cl)
		} else {
			c.stale.Add(1)
		}
	default: // phAbandoned, phDrain
		c.stale.Add(1)
	}
	c.mu.Unlock()
}

// line converts a line token for the world outside the reader.
func (t token) line() Line {
	return Line{Text: string(t.text), Payload: t.payload, Err: t.err}
}

// deliver queues a URC for every subscriber, in order. When a queue is full
// the reader waits for room (or for the subscriber to close, or the engine to
// end) and reads nothing from the port meanwhile: the source is pushed back,
// nothing is dropped. Command replies behind the URC wait too; settle and
// resync account for that (heldDuring). It runs on the reader goroutine.
func (c *Conn) deliver(l Line) {
	c.urcs.Add(1)
	c.subMu.RLock()
	defer c.subMu.RUnlock()
	for _, s := range c.subs {
		select {
		case s.ch <- l:
			continue
		default:
		}
		release := c.holdBack()
		select {
		case s.ch <- l:
		case <-s.quit:
		case <-c.done:
		}
		release()
	}
}

// holdBack records that the reader waits for room in a subscriber's queue;
// the returned func records the end of the wait.
func (c *Conn) holdBack() (release func()) {
	start := time.Now()
	c.holdMu.Lock()
	c.holds.Add(1)
	c.holding = make(chan struct{})
	c.holdMu.Unlock()
	return func() {
		c.holdMu.Lock()
		close(c.holding)
		c.holding = nil
		c.holdMu.Unlock()
		c.heldNanos.Add(int64(time.Since(start)))
	}
}

// heldNow returns a channel closed when the reader stops waiting for room,
// or nil when it is not waiting.
func (c *Conn) heldNow() <-chan struct{} {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	return c.holding
}

// heldSince reports whether the reader has waited for a subscriber at any
// time since Stats().HeldBack was holds: a command's reply may have been
// behind the URCs it held back.
func (c *Conn) heldSince(holds uint64) bool {
	return c.holds.Load() != holds || c.heldNow() != nil
}

// waitReader waits until the reader is not held back by a full subscriber
// queue, so that a short timeout measures the module and not a slow
// subscriber.
func (c *Conn) waitReader(ctx context.Context) {
	ch := c.heldNow()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	case <-c.done:
	}
}

// Subscribe returns a new bounded, ordered URC queue that receives every
// URC framed from now on. When it is full the reader waits for room: the
// subscriber must keep receiving, or Close it.
func (c *Conn) Subscribe() *Subscription {
	s := &Subscription{c: c, ch: make(chan Line, c.queueLen), quit: make(chan struct{})}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.subsDone {
		s.closed = true
		close(s.ch)
		return s
	}
	c.subs = append(c.subs, s)
	return s
}

// readLoop is the reader goroutine.
func (c *Conn) readLoop() {
	empty := 0
	for {
		n, err := c.f.fill(c.rw)
		if n > 0 {
			empty = 0
			c.bytesIn.Add(uint64(n))
			if c.trace != nil {
				c.trace.in(c.f.buf[c.f.w-n : c.f.w])
			}
			if c.resetReq.Swap(false) {
				c.f.resetBefore(c.f.w - n)
			}
			for {
				t, ok := c.f.next()
				if !ok {
					break
				}
				c.route(t)
			}
		} else if err == nil {
			if empty++; empty >= maxEmptyReads {
				err = io.ErrNoProgress
			}
		}
		if err != nil {
			if c.trace != nil {
				c.trace.flush()
			}
			c.fail(fmt.Errorf("%w: read: %w", ErrPortGone, err))
			return
		}
	}
}

// writeReq asks the writer goroutine to write p.
type writeReq struct {
	secret bool // trace the length only
	p      []byte
	done   chan error
}

// write has the writer goroutine write p, and waits for it, for ctx or for
// the end of the engine.
func (c *Conn) write(ctx context.Context, p []byte) error {
	return c.writeData(ctx, p, false)
}

// writeData is write with the choice to keep p out of the trace.
func (c *Conn) writeData(ctx context.Context, p []byte, secret bool) error {
	req := &writeReq{p: p, secret: secret, done: make(chan error, 1)}
	select {
	case c.wq <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.Err()
	}
}

// writeLoop is the writer goroutine: writes never hold up the reader.
func (c *Conn) writeLoop() {
	for {
		select {
		case req := <-c.wq:
			switch {
			case c.trace == nil:
			case req.secret:
				c.trace.withheld(len(req.p))
			default:
				c.trace.out(req.p)
			}
			n, err := c.rw.Write(req.p)
			c.bytesOut.Add(uint64(max(n, 0)))
			if err != nil {
				c.fail(fmt.Errorf("%w: write: %w", ErrPortGone, err))
				req.done <- c.Err()
				return
			}
			req.done <- nil
		case <-c.done:
			return
		}
	}
}

// fail ends the engine with err (the first error wins): every pending and
// later Do returns it, subscriptions are closed, the port is closed.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.mu.Unlock()
	if !errors.Is(err, ErrClosed) {
		c.log.Warn().Err(err).Msg("at: port gone")
	}
	close(c.done)
	c.subMu.Lock()
	c.subsDone = true
	for _, s := range c.subs {
		s.closed = true
		close(s.ch)
	}
	c.subs = nil
	c.subMu.Unlock()
	c.closePort()
}

func (c *Conn) closePort() {
	c.closeOnce.Do(func() {
		if cl, ok := c.rw.(io.Closer); ok {
			c.closeErr = cl.Close()
		}
	})
}

func (c *Conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close ends the reader and every pending Do with ErrClosed, and closes
// the port if it is an io.Closer, returning that error.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	c.closePort() // returns once the port is closed, whoever closed it
	return c.closeErr
}

// Done is closed once the engine has ended (Close, or the port failed):
// no Do runs and no URC is delivered after that. With a port that is not
// an io.Closer, a Read already blocked cannot be woken; its bytes are
// ignored.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the engine ended: an error wrapping ErrPortGone (with the
// I/O error) or ErrClosed; nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	fc := &c.f.c
	return Stats{
		BytesIn:             c.bytesIn.Load(),
		BytesOut:            c.bytesOut.Load(),
		Commands:            c.commands.Load(),
		CommandTime:         time.Duration(c.cmdNanos.Load()),
		URCs:                c.urcs.Load(),
		HeldBack:            c.holds.Load(),
		HeldFor:             time.Duration(c.heldNanos.Load()),
		Echoes:              c.echoes.Load(),
		StaleLines:          c.stale.Load(),
		LinesTooLong:        fc.linesTooLong.Load(),
		PayloadsTooLong:     fc.payloadsTooLong.Load(),
		BadFrames:           fc.badFrames.Load(),
		NoiseLines:          fc.noiseLines.Load(),
		DroppedBytes:        fc.dropped.Load(),
		Timeouts:            c.timeouts.Load(),
		ConsecutiveTimeouts: c.consecutive.Load(),
		Resyncs:             c.resyncs.Load(),
		ResyncFailures:      c.resyncFailures.Load(),
	}
}
