package at

import (
	"context"
	"sync"
)

// turnQueue serves the callers of Do one at a time, in call order, like
// net/textproto's Pipeline, but a caller can leave the queue when its
// context ends.
type turnQueue struct {
	mu      sync.Mutex
	busy    bool
	waiters []chan struct{} // FIFO; a waiter's channel is closed when it gets the turn
}

// acquire waits for the turn. It fails with ctx's error, or with
// ErrClosed once done is closed (the caller reports the engine's own error).
func (q *turnQueue) acquire(ctx context.Context, done <-chan struct{}) error {
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	q.waiters = append(q.waiters, ch)
	q.mu.Unlock()

	var err error
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-done:
		err = ErrClosed
	}
	q.mu.Lock()
	for i, w := range q.waiters {
		if w == ch {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			q.mu.Unlock()
			return err
		}
	}
	q.mu.Unlock()
	// The turn was handed to us as we gave up: pass it on.
	q.release()
	return err
}

// release hands the turn to the next waiter, if any.
func (q *turnQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) == 0 {
		q.busy = false
		return
	}
	next := q.waiters[0]
	q.waiters = q.waiters[1:]
	close(next)
}
