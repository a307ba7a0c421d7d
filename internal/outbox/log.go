package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// maxReaders bounds the older segments kept open for reading.
const maxReaders = 4

// runStart is where a run of a segment begins (after its RUN record).
type runStart struct {
	off int
	run uint32
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
			err = s.commit.await(s, end, false)
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
		s.madeDurable(s.written, s.lastPut())
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
	for len(s.segs) > 1 && s.segs[0].live == 0 && s.commit.durable >= s.segs[0].freedAt {
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

// keepReader keeps f open for reading segment gen, closing another reader (any: the map's
// order) when maxReaders are open.
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

// readPut reads and checks the put record of e, into a buffer of its own that the payload
// aliases.
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
	s.commit.wake()
	return s.broken
}

// The log's side of a commit (commitLog); the committer calls these with mu held.

func (s *Store) stopped() error { return s.broken }
func (s *Store) closing() bool  { return s.closed }
func (s *Store) page() int      { return s.tailOff / pageSize }

func (s *Store) commitPoint() (*os.File, uint64, uint64) { return s.tail, s.written, s.lastPut() }

// lastPut is the seq of the last put appended: Append takes nextSeq only once its record is
// written. Before the first put of a run it is the last seq of the store, already visible.
func (s *Store) lastPut() uint64 { return s.nextSeq - 1 }

// committed takes the outcome of an fdatasync that began at commitPoint (end, vis).
func (s *Store) committed(end, vis uint64, err error) {
	s.syncs.Add(1)
	if errors.Is(err, os.ErrClosed) && s.commit.durable >= end {
		// A segment switch made the file's bytes durable and closed it since: nothing lost.
		err = nil
	}
	if err != nil {
		s.fail(err)
	} else {
		s.madeDurable(end, vis)
	}
	s.retire()
}

// madeDurable records that every byte before end is on disk, and with it every put up to seq
// vis: those puts count as stored and Pending shows them.
func (s *Store) madeDurable(end, vis uint64) {
	s.visible = max(s.visible, vis)
	s.stored.Add(uint64(s.commit.madeDurable(end)))
}
