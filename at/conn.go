package at

import (
	"errors"
	"io"
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

// Conn is the AT engine over one port. One reader goroutine owns all input
// and frames it; one writer goroutine performs all writes; commands queue in
// call order and run one at a time. A Conn is safe for concurrent use.
//
// Its parts, each with one job and file: the reader and writer goroutines
// (port.go); the framer, which cuts tokens from the input (framer.go); the
// router, which gives each token to the call in flight or to the URC
// subscribers (route.go); the fan-out, which queues URCs with backpressure
// (fanout.go); the calls, which run one command each — the turn, its phases,
// its timeout and the resync after one (calls.go, turn.go); the counters
// (stats.go). This file builds the engine and ends it.
type Conn struct {
	rw          io.ReadWriter
	log         zerolog.Logger
	trace       *tracer // nil when tracing is off
	resyncTries int
	resyncWait  time.Duration

	f     *framer // reader goroutine only
	calls router
	fan   *fanout
	n     counters
	turn  turnQueue
	wq    chan *writeReq

	resetReq atomic.Bool // ask the reader to drop the input before what it reads next

	done      chan struct{} // closed when the engine ends, after err is set
	endOnce   sync.Once
	err       error // why the engine ended; read only after done is closed
	closeOnce sync.Once
	closeErr  error
}

// New starts the single reader goroutine (and a writer goroutine) over rw
// and returns the engine. If rw is an io.Closer, Close closes it (that is
// what wakes a blocked Read on a serial port or pty).
func New(rw io.ReadWriter, opts Options) *Conn {
	c := &Conn{
		rw:          rw,
		log:         opts.Logger,
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
	c.f = newFramer(orDefault(opts.MaxLine, DefaultMaxLine), orDefault(opts.MaxPayload, DefaultMaxPayload),
		newSpecTable(BuiltinURCs(), opts.URCs))
	c.calls.n = &c.n
	c.fan = newFanout(orDefault(opts.URCQueue, DefaultURCQueue), c.done, &c.n)
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

// redact returns cmd.Line with its secrets and credentials masked, for
// logs and errors.
func (c *Conn) redact(cmd Command) string {
	return maskCredentials(maskSecrets(cmd.Line, cmd.Secrets))
}

// Subscribe returns a new bounded, ordered URC queue that receives every
// URC framed from now on. When it is full the reader waits for room: the
// subscriber must keep receiving, or Close it.
func (c *Conn) Subscribe() *Subscription { return c.fan.subscribe() }

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats { return c.n.snapshot(&c.f.c) }

// fail ends the engine with err (the first error wins): every pending and
// later Do returns it, subscriptions are closed, the port is closed.
func (c *Conn) fail(err error) {
	first := false
	c.endOnce.Do(func() {
		first = true
		c.err = err
		close(c.done)
	})
	if !first {
		return
	}
	if !errors.Is(err, ErrClosed) {
		c.log.Warn().Err(err).Msg("at: port gone")
	}
	c.fan.end()
	c.closePort()
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
	if !c.ended() {
		return nil
	}
	return c.err
}
