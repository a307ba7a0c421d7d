package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The store is a directory (FileName) of segment files, <gen>.seg, gen 16 hex digits: an
// append-only log, the oldest segment first. A segment is
//
//	header (segHeaderSize bytes):
//	  magic "GWOBXLOG" | version u16 | reserved u16 | reserved u32 | gen u64 | nextSeq u64 |
//	  reserved [12] | CRC-32C of the bytes before it
//	records, from segHeaderSize on, each
//	  length u32 | crc u32 | type u8 | body (length bytes)
//
// all integers big-endian. A record's crc is CRC-32C, seeded with the segment's gen and the
// current run (runSeed), over length, type and body. The run starts at 0 and a RUN record
// (written at each Open that goes on appending to the segment) moves it on, so that bytes left
// beyond the end of the log by an earlier life — a commit cut short by a power cut, or an older
// use of a recycled segment file — never pass as records of the present one: the scan stops at
// the first record that fails, and the next append goes there.
//
// A segment is written (zeros, or a recycled segment's old bytes) ahead of the records that go
// into it — it starts at segChunk and grows by segChunk up to segmentSize — so an append
// overwrites allocated blocks and its fdatasync writes only the data: the file's size, and with
// it the file system's journal, changes once per segChunk of log, not per commit.
//
// A segment that is not the newest ends with an END record, written and fdatasynced before
// anything goes into the next one: a scan of an older segment that stops before its END met
// damage, not the torn end of the log.
const (
	segMagic      = "GWOBXLOG"
	segVersion    = 1
	segHeaderSize = 48
	recHeaderSize = 4 + 4 + 1
	// segmentSize is the size of a segment file once grown; a record too large for one gets a
	// segment of its own, as large as it needs.
	segmentSize = 1 << 20
	// segChunk is the size a segment starts at and grows by: a store that stays small stays
	// small on the card, and the file size changes once per segChunk of log, not per commit.
	segChunk = 64 << 10
	// maxRecordLen bounds a record's body: no message may be larger than MaxBytes (at most
	// 1 GiB by the daemon's configuration) and nothing else is large.
	maxRecordLen = 1<<31 - 1
)

// The record types.
const (
	recPut    = 1 // a message: putBody
	recSend   = 2 // one more send of each message listed: seq runs
	recRemove = 3 // the messages listed left the store: reason u8, seq runs
	recRun    = 4 // the run changes: run u32; records after it use the new run's seed
	recEnd    = 5 // the segment is complete; the log goes on in the next one
	recClean  = 6 // the store was closed cleanly: every send before this point is recorded
)

// Why a message left the store (recRemove); for reading a log by hand, the store does not
// need it to recover.
const (
	removeDelivered = 1
	removeExpired   = 2
	removeDropped   = 3
	removeRejected  = 4
)

// Flags of a put record.
const (
	putQoS       = 0x03 // QoS, 0-2
	putRetain    = 0x04
	putReserved  = 0x08 // may have been sent without another record: see Store.Sending
	putRelocated = 0x10 // a copy of a message from an older segment, carrying its attempts
	putFlagsMask = 0x1f
)

// putFlags are the flags of a put record for a message's QoS and retain; message reads them
// back. qos is 0-2: Append checks it, and a migrated message's is two bits (3 gives a record
// that fails its checks at Open).
func putFlags(qos int, retain bool) byte {
	flags := byte(qos)
	if retain {
		flags |= putRetain
	}
	return flags
}

// putFixed is the body of a put record without its topic and payload:
// seq u64 | stored (Unix ns) i64 | flags u8 | attempts u32 | topic length u16.
const putFixed = 8 + 8 + 1 + 4 + 2

// putRecordLen is the length of a whole put record for a message.
func putRecordLen(topicLen, payloadLen int) int {
	return recHeaderSize + putFixed + topicLen + payloadLen
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errFormat marks a segment or record that fails its checks.
var errFormat = errors.New("damaged log")

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errFormat, fmt.Sprintf(format, a...))
}

// segHeader is what a segment's header says.
type segHeader struct {
	gen     uint64 // the segment's number, also in its file name; never reused in one store
	nextSeq uint64 // the next message's sequence number when the segment was started
}

func encodeHeader(h segHeader) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.BigEndian.PutUint16(b[8:], segVersion)
	binary.BigEndian.PutUint64(b[16:], h.gen)
	binary.BigEndian.PutUint64(b[24:], h.nextSeq)
	binary.BigEndian.PutUint32(b[segHeaderSize-4:], crc32.Checksum(b[:segHeaderSize-4], crcTable))
	return b
}

func parseHeader(b []byte) (segHeader, error) {
	switch {
	case len(b) < segHeaderSize:
		return segHeader{}, formatErr("segment of %d bytes is shorter than its header", len(b))
	case string(b[:8]) != segMagic:
		return segHeader{}, formatErr("not a segment (magic %q)", b[:8])
	case binary.BigEndian.Uint32(b[segHeaderSize-4:]) != crc32.Checksum(b[:segHeaderSize-4], crcTable):
		return segHeader{}, formatErr("segment header checksum mismatch")
	case binary.BigEndian.Uint16(b[8:]) != segVersion:
		return segHeader{}, formatErr("segment format version %d, want %d", binary.BigEndian.Uint16(b[8:]), segVersion)
	}
	return segHeader{gen: binary.BigEndian.Uint64(b[16:]), nextSeq: binary.BigEndian.Uint64(b[24:])}, nil
}

// runSeed is the CRC seed of the records of one run of one segment.
func runSeed(gen uint64, run uint32) uint32 {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], gen)
	binary.BigEndian.PutUint32(b[8:], run)
	return crc32.Checksum(b[:], crcTable)
}

// appendRecord appends one record to dst.
func appendRecord(dst []byte, seed uint32, typ byte, body []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, 0, 0, 0, 0, typ)
	dst = append(dst, body...)
	binary.BigEndian.PutUint32(dst[start+4:], logCRC(seed, dst[start:start+4], typ, body))
	return dst
}

func logCRC(seed uint32, length []byte, typ byte, body []byte) uint32 {
	c := crc32.Update(seed, crcTable, length)
	c = crc32.Update(c, crcTable, []byte{typ})
	return crc32.Update(c, crcTable, body)
}

// putBody is a put record's body.
type putBody struct {
	seq      uint64
	stored   int64 // Unix ns
	flags    byte
	attempts uint32
	topic    string
	payload  []byte
}

func (p putBody) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, p.seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.stored))
	dst = append(dst, p.flags)
	dst = binary.BigEndian.AppendUint32(dst, p.attempts)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.topic)))
	dst = append(dst, p.topic...)
	return append(dst, p.payload...)
}

// parsePut decodes a put record's body; payload aliases b.
func parsePut(b []byte) (putBody, error) {
	p, tl, err := parsePutFixed(b)
	if err != nil {
		return putBody{}, err
	}
	p.topic = string(b[putFixed : putFixed+tl])
	p.payload = b[putFixed+tl:]
	return p, nil
}

// parsePutFixed decodes and checks the fixed fields of a put record's body (not its topic and
// payload) and returns the topic's length.
func parsePutFixed(b []byte) (putBody, int, error) {
	if len(b) < putFixed {
		return putBody{}, 0, formatErr("put record of %d bytes", len(b))
	}
	p := putBody{
		seq:      binary.BigEndian.Uint64(b),
		stored:   int64(binary.BigEndian.Uint64(b[8:])),
		flags:    b[16],
		attempts: binary.BigEndian.Uint32(b[17:]),
	}
	tl := int(binary.BigEndian.Uint16(b[21:]))
	switch {
	case p.seq == 0:
		return putBody{}, 0, formatErr("put record with seq 0")
	case p.flags&^putFlagsMask != 0 || p.flags&putQoS == 3:
		return putBody{}, 0, formatErr("seq %d: flags %#x", p.seq, p.flags)
	case tl == 0 || putFixed+tl > len(b):
		return putBody{}, 0, formatErr("seq %d: topic of %d bytes in a body of %d", p.seq, tl, len(b))
	}
	return p, tl, nil
}

// message is the Message a put record holds; its Payload aliases p's (readPut reads each
// record into a buffer of its own, so no copy is needed).
func (p putBody) message() Message {
	return Message{
		Seq: p.seq, Topic: p.topic, Payload: p.payload,
		QoS: int(p.flags & putQoS), Retain: p.flags&putRetain != 0, Stored: time.Unix(0, p.stored),
	}
}

// appendRuns encodes seqs as runs of consecutive numbers: count u32, then (first u64, n u32)
// per run. The order of seqs is kept; a seq listed twice counts twice.
func appendRuns(dst []byte, seqs []uint64) []byte {
	countAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	runs := uint32(0)
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j] == seqs[j-1]+1 && uint64(j-i) < 1<<31 {
			j++
		}
		dst = binary.BigEndian.AppendUint64(dst, seqs[i])
		dst = binary.BigEndian.AppendUint32(dst, uint32(j-i))
		runs++
		i = j
	}
	binary.BigEndian.PutUint32(dst[countAt:], runs)
	return dst
}

// parseRuns calls fn for each seq of runs encoded by appendRuns, which must fill b exactly.
func parseRuns(b []byte, fn func(seq uint64)) error {
	if len(b) < 4 {
		return formatErr("run list of %d bytes", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-4) != uint64(n)*12 {
		return formatErr("%d runs in %d bytes", n, len(b)-4)
	}
	for i := 0; i < int(n); i++ {
		first := binary.BigEndian.Uint64(b[4+12*i:])
		count := binary.BigEndian.Uint32(b[4+12*i+8:])
		if first == 0 || count == 0 || first+uint64(count) < first {
			return formatErr("run of %d from seq %d", count, first)
		}
		for k := uint64(0); k < uint64(count); k++ {
			fn(first + k)
		}
	}
	return nil
}

// record is one record found by scanRecords; body aliases the scanned bytes.
type record struct {
	off  int // where the record starts in the segment
	typ  byte
	body []byte
}

// scanResult is what scanRecords found in a segment.
type scanResult struct {
	end     int    // where the valid records end: the next append goes here
	run     uint32 // the run at end
	ended   bool   // an END record closed the segment
	damaged int    // records stepped over: they failed their CRC but the record after them passed
}

// scanRecords reads the records of a segment (data is the whole file, header included) and
// calls fn for each valid one, in order, RUN and END included. It stops at the first record
// that fails its checks, unless the record that its length points to passes them: then the
// failed one is counted as damaged and stepped over (a flipped bit in a payload loses one
// message, not the rest of the segment). It never reads beyond data. An error from fn stops it
// and is returned.
func scanRecords(data []byte, gen uint64, fn func(record) error) (scanResult, error) {
	res := scanResult{end: segHeaderSize}
	seed := runSeed(gen, 0)
	off := segHeaderSize
	for !res.ended {
		typ, body, next, ok := readRecord(data, off, seed)
		if !ok {
			// Stepped over only when the length is plausible and leads to a sound record.
			n, ok2 := recordLen(data, off)
			if !ok2 || zeroRecord(data, off) {
				break
			}
			if _, _, _, ok3 := readRecord(data, off+n, seed); !ok3 {
				break
			}
			res.damaged++
			off += n
			res.end = off
			continue
		}
		if typ == recRun {
			if len(body) != 4 {
				res.damaged++
				off, res.end = next, next
				continue
			}
			res.run = binary.BigEndian.Uint32(body)
			seed = runSeed(gen, res.run)
		}
		if typ == recEnd {
			res.ended = true
		}
		if err := fn(record{off: off, typ: typ, body: body}); err != nil {
			return res, err
		}
		off, res.end = next, next
	}
	return res, nil
}

// recordLen is the length of the whole record at off as its length field says, if it fits.
func recordLen(data []byte, off int) (int, bool) {
	if off < 0 || off+recHeaderSize > len(data) {
		return 0, false
	}
	l := binary.BigEndian.Uint32(data[off:])
	if l > maxRecordLen || uint64(off)+recHeaderSize+uint64(l) > uint64(len(data)) {
		return 0, false
	}
	return recHeaderSize + int(l), true
}

func zeroRecord(data []byte, off int) bool {
	for _, b := range data[off : off+recHeaderSize] {
		if b != 0 {
			return false
		}
	}
	return true
}

// readRecord checks the record at off against seed and returns it.
func readRecord(data []byte, off int, seed uint32) (typ byte, body []byte, next int, ok bool) {
	n, ok := recordLen(data, off)
	if !ok {
		return 0, nil, 0, false
	}
	typ = data[off+8]
	body = data[off+recHeaderSize : off+n]
	if binary.BigEndian.Uint32(data[off+4:]) != logCRC(seed, data[off:off+4], typ, body) {
		return 0, nil, 0, false
	}
	return typ, body, off + n, true
}
