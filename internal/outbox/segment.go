package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// segment is one segment file of the log.
type segment struct {
	gen       uint64
	size      int64  // file length
	live      int    // stored messages whose put record is in it
	liveBytes int64  // their put records' bytes
	freedAt   uint64 // log position after the copies relocate made of its messages
	ended     bool   // its END record is written: nothing more goes into it
}

const (
	segSuffix = ".seg"
	// spareName is a retired segment kept for reuse: taking it for the next segment costs a
	// header and a rename, where a new one costs segmentSize of zeros written to the card.
	spareName = "spare"
	tmpSuffix = ".tmp"
	// pageSize is the unit of the writes that fill a new segment: whole-page writes leave the
	// page cache in pages, so that a later append dirties (and /proc/self/io counts) one page,
	// not a large folio, on kernels that have them.
	pageSize = 4096
)

func segName(gen uint64) string { return fmt.Sprintf("%016x%s", gen, segSuffix) }

// parseSegName returns the gen of a segment file name.
func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	gen, err := strconv.ParseUint(hex, 16, 64)
	return gen, err == nil && gen > 0
}

// listSegments returns the gens of the segment files in dir, oldest first, and whether a spare
// is there. Temporary files left by a crash are removed.
func listSegments(dir string) (gens []uint64, spare bool, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, err
	}
	for _, de := range des {
		name := de.Name()
		switch gen, ok := parseSegName(name); {
		case ok && de.Type().IsRegular():
			gens = append(gens, gen)
		case name == spareName && de.Type().IsRegular():
			spare = true
		case strings.HasSuffix(name, tmpSuffix):
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, false, err
			}
		}
	}
	slices.Sort(gens)
	return gens, spare, nil
}

// readSegment reads a whole segment file into buf (grown as needed) and returns it.
func readSegment(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return buf[:0], err
	}
	n := int(fi.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, 0); err != nil {
		return buf[:0], err
	}
	return buf, nil
}

// makeSegment creates segment gen in dir, size bytes long (header, then zeros), durably: the
// file is written in full and fdatasynced under a temporary name, then renamed into place and
// the directory synced. It returns the file open for reading and writing.
func makeSegment(dir string, h segHeader, size int64) (*os.File, error) {
	tmp := filepath.Join(dir, segName(h.gen)+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	err = fill(f, encodeHeader(h), 0, size)
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, segName(h.gen)))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// fill writes zeros from from to size, a page at a time, head at the start of the first.
func fill(f *os.File, head []byte, from, size int64) error {
	page := make([]byte, pageSize)
	for off := from; off < size; off += pageSize {
		p := page[:min(pageSize, size-off)]
		clear(p)
		if off == from {
			copy(p, head)
		}
		if _, err := f.WriteAt(p, off); err != nil {
			return err
		}
	}
	return nil
}

// reuseSpare turns the spare into segment gen: a new header (the old records no longer pass
// their checks: their seed was another gen's), synced, then the rename, synced.
func reuseSpare(dir string, h segHeader) (*os.File, error) {
	path := filepath.Join(dir, spareName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	// Zero the first record's place too, so that the scan of the new segment stops at once
	// instead of checking an old record against the new seed.
	head := append(encodeHeader(h), make([]byte, recHeaderSize)...)
	_, err = f.WriteAt(head, 0)
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = os.Rename(path, filepath.Join(dir, segName(h.gen)))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// retireSegment removes a segment none of whose records are needed any more: it becomes the
// spare when there is none and it has the standard size, else it is deleted. The directory is
// synced, so that a later retirement never reaches the disk before this one (an older segment
// coming back after a crash is harmless only while every younger one is still there).
func retireSegment(dir string, gen uint64, size int64, spare bool, full int64) (bool, error) {
	path := filepath.Join(dir, segName(gen))
	var err error
	if !spare && size == full {
		err = os.Rename(path, filepath.Join(dir, spareName))
		spare = err == nil
	} else {
		err = os.Remove(path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return spare, err
	}
	return spare, syncDir(dir)
}

// fdatasync makes f's data durable (not its times: an fsync would put the inode, for its
// mtime, into the file system's journal at every commit). It holds a reference to f while it
// runs, so a Close meanwhile waits for it.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for serr = syscall.Fdatasync(int(fd)); serr == syscall.EINTR; serr = syscall.Fdatasync(int(fd)) {
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// syncDir makes the names in dir durable (a created, renamed or removed file).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
