package at

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
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

// TestStatsSnapshot: every counter lands in its own Stats field.
func TestStatsSnapshot(t *testing.T) {
	var n counters
	var fc frameCounts
	adds := []*atomic.Uint64{&n.bytesIn, &n.bytesOut, &n.commands, &n.urcs, &n.holds, &n.echoes, &n.stale,
		&fc.linesTooLong, &fc.payloadsTooLong, &fc.badFrames, &fc.noiseLines, &fc.dropped,
		&n.timeouts, &n.consecutive, &n.resyncs, &n.resyncFails}
	for i, a := range adds {
		a.Add(uint64(i + 1))
	}
	n.commandNanos.Add(100)
	n.heldNanos.Add(200)
	want := Stats{BytesIn: 1, BytesOut: 2, Commands: 3, CommandTime: 100, URCs: 4, HeldBack: 5, HeldFor: 200,
		Echoes: 6, StaleLines: 7, LinesTooLong: 8, PayloadsTooLong: 9, BadFrames: 10, NoiseLines: 11,
		DroppedBytes: 12, Timeouts: 13, ConsecutiveTimeouts: 14, Resyncs: 15, ResyncFailures: 16}
	if got := n.snapshot(&fc); got != want {
		t.Errorf("snapshot\n got %+v\nwant %+v", got, want)
	}
}
