package migrate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkFile reads a bbolt file with plain reads (no mmap) and checks that its structure is
// sound before bbolt is allowed to map it: a valid meta page, a file at least as long as the
// pages the meta claims, a freelist within bounds, and a B+tree whose every page pointer,
// element and key/value range stays inside the file and whose pages are reachable once only.
//
// Why not bbolt's own Tx.Check: it runs in a goroutine of its own, follows page pointers without
// bounds or cycle checks (a looping tree recurses until the stack limit, which is fatal, and a
// page past the end of a truncated file faults in a goroutine we cannot guard), so on the very
// files it is meant to judge it can take the daemon down. This walk is iterative, bounded and
// allocation-limited; it reads every page of the tree once.
//
// The layout it reads is bbolt's on-disk format version 2 (go.etcd.io/bbolt internal/common:
// page.go, meta.go, bucket.go), in the machine's byte order as bbolt writes it.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c := &checker{f: f, size: fi.Size()}
	return c.run()
}

// bbolt format constants (internal/common).
const (
	bMagic        = 0xED0CDAED
	bVersion      = 2
	bPageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	bElement      = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bBucketHeader = 16 // root pgid u64, sequence u64
	bMetaSize     = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	bBranch       = 0x01
	bLeaf         = 0x02
	bMeta         = 0x04
	bFreelist     = 0x10
	bBucketLeaf   = 0x01
	bNoFreelist   = 0xffffffffffffffff
	maxDepth      = 64 // deeper than any real tree; a deeper one is a loop or garbage
)

var ne = binary.NativeEndian

// errDamaged marks a structural problem in the file.
var errDamaged = errors.New("damaged store file")

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) exist
	txid     uint64
}

type checker struct {
	f        io.ReaderAt
	size     int64
	pageSize int64
	m        meta
	seen     map[uint64]bool // pages reached so far (each page id of a multi-page run)
}

func damaged(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errDamaged, fmt.Sprintf(format, a...))
}

// parseMeta decodes and validates the meta in a page buffer (header included).
func parseMeta(p []byte) (meta, error) {
	if len(p) < bPageHeader+bMetaSize {
		return meta{}, damaged("meta page cut short")
	}
	b := p[bPageHeader : bPageHeader+bMetaSize]
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case ne.Uint32(b[0:4]) != bMagic:
		return meta{}, damaged("not a bbolt file (magic %#x)", ne.Uint32(b[0:4]))
	case ne.Uint32(b[4:8]) != bVersion:
		return meta{}, damaged("bbolt format version %d, want %d", ne.Uint32(b[4:8]), bVersion)
	case ne.Uint64(b[56:64]) != h.Sum64():
		return meta{}, damaged("meta checksum mismatch")
	}
	return meta{
		pageSize: ne.Uint32(b[8:12]),
		root:     ne.Uint64(b[16:24]),
		freelist: ne.Uint64(b[32:40]),
		pgid:     ne.Uint64(b[40:48]),
		txid:     ne.Uint64(b[48:56]),
	}, nil
}

func (c *checker) readAt(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > c.size {
		return nil, damaged("read of %d bytes at %d beyond the end of the file (%d bytes)", n, off, c.size)
	}
	buf := make([]byte, n)
	if _, err := c.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("reading %d bytes at %d: %w", n, off, err)
	}
	return buf, nil
}

// pickMeta mirrors bbolt: the page size comes from meta 0 if valid, else from the first valid
// meta 1 found at a power-of-two offset; then the valid meta with the higher txid wins.
func (c *checker) pickMeta() error {
	if c.size < 2*1024 {
		return damaged("file of %d bytes is shorter than two pages", c.size)
	}
	var m0, m1 meta
	var err0, err1 error
	p0, err := c.readAt(0, min(c.size, 4096))
	if err != nil {
		return err
	}
	m0, err0 = parseMeta(p0)
	ps := int64(0)
	if err0 == nil {
		ps = int64(m0.pageSize)
	} else {
		for i := 0; i <= 14; i++ {
			off := int64(1024) << i
			if off+bPageHeader+bMetaSize > c.size {
				break
			}
			p, err := c.readAt(off, bPageHeader+bMetaSize)
			if err != nil {
				return err
			}
			if m, err := parseMeta(p); err == nil && int64(m.pageSize) == off {
				ps = off
				break
			}
		}
	}
	if ps < 1024 || ps > 1<<24 || ps&(ps-1) != 0 {
		return fmt.Errorf("no valid meta page: %w", err0)
	}
	if 2*ps > c.size {
		return damaged("file of %d bytes is shorter than two %d-byte pages", c.size, ps)
	}
	p0, err = c.readAt(0, bPageHeader+bMetaSize)
	if err != nil {
		return err
	}
	m0, err0 = parseMeta(p0)
	p1, err := c.readAt(ps, bPageHeader+bMetaSize)
	if err != nil {
		return err
	}
	m1, err1 = parseMeta(p1)
	a, errA, b, errB := m0, err0, m1, err1
	if m1.txid > m0.txid {
		a, errA, b, errB = m1, err1, m0, err0
	}
	switch {
	case errA == nil:
		c.m = a
	case errB == nil:
		c.m = b
	default:
		return fmt.Errorf("both meta pages invalid: %w", errA)
	}
	if int64(c.m.pageSize) != ps {
		return damaged("meta page size %d disagrees with the layout (%d)", c.m.pageSize, ps)
	}
	c.pageSize = ps
	return nil
}

func (c *checker) run() error {
	if err := c.pickMeta(); err != nil {
		return err
	}
	m := c.m
	if m.pgid < 3 || m.pgid > uint64(c.size/c.pageSize) {
		return damaged("the meta page claims %d pages; the file holds %d (truncated?)", m.pgid, c.size/c.pageSize)
	}
	c.seen = map[uint64]bool{0: true, 1: true}
	free, err := c.freelist()
	if err != nil {
		return err
	}
	if m.root < 2 || m.root >= m.pgid {
		return damaged("root bucket page %d out of range", m.root)
	}
	if _, err := c.tree(m.root, 0, nil, nil); err != nil {
		return err
	}
	for id := range free {
		if c.seen[id] {
			return damaged("page %d is both free and in use", id)
		}
	}
	return nil
}

// page reads page id and its overflow pages, checking the header.
func (c *checker) page(id uint64, wantFlags uint16) ([]byte, error) {
	if id < 2 || id >= c.m.pgid {
		return nil, damaged("page %d out of range [2,%d)", id, c.m.pgid)
	}
	h, err := c.readAt(int64(id)*c.pageSize, bPageHeader)
	if err != nil {
		return nil, err
	}
	if got := ne.Uint64(h[0:8]); got != id {
		return nil, damaged("page %d holds the header of page %d", id, got)
	}
	if flags := ne.Uint16(h[8:10]); flags&wantFlags == 0 || flags&(flags-1) != 0 {
		return nil, damaged("page %d has type %#x", id, flags)
	}
	overflow := uint64(ne.Uint32(h[12:16]))
	if id+overflow >= c.m.pgid {
		return nil, damaged("page %d runs %d pages past the high-water mark", id, overflow)
	}
	for i := id; i <= id+overflow; i++ {
		if c.seen[i] {
			return nil, damaged("page %d is reached twice", i)
		}
		c.seen[i] = true
	}
	return c.readAt(int64(id)*c.pageSize, int64(overflow+1)*c.pageSize)
}

// freelist checks the freelist page and returns the free page ids.
func (c *checker) freelist() (map[uint64]bool, error) {
	if c.m.freelist == bNoFreelist {
		// bbolt would rebuild the freelist with a walk in a goroutine we cannot guard; this
		// store always syncs its freelist, so a file without one is not ours.
		return nil, damaged("no synced freelist")
	}
	p, err := c.page(c.m.freelist, bFreelist)
	if err != nil {
		return nil, fmt.Errorf("freelist: %w", err)
	}
	idx, count := uint64(0), uint64(ne.Uint16(p[10:12]))
	if count == 0xFFFF {
		if len(p) < bPageHeader+8 {
			return nil, damaged("freelist page cut short")
		}
		idx, count = 1, ne.Uint64(p[bPageHeader:bPageHeader+8])
	}
	if count > uint64(len(p)-bPageHeader)/8-idx {
		return nil, damaged("freelist claims %d ids; its pages hold %d", count, uint64(len(p)-bPageHeader)/8-idx)
	}
	free := make(map[uint64]bool, count)
	for i := uint64(0); i < count; i++ {
		off := bPageHeader + (idx+i)*8
		id := ne.Uint64(p[off : off+8])
		if id < 2 || id >= c.m.pgid {
			return nil, damaged("free page id %d out of range", id)
		}
		if free[id] || c.seen[id] {
			return nil, damaged("free page id %d listed twice or in use", id)
		}
		free[id] = true
	}
	return free, nil
}

// tree checks the B+tree rooted at page id, whose keys must lie in [lo, hi) (nil: unbounded),
// with bbolt's own key-order rules (tx_check.go), and returns its largest key. A tree whose keys
// are out of order would hide records from bbolt's lookups: deleting a damaged one would fail
// silently and reads would stumble on it later.
func (c *checker) tree(id uint64, depth int, lo, hi []byte) ([]byte, error) {
	if depth > maxDepth {
		return nil, damaged("tree deeper than %d levels at page %d", maxDepth, id)
	}
	p, err := c.page(id, bBranch|bLeaf)
	if err != nil {
		return nil, err
	}
	if ne.Uint16(p[8:10]) == bLeaf {
		return c.leaf(p, depth, lo, hi)
	}
	count := int(ne.Uint16(p[10:12]))
	if count == 0 || bPageHeader+count*bElement > len(p) {
		return nil, damaged("branch page %d with %d elements", id, count)
	}
	key := func(i int) ([]byte, error) {
		e := bPageHeader + i*bElement
		pos, ksize := int64(ne.Uint32(p[e:e+4])), int64(ne.Uint32(p[e+4:e+8]))
		if int64(e)+pos+ksize > int64(len(p)) {
			return nil, damaged("branch page %d: key %d beyond the page", id, i)
		}
		return p[int64(e)+pos : int64(e)+pos+ksize], nil
	}
	running := lo
	var maxKey []byte
	for i := 0; i < count; i++ {
		k, err := key(i)
		if err != nil {
			return nil, err
		}
		if err := keyOrder(id, i, k, running, hi); err != nil {
			return nil, err
		}
		next := hi
		if i < count-1 {
			if next, err = key(i + 1); err != nil {
				return nil, err
			}
		}
		e := bPageHeader + i*bElement
		if maxKey, err = c.tree(ne.Uint64(p[e+8:e+16]), depth+1, k, next); err != nil {
			return nil, err
		}
		running = maxKey
	}
	return maxKey, nil
}

// keyOrder mirrors bbolt's verifyKeyOrder: the first key of a page is >= prev (the bound from
// the parent), later keys are > prev, and every key is < hi.
func keyOrder(id uint64, i int, k, prev, hi []byte) error {
	switch c := bytes.Compare(prev, k); {
	case i == 0 && prev != nil && c > 0:
		return damaged("page %d: first key below its parent's bound", id)
	case i > 0 && c >= 0:
		return damaged("page %d: key %d out of order", id, i)
	}
	if hi != nil && bytes.Compare(k, hi) >= 0 {
		return damaged("page %d: key %d beyond its parent's bound", id, i)
	}
	return nil
}

// leaf checks the elements of a leaf page (p includes its header) and descends into buckets.
// It returns the page's last key.
func (c *checker) leaf(p []byte, depth int, lo, hi []byte) ([]byte, error) {
	id := ne.Uint64(p[0:8])
	count := int(ne.Uint16(p[10:12]))
	if bPageHeader+count*bElement > len(p) {
		return nil, damaged("leaf page with %d elements does not fit", count)
	}
	prev := lo
	for i := 0; i < count; i++ {
		e := bPageHeader + i*bElement
		flags := ne.Uint32(p[e : e+4])
		pos, ksize, vsize := int64(ne.Uint32(p[e+4:e+8])), int64(ne.Uint32(p[e+8:e+12])), int64(ne.Uint32(p[e+12:e+16]))
		start := int64(e) + pos
		if start+ksize+vsize > int64(len(p)) {
			return nil, damaged("leaf element %d beyond its page", i)
		}
		k := p[start : start+ksize]
		if err := keyOrder(id, i, k, prev, hi); err != nil {
			return nil, err
		}
		prev = k
		if flags&^bBucketLeaf != 0 {
			return nil, damaged("leaf element %d has flags %#x", i, flags)
		}
		if flags&bBucketLeaf == 0 {
			continue
		}
		v := p[start+ksize : start+ksize+vsize]
		if len(v) < bBucketHeader {
			return nil, damaged("bucket value of %d bytes", len(v))
		}
		if depth+1 > maxDepth {
			return nil, damaged("buckets nested deeper than %d", maxDepth)
		}
		if root := ne.Uint64(v[0:8]); root != 0 {
			if _, err := c.tree(root, depth+1, nil, nil); err != nil {
				return nil, err
			}
			continue
		}
		// An inline bucket: its page follows the bucket header inside the value.
		in := v[bBucketHeader:]
		if len(in) < bPageHeader || ne.Uint16(in[8:10]) != bLeaf {
			return nil, damaged("inline bucket without a leaf page")
		}
		if _, err := c.leaf(in, depth+1, nil, nil); err != nil {
			return nil, err
		}
	}
	if count == 0 {
		return nil, nil
	}
	return prev, nil
}
