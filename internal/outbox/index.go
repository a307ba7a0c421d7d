package outbox

import (
	"slices"
	"sort"
)

// entry is one stored message in memory: where its put record is, and what the store needs to
// know without reading it. 32 bytes and no pointers (the garbage collector skips the slice): a
// full 64 MiB store of 100-byte messages holds about 450,000 of them, some 14 MiB.
type entry struct {
	seq      uint64
	stored   int64  // Unix ns
	pos      uint64 // segment gen << 32 | offset of the put record in it
	size     uint32 // length of the put record; 0 once the message left the store
	attempts uint16 // sends recorded (saturating)
	marked   bool   // durably recorded as possibly sent: after a crash it counts as sent once
}

func (e *entry) gen() uint64 { return e.pos >> 32 }
func (e *entry) off() int    { return int(uint32(e.pos)) }

func makePos(gen uint64, off int) uint64 { return gen<<32 | uint64(uint32(off)) }

// counted is what the message counts against MaxBytes: its recordSize, from the length of its
// put record (which holds the topic and payload beside putFixed and the record header).
func (e *entry) counted() int64 {
	return int64(e.size) - int64(putRecordLen(0, 0)) + recordSize(0, 0)
}

// recordSize is what one message counts against Config.MaxBytes: topic, payload and 24 bytes —
// the key (8), value header (12) and checksum (4) of the bbolt store the log replaced, kept so
// that a bound holds as many messages as it did.
func recordSize(topicLen, payloadLen int) int64 { return int64(24 + topicLen + payloadLen) }

// index holds the stored messages ordered by seq. Removed entries stay (size 0) until they reach
// the head or make up half of the slice, so removing from the head and from near it — how
// acknowledgements arrive — costs O(1) amortised.
type index struct {
	es      []entry
	head    int // es[:head] are gone
	removed int // removed entries in es[head:]
	live    int
}

// add appends e; e.seq must be above every seq in the index.
func (x *index) add(e entry) {
	x.es = append(x.es, e)
	x.live++
}

// upsert adds e or, when its seq is stored, replaces it (recovery: a relocated copy of a
// message, or a message seen again); it keeps the order when e.seq is below the last seq.
func (x *index) upsert(e entry) {
	if n := len(x.es); n == x.head || x.es[n-1].seq < e.seq {
		x.add(e)
		return
	}
	i := x.search(e.seq)
	if i < len(x.es) && x.es[i].seq == e.seq {
		if x.es[i].size == 0 { // removed, now stored again
			x.removed--
			x.live++
		}
		x.es[i] = e
		return
	}
	x.es = slices.Insert(x.es, i, e)
	x.live++
}

// search is the position of the first entry at or above seq.
func (x *index) search(seq uint64) int {
	return x.head + sort.Search(len(x.es)-x.head, func(i int) bool { return x.es[x.head+i].seq >= seq })
}

// find returns the stored entry of seq, or nil.
func (x *index) find(seq uint64) *entry {
	i := x.search(seq)
	if i < len(x.es) && x.es[i].seq == seq && x.es[i].size != 0 {
		return &x.es[i]
	}
	return nil
}

// remove marks the entry gone. The pointer must come from find or first, and no other call
// may come in between.
func (x *index) remove(e *entry) {
	e.size = 0
	x.live--
	x.removed++
	for x.head < len(x.es) && x.es[x.head].size == 0 {
		x.head++
		x.removed--
	}
	if x.head == len(x.es) {
		x.es, x.head, x.removed = x.es[:0], 0, 0
		return
	}
	if x.head > len(x.es)/2 || x.removed > len(x.es)/2 {
		x.compact()
	}
}

func (x *index) compact() {
	kept := x.es[:0]
	for _, e := range x.es[x.head:] {
		if e.size != 0 {
			kept = append(kept, e)
		}
	}
	clear(x.es[len(kept):])
	x.es, x.head, x.removed = kept, 0, 0
}

// first is the oldest stored message, or nil.
func (x *index) first() *entry {
	if x.head < len(x.es) {
		return &x.es[x.head]
	}
	return nil
}

// from calls fn for the stored messages with seq >= seq, in order, until fn returns false. fn
// must not change the index.
func (x *index) from(seq uint64, fn func(*entry) bool) {
	for i := x.search(seq); i < len(x.es); i++ {
		if x.es[i].size != 0 && !fn(&x.es[i]) {
			return
		}
	}
}
