package supervisor

import (
	"sync"

	"github.com/gatewayd/gatewayd/at"
)

// atTotals keeps the AT engines' counters over the life of the supervisor: each port opened
// gets an engine of its own, whose counters start at zero.
type atTotals struct {
	mu     sync.Mutex
	closed at.Stats // the counters of the engines already closed, summed
}

// ATStats returns the AT engines' counters summed over every port this supervisor has opened,
// the open one included, so that they only grow while the process runs; ConsecutiveTimeouts is
// the open engine's. Like Status, it never waits for the loop or the module.
func (s *Supervisor) ATStats() at.Stats {
	s.atTotals.mu.Lock()
	defer s.atTotals.mu.Unlock()
	st := s.atTotals.closed
	if c := s.reader.Load(); c != nil {
		cs := c.Stats()
		st = addStats(st, cs)
		st.ConsecutiveTimeouts = cs.ConsecutiveTimeouts
	}
	return st
}

// retireReader adds the open engine's counters to the totals and forgets it, in one step, so
// that ATStats never counts it twice or not at all.
func (s *Supervisor) retireReader() {
	s.atTotals.mu.Lock()
	defer s.atTotals.mu.Unlock()
	if c := s.reader.Swap(nil); c != nil {
		s.atTotals.closed = addStats(s.atTotals.closed, c.Stats())
		s.atTotals.closed.ConsecutiveTimeouts = 0
	}
}

// addStats sums the counters of a and b.
func addStats(a, b at.Stats) at.Stats {
	return at.Stats{
		BytesIn:             a.BytesIn + b.BytesIn,
		BytesOut:            a.BytesOut + b.BytesOut,
		Commands:            a.Commands + b.Commands,
		CommandTime:         a.CommandTime + b.CommandTime,
		URCs:                a.URCs + b.URCs,
		HeldBack:            a.HeldBack + b.HeldBack,
		HeldFor:             a.HeldFor + b.HeldFor,
		Echoes:              a.Echoes + b.Echoes,
		StaleLines:          a.StaleLines + b.StaleLines,
		LinesTooLong:        a.LinesTooLong + b.LinesTooLong,
		PayloadsTooLong:     a.PayloadsTooLong + b.PayloadsTooLong,
		BadFrames:           a.BadFrames + b.BadFrames,
		NoiseLines:          a.NoiseLines + b.NoiseLines,
		DroppedBytes:        a.DroppedBytes + b.DroppedBytes,
		Timeouts:            a.Timeouts + b.Timeouts,
		ConsecutiveTimeouts: a.ConsecutiveTimeouts + b.ConsecutiveTimeouts,
		Resyncs:             a.Resyncs + b.Resyncs,
		ResyncFailures:      a.ResyncFailures + b.ResyncFailures,
	}
}
