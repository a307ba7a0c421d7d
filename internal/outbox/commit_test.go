package outbox

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when a test advances it; its timers fire then, in the
// advancing goroutine.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created int // timers made so far
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.created++
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves the clock by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// made is how many timers were made so far.
func (c *fakeClock) made() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created
}

// armed is how many timers wait to fire.
func (c *fakeClock) armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// eventually polls cond, failing the test if it never holds (not a measurement: a wrong
// committer blocks for ever).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// The policy alone: time is an input, so each decision is checked exactly.
func TestAdaptivePolicy(t *testing.T) {
	const cw = 10 * time.Millisecond
	t0 := newFakeClock().Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	t.Run("a lone publisher never waits", func(t *testing.T) {
		p := &adaptive{commitWait: cw}
		for i := 0; i < 20; i++ {
			now := at(time.Duration(i) * time.Millisecond)
			p.arrived(now, 1, false)
			p.begin(now, 1, 0)
			if d := p.wait(now, 1, 0); d > 0 {
				t.Fatalf("put %d: the leader waits %s", i, d)
			}
		}
	})
	t.Run("several publishers wait for each other, at most commit_wait", func(t *testing.T) {
		p := &adaptive{commitWait: cw}
		// Four publishers, a put every 2 ms, four waiting at once.
		for i := 0; i < 40; i++ {
			p.arrived(at(time.Duration(i)*2*time.Millisecond), i%4+1, false)
		}
		now := at(80 * time.Millisecond)
		p.arrived(now, 1, false)
		p.begin(now, 1, 0)
		// The gap is the policy's own estimate: check it is the rate the puts came at, so
		// that the wait below is not checked only against the policy's arithmetic.
		if p.gap < 1900*time.Microsecond || p.gap > 2*time.Millisecond {
			t.Fatalf("the average gap is %s; the puts came 2 ms apart", p.gap)
		}
		d := p.wait(now, 1, 0)
		if want := min(cw, 3*p.gap); d != want || d <= 0 {
			t.Fatalf("the leader with one of four waits %s, want %s (3 gaps of %s)", d, want, p.gap)
		}
		if d := p.wait(now.Add(time.Millisecond), 3, 0); d <= 0 {
			t.Fatalf("with three of four it stopped waiting")
		}
		if d := p.wait(now.Add(time.Millisecond), 4, 0); d > 0 {
			t.Fatalf("with all four it waits %s more", d)
		}
	})
	t.Run("puts further apart than commit_wait are not waited for", func(t *testing.T) {
		p := &adaptive{commitWait: cw}
		for i := 0; i < 40; i++ {
			p.arrived(at(time.Duration(i)*50*time.Millisecond), 2, false)
		}
		now := at(2 * time.Second)
		p.begin(now, 1, 0)
		if d := p.wait(now, 1, 0); d > 0 {
			t.Fatalf("waits %s for a put due in 50 ms", d)
		}
	})
	t.Run("a stream fills its page, while it keeps coming, at most 3 commit_waits", func(t *testing.T) {
		p := &adaptive{commitWait: cw}
		for i := 0; i < 40; i++ {
			p.arrived(at(time.Duration(i)*time.Millisecond), 2, true)
		}
		now := at(40 * time.Millisecond)
		p.arrived(now, 1, true)
		p.begin(now, 1, 7)
		if d := p.wait(now, 1, 7); d <= 0 || d > 4*time.Millisecond {
			t.Fatalf("the stream's leader waits %s; want up to a silence of 4 gaps (%s)", d, p.gap)
		}
		if d := p.wait(now, 1, 8); d > 0 {
			t.Fatalf("waits %s after its page filled", d)
		}
		if d := p.wait(now.Add(10*time.Millisecond), 1, 7); d > 0 {
			t.Fatalf("waits %s after the stream fell silent", d)
		}
		for i := 1; i <= 40; i++ { // a stream that never fills its page
			p.arrived(now.Add(time.Duration(i)*time.Millisecond), 1, true)
		}
		if d := p.wait(now.Add(3*cw), 1, 7); d > 0 {
			t.Fatalf("waits %s after 3 commit_waits", d)
		}
	})
	t.Run("commit_wait below zero: never wait", func(t *testing.T) {
		p := &adaptive{commitWait: -1}
		for i := 0; i < 10; i++ {
			p.arrived(at(time.Duration(i)*time.Millisecond), 4, true)
		}
		p.begin(at(10*time.Millisecond), 1, 0)
		if d := p.wait(at(10*time.Millisecond), 1, 0); d > 0 {
			t.Fatalf("waits %s", d)
		}
	})
}

// fakeLog is a commitLog over a scratch file, counting its fdatasyncs.
type fakeLog struct {
	c      *committer
	f      *os.File
	end    uint64
	syncs  int
	closed bool
}

func (l *fakeLog) stopped() error                          { return nil }
func (l *fakeLog) closing() bool                           { return l.closed }
func (l *fakeLog) page() int                               { return 0 }
func (l *fakeLog) commitPoint() (*os.File, uint64, uint64) { return l.f, l.end, 0 }
func (l *fakeLog) committed(end, _ uint64, err error) {
	l.syncs++
	if err == nil {
		l.c.madeDurable(end)
	}
}

// TestALeaderWaitsForCompanyByTheClock: the committer waits as its policy says and no longer,
// by the injected clock: with the clock stopped the leader waits; the put it waits for wakes
// it; the clock reaching the policy's deadline ends the wait; one fdatasync serves all.
func TestALeaderWaitsForCompanyByTheClock(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	clk := newFakeClock()
	c := newCommitter(&mu, clk, &fixedBatch{delay: 10 * time.Millisecond, size: 3})
	l := &fakeLog{c: c, f: f}
	put := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		l.end++
		c.note(l.end, false)
		return l.end
	}
	done := make(chan uint64, 3)
	wait := func(pos uint64) {
		mu.Lock()
		defer mu.Unlock()
		if err := c.await(l, pos, true); err != nil {
			t.Error(err)
		}
		done <- pos
	}
	go wait(put())
	eventually(t, "the leader arms its timer", func() bool { return clk.armed() == 1 })
	clk.Advance(9 * time.Millisecond)
	go wait(put())
	eventually(t, "the leader re-arms after the second put", func() bool { return clk.armed() == 1 })
	select {
	case pos := <-done:
		t.Fatalf("put %d made durable before the policy's delay", pos)
	default:
	}
	clk.Advance(time.Millisecond) // 10 ms since the leader began
	for i := 0; i < 2; i++ {
		<-done
	}
	mu.Lock()
	defer mu.Unlock()
	if l.syncs != 1 || c.durable != 2 || c.waiting() != 0 {
		t.Fatalf("%d fdatasyncs, durable to %d, %d waiting; want 1, 2, 0", l.syncs, c.durable, c.waiting())
	}
}

// TestALoneWriterNeverWaitsForTheClock: with the committer's clock stopped, a lone publisher's
// Puts and a stream's last message still complete: neither waits on a timer.
func TestALoneWriterNeverWaitsForTheClock(t *testing.T) {
	clk := newFakeClock()
	s, _ := open(t, Config{clock: clk})
	for i := 0; i < 50; i++ {
		mustPut(t, s, "t", "x")
	}
	// made, not armed: a timer is stopped once its wait ends, so none is armed after the fact
	// whether the puts waited or not.
	if n := clk.made(); n != 0 {
		t.Fatalf("%d timers made for a lone publisher", n)
	}
	if st := s.Stats(); st.Stored != 50 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAStreamIsCommittedAPageAtATimeByTheClock: a Source appending one message per fake
// millisecond while it waits for the earlier ones has its commits wait for a page each (about
// 30 records of 133 bytes), by the injected clock alone: the clock moves only once the leader
// has answered each append, by arming a timer or committing.
func TestAStreamIsCommittedAPageAtATimeByTheClock(t *testing.T) {
	clk := newFakeClock()
	s, _ := open(t, Config{clock: clk, CommitWait: time.Second})
	const n = 300
	var src Source
	q := make(chan Ticket, n)
	waited := make(chan struct{})
	waiter := func() { // waits for each in order, as the endpoint's connection writer does
		defer close(waited)
		for tk := range q {
			if err := s.Wait(tk); err != nil {
				t.Error(err)
			}
		}
	}
	before := s.Stats().Syncs
	payload := bytes.Repeat([]byte("x"), 100)
	for i := 0; i < n; i++ {
		made := clk.made()
		tk, err := s.Append(&src, "t", payload, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		q <- tk
		switch {
		case i == 1: // two in flight: the source streams
			go waiter()
		case i > 1:
			eventually(t, "the leader answers an append", func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return clk.made() > made || s.commit.durable >= tk.end
			})
		}
		clk.Advance(time.Millisecond)
	}
	close(q)
	for { // the last commit waits for a silence of a few fake milliseconds
		select {
		case <-waited:
			syncs := s.Stats().Syncs - before
			t.Logf("%d appends, %d fdatasyncs", n, syncs)
			// 300 records of 133 bytes span 10 pages: a commit each, a few more while the
			// average gap (from which the silence that ends a stream is reckoned) settles.
			if syncs < 9 || syncs > 14 {
				t.Fatalf("%d appends by a stream took %d fdatasyncs; want about one a page (%d)", n, syncs, n*133/pageSize)
			}
			return
		default:
			clk.Advance(time.Millisecond)
			time.Sleep(100 * time.Microsecond)
		}
	}
}
