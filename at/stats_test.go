package at

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestCommandTime: Stats.CommandTime adds up how long each command took, from being sent to its
// final result or its timeout.
func TestCommandTime(t *testing.T) {
	c, m := newTestConn(t, func(r io.Reader) io.Reader { return r }, Options{ResyncTimeout: 100 * time.Millisecond})
	if s := c.Stats(); s.CommandTime != 0 {
		t.Fatalf("CommandTime before any command = %v", s.CommandTime)
	}
	const slow = 60 * time.Millisecond
	go func() {
		if m.expect("AT+SLOW\r") {
			time.Sleep(slow)
			m.send("\r\nOK\r\n")
		}
	}()
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT+SLOW"); err != nil {
		t.Fatal(err)
	}
	first := c.Stats().CommandTime
	if first < slow {
		t.Errorf("CommandTime after a %v answer = %v", slow, first)
	}

	const wait = 80 * time.Millisecond
	go m.expect("AT+MUTE\r")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Run(ctx, "AT+MUTE"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Run = %v, want a timeout", err)
	}
	// The deadline was set just before the command was sent: it waited a little less than wait.
	if s := c.Stats(); s.CommandTime-first < wait/2 || s.Commands != 2 {
		t.Errorf("after a %v timeout: CommandTime grew by %v over %d commands", wait, s.CommandTime-first, s.Commands)
	}
}
