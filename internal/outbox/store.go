package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/logging"
)

// Defaults, sized for a Raspberry Pi's SD card.
const (
	DefaultMaxBytes    = 64 << 20           // 64 MiB of messages
	DefaultMaxAge      = 7 * 24 * time.Hour // a week
	DefaultLockTimeout = 2 * time.Second    // wait for another process's lock before giving up
	DefaultCommitWait  = 10 * time.Millisecond
	DefaultStateDir    = "/var/lib/gatewayd"
	// FileName is the store inside Config.Dir: a directory of segment files. Before issue 16 it
	// was one bbolt file of the same name; Open migrates such a file.
	FileName = "outbox.db"
	// lockName is the file in Config.Dir that one process at a time holds (flock).
	lockName = "outbox.lock"
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
	// Dir holds the store. "" = StateDir(os.Getenv): $STATE_DIRECTORY (systemd's
	// StateDirectory=) or /var/lib/gatewayd.
	Dir string
	// MaxBytes bounds the stored messages, each counted as topic + payload + 24 bytes (the
	// measure of the bbolt store before, so a bound holds as many messages as it did). The
	// directory is larger: see docs/outbox.md. 0 = DefaultMaxBytes.
	MaxBytes int64
	// MaxAge drops messages older than this. 0 = DefaultMaxAge; negative = no age limit.
	MaxAge time.Duration
	// Overflow is the policy when full. "" = OverflowRefuse.
	Overflow Overflow
	// LockTimeout bounds the wait for the lock held by another process. 0 = DefaultLockTimeout.
	LockTimeout time.Duration
	// CommitWait is how long a commit may wait for more Puts to share its fdatasync while
	// several clients publish at once, and (up to streamWaits × CommitWait) for a stream to
	// fill its page (see Store.gather). A lone publisher never waits. 0 = DefaultCommitWait;
	// negative = never wait.
	CommitWait time.Duration
	// Now is the clock; nil = time.Now. Tests inject one to drive expiry.
	Now func() time.Time

	// segSize and chunk are segmentSize and segChunk unless a test sets them smaller.
	segSize, chunk int64
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
	if c.CommitWait == 0 {
		c.CommitWait = DefaultCommitWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.segSize == 0 {
		c.segSize, c.chunk = segmentSize, segChunk
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

// plausible is the earliest stored time taken at face value by expiry: a Pi without a real-time
// clock stores messages with a clock that NTP later moves by years, and those must not all
// expire the moment the clock is set. Their age is unknown, so they are kept.
var plausible = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// maxImplausibleScan bounds how many implausibly dated messages an expiry scan steps over.
const maxImplausibleScan = 64

// maxReaders bounds the older segments kept open for reading.
const maxReaders = 4

// Store is the outbox: an append-only log of segment files with an index in memory. Its methods
// are safe for concurrent use.
//
// Every change is a record appended to the newest segment. A Put's record is made durable by an
// fdatasync before Put returns (Append and Wait: the same in two steps, for a client with
// several messages in flight); Puts that arrive while one fdatasync runs share the next one
// (group commit), and a Put that finds none running starts its own at once, unless it waits
// for company (gather). Other records (acknowledgements, rejections, expiry, sends the store
// may record without waiting) are written at once and made durable by the next fdatasync, whoever starts it: losing them in a
// power cut only brings a message back, to be sent again and counted as a possible duplicate.
// Segments whose messages have all gone are deleted or kept as the spare for reuse.
type Store struct {
	cfg      Config
	log      zerolog.Logger
	path     string // the store directory: Config.Dir/FileName
	lock     *os.File
	setAside string

	mu     sync.Mutex
	synced *sync.Cond // broadcast when an fdatasync ends
	// arrivals wakes a leader waiting for company (gather): a put was noted, its wait is over,
	// or the store closed or broke. Only the leader waits on it, so a put wakes no one else.
	arrivals *sync.Cond
	closed   bool
	broken   error // a write or fdatasync failed: nothing more is stored in this run

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
	durable uint64 // every byte appended before this position is on disk
	lastPut uint64 // seq of the last put appended
	syncing bool   // an fdatasync of the newest segment is running, or its leader waits for company

	// Group commit: the ends of the put records not yet durable (a Put waiting, or an Append's
	// message not yet waited for), the most that were at once in this and the last
	// concurrencyWindow (how many publish at once), the average gap between puts, when a put
	// last came with others of its source in flight, and the wait of a leader for them. Times
	// are the monotonic clock's, not Config.Now's (a test's, for expiry).
	pendingEnds      []uint64
	peak, peakBefore int
	peakSince        time.Time
	lastArrival      time.Time
	gap              time.Duration
	streamed         time.Time
	waitOver         bool
	waitGen          uint64

	body, rec []byte // scratch for encoding, under mu

	stored, delivered, refused, expired, droppedOldest, rejected, damagedN, dups, syncs atomic.Uint64
}

// runStart is where a run of a segment begins (after its RUN record).
type runStart struct {
	off int
	run uint32
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
	s.synced, s.arrivals = sync.NewCond(&s.mu), sync.NewCond(&s.mu)
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

// lockDir takes the store's lock file in dir, waiting up to timeout for another process.
func lockDir(dir string, timeout time.Duration) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return f, nil
		case err == syscall.EINTR:
			continue
		case err != syscall.EWOULDBLOCK:
			f.Close()
			return nil, fmt.Errorf("locking: %w", err)
		case time.Now().After(deadline):
			f.Close()
			return nil, fmt.Errorf("%w (is another gatewayd running?); gave up after %s", ErrLocked, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isDamage tells a damaged store (set it aside) from an unusable environment (report it).
func isDamage(err error) bool {
	for _, env := range []error{ErrLocked, fs.ErrPermission, syscall.ENOSPC, syscall.EROFS, syscall.EDQUOT} {
		if errors.Is(err, env) {
			return false
		}
	}
	return true
}

// open finds what is at s.path and makes a working store of it.
func (s *Store) open() error {
	if err := s.finishReplace(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	fi, err := os.Lstat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.create()
	case err != nil:
		return fmt.Errorf("outbox: %w", err)
	case fi.Mode().IsRegular() && fi.Size() == 0:
		// A crash while an old gatewayd created its bbolt file: nothing was ever stored in it.
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		return s.create()
	case fi.Mode().IsRegular():
		err = s.migrate()
		if err != nil && isDamage(err) {
			if err := s.moveAside(err, -1); err != nil {
				return err
			}
			return s.create()
		}
		if err != nil {
			return err
		}
	case !fi.IsDir():
		if err := s.moveAside(formatErr("%s is neither a directory nor a file", s.path), -1); err != nil {
			return err
		}
		return s.create()
	}
	return s.recoverDir()
}

// recoverDir reads the store directory. Damage is repaired by writing what can be read to a
// fresh store: after records that were stepped over the old one is deleted, after worse the old
// one is set aside.
func (s *Store) recoverDir() error {
	for pass := 0; ; pass++ {
		rep, err := s.load()
		if err != nil {
			return err
		}
		if rep.structural == nil && rep.damaged == 0 {
			return s.startRun(rep)
		}
		if pass > 0 {
			// The copy written by the first pass failed its own checks: a bug or a card that
			// garbles what it is given. Start empty rather than not at all.
			s.log.Error().Str(logging.EventKey, logging.EventOutboxSetAside).Err(errors.Join(rep.structural, rep.problem())).
				Msg("the repaired outbox failed its checks too; starting an empty one")
			s.closeFiles()
			if err := s.moveAside(errors.Join(rep.structural, rep.problem()), -1); err != nil {
				return err
			}
			return s.create()
		}
		if err := s.repair(rep); err != nil {
			return err
		}
	}
}

// problem describes the records stepped over, or nil.
func (r *replayed) problem() error {
	if r.damaged == 0 {
		return nil
	}
	return formatErr("%d damaged records stepped over (%s)", r.damaged, strings.Join(r.where, ", "))
}

// create makes an empty store at s.path (nothing is there) and starts it.
func (s *Store) create() error {
	if err := os.Mkdir(s.path, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	rep, err := s.load()
	if err != nil {
		return err
	}
	if rep.structural != nil || rep.damaged > 0 {
		return fmt.Errorf("outbox: the new store %s fails its checks: %w", s.path, errors.Join(rep.structural, rep.problem()))
	}
	return s.startRun(rep)
}

// moveAside renames whatever is at s.path to outbox.db.damaged-<UTC time> and logs why; kept
// is how many of its messages were copied to the store that replaces it, -1 for none.
func (s *Store) moveAside(why error, kept int) error {
	aside := s.path + ".damaged-" + s.cfg.Now().UTC().Format("20060102T150405.000Z")
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.damaged-%s-%d", s.path, s.cfg.Now().UTC().Format("20060102T150405.000Z"), i)
	}
	if err := os.Rename(s.path, aside); err != nil {
		return fmt.Errorf("outbox %s is damaged (%v) and cannot be set aside: %w", s.path, why, err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	ev := s.log.Error().Str(logging.EventKey, logging.EventOutboxSetAside).Str("path", s.path).Str("moved_to", aside).Err(why)
	if kept < 0 {
		ev.Msg("outbox store damaged; set it aside and started a fresh one (its messages are not delivered)")
	} else {
		ev.Int("messages_kept", kept).Msg("outbox store damaged; set it aside, and the messages that could be read were copied to a fresh one")
	}
	s.setAside = aside
	return nil
}

// replayed is what load found besides the state it set up.
type replayed struct {
	tailEnd    int
	tailRun    uint32
	tailEnded  bool
	damaged    int      // records stepped over
	where      []string // in which segments
	structural error    // a segment unreadable, cut short or missing: set the store aside
	broken     int      // how many such segments (or gaps)
}

// load reads every segment of the store directory into s (index, segments, counters) and
// says what it found. It fails only for an unusable environment.
func (s *Store) load() (*replayed, error) {
	s.resetState()
	rep := &replayed{}
	gens, spare, err := listSegments(s.path)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	s.spare = spare
	if len(gens) == 0 {
		// A store being created when a crash came, or emptied by hand: start at gen 1.
		f, err := makeSegment(s.path, segHeader{gen: 1, nextSeq: 1}, s.cfg.chunk)
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		f.Close()
		gens = []uint64{1}
	}
	var maxSeq uint64
	nextSeq := uint64(1)
	var buf []byte // one segment at a time
	for i, gen := range gens {
		last := i == len(gens)-1
		if i > 0 && gen != gens[i-1]+1 {
			rep.structural = errors.Join(rep.structural, formatErr("segments %x to %x are missing", gens[i-1]+1, gen-1))
			rep.broken++
		}
		data, err := readSegment(filepath.Join(s.path, segName(gen)), buf)
		buf = data
		if err != nil {
			if !isDamage(err) {
				return nil, fmt.Errorf("outbox: %w", err)
			}
			rep.structural = errors.Join(rep.structural, fmt.Errorf("segment %x: %w", gen, err))
			rep.broken++
			s.segs = append(s.segs, &segment{gen: gen})
			continue
		}
		s.segs = append(s.segs, &segment{gen: gen, size: int64(len(data))})
		h, err := parseHeader(data)
		if err == nil && h.gen != gen {
			err = formatErr("the header says gen %x", h.gen)
		}
		if err != nil {
			// Its records may still be sound: they are read with the gen of the file name.
			rep.structural = errors.Join(rep.structural, fmt.Errorf("segment %x: %w", gen, err))
			rep.broken++
		} else {
			nextSeq = max(nextSeq, h.nextSeq)
		}
		bad := 0
		res, _ := scanRecords(data, gen, func(r record) error {
			if seq, nonsense := s.replay(gen, r); nonsense {
				bad++
			} else {
				maxSeq = max(maxSeq, seq)
			}
			return nil
		})
		if bad += res.damaged; bad > 0 {
			rep.damaged += bad
			rep.where = append(rep.where, fmt.Sprintf("%d in %s", bad, segName(gen)))
		}
		if !last && !res.ended {
			rep.structural = errors.Join(rep.structural, formatErr("segment %x ends at byte %d of %d without its END record", gen, res.end, len(data)))
			rep.broken++
		}
		if last {
			rep.tailEnd, rep.tailRun, rep.tailEnded = res.end, res.run, res.ended
		}
	}
	s.nextSeq = max(nextSeq, maxSeq+1)
	s.visible = s.nextSeq - 1
	// What a crash leaves in doubt: a message recorded as possibly sent without a send record
	// after it (see Sending) counts as sent once. Damage may have taken send records with it:
	// then every message counts as sent.
	s.idx.from(0, func(e *entry) bool {
		if (e.marked || rep.damaged > 0 || rep.structural != nil) && e.attempts == 0 {
			e.attempts = 1
		}
		e.marked = e.attempts > 0
		if seg := s.seg(e.gen()); seg != nil {
			seg.live++
			seg.liveBytes += int64(e.size)
		}
		s.bytes += e.counted()
		return true
	})
	return rep, nil
}

// replay applies one record found at Open; it returns the seq of a put, and bad for a record
// whose checksum passed but whose contents do not make sense (counted as damaged).
func (s *Store) replay(gen uint64, r record) (seq uint64, bad bool) {
	switch r.typ {
	case recPut:
		p, _, err := parsePutFixed(r.body)
		if err != nil {
			return 0, true
		}
		s.idx.upsert(entry{
			seq: p.seq, stored: p.stored, pos: makePos(gen, r.off), size: uint32(recHeaderSize + len(r.body)),
			attempts: saturate(p.attempts), marked: p.attempts > 0 || p.flags&putReserved != 0,
		})
		return p.seq, false
	case recSend:
		err := parseRuns(r.body, func(seq uint64) {
			if e := s.idx.find(seq); e != nil {
				e.attempts = saturate(uint32(e.attempts) + 1)
				e.marked = true
			}
		})
		return 0, err != nil
	case recRemove:
		if len(r.body) < 1 {
			return 0, true
		}
		err := parseRuns(r.body[1:], func(seq uint64) {
			if e := s.idx.find(seq); e != nil {
				s.idx.remove(e)
			}
		})
		return 0, err != nil
	case recRun:
		s.runs[gen] = append(s.runs[gen], runStart{off: r.off + recHeaderSize + len(r.body), run: binary.BigEndian.Uint32(r.body)})
		return 0, false
	case recEnd:
		return 0, false
	case recClean:
		// Everything sent before a clean close was recorded: no reservation is in doubt.
		s.idx.from(0, func(e *entry) bool {
			if e.attempts == 0 {
				e.marked = false
			}
			return true
		})
		return 0, false
	}
	return 0, true
}

func saturate(n uint32) uint16 { return uint16(min(n, 1<<16-1)) }

// resetState forgets what load or an earlier pass set up.
func (s *Store) resetState() {
	s.closeFiles()
	s.idx = index{}
	s.bytes, s.nextSeq, s.visible = 0, 0, 0
	s.segs, s.spare = nil, false
	s.runs = map[uint64][]runStart{}
	s.readers = map[uint64]*os.File{}
}

// startRun opens the newest segment for appending and writes a RUN record (fdatasynced), so
// that whatever a crash left beyond the end of the log is never read as this run's records.
func (s *Store) startRun(rep *replayed) error {
	tail := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(filepath.Join(s.path, segName(tail.gen)), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	s.tail, s.tailOff, s.run = f, rep.tailEnd, rep.tailRun
	s.seed = runSeed(tail.gen, s.run)
	if rep.tailEnded {
		// A crash came between a segment's END and the next segment: start that one now.
		tail.ended = true
		if err := s.nextSegment(0); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	} else {
		end, err := s.appendRun()
		if err == nil {
			err = s.waitDurable(end, false)
		}
		if err != nil {
			return fmt.Errorf("outbox: starting a run: %w", err)
		}
	}
	s.retire()
	return nil
}

// appendRun writes a RUN record and switches to the new run's seed.
func (s *Store) appendRun() (uint64, error) {
	_, _, end, err := s.append(recRun, binary.BigEndian.AppendUint32(nil, s.run+1))
	if err != nil {
		return 0, err
	}
	s.run++
	s.seed = runSeed(s.tailGen(), s.run)
	s.runs[s.tailGen()] = append(s.runs[s.tailGen()], runStart{off: s.tailOff, run: s.run})
	return end, nil
}

func (s *Store) tailGen() uint64 { return s.segs[len(s.segs)-1].gen }

// seg returns the segment of gen, or nil.
func (s *Store) seg(gen uint64) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].gen >= gen })
	if i < len(s.segs) && s.segs[i].gen == gen {
		return s.segs[i]
	}
	return nil
}

// append writes one record at the end of the log (the page cache: durable only after the next
// fdatasync) and returns its segment, offset and the log position after it. The caller holds mu.
func (s *Store) append(typ byte, body []byte) (gen uint64, off int, end uint64, err error) {
	if s.broken != nil {
		return 0, 0, 0, s.broken
	}
	n := recHeaderSize + len(body)
	if tail, need := s.segs[len(s.segs)-1], int64(s.tailOff+n+recHeaderSize); tail.ended || need > tail.size { // room for the END after it
		if err := s.makeRoom(need, n); err != nil {
			return 0, 0, 0, err
		}
	}
	s.rec = appendRecord(s.rec[:0], s.seed, typ, body)
	if _, err := s.tail.WriteAt(s.rec, int64(s.tailOff)); err != nil {
		return 0, 0, 0, s.fail(fmt.Errorf("writing the log: %w", err))
	}
	gen, off = s.tailGen(), s.tailOff
	s.tailOff += n
	s.written += uint64(n)
	if s.relocateDue && !s.relocating {
		// Only now: body may alias the scratch buffers relocate uses.
		s.relocateDue = false
		s.relocate()
	}
	return gen, off, s.written, nil
}

// makeRoom grows the newest segment to hold need bytes, a segChunk at a time up to
// segmentSize, or ends it and starts the next one for a record of n bytes. The zeros that grow
// it are made durable (with the new file size) by the next fdatasync; until then the log ends
// where it ended. The caller holds mu.
func (s *Store) makeRoom(need int64, n int) error {
	tail, full := s.segs[len(s.segs)-1], s.cfg.segSize
	if tail.ended || need > full || tail.size >= full {
		return s.switchSegment(n)
	}
	size := min((need+s.cfg.chunk-1)/s.cfg.chunk*s.cfg.chunk, full)
	if err := fill(s.tail, nil, tail.size, size); err != nil {
		// Nothing of the log is beyond tail.size: the record is refused, the store goes on
		// (a full disk may have room again later).
		return fmt.Errorf("growing a segment: %w", err)
	}
	tail.size = size
	return nil
}

// switchSegment ends the newest segment and starts the next, with room for a record of need
// bytes. The END record is fdatasynced before anything goes into the next segment, so that
// only the newest segment can ever end short. The caller holds mu.
func (s *Store) switchSegment(need int) error {
	if tail := s.segs[len(s.segs)-1]; !tail.ended {
		s.rec = appendRecord(s.rec[:0], s.seed, recEnd, nil)
		if _, err := s.tail.WriteAt(s.rec, int64(s.tailOff)); err != nil {
			return s.fail(fmt.Errorf("ending a segment: %w", err))
		}
		s.tailOff += len(s.rec)
		s.written += uint64(len(s.rec))
		if err := fdatasync(s.tail); err != nil {
			return s.fail(err)
		}
		s.syncs.Add(1)
		s.madeDurable(s.written, s.lastPut)
		// From here nothing more may go into it, even if the next segment cannot be made now:
		// a scan stops at END.
		tail.ended = true
	}
	return s.nextSegment(need)
}

// nextSegment starts the segment after the newest one, which has ended, with room for a record
// of need bytes. The caller holds mu.
func (s *Store) nextSegment(need int) error {
	old := s.tail
	size := s.cfg.chunk
	if want := int64(segHeaderSize + need + recHeaderSize); want > size {
		size = (want + pageSize - 1) / pageSize * pageSize
	}
	gen := s.tailGen() + 1
	h := segHeader{gen: gen, nextSeq: s.nextSeq}
	var f *os.File
	var err error
	if s.spare && size <= s.cfg.segSize {
		f, err = reuseSpare(s.path, h)
		if err == nil {
			size = s.cfg.segSize
		} else {
			s.log.Warn().Err(err).Msg("outbox: the spare segment could not be reused; making a new one")
		}
		s.spare = false
	}
	if f == nil {
		f, err = makeSegment(s.path, h, size)
	}
	if err != nil {
		// Nothing was written into a next segment: the log ends with END, and the next Open
		// starts a segment. Another append may try again.
		return fmt.Errorf("starting segment %x: %w", gen, err)
	}
	s.syncs.Add(1)
	s.keepReader(s.tailGen(), old)
	s.segs = append(s.segs, &segment{gen: gen, size: size})
	s.tail, s.tailOff, s.run, s.seed = f, segHeaderSize, 0, runSeed(gen, 0)
	s.relocateDue = true
	return nil
}

// relocate keeps the log from growing behind a message that stays (one the module refuses over
// and over while the ones after it go, say): when the oldest segment holds little that is still
// stored, or the segments are far larger than the bound, its messages are copied to the end of
// the log, and the segment is retired once the copies are durable.
func (s *Store) relocate() {
	if len(s.segs) < 3 {
		return
	}
	o := s.segs[0]
	var total int64
	for _, seg := range s.segs {
		total += seg.size
	}
	if o.live == 0 || o.liveBytes*16 > o.size && total <= 2*s.cfg.MaxBytes+4*s.cfg.segSize {
		return
	}
	s.relocating = true
	defer func() { s.relocating = false }()
	var seqs []uint64
	s.idx.from(0, func(e *entry) bool {
		if e.gen() == o.gen {
			seqs = append(seqs, e.seq)
		}
		return true
	})
	moved := 0
	for _, seq := range seqs {
		e := s.idx.find(seq)
		p, err := s.readPut(e)
		if err != nil {
			s.log.Warn().Err(err).Uint64("seq", seq).Msg("outbox: a message could not be read to move it; the segment stays")
			return
		}
		p.flags = p.flags&(putQoS|putRetain) | putRelocated
		if e.marked && e.attempts == 0 {
			p.flags |= putReserved
		}
		p.attempts = uint32(e.attempts)
		gen, off, _, err := s.append(recPut, p.append(nil))
		if err != nil {
			return
		}
		e = s.idx.find(seq) // the append may have moved nothing, but keep no pointer across it
		o.live--
		o.liveBytes -= int64(e.size)
		e.pos = makePos(gen, off)
		ns := s.seg(gen)
		ns.live++
		ns.liveBytes += int64(e.size)
		moved++
	}
	o.freedAt = s.written
	s.log.Info().Int("messages", moved).Str("segment", segName(o.gen)).
		Msg("outbox: moved the messages of a mostly emptied segment to the end of the log")
}

// retire removes the oldest segments that hold no stored message, once their relocated
// messages are durable elsewhere. The caller holds mu.
func (s *Store) retire() {
	for len(s.segs) > 1 && s.segs[0].live == 0 && s.durable >= s.segs[0].freedAt {
		o := s.segs[0]
		if f := s.readers[o.gen]; f != nil {
			f.Close()
			delete(s.readers, o.gen)
		}
		spare, err := retireSegment(s.path, o.gen, o.size, s.spare, s.cfg.segSize)
		if err != nil {
			s.log.Warn().Err(err).Str("segment", segName(o.gen)).Msg("outbox: retiring a segment failed; will try again")
			return
		}
		s.spare = spare
		delete(s.runs, o.gen)
		s.segs = s.segs[1:]
	}
}

// keepReader keeps f open for reading segment gen, closing the oldest reader beyond maxReaders.
func (s *Store) keepReader(gen uint64, f *os.File) {
	if len(s.readers) >= maxReaders {
		for g, rf := range s.readers {
			rf.Close()
			delete(s.readers, g)
			break
		}
	}
	s.readers[gen] = f
}

// file returns a file to read segment gen from.
func (s *Store) file(gen uint64) (*os.File, error) {
	if s.tail != nil && gen == s.tailGen() {
		return s.tail, nil
	}
	if f := s.readers[gen]; f != nil {
		return f, nil
	}
	f, err := os.Open(filepath.Join(s.path, segName(gen)))
	if err != nil {
		return nil, err
	}
	s.keepReader(gen, f)
	return f, nil
}

// readPut reads and checks the put record of e.
func (s *Store) readPut(e *entry) (putBody, error) {
	f, err := s.file(e.gen())
	if err != nil {
		return putBody{}, err
	}
	buf := make([]byte, e.size)
	if _, err := f.ReadAt(buf, int64(e.off())); err != nil {
		return putBody{}, fmt.Errorf("reading seq %d: %w", e.seq, err)
	}
	typ, body, _, ok := readRecord(buf, 0, s.seedAt(e.gen(), e.off()))
	if !ok || typ != recPut {
		return putBody{}, formatErr("seq %d: the record at %s:%d fails its checks", e.seq, segName(e.gen()), e.off())
	}
	p, err := parsePut(body)
	if err == nil && p.seq != e.seq {
		err = formatErr("the record at %s:%d holds seq %d, not %d", segName(e.gen()), e.off(), p.seq, e.seq)
	}
	return p, err
}

// seedAt is the CRC seed of the record at off in segment gen.
func (s *Store) seedAt(gen uint64, off int) uint32 {
	run := uint32(0)
	for _, r := range s.runs[gen] {
		if r.off <= off {
			run = r.run
		}
	}
	return runSeed(gen, run)
}

// fail marks the store broken after a failed write or fdatasync: what was written since the
// last good fdatasync may or may not be on disk, and Linux may have dropped the dirty pages
// after reporting the error, so no later fdatasync could be trusted to cover them.
func (s *Store) fail(err error) error {
	if s.broken == nil {
		s.broken = fmt.Errorf("outbox: %w (nothing more is stored until gatewayd restarts)", err)
		s.log.Error().Err(err).Str("path", s.path).
			Msg("the outbox could not write to its disk; forwarded messages are refused until gatewayd restarts (dmesg: a failing SD card?)")
	}
	s.synced.Broadcast()
	s.arrivals.Broadcast()
	return s.broken
}

// concurrencyWindow is how long a count of Puts waiting at once is remembered.
const concurrencyWindow = 250 * time.Millisecond

// notePut counts a put record, ending at end, that waits for an fdatasync; streams says its
// source has others in flight. The caller holds mu.
func (s *Store) notePut(end uint64, streams bool) {
	now := time.Now()
	s.pendingEnds = append(s.pendingEnds, end)
	if !s.lastArrival.IsZero() {
		g := min(max(now.Sub(s.lastArrival), 0), time.Second)
		s.gap += (g - s.gap) / 8
	}
	s.lastArrival = now
	if streams {
		s.streamed = now
	}
	if since := now.Sub(s.peakSince); since > concurrencyWindow {
		s.peakBefore, s.peak, s.peakSince = s.peak, 0, now
		if since > 2*concurrencyWindow {
			s.peakBefore = 0
		}
	}
	s.peak = max(s.peak, s.waiting())
	s.arrivals.Broadcast()
}

// waiting is how many put records are not yet durable. The caller holds mu.
func (s *Store) waiting() int { return len(s.pendingEnds) }

// company is how many Puts a commit may wait for: the most that waited at once lately.
func (s *Store) company() int { return max(s.peak, s.peakBefore) }

// madeDurable records that every byte before end is on disk, and with it every put up to seq
// vis: those puts stop waiting and count as stored. The caller holds mu.
func (s *Store) madeDurable(end, vis uint64) {
	s.durable = max(s.durable, end)
	s.visible = max(s.visible, vis)
	n := 0
	for n < len(s.pendingEnds) && s.pendingEnds[n] <= s.durable {
		n++
	}
	if n > 0 {
		s.pendingEnds = s.pendingEnds[n:]
		s.stored.Add(uint64(n))
	}
}

// waitDurable returns once every byte before log position pos is on disk. If no fdatasync is
// running it runs one at once, for itself and whatever else was appended meanwhile; if one is
// running it waits for it, and then — the records appended after it began are not covered —
// runs or waits for the next.
//
// A put's wait (put true) that is to start an fdatasync may first wait for company (gather).
// The caller holds mu; it is released while waiting.
func (s *Store) waitDurable(pos uint64, put bool) error {
	for s.durable < pos {
		if s.broken != nil {
			return s.broken
		}
		if s.syncing {
			s.synced.Wait()
			continue
		}
		s.syncing = true
		if put && !s.closed {
			s.gather()
		}
		f, target, vis := s.tail, s.written, s.lastPut
		s.mu.Unlock()
		err := fdatasync(f)
		s.mu.Lock()
		s.syncing = false
		s.syncs.Add(1)
		if errors.Is(err, os.ErrClosed) && s.durable >= target {
			// A segment switch made f's bytes durable and f was closed since: nothing lost.
			err = nil
		}
		if err != nil {
			s.fail(err)
		} else {
			s.madeDurable(target, vis)
		}
		s.synced.Broadcast()
		s.retire()
	}
	return nil
}

// streamWaits bounds the wait of a commit for a stream (see gather), in CommitWaits.
const streamWaits = 3

// gather is the wait of a commit's leader for more puts to share its fdatasync. The caller
// holds mu and leads the next fdatasync.
//
// When several Puts have lately been waiting at once — several clients publishing — it waits
// until as many are waiting again: as long as that should take at the rate Puts have been
// arriving, at most CommitWait, and not at all when Puts come further apart than CommitWait.
//
// When a stream has lately been appending — a source with several messages in flight, whose
// next comes while the last waits (Append's inFlight) — it then goes on waiting while puts
// keep coming (one within a few gaps of the last, and of CommitWait), until the page the commit
// writes is full, at most streamWaits × CommitWait in all. A commit writes at least a whole
// page, so filling it is what spares the card; and a stream does not wait for its PUBACKs, so
// its publishing does not slow for it.
//
// A lone publisher that waits for each message can never make two Puts wait at once, nor
// stream, so it never waits.
func (s *Store) gather() {
	if s.cfg.CommitWait <= 0 {
		return
	}
	start := time.Now()
	streaming := time.Since(s.streamed) <= concurrencyWindow
	page := s.tailOff / pageSize
	full := func() bool { return streaming && s.tailOff/pageSize != page }
	// Long enough for the others to come at the rate Puts have been coming; not at all when
	// not even one is due within CommitWait.
	if want := s.company(); want > s.waiting() && s.gap < s.cfg.CommitWait {
		if d := min(s.cfg.CommitWait, time.Duration(want-s.waiting())*s.gap); d > 0 {
			s.waitUntil(d, func() bool { return s.waiting() >= want || full() })
		}
	}
	if !streaming {
		return
	}
	silence := min(4*s.gap, s.cfg.CommitWait)
	over := func() bool { // the page is full, or the puts have stopped coming
		return full() || time.Since(s.lastArrival) >= silence
	}
	for !over() && !s.closed && s.broken == nil {
		left := streamWaits*s.cfg.CommitWait - time.Since(start)
		if left <= 0 {
			return
		}
		s.waitUntil(min(left, silence-time.Since(s.lastArrival)), over)
	}
}

// waitUntil waits until done says so, d has passed or the store closes or breaks. The caller
// holds mu and leads the next fdatasync; done is called with mu held, each time a put is noted.
func (s *Store) waitUntil(d time.Duration, done func() bool) {
	s.waitGen++
	gen := s.waitGen
	s.waitOver = false
	t := time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.waitGen == gen {
			s.waitOver = true
			s.arrivals.Broadcast()
		}
		s.mu.Unlock()
	})
	for !done() && !s.waitOver && !s.closed && s.broken == nil {
		s.arrivals.Wait()
	}
	t.Stop()
}

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

// logRemoval writes the remove record of sp (it need not be durable: see Store).
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
	for _, seq := range sp.seqs {
		s.removeEntry(s.idx.find(seq))
	}
	err := s.logRemoval(removeExpired, &sp)
	total := s.expired.Add(uint64(sp.n))
	s.log.Warn().Str(logging.EventKey, logging.EventOutboxExpired).Int("messages", sp.n).Int64("bytes", sp.bytes).
		Uint64("first_seq", sp.first).Uint64("last_seq", sp.last).Dur("max_age", s.cfg.MaxAge).
		Uint64("expired_total", total).AnErr("write_error", err).Msg("messages older than max_age dropped from the outbox")
	return sp.n
}

// Put stores a message and returns its sequence number once it is on disk (written and
// fdatasynced; see Store for how concurrent Puts share an fdatasync): Append, then Wait. When
// the store is full it returns an error wrapping ErrFull (OverflowRefuse) or drops the oldest
// messages to make room (OverflowDropOldest). Messages past MaxAge are dropped on the way.
// Every refusal and drop is logged and counted.
func (s *Store) Put(topic string, payload []byte, qos int, retain bool) (uint64, error) {
	t, err := s.Append(topic, payload, qos, retain, 0)
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
}

// Seq is the message's sequence number.
func (t Ticket) Seq() uint64 { return t.seq }

// Append is Put without the wait: it writes the message's record, with the same checks and
// bounds as Put, and returns without waiting for it to be durable. Until Wait has said so it
// may not be on disk and is not given to the drainer (Pending shows no message past the last
// durable one). inFlight is how many earlier messages of the same source (a local client) are
// still waiting to be known durable: more than 0 says the source streams, and a commit waits
// for more of its messages (see Store.gather). Messages appended one after another share an
// fdatasync, as concurrent Puts do. A message nobody waits for is made durable by the next
// fdatasync, whoever starts it, or by Close.
func (s *Store) Append(topic string, payload []byte, qos int, retain bool, inFlight int) (Ticket, error) {
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
	flags := byte(qos)
	if retain {
		flags |= putRetain
	}
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
	s.lastPut = seq
	s.notePut(end, inFlight > 0)
	return Ticket{seq: seq, end: end, topic: topic, size: size}, nil
}

// Wait returns once t's message is on disk, leading or sharing an fdatasync (see Store). If the
// store cannot make it durable (a write or fdatasync failed) the message is taken out again —
// perhaps it is on disk, perhaps not: the client is told it was not stored and sends it again —
// and Wait returns the error, logged and counted as Put's refusals are.
func (s *Store) Wait(t Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.waitDurable(t.end, true)
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
	for _, seq := range sp.seqs {
		s.removeEntry(s.idx.find(seq))
	}
	err := s.logRemoval(removeDropped, &sp)
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
	var bad []uint64
	var problems []error
	s.idx.from(after+1, func(e *entry) bool {
		if len(out) >= max || e.seq > s.visible {
			return false
		}
		p, err := s.readPut(e)
		if err != nil {
			// Checked at Open: only a card that changed under the daemon gets here.
			bad = append(bad, e.seq)
			problems = append(problems, err)
			return true
		}
		m := p.message()
		m.Attempts = int(e.attempts)
		out = append(out, m)
		return true
	})
	if len(bad) > 0 {
		var sp span
		for _, seq := range bad {
			if e := s.idx.find(seq); e != nil {
				sp.add(e)
				s.removeEntry(e)
			}
		}
		err := s.logRemoval(removeRejected, &sp)
		s.damagedN.Add(uint64(sp.n))
		s.log.Error().Str(logging.EventKey, logging.EventOutboxDamaged).Err(errors.Join(problems...)).Int("dropped", sp.n).
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
		err = s.waitDurable(end, false)
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
		s.removeEntry(e)
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
	s.arrivals.Broadcast() // a commit waiting for company stops waiting
	for s.syncing {
		s.synced.Wait()
	}
	var err error
	if s.broken == nil {
		var end uint64
		if _, _, end, err = s.append(recClean, nil); err == nil {
			err = s.waitDurable(end, false)
		}
	}
	s.synced.Broadcast()
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
