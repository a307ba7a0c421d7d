package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/logging"
)

// How RunWith's parts end. Every long-lived part of a running daemon is a task of one errgroup
// (tasks), started by RunWith and waited for before RunWith returns, so that no part outlives
// the daemon and no part's end goes unseen:
//   - the supervisor (the cellular session) is what the daemon is for: when it returns — its
//     context ended, or a fault no retry mends — every other task is told to stop and RunWith
//     returns its error;
//   - the local endpoint is not restarted and does not end the daemon: its listeners are bound
//     by local.New, before RunWith goes on, a failing accept is retried inside, and mochi starts
//     at the first connection (a failure to start refuses that connection, in the log), so Run
//     fails only on a second call, which a new try would repeat; and the session's work —
//     downlinks to the LED, the log and the thing model, the draining of what the outbox holds —
//     goes on without it. The failure is logged (EventLocalUnavailable) with what it costs: local
//     clients can neither publish nor receive downlinks until gatewayd restarts;
//   - the control socket and the metrics listener are parts (keep): one that cannot be opened at
//     start is logged and left out, as a problem of the configuration or of the machine (a port
//     taken, a directory missing); one that fails while serving is logged and opened again after
//     a capped back-off with jitter;
//   - the thing model's engine and the reload loop end with the group.

// tasks is the errgroup of RunWith's parts.
type tasks struct {
	g      *errgroup.Group
	ctx    context.Context // the group's: ends with RunWith's ctx or when the supervisor returns
	cancel context.CancelFunc
}

func newTasks(ctx context.Context) *tasks {
	ctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	return &tasks{g: g, ctx: gctx, cancel: cancel}
}

// essential runs run as the task the daemon lives for: when it returns, for whatever reason,
// every other task is told to stop, and wait returns its error.
func (t *tasks) essential(run func(context.Context) error) {
	t.g.Go(func() error {
		defer t.cancel()
		return run(t.ctx)
	})
}

// background runs run with the group's context; its end stops nothing else.
func (t *tasks) background(run func(context.Context)) {
	t.g.Go(func() error {
		run(t.ctx)
		return nil
	})
}

// wait waits for every task and returns the essential task's error.
func (t *tasks) wait() error {
	err := t.g.Wait()
	t.cancel()
	return err
}

// part is a listener the daemon can do without: the control socket, the metrics listener.
type part struct {
	name       string // what the log lines call it: "control socket"
	field      string // the log field of its address: "socket", "listen"
	addr       string
	event      string // the log event of its failures
	hint       string // what an operator can do when it cannot be opened
	cannotOpen string // the log message when it cannot be opened at start
	// open binds the listener and returns what serves it until ctx ends (nil then, an error
	// when serving failed before, the listener closed either way).
	open func() (serve func(ctx context.Context) error, err error)
}

// restartPolicy is the back-off between the tries to open a part again after it failed while
// serving; a part that served for partStable before it failed starts from Initial again.
var restartPolicy = backoff.Policy{Initial: time.Second, Max: time.Minute, Factor: 2, Jitter: 0.5}

const partStable = time.Minute

// errStoppedUnasked is a part's failure when its serve returned nil before its context ended.
var errStoppedUnasked = errors.New("stopped without being asked to")

// keep opens p and serves it until ctx ends. When p cannot be opened at first, keep logs that
// and returns: the daemon runs without it. When serving fails later, keep logs the failure and
// opens p again after a capped back-off with jitter (logging each failed try), for as long as
// ctx lasts.
func keep(ctx context.Context, p part, policy backoff.Policy, log zerolog.Logger) {
	serve, err := p.open()
	if err != nil {
		log.Error().Str(logging.EventKey, p.event).Str(p.field, p.addr).Err(err).Str("hint", p.hint).Msg(p.cannotOpen)
		return
	}
	b := backoff.New(policy)
	for {
		began := time.Now()
		err := serve(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errStoppedUnasked
		}
		if time.Since(began) >= partStable {
			b.Reset()
		}
		for {
			wait := b.Next()
			log.Error().Str(logging.EventKey, p.event).Str(p.field, p.addr).Err(err).Str("retry_in", wait.Round(time.Millisecond).String()).
				Msg("the " + p.name + " failed: opening it again")
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if serve, err = p.open(); err == nil {
				break
			}
		}
	}
}
