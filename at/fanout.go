package at

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// fanout hands every URC to each subscriber's bounded, ordered queue. When a
// queue is full, deliver waits for room — the reader that calls it reads
// nothing from the port meanwhile, which pushes back on the module — so
// nothing is dropped; the wait is counted, and the engine can ask whether one
// was under way (heldSince, waitIdle), since a command's reply may be behind
// the URCs being held back.
type fanout struct {
	queueLen int
	done     <-chan struct{} // the engine ended: stop waiting for room
	n        *counters       // urcs, holds, heldNanos

	mu    sync.RWMutex // the reader holds it for reading while it delivers
	subs  []*Subscription
	ended bool // no more subscriptions

	holding atomic.Pointer[chan struct{}] // closed when the wait for room under way ends; nil when none is
}

func newFanout(queueLen int, done <-chan struct{}, n *counters) *fanout {
	return &fanout{queueLen: queueLen, done: done, n: n}
}

// Subscription is a bounded, ordered queue of URCs. Nothing is dropped: when
// the queue is full the reader waits for room, and reads no more from the
// port meanwhile (the kernel's tty buffer and the module hold what follows),
// so a subscriber must keep receiving from C or Close the Subscription.
type Subscription struct {
	fan      *fanout
	ch       chan Line
	quit     chan struct{} // closed by Close: the reader stops waiting for room
	quitOnce sync.Once
	closed   bool // guarded by fan.mu
}

// subscribe returns a new queue that receives every URC delivered from now
// on; once the fan-out has ended, an already closed one.
func (f *fanout) subscribe() *Subscription {
	s := &Subscription{fan: f, ch: make(chan Line, f.queueLen), quit: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		s.closed = true
		close(s.ch)
		return s
	}
	f.subs = append(f.subs, s)
	return s
}

// deliver queues l for every subscriber, in order. When a queue is full it
// waits for room, for the subscriber to close, or for the engine to end.
// Only the reader goroutine calls it.
func (f *fanout) deliver(l Line) {
	f.n.urcs.Add(1)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, s := range f.subs {
		select {
		case s.ch <- l:
			continue
		default:
		}
		release := f.holdBack()
		select {
		case s.ch <- l:
		case <-s.quit:
		case <-f.done:
		}
		release()
	}
}

// holdBack records that deliver waits for room in a queue; the returned
// func records the end of the wait.
func (f *fanout) holdBack() (release func()) {
	start := time.Now()
	ch := make(chan struct{})
	f.n.holds.Add(1) // before holding is set: heldSince sees one or the other
	f.holding.Store(&ch)
	return func() {
		f.holding.Store(nil)
		close(ch)
		f.n.heldNanos.Add(int64(time.Since(start)))
	}
}

// heldSince reports whether deliver has waited for room at any time since
// the hold count was holds (Stats.HeldBack): a command's reply may have been
// behind the URCs it held back.
func (f *fanout) heldSince(holds uint64) bool {
	return f.n.holds.Load() != holds || f.holding.Load() != nil
}

// waitIdle waits until deliver is not waiting for room, so that a short
// timeout after it measures the module and not a slow subscriber.
func (f *fanout) waitIdle(ctx context.Context) {
	ch := f.holding.Load()
	if ch == nil {
		return
	}
	select {
	case <-*ch:
	case <-ctx.Done():
	case <-f.done:
	}
}

// end closes every subscription and refuses new ones; it is called once the
// engine's done channel is closed, which releases a deliver waiting for room.
func (f *fanout) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = true
	for _, s := range f.subs {
		s.closed = true
		close(s.ch)
	}
	f.subs = nil
}

// C returns the queue. It is closed when the Conn ends or the Subscription
// is closed.
func (s *Subscription) C() <-chan Line { return s.ch }

// Close stops delivery to s and closes its channel. Lines already queued
// can still be received. A URC the reader was waiting to queue for s is not
// delivered to s.
func (s *Subscription) Close() {
	s.quitOnce.Do(func() { close(s.quit) }) // releases a reader waiting on s, which holds fan.mu
	f := s.fan
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.ch)
	for i, o := range f.subs {
		if o == s {
			f.subs = append(f.subs[:i], f.subs[i+1:]...)
			break
		}
	}
}
