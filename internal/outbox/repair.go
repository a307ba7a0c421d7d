package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatewayd/gatewayd/internal/logging"
)

// A store is replaced — after a migration from bbolt, or to repair damage — by writing the new
// one in full beside it (FileName + newSuffix), fdatasyncing it, and then renaming: the old one
// away, the new one into place. finishReplace, at every Open, completes a replacement that a
// crash interrupted or drops an unfinished copy, so that a crash at any point loses nothing.
const (
	newSuffix      = ".new"      // a store written to replace the one at FileName
	oldSuffix      = ".old"      // a store replaced by a repaired copy, deleted once that is in place
	migratedSuffix = ".migrated" // the bbolt file, deleted once its copy is in place
)

// finishReplace completes or undoes a replacement a crash interrupted.
func (s *Store) finishReplace() error {
	tmp, exists := s.path+newSuffix, func(p string) (bool, error) {
		_, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	haveTmp, err := exists(tmp)
	if err != nil {
		return err
	}
	have, err := exists(s.path)
	if err != nil {
		return err
	}
	switch {
	case haveTmp && have:
		// The copy was never finished (it is renamed only once durable): drop it.
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	case haveTmp:
		if err := os.Rename(tmp, s.path); err != nil {
			return err
		}
		have = true
	}
	for _, leftover := range []string{s.path + oldSuffix, s.path + migratedSuffix} {
		there, err := exists(leftover)
		switch {
		case err != nil:
			return err
		case !there:
		case have:
			if err := os.RemoveAll(leftover); err != nil {
				return err
			}
		default:
			// Moved away, and no copy ever took its place (nothing should do that): take it back.
			if err := os.Rename(leftover, s.path); err != nil {
				return err
			}
			have = true
		}
	}
	return syncDir(s.cfg.Dir)
}

// repair writes the messages load could read into a fresh store and puts it in place: the old
// store is set aside (kept for inspection) after structural damage, deleted when only records
// were stepped over. Every copied message counts as sent once (damage may have taken its send
// records), so a resend is reported as a possible duplicate.
func (s *Store) repair(rep *replayed) error {
	b, err := s.newBuilder(s.nextSeq)
	if err != nil {
		return err
	}
	var copied, lost int
	var werr error
	s.idx.from(0, func(e *entry) bool {
		p, err := s.readPut(e)
		if err != nil {
			lost++
			return true
		}
		p.flags &= putQoS | putRetain
		p.attempts = max(uint32(e.attempts), 1)
		if werr = b.put(p); werr != nil {
			return false
		}
		copied++
		return true
	})
	if werr == nil {
		werr = b.finish()
	}
	s.closeFiles()
	if werr != nil {
		os.RemoveAll(b.dir)
		return fmt.Errorf("outbox: repairing %s: %w", s.path, werr)
	}
	why := errors.Join(rep.structural, rep.problem())
	if rep.structural != nil {
		if err := s.moveAside(why, copied); err != nil {
			return err
		}
	} else if err := os.Rename(s.path, s.path+oldSuffix); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := s.finishReplace(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	// Damaged counts what was found damaged: records stepped over, messages that could not be
	// read, and segments cut short, unreadable or missing (how many messages those held is
	// not known).
	s.damagedN.Add(uint64(rep.damaged + lost + rep.broken))
	s.log.Error().Str(logging.EventKey, logging.EventOutboxDamaged).Str("path", s.path).Err(why).
		Int("damaged_records", rep.damaged).Int("unreadable_messages", lost).Int("messages_kept", copied).Str("set_aside", s.setAside).
		Msg("damage found in the outbox; the messages that could be read were copied to a fresh store (each counts as sent once)")
	return nil
}

// newBuilder makes an empty directory beside the store (FileName + newSuffix: an unfinished
// one a crash left is dropped) and returns a builder of the store that replaces it, whose next
// seq is at least nextSeq. The caller removes b.dir when the copy fails.
func (s *Store) newBuilder(nextSeq uint64) (*builder, error) {
	tmp := s.path + newSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &builder{dir: tmp, nextSeq: nextSeq, segSize: s.cfg.segSize, chunk: s.cfg.chunk}, nil
}

// builder writes a new store directory from scratch, one segment after another, each written
// in full (records, then zeros) and fdatasynced; finish syncs the directory.
type builder struct {
	dir            string
	nextSeq        uint64 // the new store's next seq: at least this
	segSize, chunk int64  // Config's
	gen            uint64
	size           int
	buf            []byte // the segment being written, nil when none
}

func (b *builder) put(p putBody) error {
	b.nextSeq = max(b.nextSeq, p.seq+1)
	body := p.append(nil)
	n := recHeaderSize + len(body)
	if b.buf != nil && len(b.buf)+n+recHeaderSize > b.size {
		if err := b.flush(true); err != nil {
			return err
		}
	}
	if b.buf == nil {
		b.start(n)
	}
	b.buf = appendRecord(b.buf, runSeed(b.gen, 0), recPut, body)
	return nil
}

func (b *builder) start(need int) {
	b.gen++
	b.size = max(int(b.segSize), (segHeaderSize+need+recHeaderSize+pageSize-1)/pageSize*pageSize)
	b.buf = encodeHeader(segHeader{gen: b.gen, nextSeq: max(b.nextSeq, 1)})
}

// flush writes the segment being built, ended by an END record unless it is the last.
func (b *builder) flush(end bool) error {
	if end {
		b.buf = appendRecord(b.buf, runSeed(b.gen, 0), recEnd, nil)
	}
	f, err := os.OpenFile(filepath.Join(b.dir, segName(b.gen)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	size := b.size
	if !end { // the newest segment: as large as it needs now, it grows as the store's would
		size = min(b.size, (len(b.buf)+recHeaderSize+int(b.chunk)-1)/int(b.chunk)*int(b.chunk))
	}
	data := append(b.buf, make([]byte, size-len(b.buf))...)
	for off := 0; off < len(data) && err == nil; off += pageSize {
		_, err = f.WriteAt(data[off:min(off+pageSize, len(data))], int64(off))
	}
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	b.buf = nil
	return err
}

// finish writes the last segment (an empty one for an empty store) and syncs the directory.
func (b *builder) finish() error {
	if b.buf == nil {
		b.start(0)
	}
	if err := b.flush(false); err != nil {
		return err
	}
	return syncDir(b.dir)
}
