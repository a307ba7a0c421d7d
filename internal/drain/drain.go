package drain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/qmt"
)

// DefaultWindow is how many publishes may be in flight at once unless Options say otherwise.
const DefaultWindow = 8

// DefaultMaxRefusals is how many times in a row the module may refuse the oldest message's publish
// command (ERROR or +CME ERROR, with nothing else in flight) before the message is rejected from
// the store, unless Options say otherwise.
const DefaultMaxRefusals = 5

// DefaultProbeAfter is how many publishes in a row must succeed one at a time, after the window
// was cut to 1, before the full window is tried again, unless Options say otherwise. Each later cut
// in the life of one module doubles it, up to maxProbeAfter.
const DefaultProbeAfter = 32

// maxProbeAfter caps the doubled ProbeAfter: a module that cannot pipeline costs one refused
// publish (sent again, in order) per 4,096 sent.
const maxProbeAfter = 4096

// DefaultLinkGrace is how close to the end of a session a refusal may come and be put down to the
// dying link rather than to the module, unless Options say otherwise: the +QMTSTAT that explains a
// refused publish can arrive after the refusal.
const DefaultLinkGrace = 5 * time.Second

// DefaultRetry is the back-off between drain attempts after a failure while the session stays up.
var DefaultRetry = backoff.Policy{Initial: time.Second, Max: 30 * time.Second, Factor: 2, Jitter: 0.5}

// Publisher sends one message and returns when it is done: nil only when the module reported
// success (for QoS 1, the broker's PUBACK: `+QMTPUBEX: <idx>,<msgid>,0`). It must be safe for
// concurrent use and must return soon after ctx ends. *qmt.Client is one.
type Publisher interface {
	Publish(ctx context.Context, m qmt.Message) error
}

// QueuedPublisher is a Publisher that can say when a publish has taken its place in the
// module's command order — best, when the module answered OK to the AT command, since the port
// carries one command at a time anyway — so that a publish issued after that is sent after it.
// queued must be called at most once, before PublishQueued returns.
//
// Only a QueuedPublisher gets a window above 1. Concurrent calls of a plain Publisher reach the
// port in whatever order the Go scheduler runs their goroutines (the tests saw the 4th publish
// overtake the 3rd), and the broker must receive messages in the order of the store, so a
// plain Publisher is driven stop-and-wait.
type QueuedPublisher interface {
	Publisher
	PublishQueued(ctx context.Context, m qmt.Message, queued func()) error
}

// Store is the part of *outbox.Store the drainer uses.
type Store interface {
	PendingAfter(after uint64, max int) ([]outbox.Message, error)
	Sending(seqs ...uint64) error
	Ack(seqs ...uint64) error
	Reject(seq uint64, reason error) error
}

// Options tune a Drainer.
type Options struct {
	// Window is the most publishes in flight at once; 0 = DefaultWindow, 1 = stop-and-wait.
	Window int
	// Retry is the back-off after a failed attempt; zero = DefaultRetry.
	Retry backoff.Policy
	// MaxRefusals is how many times in a row the module may refuse a message sent alone before
	// it is rejected (removed, logged and counted) so that the queue moves on: a topic longer
	// than the module's command line, say, which no retry mends. 0 = DefaultMaxRefusals.
	MaxRefusals int
	// ProbeAfter is how many publishes in a row, sent one at a time after a cut, restore the
	// full window; it doubles with each later cut until Reset. 0 = DefaultProbeAfter.
	ProbeAfter int
	// LinkGrace: a cut made this close before the session ended (Run's ctx) is undone when Run
	// returns, and not held against the module. 0 = DefaultLinkGrace.
	LinkGrace time.Duration
}

// Stats is a snapshot of a Drainer's counters, since New.
type Stats struct {
	Window      int    // the window now (1 after a refusal, until it is restored)
	InFlight    int    // publishes in flight now
	MaxInFlight int    // the most that were ever in flight at once
	Published   uint64 // acknowledged and removed from the store
	Failed      uint64 // publishes that failed (their messages stay stored and are retried)
	Rejected    uint64 // messages the module can never send, removed by Store.Reject
	Refused     uint64 // of those, messages the module refused MaxRefusals times in a row
	Shrunk      uint64 // times the window was cut to 1
	Restored    uint64 // times it was restored: after ProbeAfter publishes in a row, or a session that ended right after the cut
	// Undelivered counts publishes the module gave up on while the link stayed up
	// (`+QMTPUBEX: <idx>,<msgid>,2`, e.g. a lost PUBACK after its retransmissions): each is
	// sent again, and the broker may then have it twice. Also counted in Failed.
	Undelivered uint64
}

// Drainer moves messages from the store to a Publisher. Create it with New; run one Run at a
// time, for each connected session.
type Drainer struct {
	store Store
	opts  Options
	log   zerolog.Logger
	wake  chan struct{}

	running     atomic.Bool
	window      atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	published   atomic.Uint64
	failed      atomic.Uint64
	rejected    atomic.Uint64
	refusedOut  atomic.Uint64
	shrunk      atomic.Uint64
	// The refusals in a row of the message at the head of the store (Run's goroutine only: one
	// Run at a time).
	refusedSeq    uint64
	refusedTimes  int
	forgetRefused atomic.Bool // set by Reset: the row starts again with the new module
	undelivered   atomic.Uint64
	restored      atomic.Uint64

	// The cut's way back: strikes counts cuts that stood (not put down to a dying link) since
	// the last Reset; streak counts publishes in a row that succeeded one at a time since the
	// last cut; cutAt is when the window was last cut, zero once restored.
	mu      sync.Mutex
	strikes int
	streak  int
	cutAt   time.Time
}

// New returns a Drainer over store.
func New(store Store, opts Options, log zerolog.Logger) *Drainer {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Retry == (backoff.Policy{}) {
		opts.Retry = DefaultRetry
	}
	if opts.MaxRefusals <= 0 {
		opts.MaxRefusals = DefaultMaxRefusals
	}
	if opts.ProbeAfter <= 0 {
		opts.ProbeAfter = DefaultProbeAfter
	}
	if opts.LinkGrace <= 0 {
		opts.LinkGrace = DefaultLinkGrace
	}
	d := &Drainer{store: store, opts: opts, log: log.With().Str("component", "drain").Logger(), wake: make(chan struct{}, 1)}
	d.window.Store(int64(opts.Window))
	return d
}

// Notify tells the drainer that a message was stored. It never blocks.
func (d *Drainer) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Reset restores the configured window and forgets the refusals counted towards MaxRefusals. The daemon calls it when a different module is
// attached: a refusal by the old module says nothing about the new one.
func (d *Drainer) Reset() {
	d.forgetRefused.Store(true)
	d.mu.Lock()
	d.strikes, d.streak, d.cutAt = 0, 0, time.Time{}
	d.mu.Unlock()
	if old := d.window.Swap(int64(d.opts.Window)); old != int64(d.opts.Window) {
		d.log.Info().Str("event", "drain_window_reset").Int("window", d.opts.Window).Msg("publish window restored for the new module")
	}
}

// Stats returns a snapshot of the counters.
func (d *Drainer) Stats() Stats {
	return Stats{
		Window:      int(d.window.Load()),
		InFlight:    int(d.inFlight.Load()),
		MaxInFlight: int(d.maxInFlight.Load()),
		Published:   d.published.Load(),
		Failed:      d.failed.Load(),
		Rejected:    d.rejected.Load(),
		Refused:     d.refusedOut.Load(),
		Shrunk:      d.shrunk.Load(),
		Restored:    d.restored.Load(),
		Undelivered: d.undelivered.Load(),
	}
}

// errBusy: Run is already running.
var errBusy = errors.New("drain: Run is already running")

// Run drains the store through pub until ctx ends — the daemon starts it when the MQTT session
// is connected and cancels ctx when the link goes down. It returns after every publish it
// started has returned, with nil, or with an error only when the store was closed. Messages
// not acknowledged stay in the store for the next Run.
func (d *Drainer) Run(ctx context.Context, pub Publisher) error {
	if !d.running.CompareAndSwap(false, true) {
		return errBusy
	}
	defer d.running.Store(false)
	_, ordered := pub.(QueuedPublisher)
	if !ordered && d.opts.Window > 1 {
		d.log.Info().Int("window", d.opts.Window).
			Msg("the publisher cannot say when a publish is queued on the port; sending one at a time to keep the store's order")
	}
	defer d.sessionEnded()
	bo := backoff.New(d.opts.Retry)
	for {
		err := d.drain(ctx, pub, ordered)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, outbox.ErrClosed) {
			return fmt.Errorf("drain: %w", err)
		}
		if err != nil {
			delay := bo.Next()
			d.log.Warn().Str("event", "drain_retry").Err(err).Dur("retry_in", delay).
				Msg("draining the outbox failed; will retry from the oldest unacknowledged message")
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		bo.Reset()
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		}
	}
}

type result struct {
	s   *slot
	err error
}

type slot struct {
	m    outbox.Message
	done bool
}

// drain sends until the store is empty (nil), a failure (the error), or ctx ends. It always
// waits for what it has in flight.
func (d *Drainer) drain(ctx context.Context, pub Publisher, ordered bool) error {
	results := make(chan result, d.opts.Window)
	var (
		inflight []*slot
		last     uint64 // the newest seq issued
		failure  error
	)
	for {
		w := int(d.window.Load())
		if !ordered {
			w = 1
		}
		if failure == nil && ctx.Err() == nil && len(inflight) < w {
			ms, err := d.store.PendingAfter(last, w-len(inflight))
			if err == nil && len(ms) > 0 {
				seqs := make([]uint64, len(ms))
				for i, m := range ms {
					seqs[i] = m.Seq
				}
				err = d.store.Sending(seqs...) // before the send, so a resend is always counted
				if err == nil {
					for _, m := range ms {
						inflight = append(inflight, d.launch(ctx, pub, m, results))
						last = m.Seq
					}
				}
			}
			if err != nil {
				failure = err
			}
		}
		if len(inflight) == 0 {
			return failure
		}

		// Wait for one result, then take every other that is ready, and settle them together.
		rs := []result{<-results}
		for more := true; more; {
			select {
			case r := <-results:
				rs = append(rs, r)
			default:
				more = false
			}
		}
		var acks []uint64
		for _, r := range rs {
			d.inFlight.Add(-1)
			s := r.s
			s.done = true
			seq := s.m.Seq
			alone := len(inflight) == 1
			switch {
			case r.err == nil:
				acks = append(acks, seq)
				d.succeeded(w)
				d.log.Debug().Str("event", "published").Uint64("seq", seq).Str("topic", s.m.Topic).
					Int("bytes", len(s.m.Payload)).Msg("message delivered and removed from the outbox")
			case ctx.Err() != nil:
				// Cancelled: the message stays stored for the next session.
			case permanent(r.err):
				d.rejected.Add(1)
				if err := d.store.Reject(seq, r.err); err != nil && failure == nil {
					failure = err
				}
			case refused(r.err) && alone && d.refusedAgain(seq) >= d.opts.MaxRefusals:
				d.rejected.Add(1)
				d.refusedOut.Add(1)
				reason := fmt.Errorf("the module refused it %d times in a row, sent alone: %w", d.opts.MaxRefusals, r.err)
				if err := d.store.Reject(seq, reason); err != nil && failure == nil {
					failure = err
				}
			default:
				d.failed.Add(1)
				if errors.Is(r.err, qmt.ErrSendFailed) {
					// Result 2: this message was not delivered (its PUBACK may just have been
					// lost). It stays stored and is sent again; nothing is said about pipelining.
					d.undelivered.Add(1)
					d.log.Warn().Str(logging.EventKey, logging.EventPublishUndelivered).Uint64("seq", seq).Str("topic", s.m.Topic).Err(r.err).
						Msg("the module gave up on a publish; it is sent again and the broker may get it twice")
				}
				others := len(inflight) > 1
				if refused(r.err) && others && d.window.Load() > 1 {
					d.cut(seq, w, len(inflight), r.err)
				} else {
					d.mu.Lock()
					d.streak = 0
					d.mu.Unlock()
				}
				if failure == nil {
					failure = fmt.Errorf("publishing seq %d to %q: %w", seq, s.m.Topic, r.err)
				}
			}
		}
		if len(acks) > 0 {
			if err := d.store.Ack(acks...); err != nil {
				// Delivered but still stored: they will be sent again and counted as possible duplicates.
				if failure == nil {
					failure = err
				}
			} else {
				d.published.Add(uint64(len(acks)))
			}
		}
		kept := inflight[:0]
		for _, s := range inflight {
			if !s.done {
				kept = append(kept, s)
			}
		}
		inflight = kept
	}
}

// cut sends one publish at a time from now on: the module refused seq while others were in
// flight, the sign of a module that cannot pipeline — or of a link that died a moment before the
// +QMTSTAT saying so was read. The decision has two ways back: sessionEnded undoes it when the
// session ends within LinkGrace, and succeeded when enough publishes in a row went through.
func (d *Drainer) cut(seq uint64, was, inFlight int, err error) {
	d.window.Store(1)
	d.shrunk.Add(1)
	d.mu.Lock()
	d.strikes++
	d.streak, d.cutAt = 0, time.Now()
	probe := d.probeAfter()
	d.mu.Unlock()
	d.log.Warn().Str(logging.EventKey, logging.EventDrainWindowShrunk).Uint64("seq", seq).Err(err).
		Int("was", was).Int("in_flight", inFlight).Int("restore_after", probe).
		Msg(fmt.Sprintf("the module refused a publish while others were in flight; sending one at a time "+
			"until %d in a row succeed, or the session ends within %s (a dying link)", probe, d.opts.LinkGrace))
}

// probeAfter is the streak that restores the window after the latest cut. d.mu is held.
func (d *Drainer) probeAfter() int {
	n := d.opts.ProbeAfter
	for i := 1; i < d.strikes && n < maxProbeAfter; i++ {
		n *= 2
	}
	return min(n, maxProbeAfter)
}

// succeeded counts a publish that went through while the window was w; enough of them in a row,
// sent one at a time after a cut, restore the full window.
func (d *Drainer) succeeded(w int) {
	if w != 1 || d.opts.Window == 1 {
		return
	}
	d.mu.Lock()
	d.streak++
	restore := !d.cutAt.IsZero() && d.streak >= d.probeAfter()
	streak := d.streak
	if restore {
		d.streak, d.cutAt = 0, time.Time{}
	}
	d.mu.Unlock()
	if restore {
		d.restore(fmt.Sprintf("%d publishes in a row went through one at a time", streak))
	}
}

// sessionEnded runs as Run returns: a cut made within LinkGrace before the session ended is put
// down to the dying link (whose +QMTSTAT came after the refusal), undone and not counted.
func (d *Drainer) sessionEnded() {
	d.mu.Lock()
	recent := !d.cutAt.IsZero() && time.Since(d.cutAt) <= d.opts.LinkGrace
	if recent {
		d.strikes--
		d.streak, d.cutAt = 0, time.Time{}
	}
	d.mu.Unlock()
	if recent {
		d.restore(fmt.Sprintf("the session ended within %s of the refusal: the link, not the module, refused it", d.opts.LinkGrace))
	}
}

func (d *Drainer) restore(why string) {
	if d.window.Swap(int64(d.opts.Window)) != int64(d.opts.Window) {
		d.restored.Add(1)
		d.log.Info().Str(logging.EventKey, logging.EventDrainWindowRestored).Int("window", d.opts.Window).Str("why", why).
			Msg("publish window restored")
	}
}

// launch starts one publish and returns once it has its place in the module's order (see
// QueuedPublisher), so that the next launch is issued after it.
func (d *Drainer) launch(ctx context.Context, pub Publisher, m outbox.Message, results chan<- result) *slot {
	s := &slot{m: m}
	n := d.inFlight.Add(1)
	for {
		old := d.maxInFlight.Load()
		if n <= old || d.maxInFlight.CompareAndSwap(old, n) {
			break
		}
	}
	qm := qmt.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}
	queued := make(chan struct{})
	var once sync.Once
	mark := func() { once.Do(func() { close(queued) }) }
	go func() {
		var err error
		if qp, ok := pub.(QueuedPublisher); ok {
			err = qp.PublishQueued(ctx, qm, mark)
		} else {
			mark() // stop-and-wait: nothing else is in flight
			err = pub.Publish(ctx, qm)
		}
		mark() // a publisher that failed before queueing
		results <- result{s, err}
	}()
	<-queued
	return s
}

// refusedAgain counts one more refusal of seq, sent alone, and returns how many in a row: the
// count starts again with another message. A refusal with others in flight is not counted (it
// may be the module's pipelining), nor is any other failure — but neither does it break a row.
func (d *Drainer) refusedAgain(seq uint64) int {
	if d.forgetRefused.Swap(false) || d.refusedSeq != seq {
		d.refusedSeq, d.refusedTimes = seq, 0
	}
	d.refusedTimes++
	return d.refusedTimes
}

// permanent reports an error that no retry mends: qmt refused the message itself (a topic
// with a byte that would break the AT command, a payload of a length the module cannot take)
// before sending anything.
func permanent(err error) bool {
	return errors.Is(err, qmt.ErrInvalidString) || errors.Is(err, qmt.ErrInvalidArgument)
}

// refused reports the module refusing the publish command itself (ERROR, or +CME ERROR) — while
// others are in flight, the sign of a module that cannot pipeline. A result 2 in the result URC
// (qmt.ErrSendFailed) is not: it is the outcome of that one message, such as a PUBACK lost
// after the module's retransmissions (+QMTPUBEX: <idx>,<msgid>,1,<count> before it).
func refused(err error) bool {
	var cme *at.CMEError
	return errors.Is(err, at.ErrError) || errors.As(err, &cme)
}
