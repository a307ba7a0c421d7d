package at

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

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
	if c.calls.resyncNeeded() {
		if err := c.resync(ctx); err != nil {
			return Response{}, fmt.Errorf("at: resync before %s: %w", c.redact(cmd), err)
		}
	}
	return c.exec(ctx, cmd)
}

// exec runs one command; the caller holds the turn.
func (c *Conn) exec(ctx context.Context, cmd Command) (Response, error) {
	if c.ended() {
		return Response{}, c.Err()
	}
	cl := newCall(cmd, phWriting)
	c.calls.begin(cl)
	cl.holds = c.n.holds.Load()
	c.n.commands.Add(1)
	start := time.Now()
	defer func() { c.n.commandNanos.Add(int64(time.Since(start))) }()
	if c.trace != nil {
		c.trace.remember(cmd.Secrets)
	}

	wire := make([]byte, 0, len(cmd.Line)+1)
	wire = append(append(wire, cmd.Line...), '\r')
	if err := c.write(ctx, wire); err != nil {
		return c.settle(ctx, cl, false)
	}
	c.calls.arm(cl) // fully written: match the reply, with what came meanwhile

	if cmd.Data != nil {
		c.wait(ctx, cl.prompt, cl.done)
		switch finished, prompted, _ := c.calls.progress(cl); {
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
	finished, lines := c.calls.abandon(cl)
	switch {
	case finished:
		return c.result(cl)
	case c.ended():
		return Response{}, c.Err()
	}

	ctxErr := ctx.Err()
	if ctxErr == nil { // cannot happen: every wait ends with ctx, the call or the engine
		ctxErr = context.Canceled
	}
	what := ErrTimeout
	if noPrompt {
		what = fmt.Errorf("%w: %w", ErrNoPrompt, ErrTimeout)
	}
	held := c.fan.heldSince(cl.holds)
	if held {
		// The reply may be unread behind URCs a slow subscriber held back: not the module's
		// fault, so it does not count towards escalation.
		what = fmt.Errorf("%w: %w", ErrHeldBack, what)
	}
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		c.n.timeouts.Add(1)
		if !held {
			c.n.consecutive.Add(1)
		}
	}
	c.log.Debug().Str("command", c.redact(cl.cmd)).Err(ctxErr).Msg("at: command abandoned; resync before the next one")
	return Response{Lines: lines}, fmt.Errorf("at: %s: %w (%w)", c.redact(cl.cmd), what, ctxErr)
}

// result turns a finished call into Do's return values.
func (c *Conn) result(cl *call) (Response, error) {
	c.n.consecutive.Store(0)
	r := Response{Lines: cl.lines}
	if cl.err != nil {
		return r, fmt.Errorf("at: %s: %w", c.redact(cl.cmd), cl.err)
	}
	return r, nil
}

// resync brings the module back to a known state after a timeout: ESC
// (ends a pending data prompt), then AT until the module answers, each try
// waiting ResyncTimeout, then a short drain of late lines. Any final result
// proves the module alive: OK, +CME ERROR, and plain ERROR too — a firmware
// may take the ESC as part of the AT line, and one real module answered a
// stray first line ERROR. Only silence is ErrUnresponsive. The caller holds
// the turn.
func (c *Conn) resync(ctx context.Context) error {
	c.n.resyncs.Add(1)
	tctx, cancel := context.WithTimeout(ctx, c.resyncWait)
	c.resetReq.Store(true)
	_ = c.write(tctx, []byte{0x1B}) // a failure shows in c.ended() or ctx below
	cancel()
	var cl *call
	ok := false
	for try := 0; try < c.resyncTries && !c.ended() && ctx.Err() == nil && !ok; try++ {
		cl = newCall(Command{Line: "AT"}, phResync)
		c.calls.begin(cl)
		c.fan.waitIdle(ctx) // the answer would be behind the URCs a slow subscriber holds back
		tctx, cancel := context.WithTimeout(ctx, c.resyncWait)
		if err := c.write(tctx, []byte("AT\r")); err == nil {
			c.wait(tctx, cl.done, nil)
		}
		cancel()
		var answer error
		if ok, _, answer = c.calls.progress(cl); ok && answer != nil {
			c.log.Debug().Err(answer).Msg("at: the resync AT was answered with an error: the module is alive")
		}
	}
	switch {
	case c.ended():
		return c.Err()
	case !ok && ctx.Err() != nil:
		c.giveUp(cl)
		return fmt.Errorf("%w (%w)", ErrTimeout, ctx.Err())
	case !ok:
		c.giveUp(cl)
		c.n.resyncFails.Add(1)
		c.log.Warn().Int("tries", c.resyncTries).Dur("each", c.resyncWait).Msg("at: module does not answer AT")
		return fmt.Errorf("%w (%d tries, %v each)", ErrUnresponsive, c.resyncTries, c.resyncWait)
	}

	c.calls.setPhase(cl, phDrain)
	t := time.NewTimer(c.resyncWait / 5)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-c.done:
	}
	c.calls.resynced(cl)
	return nil
}

// giveUp marks the resync call cl (nil when no AT was sent) abandoned: its
// late answer is dropped.
func (c *Conn) giveUp(cl *call) {
	if cl != nil {
		c.calls.setPhase(cl, phAbandoned)
	}
}
