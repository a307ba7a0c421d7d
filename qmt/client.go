package qmt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/at"
)

// Worst-case waits for result URCs (reference section 3.1) that do not depend on the config.
const (
	DefaultOpenTimeout  = 120 * time.Second // AT+QMTOPEN → +QMTOPEN (EG800K MQTT AN)
	DefaultCloseTimeout = 30 * time.Second  // AT+QMTDISC / AT+QMTCLOSE → URC (not documented; drivers use ≤ 30 s)
	DefaultGrace        = 2 * time.Second   // added to every worst case for the line to reach the host
	DefaultCommandWait  = 10 * time.Second  // OK to a command with no result URC (AT+QMTCFG, queries)
	DefaultEventQueue   = 256
)

// Options tune a Client. The zero value is what the reference documents.
type Options struct {
	// PublishMode selects AT+QMTPUBEX with a length (default) or the classic Ctrl-Z AT+QMTPUB.
	PublishMode PublishMode
	// EventQueue is the capacity of the Events channel; 0 = DefaultEventQueue. When it is full,
	// the event loop waits for room (counted, HeldBack), and the AT reader behind it stops
	// reading the port: nothing is dropped. A caller that waits for a call's result must
	// therefore never be the only reader of Events.
	EventQueue int
	// MaxPayload is the largest payload Publish sends; 0 = DefaultMaxPayload.
	MaxPayload int
	// OpenTimeout is the longest wait for +QMTOPEN; 0 = DefaultOpenTimeout.
	OpenTimeout time.Duration
	// CloseTimeout is the longest wait for +QMTDISC and +QMTCLOSE; 0 = DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Grace is added to every worst-case wait; 0 = DefaultGrace, negative = none.
	Grace time.Duration
	// CommandWait bounds commands that have no result URC; 0 = DefaultCommandWait.
	CommandWait time.Duration
}

// Client drives one of the module's MQTT client indexes (0-5) over an at.Conn. Its methods are
// safe for concurrent use; each sends its command (at.Conn serialises them) and then waits for
// the result URC, so several publishes can wait for their acknowledgements at the same time.
type Client struct {
	conn      *at.Conn
	idx       int
	opts      Options
	sub       *at.Subscription
	events    chan Event
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	heldBack atomic.Uint64

	mu       sync.Mutex
	waiters  []*waiter
	inFlight map[int]bool // message ids in use
	nextID   int          // last message id handed out
	pkt      time.Duration
	retries  int
	ended    error // set once the event loop has ended
}

// waiter is a call waiting for its result URC.
type waiter struct {
	op    string
	msgID int // -1: the result carries no message id
	ch    chan outcome
	last  Event // the last "retransmitting" report, for the timeout error

	// A QoS 0 publish that timed out stays as a ghost: QoS 0 results all carry message id 0
	// and are matched in order, so its late result must be taken by the ghost, not complete the
	// next QoS 0 publish. A ghost ends when that result comes, at expires, or with the link.
	ghost   bool
	expires time.Time
	gone    chan struct{} // closed when the ghost ends
}

type outcome struct {
	ev  Event
	err error
}

// NewClient drives MQTT client index idx (0-5) of the module over conn, with default Options.
// It starts one goroutine that reads a conn.Subscribe() queue, parses every URC into an Event,
// completes the pending call the event answers (matched by client index, and message id where
// there is one), and passes every other event to Events. The goroutine ends when conn ends or
// Close is called. An idx out of range makes every call fail with ErrInvalidArgument.
func NewClient(conn *at.Conn, idx int) *Client {
	return NewClientWithOptions(conn, idx, Options{})
}

// NewClientWithOptions is NewClient with Options.
func NewClientWithOptions(conn *at.Conn, idx int, opts Options) *Client {
	if opts.EventQueue <= 0 {
		opts.EventQueue = DefaultEventQueue
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = DefaultOpenTimeout
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = DefaultCloseTimeout
	}
	switch {
	case opts.Grace == 0:
		opts.Grace = DefaultGrace
	case opts.Grace < 0:
		opts.Grace = 0
	}
	if opts.CommandWait <= 0 {
		opts.CommandWait = DefaultCommandWait
	}
	pkt, retries := Config{}.timing()
	c := &Client{
		conn:     conn,
		idx:      idx,
		opts:     opts,
		sub:      conn.Subscribe(),
		events:   make(chan Event, opts.EventQueue),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		inFlight: make(map[int]bool),
		pkt:      pkt,
		retries:  retries,
	}
	go c.run()
	return c
}

// Index is the client index this Client drives.
func (c *Client) Index() int { return c.idx }

// Events gives the URCs no call consumed: downlinks, +QMTSTAT, +QMTPING, late results, and the
// module-level ones (RDY, +CPIN, pdpdeact, POWERED DOWN, registration), and Unknown and Malformed
// lines. MQTT events of other client indexes are left out. The channel is bounded and ordered,
// and closed when the client ends. Receive from it until then (or Close the client): while it is
// full the module's output is not read, and the results of calls wait behind it.
func (c *Client) Events() <-chan Event { return c.events }

// HeldBack counts the events that found Events full, so that the event loop (and the AT reader
// behind it) waited for the reader of Events. Nothing is dropped.
func (c *Client) HeldBack() uint64 { return c.heldBack.Load() }

// Close stops the event loop; calls still waiting end with ErrClientClosed. It does not close
// the at.Conn.
func (c *Client) Close() {
	c.closeOnce.Do(func() { close(c.quit) })
	<-c.done
}

func (c *Client) run() {
	var why error
	defer func() {
		c.sub.Close()
		c.mu.Lock()
		c.ended = why
		ws := c.waiters
		c.waiters = nil
		c.mu.Unlock()
		for _, w := range ws {
			w.ch <- outcome{err: why}
		}
		close(c.events)
		close(c.done)
	}()
	for {
		select {
		case l, ok := <-c.sub.C():
			if !ok {
				why = fmt.Errorf("%w: %w", ErrClientClosed, c.conn.Err())
				return
			}
			c.handle(ParseURC(l))
		case <-c.quit:
			why = ErrClientClosed
			return
		}
	}
}

// handle completes the call ev answers, or passes ev on.
func (c *Client) handle(ev Event) {
	client, mqtt := clientOf(ev)
	if mqtt && client != c.idx {
		return
	}
	if c.complete(ev) {
		return
	}
	select {
	case c.events <- ev:
		return
	default:
	}
	c.heldBack.Add(1)
	select {
	case c.events <- ev:
	case <-c.quit:
	}
}

// clientOf gives the client index of an MQTT event; ok is false for module-level events.
func clientOf(ev Event) (idx int, ok bool) {
	switch e := ev.(type) {
	case Received:
		return e.Client, true
	case Stored:
		return e.Client, true
	case LinkStatus:
		return e.Client, true
	case PingFailed:
		return e.Client, true
	case PingOK:
		return e.Client, true
	case Opened:
		return e.Client, true
	case LinkClosed:
		return e.Client, true
	case Connected:
		return e.Client, true
	case Disconnected:
		return e.Client, true
	case Subscribed:
		return e.Client, true
	case Unsubscribed:
		return e.Client, true
	case Published:
		return e.Client, true
	}
	return 0, false
}

// resultKey gives the call a result event completes; progress is true for a "retransmitting"
// report, which does not end the call.
func resultKey(ev Event) (op string, msgID int, progress, ok bool) {
	switch e := ev.(type) {
	case Opened:
		return OpOpen, -1, false, true
	case LinkClosed:
		return OpClose, -1, false, true
	case Disconnected:
		return OpDisconnect, -1, false, true
	case Connected:
		return OpConnect, -1, e.Result == 1, true
	case Subscribed:
		return OpSubscribe, e.MsgID, e.Result == 1, true
	case Unsubscribed:
		return OpUnsubscribe, e.MsgID, e.Result == 1, true
	case Published:
		return OpPublish, e.MsgID, e.Result == 1, true
	}
	return "", 0, false, false
}

// complete hands ev to the call waiting for it and reports whether it did. +QMTSTAT ends the
// calls waiting for a packet acknowledgement; RDY and POWERED DOWN end every call. Both are still
// passed on to Events.
func (c *Client) complete(ev Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e := ev.(type) {
	case LinkStatus:
		c.failLocked(func(w *waiter) error {
			switch w.op {
			case OpConnect, OpSubscribe, OpUnsubscribe, OpPublish:
				return &LinkError{Op: w.op, Client: e.Client, Code: e.Code, Line: e.String()}
			}
			return nil
		})
		return false
	case ModuleReady, PoweredDown:
		c.failLocked(func(w *waiter) error {
			return &LinkError{Op: w.op, Client: c.idx, Line: ev.String()}
		})
		return false
	}
	op, msgID, progress, ok := resultKey(ev)
	if !ok {
		return false
	}
	c.expireGhostsLocked(time.Now())
	for i, w := range c.waiters {
		if w.op != op || w.msgID != msgID {
			continue
		}
		if progress {
			w.last = ev
			return false
		}
		c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
		if w.ghost {
			close(w.gone)
			return false // a late result: passed on to Events
		}
		w.ch <- outcome{ev: ev}
		return true
	}
	return false
}

// expireGhostsLocked ends the ghosts whose time is up.
func (c *Client) expireGhostsLocked(now time.Time) {
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.ghost && !now.Before(w.expires) {
			close(w.gone)
			continue
		}
		kept = append(kept, w)
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}

// waitGhosts returns once no ghost of a timed-out QoS 0 publish is left (see waiter), so that a
// QoS 0 publish sent now cannot take its late result for its own.
func (c *Client) waitGhosts(ctx context.Context) error {
	for {
		c.mu.Lock()
		c.expireGhostsLocked(time.Now())
		var g *waiter
		for _, w := range c.waiters {
			if w.ghost {
				g = w
				break
			}
		}
		c.mu.Unlock()
		if g == nil {
			return nil
		}
		t := time.NewTimer(time.Until(g.expires))
		select {
		case <-g.gone:
		case <-t.C:
		case <-c.done:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mqtt publish: waiting for the late result of an earlier QoS 0 publish: %w", ctx.Err())
		}
		t.Stop()
	}
}

// failLocked ends every waiter for which why gives an error; a ghost ends with any of them.
func (c *Client) failLocked(why func(*waiter) error) {
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if err := why(w); err != nil {
			if w.ghost {
				close(w.gone)
				continue
			}
			w.ch <- outcome{err: err}
			continue
		}
		kept = append(kept, w)
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}

func (c *Client) remove(w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.ghost {
		return // it stays until its late result, its expiry or the link's end
	}
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// urcName is the result URC of op, for messages.
func urcName(op string) string {
	switch op {
	case OpOpen:
		return "+QMTOPEN"
	case OpClose:
		return "+QMTCLOSE"
	case OpConnect:
		return "+QMTCONN"
	case OpDisconnect:
		return "+QMTDISC"
	case OpSubscribe:
		return "+QMTSUB"
	case OpUnsubscribe:
		return "+QMTUNS"
	}
	return "+QMTPUBEX"
}

// limit is the documented worst-case wait for op's result (reference 3.1), plus the grace.
func (c *Client) limit(op string) time.Duration {
	c.mu.Lock()
	pkt, retries := c.pkt, c.retries
	c.mu.Unlock()
	var d time.Duration
	switch op {
	case OpOpen:
		d = c.opts.OpenTimeout
	case OpDisconnect, OpClose:
		d = c.opts.CloseTimeout
	default:
		// CONN, SUB, UNS and PUB: the module sends the packet and retransmits it retries times,
		// waiting pkt_timeout each time, before it reports the outcome (BC66 doc; the EG800K AN
		// says pkt × retries, which is shorter).
		d = pkt * time.Duration(retries+1)
	}
	return d + c.opts.Grace
}

// call sends cmd and waits for the result URC of op (with msgID, or -1), within limit(op) and ctx.
// accepted, when not nil, is called once the module has answered OK to the command.
func (c *Client) call(ctx context.Context, op string, msgID int, cmd at.Command, accepted func()) (Event, error) {
	w := &waiter{op: op, msgID: msgID, ch: make(chan outcome, 1)}
	c.mu.Lock()
	if c.ended != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("mqtt %s: %w", op, c.ended)
	}
	c.waiters = append(c.waiters, w) // armed before the command: the URC may beat the OK
	c.mu.Unlock()
	defer c.remove(w)

	limit := c.limit(op)
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, err := c.conn.Do(wctx, cmd); err != nil {
		return nil, c.commandError(ctx, op, err)
	}
	if accepted != nil {
		accepted()
	}
	var o outcome
	select {
	case o = <-w.ch:
	case <-wctx.Done():
		select {
		case o = <-w.ch: // it arrived just now
		default:
			c.mu.Lock()
			last := w.last
			if op == OpPublish && msgID == 0 {
				c.ghostLocked(w, limit) // its result may still come
			}
			c.mu.Unlock()
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("mqtt %s: waiting for %s: %w", op, urcName(op), err)
			}
			note := ""
			if last != nil {
				note = " (last report: " + last.String() + ", retransmitting)"
			}
			return nil, fmt.Errorf("mqtt %s: no %s result within %s%s: %w (%w)",
				op, urcName(op), limit, note, ErrNoResult, context.DeadlineExceeded)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	return o.ev, nil
}

// ghostLocked turns the timed-out QoS 0 publish w, if it still waits, into a ghost that takes
// its late result for up to another limit.
func (c *Client) ghostLocked(w *waiter, limit time.Duration) {
	for _, x := range c.waiters {
		if x == w {
			w.ghost, w.expires, w.gone = true, time.Now().Add(limit), make(chan struct{})
			return
		}
	}
}

// commandError words the failure of the command itself (before any result URC).
func (c *Client) commandError(ctx context.Context, op string, err error) error {
	if errors.Is(err, at.ErrError) {
		return fmt.Errorf("mqtt %s: the module refused the command (a bad parameter, or client %d is in the wrong state): %w",
			op, c.idx, err)
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("mqtt %s: the module did not answer the command within %s: %w", op, c.limit(op), err)
	}
	if errors.Is(err, at.ErrClosed) || errors.Is(err, at.ErrPortGone) {
		// The at.Conn ended before the command's answer: the same end as one that comes
		// while the call waits for its result URC.
		return fmt.Errorf("mqtt %s: %w: %w", op, ErrClientClosed, err)
	}
	return fmt.Errorf("mqtt %s: %w", op, err)
}

// run1 runs a command that has no result URC, bounded by CommandWait.
func (c *Client) run1(ctx context.Context, what string, cmd at.Command) (at.Response, error) {
	cctx, cancel := context.WithTimeout(ctx, c.opts.CommandWait)
	defer cancel()
	resp, err := c.conn.Do(cctx, cmd)
	if err != nil {
		return resp, fmt.Errorf("mqtt %s: %w", what, err)
	}
	return resp, nil
}

// allocID hands out the next free message id, 1-65535, skipping ids still in flight.
func (c *Client) allocID() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range MaxMsgID {
		c.nextID = c.nextID%MaxMsgID + 1
		if !c.inFlight[c.nextID] {
			c.inFlight[c.nextID] = true
			return c.nextID, nil
		}
	}
	return 0, fmt.Errorf("mqtt: %w (%d in flight)", ErrNoMsgID, len(c.inFlight))
}

func (c *Client) freeID(id int) {
	c.mu.Lock()
	delete(c.inFlight, id)
	c.mu.Unlock()
}

// Configure sends every AT+QMTCFG line cfg asks for (Config.Commands), in order, each bounded
// by CommandWait, and from then on waits for results with cfg's packet timeout and retries.
// The aliauth secret is masked in the trace and in errors. An optional setting the firmware
// refuses is skipped (see ConfigureReport, which says which).
func (c *Client) Configure(ctx context.Context, cfg Config) error {
	_, err := c.ConfigureReport(ctx, cfg)
	return err
}

// Skipped is an optional AT+QMTCFG setting the module refused, and how.
type Skipped struct {
	Setting string // the sub-command, e.g. "edit/timeout"
	Err     error  // the refusal: at.ErrError or an *at.CMEError
}

// ConfigureReport is Configure that also returns the optional settings the module refused and
// Configure went on without — ASR-only names such as "edit/timeout" that Unisoc firmware
// (EC600U) lacks, refused with ERROR or, under CMEE=1, +CME ERROR: <n> (reference 8 VARIANT) —
// for the caller to log. A refused setting that is not optional fails Configure.
func (c *Client) ConfigureReport(ctx context.Context, cfg Config) ([]Skipped, error) {
	lines, err := cfg.Commands(c.idx)
	if err != nil {
		return nil, fmt.Errorf("mqtt configure: %w", err)
	}
	secrets := cfg.Secrets()
	var skipped []Skipped
	for _, l := range lines {
		if _, err := c.run1(ctx, "configure", at.Command{Line: l, Secrets: secrets}); err != nil {
			if name, ok := optional(l); ok && refusal(err) {
				skipped = append(skipped, Skipped{Setting: name, Err: err}) // this firmware lacks it
				continue
			}
			return skipped, err
		}
		if strings.HasPrefix(l, `AT+QMTCFG="timeout"`) {
			pkt, retries := cfg.timing()
			c.mu.Lock()
			c.pkt, c.retries = pkt, retries
			c.mu.Unlock()
		}
	}
	return skipped, nil
}

// optional reports whether a refusal of the QMTCFG line l only means the firmware lacks it, and
// names the setting.
func optional(l string) (string, bool) {
	for _, p := range optionalConfig {
		if strings.HasPrefix(l, p) {
			return strings.Trim(strings.TrimPrefix(p, "AT+QMTCFG="), `"`), true
		}
	}
	return "", false
}

// refusal reports the module answering a command with ERROR or +CME ERROR (not a timeout or a
// lost port).
func refusal(err error) bool {
	var cme *at.CMEError
	return errors.Is(err, at.ErrError) || errors.As(err, &cme)
}

// Open opens the TCP/TLS link to the broker (AT+QMTOPEN) and waits for +QMTOPEN, up to
// OpenTimeout (120 s). A failure is a *ResultError: ErrDNS, ErrNetwork, ErrPDP, ErrInUse, ...
func (c *Client) Open(ctx context.Context, host string, port int) error {
	line, err := openCmd(c.idx, host, port)
	if err != nil {
		return fmt.Errorf("mqtt open: %w", err)
	}
	ev, err := c.call(ctx, OpOpen, -1, at.Command{Line: line}, nil)
	if err != nil {
		return err
	}
	return ev.(Opened).Err()
}

// Connect sends MQTT CONNECT (AT+QMTCONN) and waits for +QMTCONN, up to packet timeout ×
// (retries+1). The user name is sent when the user or the password is set; the password is
// masked in the trace. A refusal is a *ResultError: ErrRefused with ErrBadCredentials,
// ErrNotAuthorized, ErrIdentifierRejected, ...
func (c *Client) Connect(ctx context.Context, clientID, user, password string) error {
	return c.connect(ctx, clientID, user, password, false)
}

// ConnectSecretUser is Connect for a user name that is itself a secret (an access token, as
// ThingsBoard's): the trace masks it as it masks the password.
func (c *Client) ConnectSecretUser(ctx context.Context, clientID, user, password string) error {
	return c.connect(ctx, clientID, user, password, true)
}

func (c *Client) connect(ctx context.Context, clientID, user, password string, secretUser bool) error {
	line, err := connCmd(c.idx, clientID, user, password)
	if err != nil {
		return fmt.Errorf("mqtt connect: %w", err)
	}
	cmd := at.Command{Line: line}
	if password != "" {
		cmd.Secrets = []string{password}
	}
	if secretUser && user != "" {
		cmd.Secrets = append(cmd.Secrets, user)
	}
	ev, err := c.call(ctx, OpConnect, -1, cmd, nil)
	if err != nil {
		return err
	}
	return ev.(Connected).Err()
}

// Subscribe subscribes to one or more topic filters in one AT+QMTSUB and waits for +QMTSUB, up to
// packet timeout × retries. It returns the QoS the broker granted per topic, as the module
// reported them (a list shorter than subs when the module reported fewer); a granted 128 is a
// refusal and gives a *ResultError with ErrRefused naming the topic, together with the list.
func (c *Client) Subscribe(ctx context.Context, subs ...Subscription) ([]int, error) {
	if err := checkIdx(c.idx); err != nil {
		return nil, fmt.Errorf("mqtt subscribe: %w", err)
	}
	id, err := c.allocID()
	if err != nil {
		return nil, err
	}
	defer c.freeID(id)
	line, err := subCmd(c.idx, id, subs)
	if err != nil {
		return nil, fmt.Errorf("mqtt subscribe: %w", err)
	}
	ev, err := c.call(ctx, OpSubscribe, id, at.Command{Line: line}, nil)
	if err != nil {
		return nil, err
	}
	s := ev.(Subscribed)
	topics := make([]string, len(subs))
	for i, sub := range subs {
		topics[i] = sub.Topic
	}
	if err := s.Err(topics...); err != nil {
		if s.Result == 0 {
			return s.Values, err
		}
		return nil, err
	}
	return s.Values, nil
}

// Unsubscribe unsubscribes from one or more topic filters (AT+QMTUNS) and waits for +QMTUNS.
func (c *Client) Unsubscribe(ctx context.Context, topics ...string) error {
	if err := checkIdx(c.idx); err != nil {
		return fmt.Errorf("mqtt unsubscribe: %w", err)
	}
	id, err := c.allocID()
	if err != nil {
		return err
	}
	defer c.freeID(id)
	line, err := unsCmd(c.idx, id, topics)
	if err != nil {
		return fmt.Errorf("mqtt unsubscribe: %w", err)
	}
	ev, err := c.call(ctx, OpUnsubscribe, id, at.Command{Line: line}, nil)
	if err != nil {
		return err
	}
	return ev.(Unsubscribed).Err()
}

// Publish sends m and waits for its result URC (+QMTPUBEX or +QMTPUB), matched by message id, up
// to packet timeout × retries. For QoS 1 and 2 the result means the broker acknowledged it. QoS 0
// messages use message id 0 and are matched in order. It is safe to call concurrently: the
// commands queue in at.Conn, the waits for the acknowledgements overlap. m.Payload must not
// change until Publish returns.
func (c *Client) Publish(ctx context.Context, m Message) error {
	return c.PublishQueued(ctx, m, nil)
}

// PublishQueued is Publish that calls queued (when not nil) as soon as the module has accepted
// the command — its place in the order of messages on the link is then fixed — and before it
// waits for the broker's acknowledgement. A caller that starts the next publish only after
// queued keeps its messages in order while several await their acknowledgements.
func (c *Client) PublishQueued(ctx context.Context, m Message, queued func()) error {
	if err := checkQoS("QoS", m.QoS); err != nil {
		return fmt.Errorf("mqtt publish: %w", err)
	}
	if err := checkIdx(c.idx); err != nil {
		return fmt.Errorf("mqtt publish: %w", err)
	}
	id := 0
	if m.QoS > 0 {
		var err error
		if id, err = c.allocID(); err != nil {
			return err
		}
		defer c.freeID(id)
	} else if err := c.waitGhosts(ctx); err != nil {
		return err
	}
	var cmd at.Command
	var err error
	switch c.opts.PublishMode {
	case PublishCtrlZ:
		cmd.Line, err = pubCtrlZCmd(c.idx, id, m, c.opts.MaxPayload)
		cmd.Data, cmd.DataEnd = append([]byte{}, m.Payload...), []byte{0x1A}
	default:
		cmd.Line, err = pubExCmd(c.idx, id, m, c.opts.MaxPayload)
		cmd.Data = m.Payload
	}
	if err != nil {
		return fmt.Errorf("mqtt publish: %w", err)
	}
	ev, err := c.call(ctx, OpPublish, id, cmd, queued)
	if err != nil {
		return err
	}
	return ev.(Published).Err()
}

// Disconnect sends MQTT DISCONNECT (AT+QMTDISC, which also closes the link) and waits for
// +QMTDISC, up to CloseTimeout (30 s).
func (c *Client) Disconnect(ctx context.Context) error {
	line, err := discCmd(c.idx)
	if err != nil {
		return fmt.Errorf("mqtt disconnect: %w", err)
	}
	ev, err := c.call(ctx, OpDisconnect, -1, at.Command{Line: line}, nil)
	if err != nil {
		return err
	}
	return ev.(Disconnected).Err()
}

// CloseLink closes the link (AT+QMTCLOSE) and waits for +QMTCLOSE, up to CloseTimeout (30 s).
func (c *Client) CloseLink(ctx context.Context) error {
	line, err := closeCmd(c.idx)
	if err != nil {
		return fmt.Errorf("mqtt close: %w", err)
	}
	ev, err := c.call(ctx, OpClose, -1, at.Command{Line: line}, nil)
	if err != nil {
		return err
	}
	return ev.(LinkClosed).Err()
}

// errNoCloseResult ends CloseIndex's wait for a +QMTCLOSE that some firmware does not print.
var errNoCloseResult = errors.New("no +QMTCLOSE after OK")

// CloseIndex frees the client index before it is configured (reference 1 and 2.2: AT+QMTCFG on
// an index that is still open is refused): AT+QMTCLOSE, where OK, OK then +QMTCLOSE, and ERROR
// (nothing open on the index, or firmware that answers so) all do. After OK it waits at most
// urcWait for +QMTCLOSE (an EC600K-CN answered OK on an index that was not open, and whether a
// URC follows is not shown). open reports whether the module accepted the command, that is,
// whether it had something to close; an ERROR is not an error here.
func (c *Client) CloseIndex(ctx context.Context, urcWait time.Duration) (open bool, err error) {
	line, err := closeCmd(c.idx)
	if err != nil {
		return false, fmt.Errorf("mqtt close: %w", err)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var timer *time.Timer
	accepted := func() { // called by call, on this goroutine, once the module said OK
		open = true
		timer = time.AfterFunc(urcWait, func() { cancel(errNoCloseResult) })
	}
	ev, err := c.call(cctx, OpClose, -1, at.Command{Line: line}, accepted)
	if timer != nil {
		timer.Stop()
	}
	switch {
	case err == nil:
		if e := ev.(LinkClosed).Err(); e != nil {
			return true, e
		}
		return true, nil
	case !open && errors.Is(err, at.ErrError):
		return false, nil // nothing to close
	case open && ctx.Err() == nil && errors.Is(context.Cause(cctx), errNoCloseResult):
		return true, nil // OK without a URC: closed as far as the module says
	}
	return open, err
}

// hasPrefix reports whether an at.Line starts with prefix.
func hasPrefix(l at.Line, prefix string) bool { return strings.HasPrefix(l.Text, prefix) }

// ConnState asks AT+QMTCONN? for the client's state; StateNone when the module lists no line
// for it (no link open). Only `+QMTCONN: <idx>,<state>` lines are taken as answers, so a
// +QMTCONN result URC with a ret_code still completes a Connect.
func (c *Client) ConnState(ctx context.Context) (State, error) {
	answers := func(l at.Line) bool {
		if !hasPrefix(l, "+QMTCONN:") {
			return false
		}
		vs, err := intFields(l.Text[len("+QMTCONN:"):])
		return err == nil && len(vs) == 2
	}
	resp, err := c.run1(ctx, "state", at.Command{Line: "AT+QMTCONN?", Answers: answers})
	if err != nil {
		return StateNone, err
	}
	for _, l := range resp.Lines {
		if !answers(l) {
			continue
		}
		vs, _ := intFields(l.Text[len("+QMTCONN:"):])
		if vs[0] == c.idx {
			return State(vs[1]), nil
		}
	}
	return StateNone, nil
}

// OpenLinks asks AT+QMTOPEN? which links are open, for every client index.
func (c *Client) OpenLinks(ctx context.Context) ([]Link, error) {
	answers := func(l at.Line) bool { return hasPrefix(l, "+QMTOPEN:") && strings.Contains(l.Text, `"`) }
	resp, err := c.run1(ctx, "open links", at.Command{Line: "AT+QMTOPEN?", Answers: answers})
	if err != nil {
		return nil, err
	}
	var links []Link
	for _, l := range resp.Lines {
		if !answers(l) {
			continue
		}
		link, err := parseOpenLink(l.Text)
		if err != nil {
			return links, err
		}
		links = append(links, link)
	}
	return links, nil
}

// parseOpenLink decodes `+QMTOPEN: <idx>,"<host>",<port>`.
func parseOpenLink(s string) (Link, error) {
	bad := func(why string) (Link, error) {
		return Link{}, fmt.Errorf("mqtt open links: %q: %s: %w", s, why, ErrUnexpectedAnswer)
	}
	rest := strings.TrimSpace(strings.TrimPrefix(s, "+QMTOPEN:"))
	first := strings.IndexByte(rest, '"')
	last := strings.LastIndexByte(rest, '"')
	if first < 0 || last <= first {
		return bad("no quoted host")
	}
	idx, ok := num(strings.TrimSuffix(strings.TrimSpace(rest[:first]), ","))
	if !ok {
		return bad("client index is not a number")
	}
	portField, found := strings.CutPrefix(strings.TrimSpace(rest[last+1:]), ",")
	port, ok := num(portField)
	if !found || !ok {
		return bad("port is not a number")
	}
	return Link{Client: idx, Host: rest[first+1 : last], Port: port}, nil
}

// ReadStored reads the message in buffer slot (0-4) with AT+QMTRECV=<idx>,<slot> (buffer mode,
// after a Stored event); reading frees the slot. It returns what the module listed, usually one
// message, none when the slot was empty.
func (c *Client) ReadStored(ctx context.Context, slot int) ([]Received, error) {
	if err := checkRange("slot", slot, 0, MaxSlot); err != nil {
		return nil, fmt.Errorf("mqtt read stored: %w", err)
	}
	return c.readStored(ctx, slot)
}

// ReadAllStored reads every buffer slot with AT+QMTRECV=<idx>.
func (c *Client) ReadAllStored(ctx context.Context) ([]Received, error) {
	return c.readStored(ctx, -1)
}

func (c *Client) readStored(ctx context.Context, slot int) ([]Received, error) {
	line, err := recvReadCmd(c.idx, slot)
	if err != nil {
		return nil, fmt.Errorf("mqtt read stored: %w", err)
	}
	answers := func(l at.Line) bool {
		if !hasPrefix(l, recvPrefix) {
			return false
		}
		r, ok := ParseURC(l).(Received)
		return ok && r.Client == c.idx
	}
	resp, err := c.run1(ctx, "read stored", at.Command{Line: line, Answers: answers})
	if err != nil {
		return nil, err
	}
	var out []Received
	for _, l := range resp.Lines {
		if !hasPrefix(l, recvPrefix) {
			continue
		}
		switch e := ParseURC(l).(type) {
		case Received:
			out = append(out, e)
		case Malformed:
			return out, fmt.Errorf("mqtt read stored: %w: %w", ErrUnexpectedAnswer, e.Err)
		}
	}
	return out, nil
}

// StoredStatus asks AT+QMTRECV? which buffer slots of the client hold an unread message.
func (c *Client) StoredStatus(ctx context.Context) ([]bool, error) {
	answers := func(l at.Line) bool {
		if !hasPrefix(l, recvPrefix) || strings.Contains(l.Text, `"`) {
			return false
		}
		vs, err := intFields(l.Text[len(recvPrefix):])
		return err == nil && len(vs) >= 3
	}
	resp, err := c.run1(ctx, "stored status", at.Command{Line: "AT+QMTRECV?", Answers: answers})
	if err != nil {
		return nil, err
	}
	for _, l := range resp.Lines {
		if !answers(l) {
			continue
		}
		vs, _ := intFields(l.Text[len(recvPrefix):])
		if vs[0] != c.idx {
			continue
		}
		slots := make([]bool, len(vs)-1)
		for i, v := range vs[1:] {
			slots[i] = v != 0
		}
		return slots, nil
	}
	return nil, fmt.Errorf("mqtt stored status: no +QMTRECV line for client %d: %w", c.idx, ErrUnexpectedAnswer)
}
