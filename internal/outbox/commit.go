package outbox

import (
	"os"
	"sync"
)

// committer makes the log durable, sharing each fdatasync among everyone who needs one (group
// commit): a caller that needs its records on disk leads an fdatasync if none is running, and
// otherwise waits for the running one and then — the records appended after it began are not
// covered — leads or waits for the next. A put's leader may first wait for company, for as
// long as its batchPolicy says. Every field and method is under the store's mutex, which
// waiting releases.
type committer struct {
	mu       sync.Locker
	synced   *sync.Cond // broadcast when an fdatasync ends
	arrivals *sync.Cond // wakes a leader waiting for company: a put, the end of its wait, or stop
	clock    clock
	policy   batchPolicy

	syncing     bool     // an fdatasync is running, or its leader waits for company
	durable     uint64   // every byte of the log before this position is on disk
	pendingEnds []uint64 // the ends of the put records not yet durable, in log order
	notes       uint64   // puts noted so far
	waitGen     uint64   // which leader's wait a timer ends
	waitOver    bool
}

// commitLog is what the committer commits: the store's log.
type commitLog interface {
	// stopped is why nothing more can be made durable (the log broke), or nil.
	stopped() error
	// closing says the store is closing: a leader waits for no one.
	closing() bool
	// commitPoint is the file an fdatasync starting now syncs, the log position it makes
	// durable, and the last put it makes visible.
	commitPoint() (f *os.File, end, vis uint64)
	// page is the page of the log being written.
	page() int
	// committed is told the outcome of an fdatasync of commitPoint's.
	committed(end, vis uint64, err error)
}

func newCommitter(mu sync.Locker, c clock, p batchPolicy) *committer {
	return &committer{mu: mu, synced: sync.NewCond(mu), arrivals: sync.NewCond(mu), clock: c, policy: p}
}

// note counts a put record, ending at end, that waits for an fdatasync; streams says its
// source has others waiting.
func (c *committer) note(end uint64, streams bool) {
	c.pendingEnds = append(c.pendingEnds, end)
	c.notes++
	c.policy.arrived(c.clock.Now(), c.waiting(), streams)
	c.arrivals.Broadcast()
}

// waiting is how many put records are not yet durable.
func (c *committer) waiting() int { return len(c.pendingEnds) }

// madeDurable records that every byte before end is on disk and returns how many put records
// that made durable.
func (c *committer) madeDurable(end uint64) int {
	c.durable = max(c.durable, end)
	n := 0
	for n < len(c.pendingEnds) && c.pendingEnds[n] <= c.durable {
		n++
	}
	c.pendingEnds = c.pendingEnds[n:]
	return n
}

// wake ends the wait of a leader for company (the store closed or broke) and of everyone
// waiting for an fdatasync.
func (c *committer) wake() {
	c.synced.Broadcast()
	c.arrivals.Broadcast()
}

// quiesce ends a leader's wait for company and waits for the running fdatasync, if any: the
// store is closing.
func (c *committer) quiesce() {
	c.wake()
	for c.syncing {
		c.synced.Wait()
	}
}

// await returns once every byte of l before pos is on disk, leading or sharing fdatasyncs; put
// says a put waits, whose leader may wait for company.
func (c *committer) await(l commitLog, pos uint64, put bool) error {
	for c.durable < pos {
		if err := l.stopped(); err != nil {
			return err
		}
		if c.syncing {
			c.synced.Wait()
			continue
		}
		c.syncing = true
		if put && !l.closing() {
			c.gather(l)
		}
		f, end, vis := l.commitPoint()
		c.mu.Unlock()
		err := fdatasync(f)
		c.mu.Lock()
		c.syncing = false
		l.committed(end, vis, err)
		c.synced.Broadcast()
	}
	return nil
}

// gather is the wait of a commit's leader for more puts to share its fdatasync, for as long as
// the policy says, each put asking it again; the store closing or breaking ends it.
func (c *committer) gather(l commitLog) {
	c.policy.begin(c.clock.Now(), c.waiting(), l.page())
	for !l.closing() && l.stopped() == nil {
		d := c.policy.wait(c.clock.Now(), c.waiting(), l.page())
		if d <= 0 {
			return
		}
		c.waitGen++
		gen := c.waitGen
		c.waitOver = false
		stop := c.clock.AfterFunc(d, func() {
			c.mu.Lock()
			if c.waitGen == gen {
				c.waitOver = true
				c.arrivals.Broadcast()
			}
			c.mu.Unlock()
		})
		n := c.notes
		for c.notes == n && !c.waitOver && !l.closing() && l.stopped() == nil {
			c.arrivals.Wait()
		}
		stop()
	}
}
