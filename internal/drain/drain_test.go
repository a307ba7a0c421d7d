package drain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/testutil"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/qmt"
)

// fakePublisher is a test fake of the module: it records the order in which publishes are
// issued, reports each as queued at once, completes each after delay (concurrently, like a
// module waiting for PUBACKs), and fails the ones fail says to fail.
type fakePublisher struct {
	delay time.Duration
	// fail, when set, returns the error for an attempt (n counts from 1 per topic).
	fail func(topic string, n int) error

	mu        sync.Mutex
	issued    []string // topics in issue order
	attempts  map[string]int
	delivered []string // topics that returned nil, in completion order
	inFlight  int
	maxFlight int
	done      chan string // receives each delivered topic, if set
}

func (f *fakePublisher) PublishQueued(ctx context.Context, m qmt.Message, queued func()) error {
	f.mu.Lock()
	f.issued = append(f.issued, m.Topic)
	if f.attempts == nil {
		f.attempts = map[string]int{}
	}
	f.attempts[m.Topic]++
	n := f.attempts[m.Topic]
	f.inFlight++
	f.maxFlight = max(f.maxFlight, f.inFlight)
	f.mu.Unlock()
	queued()

	var err error
	t := time.NewTimer(f.delay)
	select {
	case <-ctx.Done():
		t.Stop()
		err = fmt.Errorf("fake publish: %w", ctx.Err())
	case <-t.C:
		if f.fail != nil {
			err = f.fail(m.Topic, n)
		}
	}

	f.mu.Lock()
	f.inFlight--
	if err == nil {
		f.delivered = append(f.delivered, m.Topic)
	}
	f.mu.Unlock()
	if err == nil && f.done != nil {
		f.done <- m.Topic
	}
	return err
}

// Publish is the plain-Publisher path.
func (f *fakePublisher) Publish(ctx context.Context, m qmt.Message) error {
	return f.PublishQueued(ctx, m, func() {})
}

// plainPublisher hides PublishQueued.
type plainPublisher struct{ f *fakePublisher }

func (p plainPublisher) Publish(ctx context.Context, m qmt.Message) error { return p.f.Publish(ctx, m) }

func (f *fakePublisher) snapshot() (issued, delivered []string, maxFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...), append([]string(nil), f.delivered...), f.maxFlight
}

var fastRetry = backoff.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Factor: 2}

func newStore(t testing.TB, n int) *outbox.Store {
	t.Helper()
	s, err := outbox.Open(outbox.Config{Dir: t.TempDir()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := 1; i <= n; i++ {
		if _, err := s.Put(topic(i), []byte(fmt.Sprint(i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func topic(i int) string { return fmt.Sprintf("m/%03d", i) }

func topics(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = topic(i + 1)
	}
	return out
}

// run starts Run and returns a stop function that cancels it and waits for it to return.
func run(t *testing.T, d *Drainer, pub Publisher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx, pub) }()
	return func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

// waitDelivered waits until n messages were delivered.
func waitDelivered(t *testing.T, done <-chan string, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-done:
		case <-deadline:
			t.Fatalf("only %d of %d messages delivered", i, n)
		}
	}
}

func pendingTopics(t *testing.T, s *outbox.Store) []string {
	t.Helper()
	ms, err := s.Pending(10000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Topic
	}
	return out
}

// waitAcked waits until the store is empty (the last Ack is committed after the last publish
// returns).
func waitEmpty(t *testing.T, s *outbox.Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Messages > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("store still holds %v", pendingTopics(t, s))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDrainsEverythingInStoreOrder(t *testing.T) {
	s := newStore(t, 50)
	f := &fakePublisher{delay: 2 * time.Millisecond, done: make(chan string, 100)}
	d := New(s, Options{Window: 8, Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, f)
	waitDelivered(t, f.done, 50)
	waitEmpty(t, s)
	stop()
	issued, delivered, maxFlight := f.snapshot()
	if fmt.Sprint(issued) != fmt.Sprint(topics(50)) {
		t.Fatalf("issue order %v", issued)
	}
	if len(delivered) != 50 {
		t.Fatalf("%d delivered", len(delivered))
	}
	if maxFlight != 8 {
		t.Fatalf("max in flight %d, want the window, 8", maxFlight)
	}
	st := s.Stats()
	if st.Delivered != 50 || st.DuplicatesPossible != 0 {
		t.Fatalf("store stats %+v", st)
	}
	if ds := d.Stats(); ds.Published != 50 || ds.MaxInFlight != 8 || ds.InFlight != 0 {
		t.Fatalf("drain stats %+v", ds)
	}
}

func TestPlainPublisherIsDrivenStopAndWaitInOrder(t *testing.T) {
	s := newStore(t, 20)
	f := &fakePublisher{delay: time.Millisecond, done: make(chan string, 100)}
	d := New(s, Options{Window: 4, Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, plainPublisher{f})
	waitDelivered(t, f.done, 20)
	waitEmpty(t, s)
	stop()
	issued, _, maxFlight := f.snapshot()
	if maxFlight != 1 || fmt.Sprint(issued) != fmt.Sprint(topics(20)) {
		t.Fatalf("max in flight %d, issue order %v", maxFlight, issued)
	}
}

// gatedPublisher is a test fake whose publishes complete only when the test releases them.
type gatedPublisher struct {
	mu      sync.Mutex
	started []string
	gates   map[string]chan error
	calls   chan string
}

func (g *gatedPublisher) Publish(ctx context.Context, m qmt.Message) error {
	return g.PublishQueued(ctx, m, func() {})
}

func (g *gatedPublisher) PublishQueued(ctx context.Context, m qmt.Message, queued func()) error {
	g.mu.Lock()
	ch := make(chan error, 1)
	g.gates[m.Topic] = ch
	g.started = append(g.started, m.Topic)
	g.mu.Unlock()
	g.calls <- m.Topic
	queued()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedPublisher) release(topic string, err error) {
	g.mu.Lock()
	ch := g.gates[topic]
	g.mu.Unlock()
	ch <- err
}

func TestMessageIsRemovedOnlyAfterItsAcknowledgement(t *testing.T) {
	s := newStore(t, 3)
	g := &gatedPublisher{gates: map[string]chan error{}, calls: make(chan string, 10)}
	d := New(s, Options{Window: 3, Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, g)
	defer stop()
	for i := 0; i < 3; i++ {
		<-g.calls
	}
	// All three are in flight, none acknowledged: all still stored.
	if got := pendingTopics(t, s); fmt.Sprint(got) != fmt.Sprint(topics(3)) {
		t.Fatalf("in flight, store holds %v", got)
	}
	// The second completes first: only it leaves the store.
	g.release(topic(2), nil)
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Messages != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("store holds %v", pendingTopics(t, s))
		}
		time.Sleep(time.Millisecond)
	}
	if got := pendingTopics(t, s); fmt.Sprint(got) != fmt.Sprint([]string{topic(1), topic(3)}) {
		t.Fatalf("after the 2nd acknowledgement the store holds %v", got)
	}
	g.release(topic(1), nil)
	g.release(topic(3), nil)
	waitEmpty(t, s)
}

func TestWindowBoundsPublishesInFlight(t *testing.T) {
	for _, w := range []int{1, 3, 8} {
		t.Run(fmt.Sprint("window ", w), func(t *testing.T) {
			s := newStore(t, 30)
			f := &fakePublisher{delay: 3 * time.Millisecond, done: make(chan string, 100)}
			d := New(s, Options{Window: w, Retry: fastRetry}, zerolog.Nop())
			stop := run(t, d, f)
			waitDelivered(t, f.done, 30)
			waitEmpty(t, s)
			stop()
			if _, _, maxFlight := f.snapshot(); maxFlight != w {
				t.Fatalf("max in flight %d, want %d", maxFlight, w)
			}
		})
	}
}

func TestRefusalShrinksTheWindowUntilReset(t *testing.T) {
	s := newStore(t, 30)
	f := &fakePublisher{
		delay: 3 * time.Millisecond,
		done:  make(chan string, 100),
		fail:  refuseFirst(5),
	}
	lb := &testutil.SyncBuffer{}
	// No way back within these sessions: a streak longer than the test, and sessions that end
	// long enough after the cut (LinkGrace 1 ns) for it to stand.
	d := New(s, Options{Window: 8, Retry: fastRetry, ProbeAfter: 1000, LinkGrace: time.Nanosecond}, zerolog.New(lb))
	stop := run(t, d, f)
	waitDelivered(t, f.done, 30)
	waitEmpty(t, s)
	stop()
	_, delivered, _ := f.snapshot()
	if len(delivered) != 30 {
		t.Fatalf("%d delivered", len(delivered))
	}
	if d.Stats().Window != 1 || d.Stats().Shrunk != 1 {
		t.Fatalf("drain stats %+v", d.Stats())
	}
	if !strings.Contains(lb.String(), `"event":"drain_window_shrunk"`) {
		t.Fatalf("no log line for the shrink:\n%s", lb)
	}
	if s.Stats().DuplicatesPossible != 1 {
		t.Fatalf("the refused message was not counted as a possible duplicate: %+v", s.Stats())
	}

	// After the shrink, a new batch goes one at a time.
	f2 := &fakePublisher{delay: 2 * time.Millisecond, done: make(chan string, 100)}
	putRange(t, s, 31, 40)
	stop = run(t, d, f2)
	waitDelivered(t, f2.done, 10)
	waitEmpty(t, s)
	stop()
	if _, _, maxFlight := f2.snapshot(); maxFlight != 1 {
		t.Fatalf("after the shrink, max in flight %d, want 1", maxFlight)
	}

	// A new module: the full window again.
	d.Reset()
	f3 := &fakePublisher{delay: 2 * time.Millisecond, done: make(chan string, 100)}
	putRange(t, s, 41, 60)
	stop = run(t, d, f3)
	waitDelivered(t, f3.done, 20)
	waitEmpty(t, s)
	stop()
	if _, _, maxFlight := f3.snapshot(); maxFlight != 8 || d.Stats().Window != 8 {
		t.Fatalf("after Reset, max in flight %d, window %d", maxFlight, d.Stats().Window)
	}
}

func TestFailureRetriesFromTheOldestUnacknowledged(t *testing.T) {
	s := newStore(t, 8)
	g := &gatedPublisher{gates: map[string]chan error{}, calls: make(chan string, 20)}
	d := New(s, Options{Window: 4, Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, g)
	defer stop()
	next := func() string {
		select {
		case tp := <-g.calls:
			return tp
		case <-time.After(10 * time.Second):
			t.Fatal("no publish issued")
			return ""
		}
	}
	for i := 1; i <= 4; i++ {
		if tp := next(); tp != topic(i) {
			t.Fatalf("issued %s, want %s", tp, topic(i))
		}
	}
	// The third fails while 1, 2 and 4 are in flight.
	g.release(topic(3), fmt.Errorf("mqtt publish: %w", qmt.ErrNoResult))
	for deadline := time.Now().Add(5 * time.Second); d.Stats().Failed != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("failure not seen")
		}
	}
	// What is in flight completes; nothing new goes out until the failed one is retried first.
	g.release(topic(1), nil)
	g.release(topic(2), nil)
	g.release(topic(4), nil)
	if tp := next(); tp != topic(3) {
		t.Fatalf("after the failure, %s was issued before the retry of %s", tp, topic(3))
	}
	for i := 5; i <= 7; i++ {
		if tp := next(); tp != topic(i) {
			t.Fatalf("issued %s, want %s", tp, topic(i))
		}
	}
	for _, i := range []int{3, 5, 6, 7} {
		g.release(topic(i), nil)
	}
	if tp := next(); tp != topic(8) {
		t.Fatalf("issued %s, want %s", tp, topic(8))
	}
	g.release(topic(8), nil)
	waitEmpty(t, s)
	if st := s.Stats(); st.DuplicatesPossible != 1 || st.Delivered != 8 {
		t.Fatalf("store stats %+v", st)
	}
	// A transient failure does not shrink the window.
	if ds := d.Stats(); ds.Failed != 1 || ds.Window != 4 {
		t.Fatalf("drain stats %+v", ds)
	}
}

func TestUnsendableMessageIsRejectedNotRetriedForever(t *testing.T) {
	s := newStore(t, 5)
	f := &fakePublisher{
		delay: time.Millisecond,
		done:  make(chan string, 100),
		fail: func(tp string, n int) error {
			if tp == topic(2) {
				return fmt.Errorf("mqtt publish: payload length 5000: %w", qmt.ErrInvalidArgument)
			}
			return nil
		},
	}
	d := New(s, Options{Window: 2, Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, f)
	waitDelivered(t, f.done, 4)
	waitEmpty(t, s)
	stop()
	if st := s.Stats(); st.Rejected != 1 || st.Delivered != 4 {
		t.Fatalf("store stats %+v", st)
	}
	if f.attempts[topic(2)] != 1 {
		t.Fatalf("unsendable message tried %d times", f.attempts[topic(2)])
	}
}

func TestCancelMidDrainLosesNothing(t *testing.T) {
	s := newStore(t, 40)
	f := &fakePublisher{delay: 20 * time.Millisecond, done: make(chan string, 100)}
	d := New(s, Options{Window: 4, Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, f)
	waitDelivered(t, f.done, 10)
	stop() // the link went down
	_, delivered, _ := f.snapshot()
	left := pendingTopics(t, s)
	if len(delivered) == 40 || len(left) == 0 {
		t.Fatalf("the cancel came too late to test anything: %d delivered", len(delivered))
	}
	// Every message is either acknowledged (and gone) or still stored, in order.
	got := map[string]bool{}
	for _, tp := range delivered {
		got[tp] = true
	}
	for _, tp := range left {
		if got[tp] {
			t.Fatalf("%s was delivered and is still stored", tp)
		}
		got[tp] = true
	}
	if len(got) != 40 {
		t.Fatalf("%d of 40 messages accounted for", len(got))
	}
	if st := s.Stats(); st.Delivered != uint64(len(delivered)) || d.Stats().InFlight != 0 {
		t.Fatalf("store stats %+v, drain stats %+v", st, d.Stats())
	}

	// The next session delivers the rest.
	f2 := &fakePublisher{delay: time.Millisecond, done: make(chan string, 100)}
	stop = run(t, d, f2)
	waitDelivered(t, f2.done, len(left))
	waitEmpty(t, s)
	stop()
}

func TestNotifyWakesAnIdleDrainer(t *testing.T) {
	s := newStore(t, 0)
	f := &fakePublisher{delay: time.Millisecond, done: make(chan string, 10)}
	d := New(s, Options{Retry: fastRetry}, zerolog.Nop())
	stop := run(t, d, f)
	defer stop()
	for i := 1; i <= 3; i++ {
		if _, err := s.Put(topic(i), []byte("x"), 1, false); err != nil {
			t.Fatal(err)
		}
		d.Notify()
		select {
		case tp := <-f.done:
			if tp != topic(i) {
				t.Fatalf("delivered %s, want %s", tp, topic(i))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not drained after Notify", i)
		}
	}
}

func TestSecondRunIsRefused(t *testing.T) {
	s := newStore(t, 0)
	d := New(s, Options{}, zerolog.Nop())
	stop := run(t, d, &fakePublisher{})
	defer stop()
	for deadline := time.Now().Add(5 * time.Second); !d.running.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
	}
	if err := d.Run(context.Background(), &fakePublisher{}); !errors.Is(err, errBusy) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestClosedStoreEndsRun(t *testing.T) {
	s := newStore(t, 1)
	d := New(s, Options{}, zerolog.Nop())
	s.Close()
	err := d.Run(context.Background(), &fakePublisher{})
	if !errors.Is(err, outbox.ErrClosed) {
		t.Fatalf("Run on a closed store: %v", err)
	}
}

// TestUndeliveredPublishKeepsTheWindow: result 2 in the result URC (+QMTPUBEX: <idx>,<msgid>,2,
// e.g. a PUBACK lost after the module's retransmissions) is a failed delivery of that message:
// it is sent again and counted as a possible duplicate, and the window stays (issue 12.4).
func TestUndeliveredPublishKeepsTheWindow(t *testing.T) {
	s := newStore(t, 30)
	f := &fakePublisher{
		delay: 3 * time.Millisecond,
		done:  make(chan string, 100),
		fail: func(tp string, n int) error {
			if tp == topic(5) && n == 1 {
				return &qmt.ResultError{Op: qmt.OpPublish, MsgID: 5, Result: 2, Line: "+QMTPUBEX: 0,5,2"}
			}
			return nil
		},
	}
	lb := &testutil.SyncBuffer{}
	// No way back within these sessions: a streak longer than the test, and sessions that end
	// long enough after the cut (LinkGrace 1 ns) for it to stand.
	d := New(s, Options{Window: 8, Retry: fastRetry, ProbeAfter: 1000, LinkGrace: time.Nanosecond}, zerolog.New(lb))
	stop := run(t, d, f)
	waitDelivered(t, f.done, 30)
	waitEmpty(t, s)
	stop()
	if ds := d.Stats(); ds.Window != 8 || ds.Shrunk != 0 || ds.Undelivered != 1 || ds.Failed != 1 {
		t.Fatalf("drain stats %+v: want the window kept and one undelivered publish", ds)
	}
	if s.Stats().DuplicatesPossible != 1 {
		t.Fatalf("the undelivered message was not counted as a possible duplicate: %+v", s.Stats())
	}
	if !strings.Contains(lb.String(), `"event":"publish_undelivered"`) {
		t.Fatalf("no log line for the undelivered publish:\n%s", lb)
	}
	// The window is still 8 for the next batch.
	f2 := &fakePublisher{delay: 3 * time.Millisecond, done: make(chan string, 100)}
	for i := 31; i <= 50; i++ {
		if _, err := s.Put(topic(i), []byte("x"), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	stop = run(t, d, f2)
	waitDelivered(t, f2.done, 20)
	waitEmpty(t, s)
	stop()
	if _, _, maxFlight := f2.snapshot(); maxFlight != 8 {
		t.Fatalf("after an undelivered publish, max in flight %d, want 8", maxFlight)
	}
}

// A message the module refuses every time it is sent alone (a topic longer than its command line,
// say) is rejected after MaxRefusals attempts, and the messages behind it go out; refusals of
// other messages in between do not add up.
func TestMessageRefusedTimesInARowIsRejected(t *testing.T) {
	s := newStore(t, 4)
	refusal := fmt.Errorf("at: AT+QMTPUBEX=...: %w", at.ErrError)
	f := &fakePublisher{
		delay: time.Millisecond,
		done:  make(chan string, 100),
		fail: func(tp string, n int) error {
			switch {
			case tp == topic(2):
				return refusal // never sendable
			case tp == topic(1) && n <= 2:
				return refusal // refused twice, then sent
			}
			return nil
		},
	}
	d := New(s, Options{Window: 1, Retry: fastRetry, MaxRefusals: 3}, zerolog.Nop())
	stop := run(t, d, f)
	waitDelivered(t, f.done, 3)
	waitEmpty(t, s)
	stop()
	if st := s.Stats(); st.Rejected != 1 || st.Delivered != 3 {
		t.Fatalf("store stats %+v: want 1 rejected, 3 delivered", st)
	}
	if n := f.attempts[topic(2)]; n != 3 {
		t.Errorf("the refused message was tried %d times, want 3", n)
	}
	if st := d.Stats(); st.Refused != 1 || st.Rejected != 1 {
		t.Errorf("drain stats %+v", st)
	}
	if _, delivered, _ := f.snapshot(); !slices.Equal(delivered, []string{topic(1), topic(3), topic(4)}) {
		t.Errorf("delivered %v", delivered)
	}
}

// refuseFirst is a fail func that refuses the first attempt of each topic(n) with ERROR, as a
// module does with a publish sent in the moment its link dies.
func refuseFirst(ns ...int) func(string, int) error {
	return func(tp string, k int) error {
		for _, n := range ns {
			if tp == topic(n) && k == 1 {
				return fmt.Errorf("mqtt publish: the module refused the command: %w", at.ErrError)
			}
		}
		return nil
	}
}

// putRange stores topic(from)..topic(to) with a one-byte payload.
func putRange(t *testing.T, s *outbox.Store, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := s.Put(topic(i), []byte("x"), 1, false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCutRightBeforeTheSessionEndsIsUndone: a refusal with others in flight cuts the window, but
// the session ends within LinkGrace (the +QMTSTAT explaining the refusal came after it): the next
// session has the full window again, and the cut is not held against the module (issue 20).
func TestCutRightBeforeTheSessionEndsIsUndone(t *testing.T) {
	s := newStore(t, 20)
	f := &fakePublisher{delay: 3 * time.Millisecond, done: make(chan string, 100), fail: refuseFirst(5)}
	lb := &testutil.SyncBuffer{}
	d := New(s, Options{Window: 8, Retry: fastRetry, ProbeAfter: 1000, LinkGrace: time.Minute}, zerolog.New(lb))
	stop := run(t, d, f)
	waitDelivered(t, f.done, 20)
	waitEmpty(t, s)
	if st := d.Stats(); st.Window != 1 || st.Shrunk != 1 {
		t.Fatalf("before the session ended: %+v, want the window cut to 1", st)
	}
	stop() // the link died: the session ends within LinkGrace of the cut
	if st := d.Stats(); st.Window != 8 || st.Restored != 1 {
		t.Fatalf("after the session ended: %+v, want the window back to 8", st)
	}
	if !strings.Contains(lb.String(), `"event":"drain_window_restored"`) {
		t.Fatalf("no drain_window_restored in the log:\n%s", lb)
	}

	// The next session pipelines again.
	f2 := &fakePublisher{delay: 2 * time.Millisecond, done: make(chan string, 100)}
	putRange(t, s, 21, 40)
	stop = run(t, d, f2)
	waitDelivered(t, f2.done, 20)
	waitEmpty(t, s)
	stop()
	if _, _, maxFlight := f2.snapshot(); maxFlight != 8 {
		t.Fatalf("next session: max in flight %d, want 8", maxFlight)
	}
	// The undone cut was not counted: a new cut waits the first ProbeAfter, not twice it.
	d.mu.Lock()
	strikes := d.strikes
	d.mu.Unlock()
	if strikes != 0 {
		t.Fatalf("strikes %d after an undone cut, want 0", strikes)
	}
}

// TestStreakRestoresTheWindowAndEachCutWaitsLonger: within one session, ProbeAfter publishes in a
// row sent one at a time restore the window; a second cut needs twice as many.
func TestStreakRestoresTheWindowAndEachCutWaitsLonger(t *testing.T) {
	s := newStore(t, 60)
	f := &fakePublisher{delay: 2 * time.Millisecond, done: make(chan string, 200), fail: refuseFirst(3, 30)}
	lb := &testutil.SyncBuffer{}
	d := New(s, Options{Window: 8, Retry: fastRetry, ProbeAfter: 5, LinkGrace: time.Nanosecond}, zerolog.New(lb))
	stop := run(t, d, f)
	waitDelivered(t, f.done, 60)
	waitEmpty(t, s)
	stop()
	st := d.Stats()
	if st.Shrunk != 2 || st.Restored != 2 || st.Window != 8 {
		t.Fatalf("stats %+v: want two cuts, each restored by a streak", st)
	}
	log := lb.String()
	if !strings.Contains(log, `"restore_after":5`) || !strings.Contains(log, `"restore_after":10`) {
		t.Fatalf("the second cut should wait twice as long (5, then 10):\n%s", log)
	}
}
