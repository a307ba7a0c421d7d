package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
)

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
	stamp := s.path + ".damaged-" + s.cfg.Now().UTC().Format("20060102T150405.000Z")
	aside := stamp
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", stamp, i)
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

// A Migrator copies the store an earlier gatewayd left at path (a file where the store
// directory belongs) into to: its next seq first, then each of its messages in seq order. It
// returns how many it dropped as damaged (each logged by it). An error that is not ErrLocked
// nor an unusable environment (permissions, a full or read-only disk) says the file is
// damaged: Open sets it aside and starts an empty store. internal/outbox/migrate has the one
// for the bbolt store.
type Migrator interface {
	Migrate(path string, to *Import) (damaged int, err error)
}

// An Import is a new store being written from the messages of an earlier one, in full beside
// the store, and put in its place only once it is durable.
type Import struct {
	b *builder
	n int
}

// SetNextSeq says that the earlier store's next message would have had seq (so that no seq is
// reused); call it before the first Put.
func (im *Import) SetNextSeq(seq uint64) { im.b.nextSeq = max(im.b.nextSeq, seq) }

// Put copies a message: its Seq (above the last one's), Topic, Payload, QoS, Retain, Stored
// and Attempts.
func (im *Import) Put(m Message) error {
	im.n++
	return im.b.put(putBody{seq: m.Seq, stored: m.Stored.UnixNano(), flags: putFlags(m.QoS, m.Retain), attempts: uint32(max(m.Attempts, 0)),
		topic: m.Topic, payload: m.Payload})
}

// migrate copies the store file of an earlier gatewayd at s.path into a new store directory
// (Config.Migrate) and puts that in its place. Without a Migrator, or if the file fails its
// checks, the error is a damage error (Open sets the file aside); another process holding it
// gives ErrLocked.
func (s *Store) migrate() error {
	if s.cfg.Migrate == nil {
		return formatErr("%s is a file: the store of an earlier gatewayd, and no migration from it is built in", s.path)
	}
	b, err := s.newBuilder(0)
	if err != nil {
		return err
	}
	im := &Import{b: b}
	bad, err := s.cfg.Migrate.Migrate(s.path, im)
	if err == nil {
		err = b.finish()
	}
	if err != nil {
		os.RemoveAll(b.dir)
		return err
	}
	// The new store is durable: swap. A crash from here on is finished by finishReplace.
	if err := os.Rename(s.path, s.path+migratedSuffix); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := s.finishReplace(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	s.damagedN.Add(uint64(bad))
	s.log.Info().Str(logging.EventKey, "outbox_migrated").Str("path", s.path).Int("messages", im.n).Int("damaged", bad).
		Uint64("next_seq", im.b.nextSeq).Msg("outbox: the bbolt store of an earlier gatewayd was copied into the segment log and deleted")
	return nil
}
