package outbox

import "time"

// batchPolicy decides how long the leader of a commit waits for more put records to share its
// fdatasync. The committer calls it under the store's mutex, with its clock's time: it decides,
// the committer waits.
type batchPolicy interface {
	// arrived notes a put record that waits for a commit; waiting is how many wait now, this one
	// included, and streams says its source has earlier ones still waiting (see Source).
	arrived(now time.Time, waiting int, streams bool)
	// begin starts a leader's wait; page is the page of the log being written.
	begin(now time.Time, waiting, page int)
	// wait is how much longer the leader waits (until then, or until the next arrival, when it
	// asks again); 0 or less: commit now.
	wait(now time.Time, waiting, page int) time.Duration
}

// concurrencyWindow is how long a count of puts waiting at once is remembered, and how long a
// source that streamed counts as streaming.
const concurrencyWindow = 250 * time.Millisecond

// streamWaits bounds the wait of a commit for a stream, in CommitWaits.
const streamWaits = 3

// adaptive is the group-commit policy the store uses: a lone publisher never waits, several
// publishers wait for each other, a stream fills its page.
//
// When several puts have lately been waiting at once — several clients publishing — a leader
// waits until as many are waiting again: as long as that should take at the rate puts have been
// arriving, at most CommitWait, and not at all when puts come further apart than CommitWait.
//
// When a stream has lately been appending — a source with several messages in flight, whose
// next comes while the last waits — it then goes on waiting while puts keep coming (one within
// four gaps of the last, and within CommitWait), until the page the commit writes is full, at
// most streamWaits × CommitWait in all. A commit writes at least a whole page, so filling it is
// what spares the card; and a stream does not wait for its acknowledgements, so its publishing
// does not slow for it.
//
// A lone publisher that waits for each message can never make two puts wait at once, nor
// stream, so it never waits.
type adaptive struct {
	commitWait time.Duration

	// What arrived tracks: the most puts waiting at once in this and the last
	// concurrencyWindow, the average gap between puts, when the last came, and when a put last
	// came from a source with others waiting.
	peak, peakBefore int
	peakSince        time.Time
	lastArrival      time.Time
	gap              time.Duration
	streamed         time.Time

	// The leader's wait, from begin: when it began, whether a stream feeds it and on which
	// page, the company it waits for and for how long, and (once that is over) how long a
	// silence ends the stream's wait.
	start      time.Time
	streaming  bool
	page       int
	want       int
	company    time.Duration // 0: not waiting for company (any more)
	silence    time.Duration
	silenceSet bool
}

func (p *adaptive) arrived(now time.Time, waiting int, streams bool) {
	if !p.lastArrival.IsZero() {
		g := min(max(now.Sub(p.lastArrival), 0), time.Second)
		p.gap += (g - p.gap) / 8
	}
	p.lastArrival = now
	if streams {
		p.streamed = now
	}
	if since := now.Sub(p.peakSince); since > concurrencyWindow {
		p.peakBefore, p.peak, p.peakSince = p.peak, 0, now
		if since > 2*concurrencyWindow {
			p.peakBefore = 0
		}
	}
	p.peak = max(p.peak, waiting)
}

func (p *adaptive) begin(now time.Time, waiting, page int) {
	p.start, p.page, p.silenceSet = now, page, false
	p.streaming = p.commitWait > 0 && now.Sub(p.streamed) <= concurrencyWindow
	p.want, p.company = max(p.peak, p.peakBefore), 0
	// Long enough for the others to come at the rate puts have been coming; not at all when
	// not even one is due within CommitWait.
	if p.commitWait > 0 && p.want > waiting && p.gap < p.commitWait {
		p.company = min(p.commitWait, time.Duration(p.want-waiting)*p.gap)
	}
}

func (p *adaptive) wait(now time.Time, waiting, page int) time.Duration {
	full := p.streaming && page != p.page
	if p.company > 0 {
		if left := p.company - now.Sub(p.start); left > 0 && waiting < p.want && !full {
			return left
		}
		p.company = 0
	}
	if !p.streaming {
		return 0
	}
	if !p.silenceSet {
		p.silence, p.silenceSet = min(4*p.gap, p.commitWait), true
	}
	quiet := now.Sub(p.lastArrival)
	if full || quiet >= p.silence {
		return 0 // the page is full, or the puts have stopped coming
	}
	return min(streamWaits*p.commitWait-now.Sub(p.start), p.silence-quiet)
}
