package at

import (
	"sync/atomic"
	"time"
)

// Stats are the engine's counters, for health reporting and escalation.
type Stats struct {
	BytesIn             uint64        // bytes read from the port
	BytesOut            uint64        // bytes written to the port
	Commands            uint64        // commands sent (resync ATs excluded)
	CommandTime         time.Duration // total time those commands took, from being sent to their result or timeout
	URCs                uint64        // URCs framed and offered to the subscribers
	HeldBack            uint64        // times the reader waited for room in a full subscriber queue (nothing is dropped)
	HeldFor             time.Duration // total time the reader spent waiting so
	Echoes              uint64        // command echoes dropped (ATE1)
	StaleLines          uint64        // lines no live command could own (late replies, resync chatter), dropped
	LinesTooLong        uint64        // lines longer than MaxLine, dropped
	PayloadsTooLong     uint64        // counted payloads longer than MaxPayload, dropped with their line
	BadFrames           uint64        // counted payloads not followed by `"` CRLF (Line.Err = ErrBadTrailer)
	NoiseLines          uint64        // lines of only NUL/0xFF bytes, dropped
	DroppedBytes        uint64        // bytes discarded by framing for the reasons above
	Timeouts            uint64        // commands whose deadline passed before their final result
	ConsecutiveTimeouts uint64        // deadline timeouts since the last final result; escalate on this
	Resyncs             uint64        // resynchronisations started
	ResyncFailures      uint64        // resynchronisations that got no OK (ErrUnresponsive)
}

// counters are the engine's counters that are not the framer's: each part
// of the engine (the port loops, the router, the fan-out, the calls) adds to
// its own, and snapshot reads them all from any goroutine.
type counters struct {
	bytesIn, bytesOut     atomic.Uint64 // the port loops
	commands              atomic.Uint64 // the calls
	commandNanos          atomic.Int64  // Stats.CommandTime
	timeouts, consecutive atomic.Uint64
	resyncs, resyncFails  atomic.Uint64
	echoes, stale         atomic.Uint64 // the router
	urcs, holds           atomic.Uint64 // the fan-out
	heldNanos             atomic.Int64  // Stats.HeldFor
}

// snapshot returns the counters, with the framer's fc, as Stats.
func (n *counters) snapshot(fc *frameCounts) Stats {
	return Stats{
		BytesIn:             n.bytesIn.Load(),
		BytesOut:            n.bytesOut.Load(),
		Commands:            n.commands.Load(),
		CommandTime:         time.Duration(n.commandNanos.Load()),
		URCs:                n.urcs.Load(),
		HeldBack:            n.holds.Load(),
		HeldFor:             time.Duration(n.heldNanos.Load()),
		Echoes:              n.echoes.Load(),
		StaleLines:          n.stale.Load(),
		LinesTooLong:        fc.linesTooLong.Load(),
		PayloadsTooLong:     fc.payloadsTooLong.Load(),
		BadFrames:           fc.badFrames.Load(),
		NoiseLines:          fc.noiseLines.Load(),
		DroppedBytes:        fc.dropped.Load(),
		Timeouts:            n.timeouts.Load(),
		ConsecutiveTimeouts: n.consecutive.Load(),
		Resyncs:             n.resyncs.Load(),
		ResyncFailures:      n.resyncFails.Load(),
	}
}
