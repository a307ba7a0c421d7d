package at

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// errBadReadCount is returned when a Reader reports an impossible count.
var errBadReadCount = errors.New("at: Read returned impossible count")

// maxEmptyReads is how many reads in a row may return no bytes and no
// error before the port is taken as gone (as bufio does with
// io.ErrNoProgress).
const maxEmptyReads = 100

// readLoop is the reader goroutine: the only reader of the port. It reads
// into the framer, hands each token the framer cuts to the router, and
// delivers the URCs; the mode the router returns goes back to the framer
// with the next call.
func (c *Conn) readLoop() {
	var m mode
	empty := 0
	for {
		p := c.f.room()
		n, err := c.rw.Read(p)
		if n < 0 || n > len(p) {
			n, err = 0, errBadReadCount
		}
		if n > 0 {
			empty = 0
			if c.resetReq.Swap(false) {
				c.f.reset() // what came before these bytes belongs to the abandoned command
			}
			c.f.added(n)
			c.n.bytesIn.Add(uint64(n))
			if c.trace != nil {
				c.trace.in(p[:n])
			}
			m = c.calls.mode() // a command may have been sent since the last token
			for {
				t, ok := c.f.next(m)
				if !ok {
					break
				}
				var l Line
				var urc bool
				if l, urc, m = c.calls.route(t); urc {
					c.fan.deliver(l)
				}
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
			c.n.bytesOut.Add(uint64(max(n, 0)))
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

// closePort closes the port once, if it is an io.Closer.
func (c *Conn) closePort() {
	c.closeOnce.Do(func() {
		if cl, ok := c.rw.(io.Closer); ok {
			c.closeErr = cl.Close()
		}
	})
}
