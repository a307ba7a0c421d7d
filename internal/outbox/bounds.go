package outbox

import (
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
)

// plausible is the earliest stored time taken at face value by expiry: a Pi without a real-time
// clock stores messages with a clock that NTP later moves by years, and those must not all
// expire the moment the clock is set. Their age is unknown, so they are kept.
var plausible = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// maxImplausibleScan bounds how many implausibly dated messages an expiry scan steps over.
const maxImplausibleScan = 64

// span describes a run of removed messages, for counters and one log line.
type span struct {
	n           int
	bytes       int64
	first, last uint64
	seqs        []uint64
}

func (sp *span) add(e *entry) {
	if sp.n == 0 {
		sp.first = e.seq
	}
	sp.last = e.seq
	sp.n++
	sp.bytes += e.counted()
	sp.seqs = append(sp.seqs, e.seq)
}

// removeEntry takes e out of the index and its segment's count. The caller holds mu.
func (s *Store) removeEntry(e *entry) {
	if seg := s.seg(e.gen()); seg != nil {
		seg.live--
		seg.liveBytes -= int64(e.size)
	}
	s.bytes -= e.counted()
	s.idx.remove(e)
}

// removeSpan takes sp's messages, all still in the index, out of the store and writes their
// remove record.
func (s *Store) removeSpan(reason byte, sp *span) error {
	for _, seq := range sp.seqs {
		s.removeEntry(s.idx.find(seq))
	}
	return s.logRemoval(reason, sp)
}

// logRemoval writes the remove record of sp, whose messages are out of the index (it need not
// be durable: see Store).
func (s *Store) logRemoval(reason byte, sp *span) error {
	if sp.n == 0 {
		return nil
	}
	s.body = appendRuns(append(s.body[:0], reason), sp.seqs)
	_, _, _, err := s.append(recRemove, s.body)
	s.retire()
	return err
}

// expireHead removes messages older than MaxAge from the head of the store. A message stored
// under an implausible clock (before the clock was set) is stepped over, at most
// maxImplausibleScan of them, so that it neither expires at once nor holds back the ones behind
// it. The caller holds mu.
func (s *Store) expireHead(now time.Time) int {
	if s.cfg.MaxAge <= 0 || now.UnixNano() < plausible {
		return 0
	}
	cutoff := now.Add(-s.cfg.MaxAge).UnixNano()
	var sp span
	skipped := 0
	s.idx.from(0, func(e *entry) bool {
		if e.stored < plausible && skipped < maxImplausibleScan {
			skipped++
			return true
		}
		if e.stored >= cutoff {
			return false
		}
		sp.add(e)
		return true
	})
	if sp.n == 0 {
		return 0
	}
	err := s.removeSpan(removeExpired, &sp)
	total := s.expired.Add(uint64(sp.n))
	s.log.Warn().Str(logging.EventKey, logging.EventOutboxExpired).Int("messages", sp.n).Int64("bytes", sp.bytes).
		Uint64("first_seq", sp.first).Uint64("last_seq", sp.last).Dur("max_age", s.cfg.MaxAge).
		Uint64("expired_total", total).AnErr("write_error", err).Msg("messages older than max_age dropped from the outbox")
	return sp.n
}

// reserveAhead is how far behind the newest message the drainer may be for Put to record a new
// message as possibly sent (see reserve): more than a commit's worth of a stream (a page of
// small messages, about 26 of 100 bytes), which becomes visible at once and takes the drainer
// a few windows to send. With 8, a stream's messages missed it and each commit cost a second
// fdatasync for the drainer's Sending (0.09-0.13 fdatasyncs per message at 1,000 msg/s, 0.04
// with 64).
const reserveAhead = 64

// reserve says whether a new message may be recorded as possibly sent in its own put record,
// so that its Sending needs no fdatasync of its own: when the drainer has, in this run, sent
// everything Pending shows but the last few, it will send this one within moments. The price
// of being wrong (the link went down meanwhile, and then a crash) is at most reserveAhead
// messages counted as possible duplicates that were never sent. The caller holds mu.
func (s *Store) reserve() bool {
	if s.sentHigh == 0 {
		return false
	}
	return s.idx.search(s.visible+1)-s.idx.search(s.sentHigh+1) < reserveAhead
}

// dropOldest removes messages from the head until need bytes are freed. The caller holds mu.
func (s *Store) dropOldest(need int64) {
	var sp span
	s.idx.from(0, func(e *entry) bool {
		if sp.bytes >= need {
			return false
		}
		sp.add(e)
		return true
	})
	err := s.removeSpan(removeDropped, &sp)
	total := s.droppedOldest.Add(uint64(sp.n))
	s.log.Warn().Str(logging.EventKey, logging.EventOutboxDroppedOldest).Int("messages", sp.n).Int64("bytes", sp.bytes).
		Uint64("first_seq", sp.first).Uint64("last_seq", sp.last).Int64("max_bytes", s.cfg.MaxBytes).
		Uint64("dropped_total", total).AnErr("write_error", err).Msg("outbox full: oldest messages dropped to make room (overflow = drop_oldest)")
}

// refuse counts and logs a refused Put and returns err.
func (s *Store) refuse(topic string, size int64, err error) error {
	total := s.refused.Add(1)
	s.log.Warn().Str(logging.EventKey, logging.EventOutboxRefused).Str("topic", topic).Int64("bytes", size).
		Uint64("refused_total", total).Err(err).Msg("message refused by the outbox")
	return err
}
