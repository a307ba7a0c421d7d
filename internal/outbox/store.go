package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults, sized for a Raspberry Pi's SD card.
const (
	DefaultMaxBytes    = 64 << 20           // 64 MiB of messages
	DefaultMaxAge      = 7 * 24 * time.Hour // a week
	DefaultLockTimeout = 2 * time.Second    // wait for another process's lock before giving up
	DefaultStateDir    = "/var/lib/gatewayd"
	// FileName is the store's file inside Config.Dir.
	FileName = "outbox.db"
)

// Overflow says what Put does when the store is full.
type Overflow string

// The overflow policies.
const (
	// OverflowRefuse refuses the new message (ErrFull); the local client sees the refusal.
	OverflowRefuse Overflow = "refuse"
	// OverflowDropOldest drops the oldest messages to make room, logging and counting them.
	OverflowDropOldest Overflow = "drop_oldest"
)

// Config is the [outbox] section.
type Config struct {
	// Dir holds the store file. "" = StateDir(os.Getenv): $STATE_DIRECTORY (systemd's
	// StateDirectory=) or /var/lib/gatewayd.
	Dir string
	// MaxBytes bounds the stored messages (keys and values as recordSize counts them; the file
	// itself is larger by bbolt's page slack, see docs/outbox.md). 0 = DefaultMaxBytes.
	MaxBytes int64
	// MaxAge drops messages older than this. 0 = DefaultMaxAge; negative = no age limit.
	MaxAge time.Duration
	// Overflow is the policy when full. "" = OverflowRefuse.
	Overflow Overflow
	// LockTimeout bounds the wait for the file lock held by another process. 0 = DefaultLockTimeout.
	LockTimeout time.Duration
	// Now is the clock; nil = time.Now. Tests inject one to drive expiry.
	Now func() time.Time
}

// StateDir is where the store lives when Config.Dir is empty: the first directory of
// $STATE_DIRECTORY (set by systemd for StateDirectory=), else DefaultStateDir.
func StateDir(getenv func(string) string) string {
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		return d
	}
	return DefaultStateDir
}

func (c Config) resolve() (Config, error) {
	if c.Dir == "" {
		c.Dir = StateDir(os.Getenv)
	}
	switch {
	case c.MaxBytes < 0:
		return c, fmt.Errorf("outbox: max_bytes %d is negative", c.MaxBytes)
	case c.MaxBytes == 0:
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	switch c.Overflow {
	case "":
		c.Overflow = OverflowRefuse
	case OverflowRefuse, OverflowDropOldest:
	default:
		return c, fmt.Errorf("outbox: overflow %q: want %q or %q", c.Overflow, OverflowRefuse, OverflowDropOldest)
	}
	switch {
	case c.LockTimeout < 0:
		return c, fmt.Errorf("outbox: lock timeout %s is negative", c.LockTimeout)
	case c.LockTimeout == 0:
		c.LockTimeout = DefaultLockTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

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
	// ErrLocked: another process holds the store file (a second gatewayd?).
	ErrLocked = errors.New("outbox file locked by another process")
)

// Message is one stored message.
type Message struct {
	Seq      uint64 // store order, from 1; never reused within one store file
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
	Damaged            uint64 // damaged records dropped at Open
	DuplicatesPossible uint64 // messages sent again after an earlier send whose outcome is unknown

	SetAside string // where a damaged store file was moved at Open; "" when none was
}

var (
	bucketMsgs     = []byte("messages")
	bucketAttempts = []byte("attempts")
)

// plausible is the earliest stored time taken at face value by expiry: a Pi without a real-time
// clock stores messages with a clock that NTP later moves by years, and those must not all
// expire the moment the clock is set. Their age is unknown, so they are kept.
var plausible = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// maxImplausibleScan bounds how many implausibly dated messages an expiry scan steps over.
const maxImplausibleScan = 64

// Store is the outbox. Its methods are safe for concurrent use.
type Store struct {
	cfg      Config
	log      zerolog.Logger
	db       *bolt.DB
	path     string
	setAside string
	closed   atomic.Bool

	mu    sync.Mutex // serialises write transactions; guards count and bytes
	count int
	bytes int64

	stored, delivered, refused, expired, droppedOldest, rejected, damagedN, dups atomic.Uint64
}

// Open opens (or creates) the store in cfg.Dir. A store file that fails its checks is set
// aside (renamed to outbox.db.damaged-<UTC time>, logged) and a fresh one is created, so Open
// fails only when the directory itself is unusable (permissions, a full or read-only disk) or
// another process holds the file (ErrLocked, after cfg.LockTimeout).
func Open(cfg Config, log zerolog.Logger) (*Store, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	s := &Store{cfg: cfg, log: log.With().Str("component", "outbox").Logger(), path: filepath.Join(cfg.Dir, FileName)}
	err = s.open()
	if err != nil && isDamage(err) {
		aside, rerr := s.moveAside()
		if rerr != nil {
			return nil, fmt.Errorf("outbox %s is damaged (%v) and cannot be set aside: %w", s.path, err, rerr)
		}
		s.log.Error().Str("event", "outbox_set_aside").Str("path", s.path).Str("moved_to", aside).Err(err).
			Msg("outbox store damaged; set it aside and started a fresh one (its messages are not delivered)")
		s.setAside = aside
		err = s.open()
	}
	if err != nil {
		return nil, err
	}
	s.log.Info().Str("path", s.path).Int("messages", s.count).Int64("bytes", s.bytes).Int64("max_bytes", cfg.MaxBytes).
		Dur("max_age", cfg.MaxAge).Str("overflow", string(cfg.Overflow)).Msg("outbox open")
	return s, nil
}

// isDamage tells a damaged file (set it aside) from an unusable environment (report it).
func isDamage(err error) bool {
	for _, env := range []error{ErrLocked, fs.ErrPermission, syscall.ENOSPC, syscall.EROFS, syscall.EDQUOT} {
		if errors.Is(err, env) {
			return false
		}
	}
	return true
}

func (s *Store) moveAside() (string, error) {
	aside := s.path + ".damaged-" + s.cfg.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(s.path, aside); err != nil {
		return "", err
	}
	return aside, nil
}

// open opens s.path, checks it and counts what it holds.
func (s *Store) open() (err error) {
	if fi, statErr := os.Stat(s.path); statErr == nil && fi.Size() > 0 {
		if err := checkFile(s.path); err != nil {
			return fmt.Errorf("checking %s: %w", s.path, err)
		}
	}
	var db *bolt.DB
	// The file passed the structural check but is still untrusted: bbolt panics on some
	// inconsistencies, and a read of its mapping past the end of a file cut short faults.
	// SetPanicOnFault turns such a fault into a panic for this goroutine, and this recover —
	// around the open and check of the untrusted file only — turns any panic into the error
	// that makes Open set the file aside.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			err = fmt.Errorf("%w: bbolt panicked on %s: %v", errDamaged, s.path, r)
		}
	}()
	db, err = bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.cfg.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("outbox %s: %w (is another gatewayd running?); gave up after %s", s.path, ErrLocked, s.cfg.LockTimeout)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	var count int
	var bytes int64
	var bad []string
	err = db.Update(func(tx *bolt.Tx) error {
		msgs, err := tx.CreateBucketIfNotExists(bucketMsgs)
		if err != nil {
			return err
		}
		att, err := tx.CreateBucketIfNotExists(bucketAttempts)
		if err != nil {
			return err
		}
		var drop [][]byte
		c := msgs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			m, err := decodeRecord(k, v)
			if err != nil {
				drop = append(drop, append([]byte(nil), k...))
				bad = append(bad, err.Error())
				continue
			}
			count++
			bytes += recordSize(len(m.Topic), len(m.Payload))
		}
		for _, k := range drop {
			if err := msgs.Delete(k); err != nil {
				return err
			}
		}
		var dropAtt [][]byte
		c = att.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != keyLen || len(v) != 4 || msgs.Get(k) == nil {
				dropAtt = append(dropAtt, append([]byte(nil), k...))
			}
		}
		for _, k := range dropAtt {
			if err := att.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("reading %s: %w", s.path, err)
	}
	for _, b := range bad {
		s.log.Error().Str("event", "outbox_damaged_record").Str("path", s.path).Str("problem", b).
			Msg("damaged message dropped from the outbox")
	}
	s.damagedN.Add(uint64(len(bad)))
	s.db, s.count, s.bytes = db, count, bytes
	return nil
}

// span describes a run of removed messages, for counters and one log line.
type span struct {
	n           int
	bytes       int64
	first, last uint64
}

func (sp *span) add(seq uint64, size int64) {
	if sp.n == 0 {
		sp.first = seq
	}
	sp.last = seq
	sp.n++
	sp.bytes += size
}

// remove deletes the messages (and their attempt counters) at keys.
func remove(tx *bolt.Tx, keys [][]byte) error {
	msgs, att := tx.Bucket(bucketMsgs), tx.Bucket(bucketAttempts)
	for _, k := range keys {
		if err := msgs.Delete(k); err != nil {
			return err
		}
		if err := att.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// expireTx removes messages older than MaxAge from the head of the store.
func (s *Store) expireTx(tx *bolt.Tx, now time.Time) (span, error) {
	var sp span
	var keys [][]byte
	s.expiredHead(tx, now, func(k, v []byte) bool {
		keys = append(keys, append([]byte(nil), k...))
		sp.add(binary.BigEndian.Uint64(k), int64(len(k)+len(v)))
		return true
	})
	return sp, remove(tx, keys)
}

// expiredHead calls visit, oldest first, for each message at the head of the store that is
// older than MaxAge, until visit returns false. A record stored under an implausible clock (before
// the clock was set) is stepped over, at most maxImplausibleScan of them, so that it neither
// expires at once nor holds back the ones behind it.
func (s *Store) expiredHead(tx *bolt.Tx, now time.Time, visit func(k, v []byte) bool) {
	if s.cfg.MaxAge <= 0 || now.Before(plausible) {
		return
	}
	cutoff := now.Add(-s.cfg.MaxAge)
	skipped := 0
	c := tx.Bucket(bucketMsgs).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		st, ok := recordStored(v)
		if ok && st.Before(plausible) && skipped < maxImplausibleScan {
			skipped++
			continue
		}
		if !ok || !st.Before(cutoff) || !visit(k, v) {
			return
		}
	}
}

// dropOldestTx removes messages from the head until need bytes are freed.
func dropOldestTx(tx *bolt.Tx, need int64) (span, error) {
	var sp span
	var keys [][]byte
	c := tx.Bucket(bucketMsgs).Cursor()
	for k, v := c.First(); k != nil && sp.bytes < need; k, v = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
		sp.add(binary.BigEndian.Uint64(k), int64(len(k)+len(v)))
	}
	return sp, remove(tx, keys)
}

// applyExpired accounts for and logs an expiry; the caller holds s.mu.
func (s *Store) applyExpired(sp span) {
	if sp.n == 0 {
		return
	}
	s.count -= sp.n
	s.bytes -= sp.bytes
	total := s.expired.Add(uint64(sp.n))
	s.log.Warn().Str("event", "outbox_expired").Int("messages", sp.n).Int64("bytes", sp.bytes).
		Uint64("first_seq", sp.first).Uint64("last_seq", sp.last).Dur("max_age", s.cfg.MaxAge).
		Uint64("expired_total", total).Msg("messages older than max_age dropped from the outbox")
}

// Put stores a message and returns its sequence number once it is on disk (committed and
// fsynced). When the store is full it returns an error wrapping ErrFull (OverflowRefuse) or
// drops the oldest messages to make room (OverflowDropOldest). Messages past MaxAge are dropped
// on the way. Every refusal and drop is logged and counted.
func (s *Store) Put(topic string, payload []byte, qos int, retain bool) (uint64, error) {
	size := recordSize(len(topic), len(payload))
	switch {
	case topic == "" || len(topic) > MaxTopicLen:
		return 0, s.refuse(topic, size, fmt.Errorf("outbox: topic of %d bytes (1-%d allowed): %w", len(topic), MaxTopicLen, ErrInvalid))
	case qos < 0 || qos > 2:
		return 0, s.refuse(topic, size, fmt.Errorf("outbox: QoS %d (0-2 allowed): %w", qos, ErrInvalid))
	case size > s.cfg.MaxBytes:
		return 0, s.refuse(topic, size, fmt.Errorf("outbox: a message of %d bytes exceeds max_bytes %d: %w", size, s.cfg.MaxBytes, ErrTooLarge))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, fmt.Errorf("outbox: %w", ErrClosed)
	}
	now := s.cfg.Now()
	var (
		seq          uint64
		exp, dropped span
		full         bool
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if exp, err = s.expireTx(tx, now); err != nil {
			return err
		}
		if over := s.bytes - exp.bytes + size - s.cfg.MaxBytes; over > 0 {
			if s.cfg.Overflow != OverflowDropOldest {
				full = true
				return nil // commit the expiry; refuse the message
			}
			if dropped, err = dropOldestTx(tx, over); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketMsgs)
		// Keys only ever grow: fill pages instead of splitting them half-empty (bbolt's default
		// of 0.5 doubled the bytes on disk per message, see docs/outbox.md).
		b.FillPercent = 1.0
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		k := seqKey(seq)
		return b.Put(k, encodeRecord(k, topic, payload, qos, retain, now))
	})
	if err != nil {
		return 0, s.refuse(topic, size, fmt.Errorf("outbox: storing a message for %q: %w", topic, err))
	}
	s.applyExpired(exp)
	if full {
		return 0, s.refuse(topic, size, fmt.Errorf("outbox: %w: %d of %d bytes used, %d more needed", ErrFull, s.bytes, s.cfg.MaxBytes, size))
	}
	if dropped.n > 0 {
		s.count -= dropped.n
		s.bytes -= dropped.bytes
		total := s.droppedOldest.Add(uint64(dropped.n))
		s.log.Warn().Str("event", "outbox_dropped_oldest").Int("messages", dropped.n).Int64("bytes", dropped.bytes).
			Uint64("first_seq", dropped.first).Uint64("last_seq", dropped.last).Int64("max_bytes", s.cfg.MaxBytes).
			Uint64("dropped_total", total).Msg("outbox full: oldest messages dropped to make room (overflow = drop_oldest)")
	}
	s.count++
	s.bytes += size
	s.stored.Add(1)
	return seq, nil
}

// refuse counts and logs a refused Put and returns err.
func (s *Store) refuse(topic string, size int64, err error) error {
	total := s.refused.Add(1)
	s.log.Warn().Str("event", "outbox_refused").Str("topic", topic).Int64("bytes", size).
		Uint64("refused_total", total).Err(err).Msg("message refused by the outbox")
	return err
}

// Pending returns up to max of the oldest messages, oldest first.
func (s *Store) Pending(max int) ([]Message, error) { return s.PendingAfter(0, max) }

// PendingAfter returns up to max messages with a sequence number above after, oldest first.
// Messages past MaxAge are dropped first.
func (s *Store) PendingAfter(after uint64, max int) ([]Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("outbox: %w", ErrClosed)
	}
	if _, err := s.expireIfDue(); err != nil {
		return nil, err
	}
	var out []Message
	var bad []uint64
	var problems []error
	err := s.db.View(func(tx *bolt.Tx) error {
		att := tx.Bucket(bucketAttempts)
		c := tx.Bucket(bucketMsgs).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			m, err := decodeRecord(k, v)
			if err != nil {
				// Checked at Open, so only a file changed under the daemon gets here.
				if len(k) == keyLen {
					bad = append(bad, binary.BigEndian.Uint64(k))
				}
				problems = append(problems, err)
				continue
			}
			if a := att.Get(k); len(a) == 4 {
				m.Attempts = int(binary.BigEndian.Uint32(a))
			}
			out = append(out, m)
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, fmt.Errorf("outbox: %w", ErrClosed) // closed while we read
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: reading messages: %w", err)
	}
	if len(problems) > 0 {
		n, _, err := s.removeSeqs(bad, &s.damagedN)
		s.log.Error().Str("event", "outbox_damaged_record").Err(errors.Join(problems...)).Int("dropped", n).
			AnErr("drop_error", err).Msg("damaged messages found while reading the outbox; dropped")
	}
	return out, nil
}

// Expire drops the messages past MaxAge now and returns how many it dropped. Put and Pending
// expire as they go; Expire is for a caller that wants the store tidy while idle.
func (s *Store) Expire() (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("outbox: %w", ErrClosed)
	}
	return s.expireIfDue()
}

// expireIfDue checks the head with a read transaction and expires only when something is due,
// so reading an outbox does not cost a write.
func (s *Store) expireIfDue() (int, error) {
	if s.cfg.MaxAge <= 0 {
		return 0, nil
	}
	now := s.cfg.Now()
	due := false
	err := s.db.View(func(tx *bolt.Tx) error {
		due = s.peekExpired(tx, now)
		return nil
	})
	if err != nil || !due {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sp span
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		sp, err = s.expireTx(tx, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: expiring messages: %w", err)
	}
	s.applyExpired(sp)
	return sp.n, nil
}

// peekExpired reports whether expireTx would remove anything, without writing.
func (s *Store) peekExpired(tx *bolt.Tx, now time.Time) bool {
	found := false
	s.expiredHead(tx, now, func([]byte, []byte) bool {
		found = true
		return false
	})
	return found
}

// Sending records, before the messages are handed to the module, that one more send of each
// is starting. A message that was sent before (its attempt counter was already above zero,
// in this run or before a restart) may reach the broker twice: it is counted in
// DuplicatesPossible and logged. Sequence numbers no longer stored are ignored.
func (s *Store) Sending(seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("outbox: %w", ErrClosed)
	}
	type resend struct {
		seq      uint64
		attempts uint32
	}
	var again []resend
	err := s.db.Update(func(tx *bolt.Tx) error {
		again = again[:0]
		msgs, att := tx.Bucket(bucketMsgs), tx.Bucket(bucketAttempts)
		for _, seq := range seqs {
			k := seqKey(seq)
			if msgs.Get(k) == nil {
				continue
			}
			var n uint32
			if a := att.Get(k); len(a) == 4 {
				n = binary.BigEndian.Uint32(a)
			}
			if err := att.Put(k, binary.BigEndian.AppendUint32(nil, n+1)); err != nil {
				return err
			}
			if n > 0 {
				again = append(again, resend{seq, n + 1})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox: recording a send: %w", err)
	}
	for _, r := range again {
		total := s.dups.Add(1)
		s.log.Info().Str("event", "outbox_resend").Uint64("seq", r.seq).Uint32("attempt", r.attempts).
			Uint64("duplicates_possible_total", total).
			Msg("sending a message again; the broker may receive it twice")
	}
	return nil
}

// Ack removes messages the broker acknowledged. Sequence numbers no longer stored (dropped
// meanwhile by a bound) are ignored.
func (s *Store) Ack(seqs ...uint64) error {
	if _, _, err := s.removeSeqs(seqs, &s.delivered); err != nil {
		return fmt.Errorf("outbox: acknowledging: %w", err)
	}
	return nil
}

// Reject removes a message the module can never send (reason says why), logging and counting it.
func (s *Store) Reject(seq uint64, reason error) error {
	n, topic, err := s.removeSeqs([]uint64{seq}, &s.rejected)
	if err != nil {
		return fmt.Errorf("outbox: rejecting: %w", err)
	}
	if n == 0 {
		return nil
	}
	total := s.rejected.Load()
	s.log.Error().Str("event", "outbox_rejected").Uint64("seq", seq).Str("topic", topic).Err(reason).
		Uint64("rejected_total", total).Msg("message dropped from the outbox: the module cannot send it")
	return nil
}

// removeSeqs deletes messages, adds how many were there to counter (so that a Stats snapshot
// sees the count and the counter change together), and returns that number and the topic of
// the last one.
func (s *Store) removeSeqs(seqs []uint64, counter *atomic.Uint64) (int, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, "", ErrClosed
	}
	var sp span
	var topic string
	err := s.db.Update(func(tx *bolt.Tx) error {
		sp = span{}
		msgs := tx.Bucket(bucketMsgs)
		var keys [][]byte
		for _, seq := range seqs {
			k := seqKey(seq)
			v := msgs.Get(k)
			if v == nil {
				continue
			}
			if m, err := decodeRecord(k, v); err == nil {
				topic = m.Topic
			}
			keys = append(keys, k)
			sp.add(seq, int64(len(k)+len(v)))
		}
		return remove(tx, keys)
	})
	if err != nil {
		return 0, "", err
	}
	s.count -= sp.n
	s.bytes -= sp.bytes
	counter.Add(uint64(sp.n))
	return sp.n, topic, nil
}

// Stats returns a snapshot of the store.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Messages: s.count, Bytes: s.bytes}
	st.Stored = s.stored.Load()
	st.Delivered = s.delivered.Load()
	st.Refused = s.refused.Load()
	st.Expired = s.expired.Load()
	st.DroppedOldest = s.droppedOldest.Load()
	st.Rejected = s.rejected.Load()
	st.Damaged = s.damagedN.Load()
	st.DuplicatesPossible = s.dups.Load()
	s.mu.Unlock()
	st.MaxBytes = s.cfg.MaxBytes
	if !s.closed.Load() {
		_ = s.db.View(func(tx *bolt.Tx) error {
			if _, v := tx.Bucket(bucketMsgs).Cursor().First(); v != nil {
				st.Oldest, _ = recordStored(v)
			}
			return nil
		})
	}
	st.SetAside = s.setAside
	return st
}

// Path is the store file.
func (s *Store) Path() string { return s.path }

// Close closes the store; later calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}
