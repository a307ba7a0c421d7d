package outbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/rs/zerolog"
)

// Errors Put and Open return; test with errors.Is.
var (
	// ErrFull: the store holds MaxBytes and the policy is OverflowRefuse.
	ErrFull = errors.New("outbox full")
	// ErrTooLarge: the message alone is larger than MaxBytes.
	ErrTooLarge = errors.New("message larger than the whole outbox")
	// ErrInvalid: the message cannot be stored (empty or oversized topic, QoS out of range).
	ErrInvalid = errors.New("message cannot be stored")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("outbox closed")
	// ErrLocked: another process holds the store (a second gatewayd?).
	ErrLocked = errors.New("outbox locked by another process")
)

// MaxTopicLen is the longest topic a message can have (its length field is 16 bits, as in MQTT).
const MaxTopicLen = 1<<16 - 1

// Message is one stored message.
type Message struct {
	Seq      uint64 // store order, from 1; never reused within one store
	Topic    string
	Payload  []byte
	QoS      int
	Retain   bool
	Stored   time.Time // when Put stored it, by Config.Now
	Attempts int       // sends recorded by Sending so far
}

// Stats is a snapshot of the store. Counters count since Open.
type Stats struct {
	Messages int       // stored now
	Bytes    int64     // stored now, as counted against MaxBytes
	MaxBytes int64     // the bound
	Oldest   time.Time // Stored of the oldest message; zero when empty

	Stored             uint64 // messages accepted by Put
	Delivered          uint64 // removed by Ack: the broker acknowledged them
	Refused            uint64 // Put refused: full, too large, invalid or a disk error
	Expired            uint64 // dropped for age
	DroppedOldest      uint64 // dropped to make room (OverflowDropOldest)
	Rejected           uint64 // dropped by Reject: the module can never send them
	Damaged            uint64 // damaged records found at Open (or later) and dropped
	DuplicatesPossible uint64 // messages sent again after an earlier send whose outcome is unknown

	Syncs    uint64 // fdatasyncs of the log (commits, and the few a new segment needs)
	Segments int    // segment files now, the spare not counted
	DiskSize int64  // their bytes

	SetAside string // where a damaged store was moved at Open; "" when none was
}

// Store is the outbox: an append-only log of segment files with an index in memory. Its methods
// are safe for concurrent use.
//
// Every change is a record appended to the newest segment. A Put's record is made durable by an
// fdatasync before Put returns (Append and Wait: the same in two steps, for a client with
// several messages in flight); Puts that arrive while one fdatasync runs share the next one
// (group commit), and a Put that finds none running starts its own at once, unless it waits
// for company (see committer and adaptive). Other records (acknowledgements, rejections,
// expiry, sends the store may record without waiting) are written at once and made durable by
// the next fdatasync, whoever starts it: losing them in a power cut only brings a message
// back, to be sent again and counted as a possible duplicate. Segments whose messages have all
// gone are deleted or kept as the spare for reuse.
type Store struct {
	cfg      Config
	log      zerolog.Logger
	path     string // the store directory: Config.Dir/FileName
	lock     *os.File
	setAside string

	mu     sync.Mutex
	commit *committer // group commit of the log: who fdatasyncs, who waits, for how long
	closed bool
	broken error // a write or fdatasync failed: nothing more is stored in this run

	idx      index
	bytes    int64  // counted bytes of the stored messages
	nextSeq  uint64 // the next Put's seq
	sentHigh uint64 // the highest seq given to Sending in this run
	visible  uint64 // the highest seq whose put is durable: Pending shows none above it

	segs    []*segment // oldest first, consecutive gens; the last one is being written
	spare   bool
	tail    *os.File
	tailOff int
	run     uint32
	seed    uint32
	runs    map[uint64][]runStart // the runs of each segment after its first, for reading
	readers map[uint64]*os.File
	// relocateDue: a segment was started, so the oldest may be worth emptying (see relocate);
	// done after the append that started it.
	relocateDue, relocating bool

	written uint64 // bytes appended in this run, over all segments

	body, rec []byte // scratch for encoding, under mu

	stored, delivered, refused, expired, droppedOldest, rejected, damagedN, dups, syncs atomic.Uint64
}

// Open opens (or creates) the store in cfg.Dir. A store that fails its checks is set aside
// (renamed to outbox.db.damaged-<UTC time>, logged), the messages that can still be read are
// copied to a fresh one, and Open goes on with that, so it fails only when the directory itself
// is unusable (permissions, a full or read-only disk) or another process holds the store
// (ErrLocked, after cfg.LockTimeout). A bbolt store left by an earlier gatewayd is migrated.
func Open(cfg Config, log zerolog.Logger) (*Store, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	s := &Store{cfg: cfg, log: log.With().Str("component", "outbox").Logger(), path: filepath.Join(cfg.Dir, FileName)}
	s.commit = newCommitter(&s.mu, cfg.clock, cfg.policy())
	if s.lock, err = lockDir(cfg.Dir, cfg.LockTimeout); err != nil {
		return nil, fmt.Errorf("outbox %s: %w", s.path, err)
	}
	s.mu.Lock() // nothing else can reach s yet; the commit code expects it held
	err = s.open()
	st := s.statsLocked()
	s.mu.Unlock()
	if err != nil {
		s.closeFiles()
		s.lock.Close()
		return nil, err
	}
	s.log.Info().Str("path", s.path).Int("messages", st.Messages).Int64("bytes", st.Bytes).Int64("max_bytes", cfg.MaxBytes).
		Dur("max_age", cfg.MaxAge).Str("overflow", string(cfg.Overflow)).Int("segments", st.Segments).Msg("outbox open")
	return s, nil
}

// Put stores a message and returns its sequence number once it is on disk (written and
// fdatasynced; see Store for how concurrent Puts share an fdatasync): Append, then Wait. When
// the store is full it returns an error wrapping ErrFull (OverflowRefuse) or drops the oldest
// messages to make room (OverflowDropOldest). Messages past MaxAge are dropped on the way.
// Every refusal and drop is logged and counted.
func (s *Store) Put(topic string, payload []byte, qos int, retain bool) (uint64, error) {
	t, err := s.Append(nil, topic, payload, qos, retain)
	if err == nil {
		err = s.Wait(t)
	}
	if err != nil {
		return 0, err
	}
	return t.seq, nil
}

// A Ticket is a message Append took: its record is written, and durable once Wait says so.
type Ticket struct {
	seq, end uint64
	topic    string
	size     int64
	src      *Source
}

// A Source is one publisher of the messages Append takes — a local client's connection — so
// that the store can tell a stream: a source that appends while messages of its own still wait
// for Wait has several in flight, and a commit waits for more of them (see adaptive). Its zero
// value is ready. A Source belongs to one store, and each of its tickets is waited for once.
type Source struct {
	unwaited int // tickets of this source not yet waited for, under the store's mu
}

// Seq is the message's sequence number.
func (t Ticket) Seq() uint64 { return t.seq }

// Append is Put without the wait: it writes the message's record, with the same checks and
// bounds as Put, and returns without waiting for it to be durable. Until Wait has said so it
// may not be on disk and is not given to the drainer (Pending shows no message past the last
// durable one). src is the publisher (nil: one that waits for each message before the next): a
// source with earlier messages still waiting for Wait streams, and a commit waits for more of
// its messages (see adaptive). Messages appended one after another share an fdatasync, as
// concurrent Puts do. A message nobody waits for is made durable by the next fdatasync,
// whoever starts it, or by Close.
func (s *Store) Append(src *Source, topic string, payload []byte, qos int, retain bool) (Ticket, error) {
	size := recordSize(len(topic), len(payload))
	switch {
	case topic == "" || len(topic) > MaxTopicLen:
		return Ticket{}, s.refuse(topic, size, fmt.Errorf("outbox: topic of %d bytes (1-%d allowed): %w", len(topic), MaxTopicLen, ErrInvalid))
	case qos < 0 || qos > 2:
		return Ticket{}, s.refuse(topic, size, fmt.Errorf("outbox: QoS %d (0-2 allowed): %w", qos, ErrInvalid))
	case size > s.cfg.MaxBytes || putRecordLen(len(topic), len(payload)) > maxRecordLen:
		return Ticket{}, s.refuse(topic, size, fmt.Errorf("outbox: a message of %d bytes exceeds max_bytes %d: %w", size, s.cfg.MaxBytes, ErrTooLarge))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Ticket{}, fmt.Errorf("outbox: %w", ErrClosed)
	}
	if s.broken != nil {
		// Refused before expiry or drop_oldest can take anything out for it (append would
		// refuse it only after).
		return Ticket{}, s.refuse(topic, size, fmt.Errorf("outbox: storing a message for %q: %w", topic, s.broken))
	}
	now := s.cfg.Now()
	s.expireHead(now)
	if over := s.bytes + size - s.cfg.MaxBytes; over > 0 {
		if s.cfg.Overflow != OverflowDropOldest {
			return Ticket{}, s.refuse(topic, size, fmt.Errorf("outbox: %w: %d of %d bytes used, %d more needed", ErrFull, s.bytes, s.cfg.MaxBytes, size))
		}
		s.dropOldest(over)
	}
	flags := putFlags(qos, retain)
	reserved := s.reserve()
	if reserved {
		flags |= putReserved
	}
	seq := s.nextSeq
	s.body = putBody{seq: seq, stored: now.UnixNano(), flags: flags, topic: topic, payload: payload}.append(s.body[:0])
	gen, off, end, err := s.append(recPut, s.body)
	if err != nil {
		return Ticket{}, s.refuse(topic, size, fmt.Errorf("outbox: storing a message for %q: %w", topic, err))
	}
	s.nextSeq++
	e := entry{seq: seq, stored: now.UnixNano(), pos: makePos(gen, off), size: uint32(putRecordLen(len(topic), len(payload))), marked: reserved}
	s.idx.add(e)
	seg := s.seg(gen)
	seg.live++
	seg.liveBytes += int64(e.size)
	s.bytes += size
	streams := false
	if src != nil {
		streams = src.unwaited > 0
		src.unwaited++
	}
	s.commit.note(end, streams)
	return Ticket{seq: seq, end: end, topic: topic, size: size, src: src}, nil
}

// Wait returns once t's message is on disk, leading or sharing an fdatasync (see Store). If the
// store cannot make it durable (a write or fdatasync failed) the message is taken out again —
// perhaps it is on disk, perhaps not: the client is told it was not stored and sends it again —
// and Wait returns the error, logged and counted as Put's refusals are.
func (s *Store) Wait(t Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.commit.await(s, t.end, true)
	if t.src != nil && t.src.unwaited > 0 {
		t.src.unwaited--
	}
	if err == nil {
		return nil
	}
	err = fmt.Errorf("outbox: storing a message for %q: %w", t.topic, err)
	if e := s.idx.find(t.seq); e != nil {
		s.removeEntry(e)
		return s.refuse(t.topic, t.size, err)
	}
	return err
}

// Pending returns up to max of the oldest messages, oldest first.
func (s *Store) Pending(max int) ([]Message, error) { return s.PendingAfter(0, max) }

// PendingAfter returns up to max messages with a sequence number above after, oldest first.
// Messages past MaxAge are dropped first. A message is shown once its Put's fdatasync is done.
func (s *Store) PendingAfter(after uint64, max int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("outbox: %w", ErrClosed)
	}
	s.expireHead(s.cfg.Now())
	var out []Message
	var bad span
	var problems []error
	s.idx.from(after+1, func(e *entry) bool {
		if len(out) >= max || e.seq > s.visible {
			return false
		}
		p, err := s.readPut(e)
		if err != nil {
			// Checked at Open: only a card that changed under the daemon gets here.
			bad.add(e)
			problems = append(problems, err)
			return true
		}
		m := p.message()
		m.Attempts = int(e.attempts)
		out = append(out, m)
		return true
	})
	if bad.n > 0 {
		err := s.removeSpan(removeRejected, &bad)
		s.damagedN.Add(uint64(bad.n))
		s.log.Error().Str(logging.EventKey, logging.EventOutboxDamaged).Err(errors.Join(problems...)).Int("dropped", bad.n).
			AnErr("write_error", err).Msg("damaged messages found while reading the outbox; dropped")
	}
	return out, nil
}

// Expire drops the messages past MaxAge now and returns how many it dropped. Put and Pending
// expire as they go; Expire is for a caller that wants the store tidy while idle.
func (s *Store) Expire() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("outbox: %w", ErrClosed)
	}
	return s.expireHead(s.cfg.Now()), nil
}

// Sending records, before the messages are handed to the module, that one more send of each
// is starting. A message that was sent before (its attempt counter was already above zero,
// in this run or before a restart) may reach the broker twice: it is counted in
// DuplicatesPossible and logged. Sequence numbers no longer stored are ignored.
//
// The record is durable before Sending returns — a message sent without it could reach the
// broker twice with no one the wiser after a power cut — unless each message is already
// recorded as possibly sent (sent before, or marked so by Put while the drainer was caught up:
// see reserve); then nothing is written, and after a crash each counts as sent at least once.
// So a message that is sent as soon as it is stored costs one fdatasync, not two.
func (s *Store) Sending(seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("outbox: %w", ErrClosed)
	}
	var again []resend
	var found []uint64
	need := false
	for _, seq := range seqs {
		e := s.idx.find(seq)
		if e == nil {
			continue
		}
		if e.attempts > 0 {
			again = append(again, resend{seq, saturate(uint32(e.attempts) + 1)})
		}
		e.attempts = saturate(uint32(e.attempts) + 1)
		need = need || !e.marked
		found = append(found, seq)
		s.sentHigh = max(s.sentHigh, seq)
	}
	if !need {
		// Each is recorded as possibly sent already; after a crash each counts as sent at least
		// once, which is all a resend needs to be reported. The exact count is not worth a write.
		s.logResends(again)
		return nil
	}
	s.body = appendRuns(s.body[:0], found)
	_, _, end, err := s.append(recSend, s.body)
	if err == nil {
		err = s.commit.await(s, end, false)
	}
	if err != nil {
		return fmt.Errorf("outbox: recording a send: %w", err)
	}
	for _, seq := range found {
		if e := s.idx.find(seq); e != nil {
			e.marked = true
		}
	}
	s.logResends(again)
	return nil
}

// resend is a message sent again, for its log line.
type resend struct {
	seq      uint64
	attempts uint16
}

func (s *Store) logResends(again []resend) {
	for _, r := range again {
		total := s.dups.Add(1)
		s.log.Info().Str(logging.EventKey, logging.EventOutboxResend).Uint64("seq", r.seq).Uint16("attempt", r.attempts).
			Uint64("duplicates_possible_total", total).
			Msg("sending a message again; the broker may receive it twice")
	}
}

// Ack removes messages the broker acknowledged. Sequence numbers no longer stored (dropped
// meanwhile by a bound) are ignored. The removal is written at once and made durable by the
// next fdatasync: lost in a power cut, it brings the messages back, to be sent again (and
// counted as possible duplicates).
func (s *Store) Ack(seqs ...uint64) error {
	if _, _, err := s.removeSeqs(seqs, removeDelivered, &s.delivered); err != nil {
		return fmt.Errorf("outbox: acknowledging: %w", err)
	}
	return nil
}

// Reject removes a message the module can never send (reason says why), logging and counting it.
func (s *Store) Reject(seq uint64, reason error) error {
	n, topic, err := s.removeSeqs([]uint64{seq}, removeRejected, &s.rejected)
	if err != nil {
		return fmt.Errorf("outbox: rejecting: %w", err)
	}
	if n == 0 {
		return nil
	}
	total := s.rejected.Load()
	s.log.Error().Str(logging.EventKey, logging.EventOutboxRejected).Uint64("seq", seq).Str("topic", topic).Err(reason).
		Uint64("rejected_total", total).Msg("message dropped from the outbox: the module cannot send it")
	return nil
}

// removeSeqs removes messages, adds how many were there to counter (so that a Stats snapshot
// sees the count and the counter change together), and returns that number and the topic of
// the last one.
func (s *Store) removeSeqs(seqs []uint64, reason byte, counter *atomic.Uint64) (int, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, "", ErrClosed
	}
	var sp span
	var topic string
	for _, seq := range seqs {
		e := s.idx.find(seq)
		if e == nil {
			continue
		}
		if reason == removeRejected {
			if p, err := s.readPut(e); err == nil {
				topic = p.topic
			}
		}
		sp.add(e)
		s.removeEntry(e) // at once: a seq given twice is found once
	}
	counter.Add(uint64(sp.n))
	return sp.n, topic, s.logRemoval(reason, &sp)
}

// Stats returns a snapshot of the store.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Store) statsLocked() Stats {
	st := Stats{Messages: s.idx.live, Bytes: s.bytes, MaxBytes: s.cfg.MaxBytes, SetAside: s.setAside}
	if e := s.idx.first(); e != nil {
		st.Oldest = time.Unix(0, e.stored)
	}
	st.Stored = s.stored.Load()
	st.Delivered = s.delivered.Load()
	st.Refused = s.refused.Load()
	st.Expired = s.expired.Load()
	st.DroppedOldest = s.droppedOldest.Load()
	st.Rejected = s.rejected.Load()
	st.Damaged = s.damagedN.Load()
	st.DuplicatesPossible = s.dups.Load()
	st.Syncs = s.syncs.Load()
	st.Segments = len(s.segs)
	for _, seg := range s.segs {
		st.DiskSize += seg.size
	}
	return st
}

// Path is the store directory.
func (s *Store) Path() string { return s.path }

// Close makes everything written durable, records a clean close and closes the store; later
// calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.commit.quiesce()
	var err error
	if s.broken == nil {
		var end uint64
		if _, _, end, err = s.append(recClean, nil); err == nil {
			err = s.commit.await(s, end, false)
		}
	}
	s.commit.wake()
	s.closeFiles()
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("outbox: closing: %w", err)
	}
	return nil
}

func (s *Store) closeFiles() {
	if s.tail != nil {
		s.tail.Close()
		s.tail = nil
	}
	for gen, f := range s.readers {
		f.Close()
		delete(s.readers, gen)
	}
}
